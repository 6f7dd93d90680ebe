/**
 * The inbound SMTP listener (smtp-server) for the bounce domain. SMTP relays report bounces by
 * mail to the message's Return-Path, which mailover sets per recipient (VERP):
 * `bounces+<seq>-<campaign hash>-<signature>@<bounce domain>`. The listener
 *
 * - accepts RCPT TO only for valid, correctly signed bounce addresses (and the unsubscribe
 *   mailto address when it is on this domain or configured); anything else gets 550;
 * - limits messages to bounces.maxMessageBytes: advertised as SIZE (a client declaring more at
 *   MAIL FROM gets 552 there), and enforced while DATA arrives for clients that ignore it: past
 *   the limit nothing more is kept, the rest is read and discarded, and the end of DATA is
 *   answered 552 5.3.4 (counted as refusedTooLarge); nothing of such a message is parsed;
 * - offers STARTTLS when bounces.tls names a certificate and key (PEM files);
 * - parses delivery status notifications (RFC 3464, mailparser) and maps each to its ledger row
 *   by the token: the event is stored (provider = the row's provider, type, time, raw reason),
 *   and a permanent failure suppresses the row's address at once;
 * - takes `mailto:` unsubscribes: a message to the unsubscribe address whose subject carries the
 *   signed token (`unsubscribe <token>`) unsubscribes like the one-click POST.
 *
 * Counters in `counts` (on the compliance server's /metrics).
 */
import { createHash } from 'crypto';
import { readFileSync } from 'fs';
import type net from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { DeliveryEventInput, RecordEventResult, Store } from '../store/types';
import { dsnEventType, dsnReason, parseDsn } from './dsn';
import type { BounceSettings, UnsubscribeSettings } from './settings';
import { bounceTokenMatches, campaignHash, parseBounceAddress } from './tokens';
import { applyUnsubscribe } from './unsubscribe';
import type { DeliveryEventCounts } from './metrics';

export interface BounceListenerOptions {
  store: Store;
  bounces: BounceSettings;
  unsubscribe?: UnsubscribeSettings;
  /** Override bounces.port (0: any free port). */
  port?: number;
  /** Where stored delivery events are counted (the compliance server's /metrics). */
  events?: DeliveryEventCounts;
}

type Recipient = { kind: 'bounce'; campaignId: string; seq: number } | { kind: 'unsubscribe' };

interface SmtpError extends Error {
  responseCode: number;
}
function smtpError(code: number, message: string): SmtpError {
  return Object.assign(new Error(message), { responseCode: code });
}

export class BounceListener {
  readonly counts = { dsn: 0, suppressed: 0, notDsn: 0, unsubscribed: 0, refusedRecipients: 0, refusedTooLarge: 0, unmatched: 0, tlsMessages: 0 };
  private readonly smtp: SMTPServer;
  private readonly sockets = new Set<net.Socket>();
  private _port = 0;
  private _peakBufferedBytes = 0;
  private byHash = new Map<string, string[]>();

  private constructor(private readonly opts: BounceListenerOptions) {
    this.smtp = new SMTPServer({
      name: opts.bounces.domain,
      banner: 'mailover bounce listener',
      logger: false,
      authOptional: true,
      // STARTTLS with the configured certificate; without one it is refused (smtp-server would
      // otherwise answer it with its own built-in certificate, which has expired).
      ...(opts.bounces.tls
        ? { disabledCommands: ['AUTH'], key: readFileSync(opts.bounces.tls.keyFile), cert: readFileSync(opts.bounces.tls.certFile) }
        : { disabledCommands: ['AUTH', 'STARTTLS'], hideSTARTTLS: true }),
      size: opts.bounces.maxMessageBytes,
      onRcptTo: (address, session, cb) => {
        this.recipient(address.address)
          .then((r) => {
            if (!r) {
              this.counts.refusedRecipients++;
              return cb(smtpError(550, '5.1.1 no such bounce address'));
            }
            const routes = ((session as SMTPServerSession & { mailover?: Map<string, Recipient> }).mailover ??= new Map());
            routes.set(address.address, r);
            cb();
          })
          .catch(() => cb(smtpError(451, '4.3.0 temporary failure, try again later')));
      },
      onData: (stream, session, cb) => {
        this.receive(stream, session)
          .then(() => cb())
          .catch((err: unknown) =>
            cb(err instanceof Error && 'responseCode' in err ? (err as SmtpError) : smtpError(451, '4.3.0 temporary failure, try again later')),
          );
      },
    });
    this.smtp.on('error', () => undefined);
  }

