/** Merge templates: fields, escaping, and merge values that try to break out of their place. */
import { strict as assert } from 'assert';
import { SmtpSink } from '../src/dev/smtp-sink';
import { SmtpProvider } from '../src/providers/smtp';
import { compileTemplate, templateProblems } from '../src/template';

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
    const linked = compileTemplate({ subject: 'Hi', text: 'Go: {{link}}', html: '<a class="x" href="{{link}}">go</a> <img src={{pic}}> <a href="https://example.org/?u={{id}}">me</a> {{note}}' });
    assert.deepEqual(linked.urlFields, ['link', 'pic']);
    const ok = { link: 'https://example.org/a?b=1&c=2', pic: 'http://img.example/p.png', id: 'javascript:1', note: 'javascript:2' };
    assert.equal(linked.render(ok).html, '<a class="x" href="https://example.org/a?b=1&amp;c=2">go</a> <img src=http://img.example/p.png> <a href="https://example.org/?u=javascript:1">me</a> javascript:2');
    assert.deepEqual(linked.problemsWith(ok), []);
    assert.deepEqual(linked.problemsWith({ ...ok, link: 'mailto:a@example.org' }), []);
    assert.deepEqual(linked.problemsWith({ ...ok, link: '/relative/path' }), []);
    for (const evil of ['javascript:alert(1)', ' JavaScript:alert(1)', 'java\tscript:alert(1)', '\u0001javascript:x', 'vbscript:x', 'data:text/html,<script>1</script>']) {
      assert.throws(() => linked.render({ ...ok, link: evil }), /unsafe link in merge field 'link'/, evil);
      assert.equal(linked.problemsWith({ ...ok, link: evil }).length, 1, evil);
    }
    assert.throws(() => linked.render({ ...ok, pic: 'javascript:alert(1)' }), /unsafe link in merge field 'pic': "javascript:alert\(1\)" \(scheme 'javascript:'; allowed: http, https, mailto, tel\)/);
    // The text part shows a link as text: nothing executes it there.
    assert.equal(compileTemplate({ subject: 'Hi', text: 'Go: {{link}}' }).render({ link: 'javascript:1' }).text, 'Go: javascript:1');
    assert.deepEqual(linked.problemsWith({ link: 'https://x', pic: 'https://y', id: '' }), ["has no value for merge field 'id', 'note'"]);
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
      await provider.sendBatch([{ campaignId: 'c', seq: 1, to: 'bob@example.com', from: 'news@example.org', ...r, messageId: '<c.1@example.org>' }], async () => undefined);
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
