/**
 * The SMTP provider builds each message's MIME itself (src/providers/mime-message.ts) and hands
 * it to nodemailer as raw. What a recipient's server sees must be right: decoded headers and
 * bodies as rendered (non-ASCII included), every custom header, the envelope sender (VERP) as
 * Return-Path, and no way for a value to add a header or a recipient. Checked end to end through
 * a real SmtpSink over TCP, and on the built bytes (line lengths, CRLF, ASCII only).
 */
import { strict as assert } from 'assert';
import { SmtpSink, parseMessage, type SinkMessage } from '../../src/providers/smtp/emulator';
import { buildMime } from '../../src/providers/mime-message';
import type { OutgoingMessage, SendResult } from '../../src/providers/provider';
import { SmtpProvider } from '../../src/providers/smtp/provider';

let sink: SmtpSink;
let provider: SmtpProvider;

beforeEach(async () => {
  sink = await SmtpSink.start({ name: 'mime-sink' });
  provider = new SmtpProvider({ name: 'smtp-a', host: sink.host, port: sink.port });
});

afterEach(async () => {
  await provider.close();
  await sink.stop();
});

let seq = 0;
function message(overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  seq += 1;
  return {
    campaignId: 'camp-mime',
    seq,
    to: `reader${seq}@example.com`,
    from: 'News <news@shop.example>',
    subject: `Hello ${seq}`,
    text: `Hi ${seq}\n`,
    messageId: `<mo.camp-mime.${seq}@shop.example>`,
    ...overrides,
  };
}

/** Sends the messages as one batch and returns what the sink accepted for each, in order. */
async function deliver(...batch: OutgoingMessage[]): Promise<SinkMessage[]> {
  const reports = new Map<number, SendResult>();
  await provider.sendBatch(batch, async (m, r) => {
    reports.set(m.seq, r);
  });
  return batch.map((m) => {
    assert.deepEqual(reports.get(m.seq), { status: 'accepted', providerMessageId: m.messageId }, `${m.to} accepted`);
    const got = sink.messages.filter((s) => s.to.includes(m.to));
    assert.equal(got.length, 1, `${m.to} received exactly once`);
    return got[0]!;
  });
}

/** Header names in the raw message, in order, lower-cased (folded lines joined). */
function headerNames(raw: Buffer): string[] {
  const head = raw.toString('latin1').split('\r\n\r\n')[0]!;
  return head
    .split('\r\n')
    .filter((line) => !/^[ \t]/.test(line))
    .map((line) => line.slice(0, line.indexOf(':')).toLowerCase());
}

