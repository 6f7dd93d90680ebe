/**
 * A Postmark-compatible API on loopback, for `mailover dev`, the demo and the tests: the calls
 * mailover makes, with Postmark's shapes (https://postmarkapp.com/developer/api/overview).
 *
 *   POST /email/batch                               up to 500 messages; 200 with one result per message
 *   POST /email                                     one message; 200, or 422 with its ErrorCode
 *   GET  /messages/outbound                         search: recipient, metadata_<key>, count, offset
 *   GET  /message-streams/{stream}/suppressions/dump
 *   POST /message-streams/{stream}/suppressions     { Suppressions: [{ EmailAddress }] }, at most 50
 *   GET  /server                                    the server's settings (mailover's verify)
 *
 * Every request must carry X-Postmark-Server-Token (else 401, ErrorCode 10). A message to an
 * address on its stream's suppression list gets ErrorCode 406 (inactive recipient); a malformed
 * address ErrorCode 300. Accepted messages are recorded (one per recipient) and searchable at
 * once. Faults: failNext (any status and ErrorCode, Retry-After), bad token, 5xx, a lost answer
 * (the call is processed, then the connection is dropped), a slow or hung answer, per-address
 * bounces (406 and a Bounce webhook), an outage. Webhooks (Bounce, SpamComplaint, Delivery,
 * SubscriptionChange) are posted with HTTP basic auth to the URL set by setWebhook.
 * Everything is in memory; nothing leaves the machine but the webhook posts to their URL.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { waitForEvents } from '../../dev/wait-for-event';
import type { EspEmulator, ReceivedMessage } from '../provider-module';
import { POSTMARK_MAX_BATCH } from './provider';
import { basicAuthHeader, EMULATOR_WEBHOOK_USER } from './webhooks';

const MAX_BODY = 50 * 1024 * 1024;
const SUPPRESSION_CHUNK = 50;

export interface PostmarkServerOptions {
  name?: string;
  port?: number;
  /** The server token clients must send. */
  serverToken: string;
}

/** One message the emulator accepted. */
export interface PostmarkMessage {
  id: string;
  to: string;
  from: string;
  subject: string;
  text?: string;
  html?: string;
  stream: string;
  tag?: string;
  metadata: Record<string, string>;
  /** Header name as sent → value. */
  headers: Record<string, string>;
  receivedAt: Date;
}

/** One API call, as the emulator answered it (status 0: never answered). */
export interface PostmarkCall {
  method: string;
  path: string;
  /** Messages in a send call. */
  messages: number;
  status: number;
  at: Date;
}

export interface PostmarkSuppression {
  email: string;
  reason: 'HardBounce' | 'SpamComplaint' | 'ManualSuppression';
  origin: 'Recipient' | 'Customer' | 'Admin';
  createdAt: Date;
}

export interface PostmarkFault {
  status: number;
  errorCode?: number;
  message?: string;
  retryAfterSeconds?: number;
}

interface Webhook {
  url: string;
  key: string;
}

export class PostmarkServer extends EventEmitter implements EspEmulator {
  readonly name: string;
  readonly host = '127.0.0.1';
  readonly serverToken: string;
  private _port: number;
  private readonly http: http.Server;
  private readonly recorded: PostmarkMessage[] = [];
  private readonly callLog: PostmarkCall[] = [];
  /** stream -> address (lower case) -> suppression */
  private readonly lists = new Map<string, Map<string, PostmarkSuppression>>();
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private webhook: Webhook | null = null;
  private nextBounceId = 1;

  // Faults
  private failNextFault: (PostmarkFault & { remaining: number }) | null = null;
  private badToken = false;
  private latencyMs = 0;
  private hangRemaining = 0;
  private dropRemaining = 0;
  private readonly bouncing = new Set<string>();
  private outage: PostmarkFault | null = null;
  private outageAfter: (() => void) | null = null;
  private stopped = false;
  private stopping: Promise<void> | null = null;

  private constructor(opts: PostmarkServerOptions) {
    super();
    if (typeof opts.serverToken !== 'string' || opts.serverToken === '') throw new Error('PostmarkServer: serverToken is required');
    this.name = opts.name ?? 'postmark';
    this._port = opts.port ?? 0;
    this.serverToken = opts.serverToken;
    this.http = http.createServer((req, res) => this.onRequest(req, res));
    this.http.on('connection', (socket: net.Socket) => this.onSocket(socket));
    this.http.on('error', () => undefined);
  }

