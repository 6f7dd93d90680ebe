/**
 * The SMTP provider adapter against a real SmtpSink over TCP on loopback: delivery,
 * the failure taxonomy, the sendBatch contract (when it throws, no unreported message was
 * accepted) and the concurrency bound. Also the sink's own message parsing.
 */
import { strict as assert } from 'assert';
import { SmtpSink, parseMessage } from '../../src/providers/smtp/emulator';
import { SmtpProvider, type SmtpProviderConfig } from '../../src/providers/smtp/provider';
import type { OutgoingMessage, SendResult } from '../../src/providers/provider';
import { ProviderUnavailableError, RecipientDeferredError, RecipientPermanentError, TransientProviderError } from '../../src/errors';

const sinks: SmtpSink[] = [];
const providers: SmtpProvider[] = [];

async function startSink(opts: Parameters<typeof SmtpSink.start>[0] = {}): Promise<SmtpSink> {
  const sink = await SmtpSink.start({ name: 'sink', ...opts });
  sinks.push(sink);
  return sink;
}

function provider(sink: SmtpSink, extra: Partial<SmtpProviderConfig> = {}): SmtpProvider {
  const p = new SmtpProvider({ name: 'smtp-a', host: sink.host, port: sink.port, ...extra });
  providers.push(p);
  return p;
}

/** Merge-rendered messages, as the activity would build them. */
function messages(n: number, campaign = 'camp-1'): OutgoingMessage[] {
  return Array.from({ length: n }, (_, i) => {
    const seq = i + 1;
    const name = `Zoë ${seq}`;
    return {
      campaignId: campaign,
      seq,
      to: `user${seq}@example.com`,
      from: 'Shop <news@shop.example>',
      subject: `Hello ${name}, your ${seq}% offer €`,
      text: `Hi ${name},\nyour code is CODE-${seq}.\n${'long line '.repeat(12)}\n`,
      html: `<p>Hi <b>${name}</b>, your code is <code>CODE-${seq}</code>.</p>`,
      messageId: `<${campaign}.${seq}@mailover>`,
      headers: { 'X-Mailover-Campaign': campaign },
    };
  });
}

/** Runs sendBatch and collects what was reported, and what it threw (if anything). */
async function run(p: SmtpProvider, batch: OutgoingMessage[]): Promise<{ reports: Map<number, SendResult>; error: unknown }> {
  const reports = new Map<number, SendResult>();
  let error: unknown;
  try {
    await p.sendBatch(batch, async (m, r) => {
      assert.ok(!reports.has(m.seq), `message ${m.seq} reported twice`);
      reports.set(m.seq, r);
    });
  } catch (err) {
    error = err;
  }
  return { reports, error };
}

/** The sendBatch contract: accepted-reported == at the sink; nothing unreported is at the sink. */
function assertContract(sink: SmtpSink, batch: OutgoingMessage[], reports: Map<number, SendResult>): void {
  const atSink = sink.countByRecipient();
  for (const m of batch) {
    const r = reports.get(m.seq);
    const count = atSink.get(m.to) ?? 0;
    if (r?.status === 'accepted') assert.equal(count, 1, `${m.to} reported accepted: must be at the sink exactly once`);
    else assert.equal(count, 0, `${m.to} ${r ? 'reported rejected' : 'unreported'}: must not be at the sink`);
  }
}

afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  await Promise.all(sinks.splice(0).map((s) => s.stop()));
});

