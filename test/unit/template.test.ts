/** Merge templates: fields, escaping, and merge values that try to break out of their place. */
import { strict as assert } from 'assert';
import { SmtpSink } from '../../src/providers/smtp/emulator';
import { SmtpProvider } from '../../src/providers/smtp/provider';
import { compileTemplate, templateProblems } from '../../src/template';

describe('templates', () => {
  const t = compileTemplate({ subject: 'Hi {{name}}', text: 'Dear {{name}},\n{{note}}', html: '<p>{{name}}</p>' });

  it('template: lists its merge fields and renders them; html values are escaped, text values are not', () => {
    assert.deepEqual(t.fields, ['name', 'note']);
    const r = t.render({ name: 'Ann & <Bob>', note: 'line 1\nline 2' });
    assert.equal(r.subject, 'Hi Ann & <Bob>');
    assert.equal(r.text, 'Dear Ann & <Bob>,\nline 1\nline 2');
    assert.equal(r.html, '<p>Ann &amp; &lt;Bob&gt;</p>');
  });

  it('template: a missing or empty merge value is an error naming the field', () => {
    assert.throws(() => t.render({ name: 'A' }), /missing merge field 'note'/);
    assert.throws(() => t.render({ name: '', note: 'x' }), /missing merge field 'name'/);
  });

  it('template: a merge value that starts a link must be http, https, mailto or tel; javascript: and data: are refused however they are spelled', () => {
    const linked = compileTemplate({
      subject: 'Hi',
      text: 'Go: {{link}}',
      html: '<a class="x" href="{{link}}">go</a> <img src={{pic}}> <a href="https://example.org/?u={{id}}">me</a> {{note}}',
    });
    assert.deepEqual(linked.urlFields, ['link', 'pic']);
    const ok = { link: 'https://example.org/a?b=1&c=2', pic: 'http://img.example/p.png', id: 'javascript:1', note: 'javascript:2' };
    assert.equal(
      linked.render(ok).html,
      '<a class="x" href="https://example.org/a?b=1&amp;c=2">go</a> <img src=http://img.example/p.png> <a href="https://example.org/?u=javascript:1">me</a> javascript:2',
    );
    assert.deepEqual(linked.problemsWith(ok), []);
    assert.deepEqual(linked.problemsWith({ ...ok, link: 'mailto:a@example.org' }), []);
    assert.deepEqual(linked.problemsWith({ ...ok, link: '/relative/path' }), []);
    for (const evil of [
      'javascript:alert(1)',
      ' JavaScript:alert(1)',
      'java\tscript:alert(1)',
      '\u0001javascript:x',
      'vbscript:x',
      'data:text/html,<script>1</script>',
    ]) {
      assert.throws(() => linked.render({ ...ok, link: evil }), /unsafe link in merge field 'link'/, evil);
      assert.equal(linked.problemsWith({ ...ok, link: evil }).length, 1, evil);
    }
    assert.throws(
      () => linked.render({ ...ok, pic: 'javascript:alert(1)' }),
      /unsafe link in merge field 'pic': "javascript:alert\(1\)" \(scheme 'javascript:'; allowed: http, https, mailto, tel\)/,
    );
    // The text part shows a link as text: nothing executes it there.
    assert.equal(compileTemplate({ subject: 'Hi', text: 'Go: {{link}}' }).render({ link: 'javascript:1' }).text, 'Go: javascript:1');
    assert.deepEqual(linked.problemsWith({ link: 'https://x', pic: 'https://y', id: '' }), ["has no value for merge field 'id', 'note'"]);
  });

  /** The problem and render error a link whose scheme merge values decide gives. */
  const unsafeMessage = (fields: string[], link: string, scheme: string) =>
    `unsafe link in merge field${fields.length > 1 ? 's' : ''} ${fields.map((f) => `'${f}'`).join(', ')}: ${JSON.stringify(link)} (scheme '${scheme}:'; allowed: http, https, mailto, tel)`;
  /** Asserts that these values are refused at launch (problemsWith) and at render, with one message. */
  const refused = (html: string, values: Record<string, string>, fields: string[], link: string, scheme = 'javascript') => {
    const t = compileTemplate({ subject: 'Hi', text: 'Hi', html });
    const message = unsafeMessage(fields, link, scheme);
    assert.deepEqual(t.problemsWith(values), [`has an ${message}`], `${html} with ${JSON.stringify(values)}`);
    assert.throws(
      () => t.render(values),
      (err: Error) => err.name === 'TemplateError' && err.message === message,
      `${html} with ${JSON.stringify(values)}`,
    );
  };
  /** Asserts that these values pass at launch and render to `expected`. */
  const passes = (html: string, values: Record<string, string>, expected: string) => {
    const t = compileTemplate({ subject: 'Hi', text: 'Hi', html });
    assert.deepEqual(t.problemsWith(values), [], `${html} with ${JSON.stringify(values)}`);
    assert.equal(t.render(values).html, expected);
  };

  /** Every way an HTML parser accepts an unquoted URL attribute value, with the field as {{link}}. */
  const UNQUOTED_FORMS = [
    '<a href={{link}}>go</a>',
    '<a href = {{link}}>go</a>',
    '<A HREF={{link}}>go</A>',
    '<img src={{link}}>',
    '<img alt=x src={{link}} />',
    '<a class=x href={{link}}>go</a>',
    '<a title="a > b" href={{link}}>go</a>',
    "<a title='a > b' href={{link}}>go</a>",
    '<a data-x="1"href={{link}}>go</a>',
    '<a\n\thref\r\n=\t\n{{link}}>go</a>',
    '<a href={{ link }}>go</a>',
    '<p>text <b>bold</b></p><form action={{link}}><button formaction={{link}}>x</button></form>',
  ];

  it('template: an unquoted href={{link}} with a javascript: value is refused at launch and at render, in every form an HTML parser accepts', () => {
    for (const html of UNQUOTED_FORMS) {
      assert.deepEqual(compileTemplate({ subject: 'Hi', text: 'Hi', html }).urlFields, ['link'], html);
      refused(html, { link: 'javascript:alert(1)' }, ['link'], 'javascript:alert(1)');
      refused(html, { link: ' JaVa\tScRiPt:alert(1)' }, ['link'], ' JaVa\tScRiPt:alert(1)');
      refused(html, { link: 'data:text/html,<script>1</script>' }, ['link'], 'data:text/html,<script>1</script>', 'data');
    }
    // A '/' before '>' belongs to an unquoted value: the link is what the client reads.
    refused('<a href={{link}}/>', { link: 'javascript:alert(1)' }, ['link'], 'javascript:alert(1)/');
  });

  it('template: http, https, mailto, tel and relative links in unquoted attributes pass and render escaped', () => {
    for (const html of UNQUOTED_FORMS) {
      for (const link of [
        'https://example.org/a?b=1&c=2',
        'http://example.org/',
        'mailto:ann@example.org',
        'tel:+15551234',
        '/relative/path',
        '?q=1',
        '#top',
      ]) {
        passes(html, { link }, html.replace(/\{\{ ?link ?\}\}/g, link.replace(/&/g, '&amp;')));
      }
    }
  });

  it('template: a link built from two merge values is checked as the link they make, naming every field that decides its scheme', () => {
    const both = ['scheme', 'rest'];
    refused('<a href="{{scheme}}{{rest}}">go</a>', { scheme: 'javascript', rest: ':alert(1)' }, both, 'javascript:alert(1)');
    refused('<a href="{{scheme}}{{rest}}">go</a>', { scheme: 'java', rest: 'script:alert(1)' }, both, 'javascript:alert(1)');
    refused('<a href="{{scheme}}{{rest}}">go</a>', { scheme: 'javascript:alert(1)//', rest: 'x' }, ['scheme'], 'javascript:alert(1)//x');
    refused('<a href={{scheme}}{{rest}}>go</a>', { scheme: 'javascript', rest: ':alert(1)' }, both, 'javascript:alert(1)');
    refused('<a href="  {{scheme}}{{rest}}">go</a>', { scheme: 'javascript', rest: ':alert(1)' }, both, '  javascript:alert(1)');
    refused('<a href="  {{scheme}}{{rest}}">go</a>', { scheme: '\u0001', rest: 'javascript:alert(1)' }, both, '  \u0001javascript:alert(1)');
    refused('<img src="{{a}}{{b}}{{c}}">', { a: 'da', b: 'ta', c: ':text/html,x' }, ['a', 'b', 'c'], 'data:text/html,x', 'data');
    refused('<a href="java{{rest}}">go</a>', { rest: 'script:alert(1)' }, ['rest'], 'javascript:alert(1)');
    // The ':' between the fields is the template's: it ends whatever scheme 'a' spells, and 'b' comes after it.
    refused('<a href="{{a}}:{{b}}">go</a>', { a: 'javascript', b: 'alert(1)' }, ['a'], 'javascript:alert(1)');
    refused('<a href={{a}}:{{b}}>go</a>', { a: 'vbscript', b: 'x' }, ['a'], 'vbscript:x', 'vbscript');
    assert.deepEqual(compileTemplate({ subject: 'Hi', text: 'Hi', html: '<a href="{{a}}:{{b}}">' }).urlFields, ['a']);
    assert.deepEqual(compileTemplate({ subject: 'Hi', text: 'Hi', html: '<a href="  {{scheme}}{{rest}}">' }).urlFields, ['rest', 'scheme']);
    // Safe links made of several values pass.
    passes('<a href="{{scheme}}{{rest}}">go</a>', { scheme: 'https', rest: '://example.org/?a=1&b=2' }, '<a href="https://example.org/?a=1&amp;b=2">go</a>');
    passes('<a href={{a}}:{{b}}>go</a>', { a: 'mailto', b: 'ann@example.org' }, '<a href=mailto:ann@example.org>go</a>');
    passes('<a href="{{a}}:{{b}}">go</a>', { a: 'tel', b: '+15551234' }, '<a href="tel:+15551234">go</a>');
    passes('<a href="  {{a}}{{b}}">go</a>', { a: '/path', b: '?javascript:1' }, '<a href="  /path?javascript:1">go</a>');
    passes('<a href="{{a}}{{b}}">go</a>', { a: 'java script', b: ':1' }, '<a href="java script:1">go</a>');
    // A problem is reported once per link it makes, however often the template repeats it.
    const twice = compileTemplate({ subject: 'Hi', text: 'Hi', html: '<a href="{{a}}{{b}}">1</a><a href="{{a}}{{b}}">2</a>' });
    assert.equal(twice.problemsWith({ a: 'javascript', b: ':1' }).length, 1);
  });

  it('template: a link whose template text fixes the scheme, and a field in text, a comment or a raw text element, are not checked', () => {
    const html = [
      '<a href="https://example.org/?u={{a}}">1</a>',
      '<a href=mailto:{{a}}>2</a>',
      '<a href="{{unsubscribe_url}}">3</a>',
      '<p title="<a href={{a}}>">{{a}}</p>',
      '<a title={{a}} class="{{a}}">4</a>',
      '<!-- <a href={{a}}> -->',
      '<style>a[href="{{a}}"] { color: red } a<b { }</style>',
      '<textarea><a href={{a}}></textarea>',
      '</a href={{a}}>',
      '<a href="/u/{{a}}">5</a>',
    ].join('\n');
    const t = compileTemplate({ subject: 'Hi', text: 'Hi', html });
    assert.deepEqual(t.urlFields, []);
    const values = { a: 'javascript:alert(1)' };
    assert.deepEqual(t.problemsWith(values), []);
    assert.ok(t.render(values, { unsubscribe_url: 'https://example.org/u/t' }).html!.includes('<a href="https://example.org/?u=javascript:alert(1)">1</a>'));
    // After a comment or raw text element ends, links are checked again.
    refused('<!-- x --><a href={{link}}>go</a>', { link: 'javascript:1' }, ['link'], 'javascript:1');
    refused('<style>a<b { }</style><a href={{link}}>go</a>', { link: 'javascript:1' }, ['link'], 'javascript:1');
    refused('<!-- a --!><a href={{link}}>go</a>', { link: 'javascript:1' }, ['link'], 'javascript:1');
    refused('<!DOCTYPE html><html><body><a href={{link}}>go</a>', { link: 'javascript:1' }, ['link'], 'javascript:1');
  });

  it('template: character references in the template text before a field are read as a mail client reads them; a merge value cannot spell a scheme with one', () => {
    // The template's own text fixes the scheme (java&#115;cript: is javascript:): the template author's choice, not a merge value's.
    assert.deepEqual(compileTemplate({ subject: 'Hi', text: 'Hi', html: '<a href="java&#115;cript:{{x}}">go</a>' }).urlFields, []);
    // Text that does not settle the scheme lets the merge value finish it.
    refused('<a href="java&#115;{{x}}">go</a>', { x: 'cript:alert(1)' }, ['x'], 'javascript:alert(1)');
    refused('<a href="&#x6A;&#97{{x}}">go</a>', { x: 'vascript:alert(1)' }, ['x'], 'javascript:alert(1)');
    refused('<a href="javascript{{x}}">go</a>', { x: ':1' }, ['x'], 'javascript:1');
    refused('<a href="&#32;&Tab;{{x}}">go</a>', { x: 'javascript:1' }, ['x'], ' \tjavascript:1');
    // A reference the template leaves open before a field might be closed by the value.
    refused('<a href="&#{{x}}">go</a>', { x: '106;avascript:alert(1)' }, ['x'], 'javascript:alert(1)');
    // A value's own references are escaped: the client reads "&#58;" as text, so the link is relative.
    for (const x of ['javascript&#58;alert(1)', 'javascript&colon;alert(1)', 'javascript&#x3A;alert(1)', 'javascript&#58alert(1)']) {
      passes('<a href="{{x}}">go</a>', { x }, `<a href="${x.replace(/&/g, '&amp;')}">go</a>`);
      passes('<a href={{x}}>go</a>', { x }, `<a href=${x.replace(/&/g, '&amp;')}>go</a>`);
    }
    passes('<a href="{{a}}{{b}}">go</a>', { a: 'javascript&', b: '#58;alert(1)' }, '<a href="javascript&amp;#58;alert(1)">go</a>');
  });

  it('template: an engine field in a link is trusted like the template text; launch checks without engine values as if it were empty', () => {
    const t = compileTemplate({ subject: 'Hi', text: 'Hi', html: '<a href="{{unsubscribe_url}}{{x}}">u</a>' });
    assert.deepEqual(t.urlFields, ['x']);
    const values = { x: 'javascript:1' };
    assert.equal(t.render(values, { unsubscribe_url: 'https://example.org/u/t' }).html, '<a href="https://example.org/u/tjavascript:1">u</a>');
    assert.deepEqual(t.problemsWith(values, { unsubscribe_url: 'https://example.org/u/t' }), []);
    assert.deepEqual(t.problemsWith(values), [`has an ${unsafeMessage(['x'], 'javascript:1', 'javascript')}`]);
  });

  it('template: a merge value in an unquoted attribute cannot end it and add an attribute (onmouseover=...): its spaces become character references', () => {
    // The scheme is https, so the link check passes; the space must not start an event handler attribute.
    passes('<a href={{link}}>go</a>', { link: 'https://example.org/ onmouseover=alert(1)' }, '<a href=https://example.org/&#32;onmouseover=alert(1)>go</a>');
    passes(
      '<a href={{a}}{{b}}>go</a>',
      { a: 'https://example.org/', b: '\tonfocus=alert(1)\nautofocus' },
      '<a href=https://example.org/&#9;onfocus=alert(1)&#10;autofocus>go</a>',
    );
    passes(
      '<td class={{c}} title = {{c}}>x</td>',
      { c: 'x\fonclick=alert(1)\r' },
      '<td class=x&#12;onclick=alert(1)&#13; title = x&#12;onclick=alert(1)&#13;>x</td>',
    );
    // A leading space decodes back too: the link check sees it, as a mail client would.
    refused('<a href={{link}}>go</a>', { link: ' javascript:alert(1)' }, ['link'], ' javascript:alert(1)');
    assert.equal(
      compileTemplate({ subject: 'Hi', text: 'Hi', html: '<a href={{link}}>go</a>' }).render({ link: ' /a b' }).html,
      '<a href=&#32;/a&#32;b>go</a>',
    );
    // Quoted values, text, subject and text part are escaped as before.
    const t = compileTemplate({ subject: 'Hi {{v}}', text: 'Hi {{v}}', html: '<p title="{{v}}" class=\'{{v}}\'>{{v}}</p>' });
    const v = 'a b/c=d';
    assert.deepEqual(t.render({ v }), { subject: 'Hi a b/c=d', text: 'Hi a b/c=d', html: '<p title="a b/c=d" class=\'a b/c=d\'>a b/c=d</p>' });
  });

  it('template: a merge value where a tag or attribute name goes stays one inert name: spaces, / and = become character references', () => {
    const t = compileTemplate({ subject: 'Hi', text: 'Hi', html: '<td {{attrs}}>x</td><{{tag}} title="t">y</{{tag}}><p{{more}}>z</p>' });
    assert.deepEqual(t.urlFields, []);
    const out = t.render({ attrs: 'onclick=alert(1) href=javascript:1', tag: 'a/href=javascript:1', more: '\tonclick=1' }).html;
    assert.equal(
      out,
      '<td onclick&#61;alert(1)&#32;href&#61;javascript:1>x</td><a&#47;href&#61;javascript:1 title="t">y</a&#47;href&#61;javascript:1><p&#9;onclick&#61;1>z</p>',
    );
  });

  it('template: malformed merge fields are reported with the part and position', () => {
    assert.deepEqual(templateProblems({ subject: 'Hi {{ first name }}', text: 'ok }}' }), [
      'template.subject: malformed merge field at position 4: "{{ first name }}" (expected {{name}} with letters, digits, _ . -)',
      'template.text: "}}" without "{{" at position 4',
    ]);
  });

  it('template: a CR/LF in a merge value cannot inject a header: the subject stays one line and no extra recipient gets the message', async () => {
    const r = t.render({ name: 'Bob\r\nBcc: victim@example.net\r\nX-Evil: 1', note: 'n' });
    assert.equal(r.subject, 'Hi Bob Bcc: victim@example.net X-Evil: 1');
    const sink = await SmtpSink.start();
    const provider = new SmtpProvider({ name: 'smtp-test', host: sink.host, port: sink.port });
    try {
      await provider.sendBatch(
        [{ campaignId: 'c', seq: 1, to: 'bob@example.com', from: 'news@example.org', ...r, messageId: '<c.1@example.org>' }],
        async () => undefined,
      );
      assert.equal(sink.messages.length, 1);
      assert.deepEqual(sink.messages[0].to, ['bob@example.com']);
      assert.equal(sink.messages[0].headers['x-evil'] ?? sink.messages[0].headers['X-Evil'], undefined);
      assert.equal(sink.messages[0].subject, 'Hi Bob Bcc: victim@example.net X-Evil: 1');
    } finally {
      await provider.close();
      await sink.stop();
    }
  });
});
