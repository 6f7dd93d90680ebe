/**
 * The bounce listener's message size limit against clients that ignore SIZE: real SMTP over a raw
 * socket (it declares no SIZE unless told to), the listener and the compliance server's /metrics
 * on port 0, a SQLite store. No Temporal.
 */
import { strict as assert } from 'assert';
import { once } from 'events';
import { mkdtempSync, rmSync } from 'fs';
import net from 'net';
import { tmpdir } from 'os';
import { join } from 'path';
import type { BounceListener } from '../../src/compliance/bounce-listener';
import { startComplianceServices, type ComplianceServices } from '../../src/compliance/services';
import type { BounceSettings } from '../../src/compliance/settings';
import { bounceAddress } from '../../src/compliance/tokens';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';

const LIMIT = 64 * 1024;
const BOUNCE_DOMAIN = 'bounces.mailover.test';
const CAMPAIGN = 'size-limit';
const EMAILS = ['huge@size.example', 'after-huge@size.example', 'exact@size.example', 'one-over@size.example', 'after-one-over@size.example'];
const bounces: BounceSettings = {
  domain: BOUNCE_DOMAIN,
  localPart: 'bounces',
  signingKey: 'test-bounce-key-0123456789abcdef',
  host: '127.0.0.1',
  port: 0,
  maxMessageBytes: LIMIT,
};
const verp = (email: string) => bounceAddress(bounces, CAMPAIGN, EMAILS.indexOf(email) + 1);
const REFUSED = new RegExp(`^552 5\\.3\\.4 .*\\b${LIMIT} bytes\\b`);