describe('smtp provider', function () {
  this.timeout(20_000);

  it('smtp: a batch of 50 is accepted exactly once each with subject, text, html and Message-ID intact', async () => {
    const sink = await startSink();
    const p = provider(sink);
    const batch = messages(50);
    const { reports, error } = await run(p, batch);
    assert.equal(error, undefined);
    assert.equal(reports.size, 50);
    assert.equal(sink.acceptedCount, 50);
    for (const m of batch) {
      const r = reports.get(m.seq);
      assert.deepEqual(r, { status: 'accepted', providerMessageId: m.messageId });
      const got = sink.messages.filter((s) => s.to.includes(m.to));
      assert.equal(got.length, 1, `${m.to} exactly once`);
      const g = got[0]!;
      assert.equal(g.subject, m.subject);
      assert.equal(g.text, m.text);
      assert.equal(g.html, m.html);
      assert.equal(g.messageId, m.messageId);
      assert.equal(g.from, 'news@shop.example');
      assert.equal(g.headers['x-mailover-campaign'], 'camp-1');
    }
  });

  it('smtp: 550 for chosen addresses rejects only those recipients, as hard bounces, and the rest are accepted', async () => {
    const sink = await startSink();
    sink.rejectRecipients(['user3@example.com', 'USER17@example.com']);
    const p = provider(sink);
    const batch = messages(20);
    const { reports, error } = await run(p, batch);
    assert.equal(error, undefined);
    assert.equal(reports.size, 20);
    for (const m of batch) {
      const r = reports.get(m.seq)!;
      if (m.seq === 3 || m.seq === 17) {
        assert.equal(r.status, 'rejected');
        assert.ok(r.status === 'rejected' && r.hardBounce, 'hard bounce');
        assert.match(r.status === 'rejected' ? r.reason : '', /^smtp-a: mailbox does not exist \(550 5\.1\.1\) at RCPT TO: "mailbox unavailable"$/);
      } else {
        assert.equal(r.status, 'accepted', `${m.to}`);
      }
    }
    assert.equal(sink.acceptedCount, 18);
    assertContract(sink, batch, reports);
  });

  it('smtp: 552 5.2.2 (mailbox full, permanent) rejects the message without a hard bounce: a full mailbox is never suppressed', async () => {
    const sink = await startSink();
    sink.rejectRecipients(['user2@example.com'], 552, '5.2.2 mailbox full');
    const p = provider(sink);
    const { reports, error } = await run(p, messages(3));
    assert.equal(error, undefined);
    assert.deepEqual(reports.get(2), {
      status: 'rejected',
      reason: 'smtp-a: mailbox full (552 5.2.2) at RCPT TO: "mailbox full"',
      hardBounce: false,
      signature: '552 5.2.2',
    });
    assert.equal(sink.acceptedCount, 2);
  });

  it('smtp: 452 4.2.2 at RCPT TO defers only that recipient; the batch goes on and the provider is not failed', async () => {
    const sink = await startSink();
    sink.rejectRecipients(['user4@example.com'], 452, '4.2.2 <{address}>: Mailbox full');
    const p = provider(sink);
    const { reports, error } = await run(p, messages(10));
    assert.equal(error, undefined, 'no provider-level error');
    const r = reports.get(4);
    assert.equal(r?.status, 'deferred');
    assert.equal(r?.status === 'deferred' ? r.signature : '', '452 4.2.2');
    assert.match(r?.status === 'deferred' ? r.reason : '', /^smtp-a: .*4\.2\.2.* at RCPT TO: "\[address\]: Mailbox full"$/);
    assert.ok(!JSON.stringify(r).includes('user4@'), 'the address is scrubbed from the reason');
    assert.equal(sink.acceptedCount, 9);
  });

  for (const how of ['close', 'reset', 'silence'] as const) {
    it(`smtp: a reply lost after the message data (connection ${how === 'silence' ? 'silent until the socket timeout' : how}) puts that recipient in doubt, never reports it as refused`, async () => {
      const sink = await startSink();
      const p = provider(sink, { pool: { maxConnections: 1 }, timeouts: { connectionMs: 2_000, greetingMs: 2_000, socketMs: 500 } });
      const batch = messages(5);
      const first = await run(p, batch.slice(0, 2));
      assert.equal(first.error, undefined);
      sink.loseRepliesAfterData(1, how);
      const { reports, error } = await run(p, batch.slice(2));
      assert.ok(error instanceof TransientProviderError, `got ${String(error)}`);
      assert.deepEqual(error.inDoubt, [3], 'the message whose reply was lost is in doubt');
      assert.match(error.message, /no reply after the message data.*in doubt/);
      assert.equal(reports.has(3), false, 'not reported: its outcome is unknown');
      assert.equal(sink.messages.find((m) => m.to.includes('user3@example.com'))?.replyLost, how, 'the relay did keep it');
    });
  }

  it('smtp: a connection lost before the message data is not in doubt (the relay cannot have it)', async () => {
    const sink = await startSink();
    const p = provider(sink, { pool: { maxConnections: 1 } });
    sink.failAfter(0, 'drop');
    const { error } = await run(p, messages(2));
    assert.ok(error instanceof TransientProviderError, `got ${String(error)}`);
    assert.deepEqual(error.inDoubt, []);
    assert.equal(sink.acceptedCount, 0);
  });

  it('smtp: 451 on the next 3 messages throws TransientProviderError and no unreported message reached the sink', async () => {
    const sink = await startSink();
    sink.setAcceptDelay(2);
    const p = provider(sink);
    const batch = messages(40);
    // Some messages go through first, so the failure comes mid-batch with others in flight.
    const first = await run(p, batch.slice(0, 10));
    assert.equal(first.error, undefined);
    sink.failNextMessages(3, 451);
    const { reports, error } = await run(p, batch.slice(10));
    assert.ok(error instanceof TransientProviderError, `got ${String(error)}`);
    assert.match(error.message, /^smtp-a: temporary refusal \(451 4\.3\.0\) at MAIL FROM: "local error in processing/);
    assert.ok(reports.size < 30, 'stopped starting new messages');
    for (const [seq, r] of first.reports) reports.set(seq, r);
    assertContract(sink, batch, reports);
    assert.equal([...reports.values()].filter((r) => r.status === 'accepted').length, sink.acceptedCount);

    // The retry (what the activity does next) sends the unreported rest: every address exactly once.
    const retry = await run(
      p,
      batch.filter((m) => !reports.has(m.seq)),
    );
    assert.equal(retry.error, undefined);
    assert.equal(sink.acceptedCount, 40);
    assert.ok([...sink.countByRecipient().values()].every((n) => n === 1));
  });

  const transient = [TransientProviderError];
  const unavailable = [ProviderUnavailableError];
  for (const fault of [
    { title: '452 at the end of DATA', apply: (s: SmtpSink) => s.failNextMessages(2, 452, 'data'), types: transient },
    { title: '421 on every message after 7', apply: (s: SmtpSink) => s.failAfter(7, { code: 421 }), types: transient },
    { title: 'dropped connections after 7', apply: (s: SmtpSink) => s.failAfter(7, 'drop'), types: transient },
    // Sessions cut mid-transaction see a dropped connection (transient) before new ones are refused.
    { title: 'refused connections after 7', apply: (s: SmtpSink) => s.failAfter(7, 'refuse'), types: [...unavailable, ...transient] },
    { title: '535 after 7', apply: (s: SmtpSink) => s.failAfter(7, 'auth'), types: unavailable },
  ]) {
    it(`smtp: when sendBatch throws (${fault.title}), every reported-accepted message is at the sink and no unreported one is`, async () => {
      const sink = await startSink();
      sink.setAcceptDelay(2);
      const p = provider(sink, { pool: { maxConnections: 4 } });
      const batch = messages(60);
      fault.apply(sink);
      const { reports, error } = await run(p, batch);
      assert.ok(
        fault.types.some((t) => error instanceof t),
        `expected ${fault.types.map((t) => t.name).join(' or ')}, got ${String(error)}`,
      );
      assert.ok(reports.size < batch.length, 'stopped starting new messages');
      assertContract(sink, batch, reports);
    });
  }

  it('smtp: wrong credentials fail with ProviderUnavailableError naming 535, never the password', async () => {
    const sink = await startSink({ auth: { user: 'mailer', pass: 'right-horse-battery' } });
    const bad = provider(sink, { auth: { user: 'mailer', pass: 'wrong-staple-9c1' } });
    const { reports, error } = await run(bad, messages(5));
    assert.ok(error instanceof ProviderUnavailableError, `got ${String(error)}`);
    assert.match(error.message, /^smtp-a: authentication failed \(535 5\.7\.8\) at AUTH/);
    assert.ok(!error.message.includes('wrong-staple-9c1'));
    assert.ok(!error.message.includes(Buffer.from('wrong-staple-9c1').toString('base64')));
    assert.equal(reports.size, 0);
    assert.equal(sink.acceptedCount, 0);

    const good = provider(sink, { auth: { user: 'mailer', pass: 'right-horse-battery' } });
    const ok = await run(good, messages(5));
    assert.equal(ok.error, undefined);
    assert.equal(sink.acceptedCount, 5);
  });

  it('smtp: a stopped server gives ProviderUnavailableError "connection refused" with host and port', async () => {
    const sink = await startSink();
    const p = provider(sink);
    await sink.stop();
    const { reports, error } = await run(p, messages(3));
    assert.ok(error instanceof ProviderUnavailableError, `got ${String(error)}`);
    assert.equal(error.message, `smtp-a: connection refused at 127.0.0.1:${sink.port}`);
    assert.equal(reports.size, 0);
  });

  it('smtp: refused after 3 gives ProviderUnavailableError; after heal the same provider sends again on the same port', async () => {
    const sink = await startSink();
    const p = provider(sink, { pool: { maxConnections: 1 } });
    const batch = messages(10);
    sink.failAfter(3, 'refuse');
    const first = await run(p, batch);
    assert.ok(first.error instanceof ProviderUnavailableError, `got ${String(first.error)}`);
    assert.equal(sink.acceptedCount, 3);
    assert.equal([...first.reports.values()].filter((r) => r.status === 'accepted').length, 3);
    assertContract(sink, batch, first.reports);

    const port = sink.port;
    await sink.heal();
    assert.equal(sink.port, port);
    const rest = batch.filter((m) => !first.reports.has(m.seq));
    const second = await run(p, rest);
    assert.equal(second.error, undefined);
    assert.equal(sink.acceptedCount, 10);
    assert.ok([...sink.countByRecipient().values()].every((n) => n === 1));
  });

  it('smtp: a dropped connection gives TransientProviderError', async () => {
    const sink = await startSink();
    const p = provider(sink);
    await sink.setMode('drop');
    const { reports, error } = await run(p, messages(5));
    assert.ok(error instanceof TransientProviderError, `got ${String(error)}`);
    assert.match(error.message, /^smtp-a: connection to 127\.0\.0\.1:\d+ closed unexpectedly/);
    assert.equal(reports.size, 0);
    assert.equal(sink.acceptedCount, 0);
  });

  it('smtp: with maxConnections 4, 200 messages go out once each over at most 4 simultaneous sessions', async () => {
    const sink = await startSink();
    sink.setAcceptDelay(2);
    const p = provider(sink, { pool: { maxConnections: 4 } });
    const batch = messages(200);
    let inFlightReports = 0;
    const { error } = await (async () => {
      try {
        await p.sendBatch(batch, async () => {
          inFlightReports += 1;
        });
        return { error: undefined };
      } catch (err) {
        return { error: err };
      }
    })();
    assert.equal(error, undefined);
    assert.equal(inFlightReports, 200);
    assert.equal(sink.acceptedCount, 200);
    assert.ok([...sink.countByRecipient().values()].every((n) => n === 1));
    assert.ok(sink.maxConcurrentSessions <= 4, `saw ${sink.maxConcurrentSessions} sessions`);
    assert.ok(sink.maxConcurrentSessions >= 2, `messages went out concurrently (saw ${sink.maxConcurrentSessions})`);
  });

  it('smtp: a report that throws stops the batch and its error is rethrown after in-flight sends settle', async () => {
    const sink = await startSink();
    const p = provider(sink, { pool: { maxConnections: 3 } });
    const batch = messages(30);
    let reported = 0;
    await assert.rejects(
      p.sendBatch(batch, async () => {
        reported += 1;
        if (reported === 5) throw new Error('ledger unavailable');
      }),
      /ledger unavailable/,
    );
    assert.ok(sink.acceptedCount < 30);
    // Nothing keeps sending after sendBatch returned.
    const atReturn = sink.acceptedCount;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(sink.acceptedCount, atReturn);
  });

  it('smtp: has no lookup (SMTP cannot look messages up)', () => {
    const p = new SmtpProvider({ name: 'smtp-a', host: '127.0.0.1', port: 1 });
    assert.equal(p.kind, 'smtp');
    assert.equal((p as { lookup?: unknown }).lookup, undefined);
  });
});

describe('smtp provider classify', () => {
  const p = new SmtpProvider({ name: 'smtp-a', host: 'mx.example', port: 2525, auth: { user: 'u', pass: 's3cret-pw' } });
  const err = (fields: Record<string, unknown>) => Object.assign(new Error(String(fields.message ?? 'failed')), fields);

  const cases: Array<[string, Record<string, unknown>, new (...args: never[]) => Error, boolean?]> = [
    ['535 at AUTH', { code: 'EAUTH', responseCode: 535, response: '535 5.7.8 bad credentials', command: 'AUTH PLAIN' }, ProviderUnavailableError],
    ['530 at MAIL FROM', { code: 'EENVELOPE', responseCode: 530, response: '530 authentication required', command: 'MAIL FROM' }, ProviderUnavailableError],
    ['EAUTH without a reply', { code: 'EAUTH', message: 'Missing credentials for "PLAIN"', command: 'API' }, ProviderUnavailableError],
    [
      'ECONNREFUSED (wrapped as ESOCKET)',
      { code: 'ESOCKET', originalCode: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:2525', command: 'CONN' },
      ProviderUnavailableError,
    ],
    ['ENOTFOUND', { code: 'EDNS', originalCode: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND mx.example' }, ProviderUnavailableError],
    ['EHOSTUNREACH', { code: 'ESOCKET', originalCode: 'EHOSTUNREACH' }, ProviderUnavailableError],
    ['554 at the greeting', { code: 'EPROTOCOL', responseCode: 554, response: '554 no service', command: 'CONN' }, ProviderUnavailableError],
    ['421 at MAIL FROM', { code: 'EENVELOPE', responseCode: 421, response: '421 try later', command: 'MAIL FROM' }, TransientProviderError],
    [
      '450 at RCPT TO (one recipient greylisted)',
      { code: 'EENVELOPE', responseCode: 450, response: '450 greylisted', command: 'RCPT TO' },
      RecipientDeferredError,
    ],
    [
      '452 4.2.2 at RCPT TO (mailbox full)',
      { code: 'EENVELOPE', responseCode: 452, response: '452 4.2.2 Mailbox full', command: 'RCPT TO' },
      RecipientDeferredError,
    ],
    [
      '550 5.7.1 relay access denied at RCPT TO',
      { code: 'EENVELOPE', responseCode: 550, response: '550 5.7.1 <bob@example.org>: Relay access denied', command: 'RCPT TO' },
      ProviderUnavailableError,
    ],
    [
      '553 5.7.1 sender rejected at MAIL FROM',
      { code: 'EENVELOPE', responseCode: 553, response: '553 5.7.1 <news@example.org>: Sender address rejected: not owned by user', command: 'MAIL FROM' },
      ProviderUnavailableError,
    ],
    ['451 at DATA', { code: 'EMESSAGE', responseCode: 451, response: '451 local error', command: 'DATA' }, TransientProviderError],
    [
      '452 at RCPT TO without an enhanced code (system storage)',
      { code: 'EENVELOPE', responseCode: 452, response: '452 too many', command: 'RCPT TO' },
      TransientProviderError,
    ],
    ['ETIMEDOUT', { code: 'ETIMEDOUT', message: 'Timeout', command: 'CONN' }, TransientProviderError],
    ['ECONNRESET', { code: 'ESOCKET', originalCode: 'ECONNRESET', message: 'read ECONNRESET' }, TransientProviderError],
    ['ECONNECTION (dropped)', { code: 'ECONNECTION', message: 'Connection closed unexpectedly', command: 'CONN' }, TransientProviderError],
    ['EPIPE', { code: 'EPIPE', message: 'write EPIPE' }, TransientProviderError],
    ['550 at RCPT TO', { code: 'EENVELOPE', responseCode: 550, response: '550 5.1.1 no such user', command: 'RCPT TO' }, RecipientPermanentError, true],
    ['551 at RCPT TO', { code: 'EENVELOPE', responseCode: 551, response: '551 user not local', command: 'RCPT TO' }, RecipientPermanentError, true],
    ['553 at RCPT TO', { code: 'EENVELOPE', responseCode: 553, response: '553 bad mailbox name', command: 'RCPT TO' }, RecipientPermanentError, true],
    ['552 at DATA', { code: 'EMESSAGE', responseCode: 552, response: '552 too big', command: 'DATA' }, RecipientPermanentError, false],
    [
      '554 after the data (the message is refused for the sender or content)',
      { code: 'EMESSAGE', responseCode: 554, response: '554 spam', command: 'DATA' },
      ProviderUnavailableError,
    ],
    [
      '554 relay denied at RCPT TO (no enhanced code)',
      { code: 'EENVELOPE', responseCode: 554, response: '554 relay denied', command: 'RCPT TO' },
      ProviderUnavailableError,
    ],
    [
      '552 5.3.4 after the data (this message too large)',
      { code: 'EMESSAGE', responseCode: 552, response: '552 5.3.4 Message size exceeds fixed limit', command: 'DATA' },
      RecipientPermanentError,
      false,
    ],
    ['an invalid address nodemailer will not send', { code: 'EENVELOPE', message: 'Invalid recipient "x"', command: 'API' }, RecipientPermanentError, false],
    ['something unknown', { message: 'weird' }, TransientProviderError],
  ];
  for (const [title, fields, type, hardBounce] of cases) {
    it(`smtp classify: ${title} -> ${type.name}${hardBounce === undefined ? '' : hardBounce ? ' (hard bounce)' : ' (no hard bounce)'}`, () => {
      const c = p.classify(err(fields));
      assert.ok(c instanceof type, `got ${c.name}: ${c.message}`);
      assert.ok(c.message.startsWith('smtp-a: '), c.message);
      if (typeof fields.responseCode === 'number') assert.ok(c.message.includes(String(fields.responseCode)), c.message);
      if (hardBounce !== undefined) assert.equal((c as RecipientPermanentError).hardBounce, hardBounce);
    });
  }

  it('smtp classify: a server reply that echoes the password is redacted', () => {
    const c = p.classify(err({ code: 'EAUTH', responseCode: 535, response: '535 bad password s3cret-pw', command: 'AUTH LOGIN' }));
    assert.ok(!c.message.includes('s3cret-pw'), c.message);
  });

  it('smtp classify: non-Error values and already classified errors', () => {
    assert.ok(p.classify('boom') instanceof TransientProviderError);
    assert.ok(p.classify(undefined) instanceof TransientProviderError);
    const already = new ProviderUnavailableError('smtp-a: marked down');
    assert.equal(p.classify(already), already);
  });
});

describe('smtp sink', function () {
  this.timeout(10_000);

  it('sink: parses a multipart message with quoted-printable and base64 parts and encoded-word headers', () => {
    const raw = [
      'From: "Shop" <news@shop.example>',
      'To: a@example.com',
      'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= =?UTF-8?B?IOKCrCAxMA==?=',
      'Message-ID: <c.1@mailover>',
      'X-Long: one',
      ' two',
      'Content-Type: multipart/alternative; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'Hall=C3=B6 this is a soft=',
      ' break',
      '--b1',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('<p>Hallö</p>').toString('base64'),
      '--b1--',
      '',
    ].join('\r\n');
    const parsed = parseMessage(Buffer.from(raw, 'latin1'));
    assert.equal(parsed.headers['subject'], 'Grüße € 10');
    assert.equal(parsed.headers['x-long'], 'one two');
    assert.equal(parsed.headers['message-id'], '<c.1@mailover>');
    assert.equal(parsed.text, 'Hallö this is a soft break');
    assert.equal(parsed.html, '<p>Hallö</p>');
  });

  it('sink: waitForCount resolves on the accepting event and rejects on timeout', async () => {
    const sink = await startSink();
    const p = provider(sink);
    const waiting = sink.waitForCount(3, 5000);
    await p.sendBatch(messages(3), async () => undefined);
    await waiting;
    await assert.rejects(sink.waitForCount(4, 50), /condition not met within 50 ms \(3 messages accepted\)/);
    sink.clear();
    assert.equal(sink.acceptedCount, 0);
  });

  it('sink: stop destroys open client sessions, is idempotent, and leaves the port refusing', async () => {
    const sink = await startSink();
    const p = provider(sink);
    await p.sendBatch(messages(2), async () => undefined);
    assert.ok(sink.openSessions > 0, 'pooled session still open');
    await sink.stop();
    await sink.stop();
    assert.equal(sink.openSessions, 0);
    const { error } = await run(p, messages(1));
    assert.ok(error instanceof ProviderUnavailableError, `got ${String(error)}`);
  });
});