describe('MIME built by the SMTP provider', () => {
  it('mime: non-ASCII subject, sender name and bodies arrive decoded, with text and html parts and the Message-ID', async () => {
    const m = message({
      from: 'Zoë Café, Ltd <news@shop.example>',
      subject: 'Grüße, Zoë — your 10 % offer € and a subject long enough that it has to be folded over lines',
      text: 'Hallo Zoë,\n\nyour code is CAFÉ-10.\nA line that is long enough to need a soft line break in quoted-printable, surely more than 76.\n',
      html: '<p>Hallo <b>Zoë</b>, €10 off.</p>',
    });
    const [got] = await deliver(m);
    assert.equal(got!.subject, m.subject);
    assert.equal(got!.headers['from'], 'Zoë Café, Ltd <news@shop.example>');
    assert.equal(got!.headers['to'], m.to);
    assert.deepEqual(got!.to, [m.to]);
    assert.equal(got!.text, m.text);
    assert.equal(got!.html, m.html);
    assert.equal(got!.messageId, m.messageId);
    assert.equal(got!.headers['mime-version'], '1.0');
    assert.match(got!.headers['content-type']!, /^multipart\/alternative; boundary="/);
    assert.ok(!Number.isNaN(Date.parse(got!.headers['date']!)), `Date header parses: ${got!.headers['date']}`);
  });

  it('mime: text only is a single text/plain part; html only is a single text/html part', async () => {
    const [textOnly, htmlOnly] = await deliver(message({ text: 'Just text.\n' }), message({ text: '', html: '<p>Only html</p>' }));
    assert.match(textOnly!.headers['content-type']!, /^text\/plain; charset=utf-8$/);
    assert.equal(textOnly!.text, 'Just text.\n');
    assert.equal(textOnly!.html, undefined);
    assert.match(htmlOnly!.headers['content-type']!, /^text\/html; charset=utf-8$/);
    assert.equal(htmlOnly!.html, '<p>Only html</p>\n');
  });

  it('mime: a display name with commas and quotes is quoted, so the message has exactly one sender', async () => {
    const [got] = await deliver(message({ from: '"Doe, Jane \\"JD\\"" <jane@shop.example>' }));
    assert.equal(got!.headers['from'], '"Doe, Jane \\"JD\\"" <jane@shop.example>');
    assert.equal(got!.from, 'jane@shop.example');
  });

  it('mime: every custom header arrives (List-Unsubscribe folded but intact, non-ASCII values decoded)', async () => {
    const unsubscribe = `<https://shop.example/unsubscribe/${'a1b2c3'.repeat(12)}?c=camp-mime>, <mailto:unsubscribe@shop.example?subject=unsubscribe>`;
    const headers = {
      'X-Mailover-Campaign': 'camp-mime',
      'X-Mailover-Recipient': '7',
      'List-Unsubscribe': unsubscribe,
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      'X-Note': 'Zoë’s café',
    };
    const [got] = await deliver(message({ headers }));
    assert.equal(got!.headers['x-mailover-campaign'], 'camp-mime');
    assert.equal(got!.headers['x-mailover-recipient'], '7');
    assert.equal(got!.headers['list-unsubscribe'], unsubscribe);
    assert.equal(got!.headers['list-unsubscribe-post'], 'List-Unsubscribe=One-Click');
    assert.equal(got!.headers['x-note'], 'Zoë’s café');
  });

  it('mime: envelopeFrom (VERP) is the SMTP envelope sender, the Return-Path; without it the From address is', async () => {
    const [verp, plain] = await deliver(message({ envelopeFrom: 'bounces+camp-mime.1=reader@bounce.shop.example' }), message());
    assert.equal(verp!.from, 'bounces+camp-mime.1=reader@bounce.shop.example');
    assert.equal(verp!.headers['from'], 'News <news@shop.example>', 'the From header is unchanged');
    assert.equal(plain!.from, 'news@shop.example');
  });

  it('mime: CR/LF in the subject, a header value or a header name cannot add a header or a recipient', async () => {
    const m = message({
      subject: 'Hello\r\nBcc: victim@evil.example\r\nX-Evil: 1',
      headers: {
        'X-Note': 'fine\r\nBcc: victim2@evil.example\nX-Evil: 2',
        'X-Name\r\nBcc': 'victim3@evil.example',
        Bcc: 'victim4@evil.example',
        Subject: 'a second subject',
        'Content-Type': 'text/html',
      },
    });
    const [got] = await deliver(m);
    assert.deepEqual(got!.to, [m.to], 'one envelope recipient');
    assert.equal(got!.headers['bcc'], undefined);
    assert.equal(got!.headers['x-evil'], undefined);
    assert.equal(got!.subject, 'Hello Bcc: victim@evil.example X-Evil: 1');
    assert.equal(got!.headers['x-note'], 'fine Bcc: victim2@evil.example X-Evil: 2');
    assert.equal(got!.headers['x-namebcc'], 'victim3@evil.example', 'a name keeps only field-name characters');
    for (const victim of ['victim@evil.example', 'victim2@evil.example', 'victim3@evil.example', 'victim4@evil.example']) {
      assert.equal(sink.messages.filter((s) => s.to.includes(victim)).length, 0, `${victim} got nothing`);
    }
    const names = headerNames(buildMime(m)!.raw);
    assert.equal(names.filter((n) => n === 'subject').length, 1, 'one Subject header');
    assert.equal(names.filter((n) => n === 'content-type').length, 1, 'one Content-Type header');
    assert.equal(got!.text, m.text, 'still the text part');
    assert.ok(!names.includes('bcc'));
  });

  it('mime: text that looks like an encoded word, a MIME boundary or an SMTP end-of-data arrives literally', async () => {
    const m = message({
      subject: 'Price =?utf-8?Q?=E2=82=AC?= 5',
      text: 'Line one\n.\nAfter a lone dot\n--=_mo_0000_1\n..two dots\n',
      html: '<p>--=_mo_0000_1</p>\n.\n<p>end</p>',
    });
    const [got] = await deliver(m);
    assert.equal(got!.subject, 'Price =?utf-8?Q?=E2=82=AC?= 5');
    assert.equal(got!.text, m.text);
    assert.equal(got!.html, m.html);
  });

  it('mime: a body holding the very boundary line the message gets is encoded so the parts still split right', () => {
    const first = buildMime(message({ html: '<p>x</p>' }))!.raw.toString('latin1');
    const used = /boundary="([^"]+)"/.exec(first)![1]!;
    const next = used.replace(/\d+$/, (n) => String(Number(n) + 1));
    const m = message({ text: `before\n--${next}\nafter\n--${next}--\n`, html: `<p>--${next}</p>` });
    const raw = buildMime(m)!.raw;
    assert.ok(raw.toString('latin1').includes(`boundary="${next}"`), 'the boundary this test aimed at');
    const parsed = parseMessage(raw);
    assert.equal(parsed.text, m.text);
    assert.equal(parsed.html, m.html);
  });

  it('mime: non-Latin bodies (base64) and long lines round-trip; every line is CRLF-terminated, ASCII and at most 78 characters', async () => {
    const m = message({
      subject: 'Новости недели для вас',
      text: `${'Привет, это длинная строка текста. '.repeat(20)}\n${'x'.repeat(300)}\n`,
      html: `<p>${'日本語のテキスト'.repeat(40)}</p>`,
    });
    const [got] = await deliver(m);
    assert.equal(got!.subject, m.subject);
    assert.equal(got!.text, m.text);
    assert.equal(got!.html, m.html);
    const raw = buildMime(m)!.raw;
    const text = raw.toString('latin1');
    // eslint-disable-next-line no-control-regex -- the range starts at NUL on purpose
    assert.ok(!/[^\x00-\x7f]/.test(text), 'ASCII only');
    assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(text), 'no bare CR or LF');
    for (const line of text.split('\r\n')) assert.ok(line.length <= 78, `line of ${line.length}: ${line.slice(0, 40)}...`);
  });

  it('mime: a sender form it does not build itself (display name in envelopeFrom) still goes out through nodemailer', async () => {
    const m = message({ envelopeFrom: 'Bounces <bounces@bounce.shop.example>', subject: 'Grüße' });
    assert.equal(buildMime(m), null);
    const [got] = await deliver(m);
    assert.equal(got!.from, 'bounces@bounce.shop.example');
    assert.equal(got!.subject, 'Grüße');
    assert.equal(got!.text, m.text);
  });
});
