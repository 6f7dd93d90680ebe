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