  /** Starts a server listening on 127.0.0.1. Resolves once it accepts connections. */
  static async start(opts: PostmarkServerOptions): Promise<PostmarkServer> {
    const server = new PostmarkServer(opts);
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', (err) => reject(new Error(`${server.name}: cannot listen on ${server.host}:${server._port}: ${err.message}`)));
      server.http.listen(server._port, server.host, () => {
        const address = server.http.address();
        if (address && typeof address === 'object') server._port = address.port;
        resolve();
      });
    });
    return server;
  }

  get port(): number {
    return this._port;
  }

  /** host:port, as the client's requestHost takes it. */
  get requestHost(): string {
    return `${this.host}:${this._port}`;
  }

  get endpoint(): string {
    return `http://${this.requestHost}`;
  }

  get messages(): readonly PostmarkMessage[] {
    return this.recorded;
  }

  get calls(): readonly PostmarkCall[] {
    return this.callLog;
  }

  get acceptedCount(): number {
    return this.recorded.length;
  }

  received(): ReceivedMessage[] {
    return this.recorded.map((m) => ({ to: m.to, from: m.from, headers: Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k.toLowerCase(), v])) }));
  }

  countByRecipient(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const m of this.recorded) counts.set(m.to.toLowerCase(), (counts.get(m.to.toLowerCase()) ?? 0) + 1);
    return counts;
  }

  /** Resolves once `predicate` holds (checked on every accepted message and answered call). */
  waitFor(predicate: (server: PostmarkServer) => boolean, timeoutMs = 5000): Promise<void> {
    return waitForEvents(
      this,
      ['message', 'call'],
      () => predicate(this),
      timeoutMs,
      () => `${this.name}: condition not met within ${timeoutMs} ms (${this.recorded.length} messages accepted, ${this.callLog.length} calls)`,
    );
  }

  waitForCount(n: number, timeoutMs = 5000): Promise<void> {
    return this.waitFor((s) => s.acceptedCount >= n, timeoutMs);
  }

  // ---------------------------------------------------------------------------------------
  // Suppressions and webhooks

  /** A stream's suppression list. */
  suppressions(stream: string): PostmarkSuppression[] {
    return [...(this.lists.get(stream)?.values() ?? [])];
  }

  addSuppression(
    stream: string,
    email: string,
    reason: PostmarkSuppression['reason'] = 'ManualSuppression',
    origin: PostmarkSuppression['origin'] = 'Customer',
  ): void {
    let list = this.lists.get(stream);
    if (!list) this.lists.set(stream, (list = new Map()));
    const key = email.toLowerCase();
    if (!list.has(key)) list.set(key, { email: key, reason, origin, createdAt: new Date() });
  }

  /**
   * Where webhooks go (null: nowhere), with HTTP basic auth: `key` is the credentials
   * `user:pass` (the module's signing key), or just the password of user `postmark`.
   */
  setWebhook(url: string | null, key = ''): void {
    this.webhook = url ? { url, key } : null;
  }

  /** Posts a webhook body as Postmark would (basic auth with the webhook's key, unless `authorization` overrides it). */
  async postWebhook(body: Record<string, unknown>, authorization?: string): Promise<{ status: number; body: string }> {
    if (!this.webhook) throw new Error(`${this.name}: no webhook URL set`);
    const res = await fetch(this.webhook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: authorization ?? basicAuthHeader(this.webhook.key.includes(':') ? this.webhook.key : `${EMULATOR_WEBHOOK_USER}:${this.webhook.key}`),
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.text() };
  }

  /** The last message accepted for a recipient. */
  private lastTo(recipient: string): PostmarkMessage | undefined {
    const key = recipient.toLowerCase();
    for (let i = this.recorded.length - 1; i >= 0; i--) if (this.recorded[i].to.toLowerCase() === key) return this.recorded[i];
    return undefined;
  }

  /** A Bounce or SpamComplaint record about a recipient's last message, shaped as Postmark's documented examples. */
  bounceRecord(recipient: string, type: 'HardBounce' | 'SoftBounce' | 'SpamComplaint', at = new Date()): Record<string, unknown> {
    const m = this.lastTo(recipient);
    const complaint = type === 'SpamComplaint';
    return {
      RecordType: complaint ? 'SpamComplaint' : 'Bounce',
      MessageStream: m?.stream ?? 'outbound',
      ID: this.nextBounceId++,
      Type: type,
      TypeCode: complaint ? 512 : type === 'HardBounce' ? 1 : 4096,
      Name: complaint ? 'Spam complaint' : type === 'HardBounce' ? 'Hard bounce' : 'Soft bounce',
      Tag: m?.tag ?? '',
      MessageID: m?.id ?? randomUUID(),
      Metadata: m?.metadata ?? {},
      ServerID: 1,
      Description: complaint
        ? 'The subscriber explicitly marked this message as spam.'
        : 'The server was unable to deliver your message (ex: unknown user, mailbox not found).',
      Details: complaint ? 'Feedback loop report' : 'smtp;550 5.1.1 The email account that you tried to reach does not exist.',
      Email: recipient,
      From: m?.from ?? '',
      BouncedAt: at.toISOString(),
      DumpAvailable: false,
      Inactive: type !== 'SoftBounce',
      CanActivate: !complaint,
      Subject: m?.subject ?? '',
    };
  }

  /** A spam complaint about a recipient's message: suppressed on its stream, posted to the webhook. */
  async reportComplaint(recipient: string): Promise<{ webhookStatus?: number }> {
    const record = this.bounceRecord(recipient, 'SpamComplaint');
    this.addSuppression(String(record.MessageStream), recipient, 'SpamComplaint', 'Recipient');
    if (!this.webhook) return {};
    return { webhookStatus: (await this.postWebhook(record)).status };
  }

  /** A hard bounce of a recipient's message: suppressed on its stream, posted to the webhook. */
  async reportBounce(recipient: string): Promise<{ webhookStatus?: number; webhookBody?: string }> {
    const record = this.bounceRecord(recipient, 'HardBounce');
    this.addSuppression(String(record.MessageStream), recipient, 'HardBounce', 'Recipient');
    if (!this.webhook) return {};
    const r = await this.postWebhook(record);
    return { webhookStatus: r.status, webhookBody: r.body };
  }

  // ---------------------------------------------------------------------------------------
  // Faults

  /** The next `n` authorized calls answer `status` with { ErrorCode, Message } (Retry-After when given). */
  failNext(n: number, status: number, opts: Omit<PostmarkFault, 'status'> = {}): void {
    this.failNextFault = n > 0 ? { remaining: n, status, ...opts } : null;
  }

  /** While on, every call answers 401 ErrorCode 10 (the token was revoked). */
  setBadToken(on: boolean): void {
    this.badToken = on;
  }

  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  /** The next `n` send calls are never answered (their sockets stay open until the client leaves or stop()). */
  hangNext(n: number): void {
    this.hangRemaining = Math.max(0, n);
  }

  /** The next `n` send calls are processed (messages accepted) and then their connection is dropped with no answer. */
  acceptThenDropNext(n: number): void {
    this.dropRemaining = Math.max(0, n);
  }

  /** These recipients bounce for good: each message to them gets ErrorCode 406, as Postmark answers once it has marked them inactive. */
  bounceRecipients(addresses: string[]): void {
    for (const a of addresses) this.bouncing.add(a.toLowerCase());
  }

  /** An outage after `n` more accepted messages (0: now): every call answers 503 until heal(). */
  goDownAfter(n: number): void {
    if (this.outageAfter) this.off('message', this.outageAfter);
    this.outageAfter = null;
    const down = () => void (this.outage = { status: 503, message: 'Service Unavailable' });
    if (n <= 0) return down();
    const target = this.recorded.length + n;
    const check = () => {
      if (this.recorded.length < target) return;
      this.off('message', check);
      this.outageAfter = null;
      down();
    };
    this.outageAfter = check;
    this.on('message', check);
  }

  heal(): void {
    if (this.outageAfter) this.off('message', this.outageAfter);
    this.outageAfter = null;
    this.outage = null;
    this.failNextFault = null;
    this.badToken = false;
    this.latencyMs = 0;
    this.hangRemaining = 0;
    this.dropRemaining = 0;
    this.bouncing.clear();
  }

  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopped = true;
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      for (const s of this.sockets) s.destroy();
      this.stopping = closed;
    }
    return this.stopping;
  }

  // ---------------------------------------------------------------------------------------
  // Requests

  private onSocket(socket: net.Socket): void {
    if (this.stopped) return void socket.destroy();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
  }

  private delay(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.stopped) return void req.socket.destroy();
    const url = new URL(req.url ?? '/', this.endpoint);
    const call: PostmarkCall = { method: req.method ?? 'GET', path: url.pathname, messages: 0, status: 0, at: new Date() };
    this.callLog.push(call);
    this.handle(req, res, url, call).catch((err: unknown) => {
      if (err instanceof ApiError) this.answer(res, call, err.status, { ErrorCode: err.errorCode, Message: err.message });
      else this.answer(res, call, 500, { ErrorCode: 0, Message: 'Internal server error' });
    });
  }

  private answer(res: http.ServerResponse, call: PostmarkCall, status: number, body: unknown, headers: Record<string, string> = {}): void {
    call.status = status;
    if (!res.headersSent && !res.destroyed) {
      const data = JSON.stringify(body);
      res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
      res.end(data);
    }
    this.emit('call', call);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL, call: PostmarkCall): Promise<void> {
    const body = await readBody(req);
    if (this.latencyMs) await this.delay(this.latencyMs);
    if (this.badToken || req.headers['x-postmark-server-token'] !== this.serverToken) {
      return this.answer(res, call, 401, { ErrorCode: 10, Message: 'Request does not contain a valid Server token.' });
    }
    if (this.outage) return this.fault(res, call, this.outage);
    if (this.failNextFault) {
      const f = this.failNextFault;
      if (--f.remaining <= 0) this.failNextFault = null;
      return this.fault(res, call, f);
    }
    const path = url.pathname.replace(/\/+$/, '');
    const sending = req.method === 'POST' && (path === '/email/batch' || path === '/email');
    if (sending && this.hangRemaining > 0) {
      this.hangRemaining--;
      return; // never answered: the socket stays open until the client leaves or stop()
    }
    if (req.method === 'POST' && path === '/email/batch') {
      const list = parseJson(body);
      if (!Array.isArray(list)) throw new ApiError(422, 402, 'Received invalid JSON input.');
      call.messages = list.length;
      if (list.length > POSTMARK_MAX_BATCH) throw new ApiError(422, 410, `Too many messages in batch: ${list.length}; the limit is ${POSTMARK_MAX_BATCH}.`);
      const results = list.map((m) => this.accept(m));
      return this.sent(res, call, 200, results);
    }
    if (req.method === 'POST' && path === '/email') {
      call.messages = 1;
      const result = this.accept(parseJson(body));
      return this.sent(res, call, result.ErrorCode === 0 ? 200 : 422, result);
    }
    if (req.method === 'GET' && path === '/messages/outbound') return this.answer(res, call, 200, this.search(url.searchParams));
    const dump = /^\/message-streams\/([^/]+)\/suppressions\/dump$/.exec(path);
    if (req.method === 'GET' && dump) {
      const stream = decodeURIComponent(dump[1]);
      return this.answer(res, call, 200, {
        Suppressions: this.suppressions(stream).map((s) => ({
          EmailAddress: s.email,
          SuppressionReason: s.reason,
          Origin: s.origin,
          CreatedAt: s.createdAt.toISOString(),
        })),
      });
    }
    const add = /^\/message-streams\/([^/]+)\/suppressions$/.exec(path);
    if (req.method === 'POST' && add) {
      const stream = decodeURIComponent(add[1]);
      const entries = (parseJson(body) as { Suppressions?: unknown } | null)?.Suppressions;
      if (!Array.isArray(entries)) throw new ApiError(422, 402, 'Expected { Suppressions: [...] }.');
      if (entries.length > SUPPRESSION_CHUNK) throw new ApiError(422, 300, `At most ${SUPPRESSION_CHUNK} suppressions per request.`);
      const out = entries.map((e: unknown) => {
        const email = (e as { EmailAddress?: unknown } | null)?.EmailAddress;
        if (typeof email !== 'string' || !ADDRESS.test(email)) return { EmailAddress: String(email), Status: 'Failed', Message: 'Invalid email address.' };
        this.addSuppression(stream, email, 'ManualSuppression', 'Customer');
        return { EmailAddress: email, Status: 'Queued', Message: null };
      });
      return this.answer(res, call, 200, { Suppressions: out });
    }
    if (req.method === 'GET' && path === '/server') return this.answer(res, call, 200, { ID: 1, Name: this.name, ApiTokens: ['***'], DeliveryType: 'Live' });
    throw new ApiError(404, 0, 'Not found');
  }

  /** A send call's answer, or its lost answer (acceptThenDropNext). */
  private sent(res: http.ServerResponse, call: PostmarkCall, status: number, body: unknown): void {
    if (this.dropRemaining > 0) {
      this.dropRemaining--;
      this.emit('call', call);
      res.socket?.destroy();
      return;
    }
    this.answer(res, call, status, body);
  }

  private fault(res: http.ServerResponse, call: PostmarkCall, f: PostmarkFault): void {
    const headers: Record<string, string> = f.retryAfterSeconds !== undefined ? { 'retry-after': String(f.retryAfterSeconds) } : {};
    this.answer(
      res,
      call,
      f.status,
      { ErrorCode: f.errorCode ?? (f.status === 429 ? 429 : 0), Message: f.message ?? http.STATUS_CODES[f.status] ?? `Error ${f.status}` },
      headers,
    );
  }

  /** One message of a send call: accepted and recorded, or refused with its ErrorCode. */
  private accept(raw: unknown): { ErrorCode: number; Message: string; MessageID?: string; To?: string; SubmittedAt?: string } {
    const m = (raw ?? {}) as Record<string, unknown>;
    const to = typeof m.To === 'string' ? m.To.trim() : '';
    if (!ADDRESS.test(to))
      return { ErrorCode: 300, Message: `Error parsing 'To': Illegal email address '${to.slice(0, 100)}'. It must contain the '@' symbol.` };
    if (typeof m.From !== 'string' || m.From === '') return { ErrorCode: 300, Message: "Invalid 'From' address: ''." };
    const stream = typeof m.MessageStream === 'string' && m.MessageStream ? m.MessageStream : 'outbound';
    if (this.bouncing.has(to.toLowerCase()) || this.lists.get(stream)?.has(to.toLowerCase())) {
      return {
        ErrorCode: 406,
        Message: `You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: ${to}. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.`,
      };
    }
    const headers: Record<string, string> = {};
    if (Array.isArray(m.Headers))
      for (const h of m.Headers as Array<{ Name?: unknown; Value?: unknown }>) if (typeof h?.Name === 'string') headers[h.Name] = String(h.Value ?? '');
    const metadata: Record<string, string> = {};
    if (m.Metadata && typeof m.Metadata === 'object') for (const [k, v] of Object.entries(m.Metadata)) metadata[k] = String(v);
    const message: PostmarkMessage = {
      id: randomUUID(),
      to,
      from: m.From,
      subject: String(m.Subject ?? ''),
      ...(typeof m.TextBody === 'string' ? { text: m.TextBody } : {}),
      ...(typeof m.HtmlBody === 'string' ? { html: m.HtmlBody } : {}),
      stream,
      ...(typeof m.Tag === 'string' ? { tag: m.Tag } : {}),
      metadata,
      headers,
      receivedAt: new Date(),
    };
    this.recorded.push(message);
    this.emit('message', message);
    return { ErrorCode: 0, Message: 'OK', MessageID: message.id, To: to, SubmittedAt: message.receivedAt.toISOString() };
  }

  /** GET /messages/outbound: recipient, metadata_<key>, messagestream, count (1-500, required) and offset. */
  private search(q: URLSearchParams): unknown {
    const count = Number(q.get('count'));
    const offset = Number(q.get('offset') ?? 0);
    if (!Number.isInteger(count) || count < 1 || count > 500) throw new ApiError(422, 0, 'count: expected 1-500.');
    const recipient = q.get('recipient')?.toLowerCase();
    const stream = q.get('messagestream');
    const meta = [...q.entries()].filter(([k]) => k.startsWith('metadata_')).map(([k, v]) => [k.slice('metadata_'.length), v] as const);
    const found = this.recorded
      .filter((m) => (!recipient || m.to.toLowerCase() === recipient) && (!stream || m.stream === stream) && meta.every(([k, v]) => m.metadata[k] === v))
      .reverse();
    return {
      TotalCount: found.length,
      Messages: found.slice(offset, offset + count).map((m) => ({
        MessageID: m.id,
        Tag: m.tag ?? '',
        To: [{ Email: m.to, Name: null }],
        Cc: [],
        Bcc: [],
        Recipients: [m.to],
        ReceivedAt: m.receivedAt.toISOString(),
        From: m.from,
        Subject: m.subject,
        Attachments: [],
        Status: 'Sent',
        Metadata: m.metadata,
        MessageStream: m.stream,
      })),
    };
  }
}

const ADDRESS = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message);
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new ApiError(422, 402, 'Received invalid JSON input.');
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => (size > MAX_BODY ? reject(new ApiError(413, 0, 'Payload too large')) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}