/** A DSN reporting `email` as failed permanently: the text before and after the padding of its text/plain part. */
function dsnParts(email: string): { head: string; tail: string } {
  const head = [
    'From: Mail Delivery System <MAILER-DAEMON@relay.example>',
    `To: ${verp(email)}`,
    'Subject: Undelivered Mail Returned to Sender',
    `Message-ID: <dsn.${Math.random().toString(36).slice(2)}@relay.example>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"',
    '',
    '--BOUNDARY',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host relay.example. Your message could not be delivered.',
    '',
  ].join('\r\n');
  const tail = [
    '',
    '--BOUNDARY',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; relay.example',
    '',
    `Final-Recipient: rfc822; ${email}`,
    'Action: failed',
    'Status: 5.1.1',
    `Diagnostic-Code: smtp; 550 5.1.1 <${email}>: Recipient address rejected: User unknown`,
    '',
    '--BOUNDARY--',
    '',
  ].join('\r\n');
  return { head, tail };
}

/** `bytes` (>= 2) of text lines (CRLF-terminated, none starting with a dot). */
function padding(bytes: number): string {
  assert.ok(bytes >= 2);
  let out = '';
  while (bytes > 0) {
    const line = bytes >= 82 ? 78 : bytes;
    out += 'x'.repeat(line - 2) + '\r\n';
    bytes -= line;
  }
  return out;
}

/** A DSN of exactly `size` bytes as smtp-server counts DATA (everything before the final ".\r\n"). */
function dsnOfSize(email: string, size: number): string {
  const { head, tail } = dsnParts(email);
  const raw = head + padding(size - head.length - tail.length) + tail;
  assert.equal(Buffer.byteLength(raw), size);
  assert.ok(!/\r\n\./.test(raw), 'no dot-stuffing needed');
  return raw;
}

/** A minimal SMTP client on a raw socket: it writes exactly what it is told (no SIZE unless given). */
class RawSmtp {
  private text = '';
  private lines: string[] = [];
  private readonly replies: string[] = [];
  private waiter?: { resolve: (r: string) => void; reject: (e: Error) => void };
  private closed?: Error;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.text += d.toString('latin1');
      for (let i = this.text.indexOf('\r\n'); i >= 0; i = this.text.indexOf('\r\n')) {
        const line = this.text.slice(0, i);
        this.text = this.text.slice(i + 2);
        this.lines.push(line);
        if (/^\d{3}(?: |$)/.test(line)) {
          this.replies.push(this.lines.join('\n'));
          this.lines = [];
        }
      }
      this.settle();
    });
    const end = (err?: Error) => {
      this.closed ??= err ?? new Error('connection closed by the listener');
      this.settle();
    };
    socket.on('error', end);
    socket.on('close', () => end());
  }

  static async connect(port: number, host: string, open: Set<net.Socket>): Promise<RawSmtp> {
    const socket = net.connect(port, host);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    await once(socket, 'connect');
    const c = new RawSmtp(socket);
    assert.match(await c.reply(), /^220 /);
    return c;
  }

  private settle(): void {
    if (!this.waiter) return;
    const w = this.waiter;
    if (this.replies.length) {
      this.waiter = undefined;
      w.resolve(this.replies.shift()!);
    } else if (this.closed) {
      this.waiter = undefined;
      w.reject(this.closed);
    }
  }

  /** Replies received and not yet read. */
  get unread(): number {
    return this.replies.length;
  }

  reply(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.settle();
    });
  }

  command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  /** Writes with backpressure (the listener reads at its own pace). */
  async write(data: string | Buffer): Promise<void> {
    if (this.closed) throw this.closed;
    if (!this.socket.write(data)) await once(this.socket, 'drain');
  }

  /** MAIL FROM:<> (no SIZE), RCPT TO, DATA, then `send` writes the message; returns the reply to its end. */
  async transaction(to: string, send: (c: RawSmtp) => Promise<void>): Promise<string> {
    assert.match(await this.command('MAIL FROM:<>'), /^250 /);
    assert.match(await this.command(`RCPT TO:<${to}>`), /^250 /);
    assert.match(await this.command('DATA'), /^354 /);
    await send(this);
    await this.write('.\r\n');
    return this.reply();
  }
}

describe('bounce listener: message size limit (raw SMTP client, SQLite store, no Temporal)', function () {
  this.timeout(120_000);
  let dir: string;
  let store: Store;
  let services: ComplianceServices;
  let listener: BounceListener;
  const sockets = new Set<net.Socket>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mailover-bounce-size-'));
    store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') });
    await store.createCampaign({ id: CAMPAIGN, from: 'news@example.com', template: { subject: 's', text: 't' }, providers: ['smtp'], batchSize: 100 });
    await store.importAudience(
      CAMPAIGN,
      EMAILS.map((email) => ({ email, fields: {} })),
    );
  });
  beforeEach(async () => {
    services = await startComplianceServices(
      {
        providers: [],
        compliance: {
          webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 300, maxBodyBytes: 4096 },
          unsubscribe: { baseUrl: 'http://unsubscribe.mailover.test', signingKey: 'test-unsubscribe-key-0123456789', scope: 'all' },
          bounces,
        },
      },
      store,
      { http: 0, bounces: 0 },
    );
    listener = services.bounces!;
  });
  afterEach(async () => {
    for (const s of sockets) s.destroy();
    await services?.stop();
  });
  after(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const connect = () => RawSmtp.connect(listener.port, listener.host, sockets);
  const metric = async (name: string) =>
    Number(new RegExp(`^mailover_bounce_${name}_total (\\d+)$`, 'm').exec(await (await fetch(`${services.http.url}/metrics`)).text())?.[1]);
  const eventOf = async (email: string) => (await store.listEvents({ campaignId: CAMPAIGN })).filter((e) => e.email === email);

  it('bounce listener: a 50 MB DSN from a client that ignores SIZE is refused with 552 5.3.4 naming the limit after at most the limit is buffered; nothing in it is acted on; it is counted, and a small DSN in the same session is then processed', async () => {
    const c = await connect();
    assert.match(await c.command('EHLO relay.example'), new RegExp(`^250[- ]SIZE ${LIMIT}$`, 'm'), 'SIZE is still advertised');

    const { head, tail } = dsnParts('huge@size.example');
    const block = Buffer.from(padding(1024 * 1024));
    let sent = 0;
    const reply = await c.transaction(verp('huge@size.example'), async (cl) => {
      await cl.write(head);
      for (let i = 0; i < 50; i++) await cl.write(block);
      await cl.write(tail);
      sent = head.length + 50 * block.length + tail.length;
      // Past the limit the listener keeps reading (and discarding) to the end of DATA; it must not
      // answer while the client is still sending (the 50 MB went through, so an early reply would be here).
      assert.equal(cl.unread, 0, 'no reply before the end of DATA');
    });
    assert.ok(sent > 50 * 1024 * 1024);
    assert.match(reply, REFUSED, reply);
    assert.ok(
      listener.peakBufferedBytes > 0 && listener.peakBufferedBytes <= LIMIT,
      `held at most the limit (${LIMIT} bytes) of a ${sent}-byte message, held ${listener.peakBufferedBytes}`,
    );

    // Nothing from it was parsed or acted on; it is counted, also on the compliance server's /metrics.
    assert.deepEqual(await eventOf('huge@size.example'), []);
    assert.equal(await store.isSuppressed('huge@size.example'), false);
    assert.deepEqual([listener.counts.refusedTooLarge, listener.counts.dsn, listener.counts.notDsn, listener.counts.suppressed], [1, 0, 0, 0]);
    assert.equal(await metric('refused_too_large'), 1);

    // The session is still in step: the next transaction on it is an ordinary DSN, processed.
    const ok = await c.transaction(verp('after-huge@size.example'), (cl) => cl.write(dsnOfSize('after-huge@size.example', 2000)));
    assert.match(ok, /^250 /, ok);
    assert.equal((await eventOf('after-huge@size.example'))[0]?.type, 'failed-permanent');
    assert.equal(await store.isSuppressed('after-huge@size.example'), true);
    assert.deepEqual([listener.counts.refusedTooLarge, listener.counts.dsn, listener.counts.suppressed], [1, 1, 1]);
    assert.match(await c.command('QUIT'), /^221 /);
  });

  it('bounce listener: a DSN of exactly bounces.maxMessageBytes is accepted, held whole and acted on; one byte more is refused with 552 5.3.4 and not acted on, and the session goes on', async () => {
    const c = await connect();
    assert.match(await c.command('EHLO relay.example'), /^250 /m);

    const exact = await c.transaction(verp('exact@size.example'), (cl) => cl.write(dsnOfSize('exact@size.example', LIMIT)));
    assert.match(exact, /^250 /, exact);
    assert.equal(listener.peakBufferedBytes, LIMIT, 'the whole message, and only it, was held');
    assert.equal((await eventOf('exact@size.example'))[0]?.type, 'failed-permanent');
    assert.equal(await store.isSuppressed('exact@size.example'), true);

    const over = await c.transaction(verp('one-over@size.example'), (cl) => cl.write(dsnOfSize('one-over@size.example', LIMIT + 1)));
    assert.match(over, REFUSED, over);
    assert.equal(listener.peakBufferedBytes, LIMIT);
    assert.deepEqual(await eventOf('one-over@size.example'), []);
    assert.equal(await store.isSuppressed('one-over@size.example'), false);

    const next = await c.transaction(verp('after-one-over@size.example'), (cl) => cl.write(dsnOfSize('after-one-over@size.example', 3000)));
    assert.match(next, /^250 /, next);
    assert.equal(await store.isSuppressed('after-one-over@size.example'), true);
    assert.deepEqual([listener.counts.dsn, listener.counts.refusedTooLarge], [2, 1]);
    assert.equal(await metric('refused_too_large'), 1);
  });

  it('bounce listener: keeps SIZE for clients that honour it: EHLO advertises the limit and MAIL FROM declaring more is refused with 552 before any data; a smaller declared size goes on', async () => {
    const c = await connect();
    assert.match(await c.command('EHLO relay.example'), new RegExp(`^250[- ]SIZE ${LIMIT}$`, 'm'));
    assert.match(await c.command(`MAIL FROM:<> SIZE=${LIMIT + 1}`), /^552 .*\bsize\b/i);
    assert.match(await c.command(`MAIL FROM:<> SIZE=${LIMIT}`), /^250 /);
    assert.match(await c.command('RSET'), /^250 /);
    assert.equal(listener.counts.refusedTooLarge, 0, 'refused by smtp-server at MAIL FROM, before the listener saw any data');
  });
});