  static async start(opts: BounceListenerOptions): Promise<BounceListener> {
    const l = new BounceListener(opts);
    const server = (l.smtp as unknown as { server: net.Server }).server;
    server.on('connection', (s: net.Socket) => {
      l.sockets.add(s);
      s.once('close', () => l.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      l.smtp.listen(opts.port ?? opts.bounces.port, opts.bounces.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    l._port = (server.address() as net.AddressInfo).port;
    return l;
  }

  get port(): number {
    return this._port;
  }

  /**
   * The most bytes of one message the listener has held in memory at once (never more than
   * bounces.maxMessageBytes: past it a message is discarded as it arrives). For tests; not a metric.
   */
  get peakBufferedBytes(): number {
    return this._peakBufferedBytes;
  }

  get host(): string {
    return this.opts.bounces.host === '0.0.0.0' ? '127.0.0.1' : this.opts.bounces.host;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.smtp.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** What a RCPT TO address is to us (verified), or null. */
  private async recipient(address: string): Promise<Recipient | null> {
    const mailto = this.opts.unsubscribe?.mailto;
    if (mailto && address.toLowerCase() === mailto.toLowerCase()) return { kind: 'unsubscribe' };
    const token = parseBounceAddress(this.opts.bounces, address);
    if (!token) return null;
    for (const campaignId of await this.campaignsWithHash(token.campaignHash)) {
      if (bounceTokenMatches(this.opts.bounces.signingKey, token, campaignId)) return { kind: 'bounce', campaignId, seq: token.seq };
    }
    return null;
  }

  private async campaignsWithHash(hash: string): Promise<string[]> {
    if (!this.byHash.has(hash)) {
      const map = new Map<string, string[]>();
      for (const id of await this.opts.store.listCampaignIds()) {
        const h = campaignHash(id);
        map.set(h, [...(map.get(h) ?? []), id]);
      }
      this.byHash = map;
    }
    return this.byHash.get(hash) ?? [];
  }

  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<void> {
    // SIZE only stops clients that honour it; smtp-server streams any DATA to us whatever its
    // size. So bytes are counted as they arrive: once past the limit, what was kept is dropped and
    // the rest is read and discarded to the end of DATA (smtp-server replies only then, so the
    // session stays in step), and the message is refused without being parsed.
    const limit = this.opts.bounces.maxMessageBytes;
    const chunks: Buffer[] = [];
    let received = 0;
    let held = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > limit) {
        chunks.length = 0;
        held = 0;
        continue;
      }
      chunks.push(chunk);
      held += chunk.length;
      if (held > this._peakBufferedBytes) this._peakBufferedBytes = held;
    }
    if (received > limit || stream.sizeExceeded) {
      this.counts.refusedTooLarge++;
      throw smtpError(552, `5.3.4 message too large: this bounce listener accepts at most ${limit} bytes`);
    }
    const raw = Buffer.concat(chunks, held);
    if (session.secure) this.counts.tlsMessages++;
    const routes = (session as SMTPServerSession & { mailover?: Map<string, Recipient> }).mailover ?? new Map<string, Recipient>();
    for (const rcpt of session.envelope.rcptTo as SMTPServerAddress[]) {
      const r = routes.get(rcpt.address);
      if (!r) continue;
      if (r.kind === 'unsubscribe') await this.mailtoUnsubscribe(raw);
      else await this.bounce(raw, r.campaignId, r.seq);
    }
  }

  private async mailtoUnsubscribe(raw: Buffer): Promise<void> {
    const s = this.opts.unsubscribe;
    if (!s) return;
    const { subject } = await parseDsn(raw);
    const token = /unsubscribe\s+(\S+)/i.exec(subject)?.[1];
    const outcome = token ? await applyUnsubscribe(this.opts.store, s, token, 'mailto') : null;
    if (outcome) this.counts.unsubscribed++;
    else this.counts.unmatched++;
  }

  private async bounce(raw: Buffer, campaignId: string, seq: number): Promise<void> {
    const { store } = this.opts;
    const row = await store.getRecipient(campaignId, seq);
    if (!row) {
      this.counts.unmatched++;
      return;
    }
    const dsn = await parseDsn(raw);
    // A row no provider was recorded for was never handed to one: whoever bounced it is unknown.
    const provider = row.provider ?? 'unknown';
    const id = dsn.messageId ?? createHash('sha256').update(raw).digest('hex').slice(0, 32);
    const block = dsn.recipients.find((r) => r.action === 'failed') ?? dsn.recipients[0];
    const type = block ? dsnEventType(block) : null;
    const event: DeliveryEventInput = {
      provider,
      providerEventId: `dsn:${campaignId}:${seq}:${id}`,
      type: type ?? 'failed-temporary',
      occurredAt: new Date(),
      email: row.email,
      campaignId,
      seq,
      reason: block ? dsnReason(block) : `not a delivery status notification: ${JSON.stringify(dsn.subject.slice(0, 200))}`,
    };
    if (dsn.isDsn) this.counts.dsn++;
    else this.counts.notDsn++;
    // Only a real DSN saying "failed" permanently suppresses; anything else is recorded.
    const suppress =
      dsn.isDsn && event.type === 'failed-permanent'
        ? { reason: `hard bounce (${provider}, DSN): ${event.reason}`.slice(0, 500), source: `${provider} DSN` }
        : undefined;
    const result: RecordEventResult = await store.recordEvent(event, suppress);
    if (result.recorded) this.opts.events?.count(event.provider, event.type);
    if (result.suppressed) this.counts.suppressed++;
  }
}
