/**
 * A SendGrid-compatible v3 API on loopback for `mailover dev`, the tests and the demo: the
 * endpoints the SendGrid module uses, in memory, with faults to drive.
 *
 *   const sg = await SendGridServer.start({ name: 'sendgrid', apiKey: 'SG.test' });
 *   sg.failNext(1, 429, { resetSeconds: 2 });
 *   await sg.stop();
 *
 * Endpoints (Authorization `Bearer <apiKey>`, else 401 with SendGrid's error body):
 * - POST /v3/mail/send (JSON): from.email, 1-1000 personalizations each with to[] (1 address
 *   here), subject (the personalization's or the message's), content (non-empty values),
 *   substitutions of at most 10,000 bytes, custom_args (message-level and per personalization,
 *   merged) and headers. Answers 202 with an empty body and `X-Message-Id`, and records one message
 *   per personalization with its substitutions applied to subject and content; an invalid request
 *   is 400 `{ errors: [{ field, message }] }`.
 * - GET /v3/messages?query=...&limit=... (Email Activity): the query's clauses joined by AND:
 *   `unique_args['k']="v"`, `to_email="a@b"`, `last_event_time BETWEEN TIMESTAMP "..." AND
 *   TIMESTAMP "..."`; answers `{ messages: [{ msg_id, to_email, from_email, subject, status,
 *   last_event_time, ... }] }`, newest first.
 * - GET /v3/suppression/{bounces,blocks,spam_reports,unsubscribes}?limit&offset: `[{ email,
 *   created, reason?, status? }]`; POST /v3/asm/suppressions/global `{ recipient_emails }` → 201.
 * - GET /v3/scopes: `{ scopes: ['mail.send', ...] }`.
 *
 * Faults of POST /v3/mail/send, in the order checked (`heal()` clears them all):
 *   hangNext(n)           never answered, nothing recorded (a client times out);
 *   setLatency(ms)        wait before deciding (a slow answer);
 *   setAuthFailure(true)  401;
 *   failNext(n, status)   the next n calls answer status: 429 with X-RateLimit-Reset (`resetSeconds`
 *                         from now), 400 with field errors, 5xx, anything;
 *   maxBodyBytes(n)       a body over n bytes: 413 (nginx's HTML page, as SendGrid's front answers);
 *   validation            400;
 *   acceptThenDropNext(n) accepted and recorded, then the socket is destroyed with no answer;
 *   acceptThenFailNext(n, status) accepted and recorded, then answered status (a 5xx after the fact).
 * goDownAfter(n): after n more accepted messages every request (any endpoint) answers 503.
 *
 * Event Webhook: the server has its own P-256 key pair; `publicKey` is the verification key (base64,
 * as SendGrid shows it) and `setWebhook(url)` has events posted there, signed as SendGrid signs
 * them (ECDSA over timestamp + body, headers X-Twilio-Email-Event-Webhook-Signature / -Timestamp).
 * `postEvents(events)` posts a batch; `reportComplaint`, `bounceRecipients` and `simulateEvent`
 * post SendGrid-shaped events for accepted messages and put the address on the list SendGrid would.
 */
import { EventEmitter } from 'events';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'crypto';
import http from 'http';
import type { AddressInfo, Socket } from 'net';
import type { EspEmulator, ReceivedMessage } from '../provider-module';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER } from './webhooks';

/** One message the emulator accepted (one personalization). */
export interface SendGridMessage extends ReceivedMessage {
  subject: string;
  text?: string;
  html?: string;
  /** custom_args, message-level and the personalization's merged. */
  customArgs: Record<string, string>;
  categories: string[];
  /** The call's X-Message-Id. */
  xMessageId: string;
  /** The message's sg_message_id (X-Message-Id plus a per-recipient suffix). */
  sgMessageId: string;
  at: Date;
}

/** One POST /v3/mail/send, in arrival order (0: never answered). */
export interface SendGridCall {
  at: Date;
  status: number;
  personalizations: number;
  bytes: number;
}

export interface SendGridSuppression {
  email: string;
  created: number;
  reason?: string;
  status?: string;
}

export type SendGridSuppressionList = 'bounces' | 'blocks' | 'spam_reports' | 'unsubscribes';

interface Fault {
  status: number;
  resetSeconds?: number;
  errors?: Array<{ field: string | null; message: string }>;
}

export interface SendGridServerOptions {
  name: string;
  port?: number;
  apiKey: string;
}

const SUBSTITUTIONS_MAX_BYTES = 10_000;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const errorsBody = (errors: Array<{ field: string | null; message: string }>) => ({ errors: errors.map((e) => ({ ...e, help: null })) });

export class SendGridServer extends EventEmitter implements EspEmulator {
  readonly name: string;
  readonly apiKey: string;
  /** The Event Webhook verification key (base64 DER SubjectPublicKeyInfo, as SendGrid shows it). */
  readonly publicKey: string;
  private readonly privateKey: KeyObject;
  private readonly http: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly recorded: SendGridMessage[] = [];
  private readonly callLog: SendGridCall[] = [];
  private readonly lists: Record<SendGridSuppressionList, Map<string, SendGridSuppression>> = {
    bounces: new Map(),
    blocks: new Map(),
    spam_reports: new Map(),
    unsubscribes: new Map(),
  };
  private webhook: string | null = null;
  private latencyMs = 0;
  private hangRemaining = 0;
  private authFailure = false;
  private failNextFault: (Fault & { remaining: number }) | null = null;
  private failAllFault: Fault | null = null;
  private maxBytes: number | null = null;
  private dropRemaining = 0;
  private acceptThenFail: (Fault & { remaining: number }) | null = null;
  private outageAfter: (() => void) | null = null;
  private eventSeq = 0;
  port = 0;

  private constructor(opts: SendGridServerOptions) {
    super();
    if (!opts.apiKey) throw new Error('SendGridServer: apiKey is required');
    this.name = opts.name;
    this.apiKey = opts.apiKey;
    const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    this.http = http.createServer((req, res) => {
      this.route(req, res).catch((err: Error) => {
        if (!res.headersSent) json(res, 500, errorsBody([{ field: null, message: `emulator: ${err.message}` }]));
        else res.destroy();
      });
    });
    this.http.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(opts: SendGridServerOptions): Promise<SendGridServer> {
    const server = new SendGridServer(opts);
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', reject);
      server.http.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    server.port = (server.http.address() as AddressInfo).port;
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get endpoint(): string {
    return this.url;
  }

  get acceptedCount(): number {
    return this.recorded.length;
  }

  /** Accepted messages with everything SendGrid was given for them. */
  get messages(): readonly SendGridMessage[] {
    return this.recorded;
  }

  get calls(): readonly SendGridCall[] {
    return this.callLog;
  }

  get callCount(): number {
    return this.callLog.length;
  }

  received(): ReceivedMessage[] {
    return this.recorded.map((m) => ({ to: m.to, from: m.from, headers: m.headers }));
  }

  countByRecipient(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const m of this.recorded) counts.set(m.to.toLowerCase(), (counts.get(m.to.toLowerCase()) ?? 0) + 1);
    return counts;
  }

  /** Resolves once at least `n` messages were accepted; rejects after `timeoutMs`. */
  waitForCount(n: number, timeoutMs = 5000): Promise<void> {
    if (this.recorded.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.recorded.length < n) return;
        clearTimeout(timer);
        this.off('message', check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off('message', check);
        reject(new Error(`${this.name}: expected at least ${n} accepted messages within ${timeoutMs} ms, got ${this.recorded.length}`));
      }, timeoutMs);
      this.on('message', check);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Faults

  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  hangNext(n: number): void {
    this.hangRemaining = Math.max(0, n);
  }

  setAuthFailure(on: boolean): void {
    this.authFailure = on;
  }

  /** The next `n` calls answer `status`; 429 says when the limit resets (`resetSeconds` from now, default 1). */
  failNext(n: number, status: number, opts: { resetSeconds?: number; errors?: Array<{ field: string | null; message: string }> } = {}): void {
    this.failNextFault = n > 0 ? { remaining: n, status, ...opts } : null;
  }

  /** A body larger than `bytes` is refused with 413 (null: no limit). */
  maxBodyBytes(bytes: number | null): void {
    this.maxBytes = bytes;
  }

  acceptThenDropNext(n: number): void {
    this.dropRemaining = Math.max(0, n);
  }

  acceptThenFailNext(n: number, status: number): void {
    this.acceptThenFail = n > 0 ? { remaining: n, status } : null;
  }

  goDownAfter(n: number): void {
    if (this.outageAfter) this.off('message', this.outageAfter);
    this.outageAfter = null;
    const down = () => (this.failAllFault = { status: 503 });
    if (n <= 0) {
      down();
      return;
    }
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
    this.latencyMs = 0;
    this.hangRemaining = 0;
    this.authFailure = false;
    this.failNextFault = null;
    this.failAllFault = null;
    this.maxBytes = null;
    this.dropRemaining = 0;
    this.acceptThenFail = null;
  }

  // ---------------------------------------------------------------------------------------
  // Suppression lists and the Event Webhook

  suppressions(list: SendGridSuppressionList): SendGridSuppression[] {
    return [...this.lists[list].values()].sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
  }

  addSuppressions(list: SendGridSuppressionList, entries: Array<Partial<SendGridSuppression> & { email: string }>): void {
    for (const e of entries) this.lists[list].set(e.email.toLowerCase(), { created: Math.floor(Date.now() / 1000), ...e, email: e.email.toLowerCase() });
  }

  /** Where events are posted (null: nowhere). The key argument is the verification key the receiver holds; it must be this server's. */
  setWebhook(url: string | null, verificationKey?: string): void {
    if (url && verificationKey !== undefined && verificationKey !== this.publicKey)
      throw new Error(`${this.name}: the webhook receiver holds another verification key than this emulator's`);
    this.webhook = url;
  }

  /** The signature headers SendGrid would send with `body` at `timestamp`. */
  signatureHeaders(body: string, timestamp = Math.floor(Date.now() / 1000)): Record<string, string> {
    const signature = sign('sha256', Buffer.from(`${timestamp}${body}`, 'utf8'), this.privateKey).toString('base64');
    return { [SIGNATURE_HEADER]: signature, [TIMESTAMP_HEADER]: String(timestamp) };
  }

  /** Posts a batch of events to the webhook, signed; the receiver's status (undefined without a webhook). */
  async postEvents(events: Array<Record<string, unknown>>): Promise<{ webhookStatus?: number; body?: string }> {
    if (!this.webhook) return {};
    const body = JSON.stringify(events);
    const res = await fetch(this.webhook, { method: 'POST', headers: { 'content-type': 'application/json', ...this.signatureHeaders(body) }, body });
    return { webhookStatus: res.status, body: await res.text() };
  }

  /** A SendGrid-shaped event about the last accepted message to `recipient` (custom args at top level). */
  eventFor(recipient: string, event: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const m = [...this.recorded].reverse().find((x) => x.to.toLowerCase() === recipient.toLowerCase());
    if (!m) throw new Error(`${this.name}: no accepted message to ${recipient}`);
    return {
      email: m.to,
      timestamp: Math.floor(Date.now() / 1000),
      'smtp-id': `<${m.xMessageId}@ismtpd-emulator>`,
      event,
      ...(m.categories.length ? { category: m.categories } : {}),
      sg_event_id: `${randomBytes(16).toString('base64url')}${++this.eventSeq}`,
      sg_message_id: m.sgMessageId,
      ...m.customArgs,
      ...extra,
    };
  }

  /** SendGrid records the event for an accepted message, updates its lists as SendGrid does, and posts it. */
  async simulateEvent(
    recipient: string,
    event: 'delivered' | 'bounce' | 'spamreport' | 'unsubscribe',
    extra: Record<string, unknown> = {},
  ): Promise<{ webhookStatus?: number }> {
    const e = this.eventFor(
      recipient,
      event,
      event === 'bounce' ? { type: 'bounce', reason: '550 5.1.1 The email account that you tried to reach does not exist', status: '5.1.1', ...extra } : extra,
    );
    if (event === 'bounce') this.addSuppressions('bounces', [{ email: recipient, reason: String(e.reason), status: String(e.status) }]);
    if (event === 'spamreport') this.addSuppressions('spam_reports', [{ email: recipient }]);
    if (event === 'unsubscribe') this.addSuppressions('unsubscribes', [{ email: recipient }]);
    return this.postEvents([e]);
  }

  reportComplaint(recipient: string): Promise<{ webhookStatus?: number }> {
    return this.simulateEvent(recipient, 'spamreport');
  }

  /** SendGrid takes these recipients' messages and then bounces them: a bounce event each (once accepted), and its bounce list. */
  bounceRecipients(addresses: string[]): void {
    const pending = new Set(addresses.map((a) => a.toLowerCase()));
    this.on('message', (m: SendGridMessage) => {
      if (!pending.has(m.to.toLowerCase())) return;
      void this.simulateEvent(m.to, 'bounce').catch(() => undefined);
    });
  }

  // ---------------------------------------------------------------------------------------
  // HTTP

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const authorized = req.headers.authorization === `Bearer ${this.apiKey}`;
    if (req.method === 'POST' && url.pathname === '/v3/mail/send') return this.mailSend(req, res, raw, authorized);
    if (!authorized || this.authFailure)
      return json(res, 401, errorsBody([{ field: null, message: 'The provided authorization grant is invalid, expired, or revoked' }]));
    // An outage (goDownAfter) takes the whole API down.
    if (this.failAllFault) return json(res, this.failAllFault.status, errorsBody([{ field: null, message: 'Service Unavailable' }]));
    if (req.method === 'GET' && url.pathname === '/v3/scopes')
      return json(res, 200, { scopes: ['mail.send', 'messages.read', 'suppression.read', 'suppression.create', 'asm.groups.suppressions.create'] });
    if (req.method === 'GET' && url.pathname === '/v3/messages') return this.activity(res, url);
    const list = /^\/v3\/suppression\/(bounces|blocks|spam_reports|unsubscribes)$/.exec(url.pathname);
    if (req.method === 'GET' && list) {
      const limit = Math.min(500, Math.max(1, Number(url.searchParams.get('limit') ?? 500) || 500));
      const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0);
      return json(res, 200, this.suppressions(list[1] as SendGridSuppressionList).slice(offset, offset + limit));
    }
    if (req.method === 'POST' && url.pathname === '/v3/asm/suppressions/global') {
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return json(res, 400, errorsBody([{ field: null, message: 'invalid JSON' }]));
      }
      const emails = isObject(body) && Array.isArray(body.recipient_emails) ? body.recipient_emails.filter((e): e is string => typeof e === 'string') : null;
      if (!emails) return json(res, 400, errorsBody([{ field: 'recipient_emails', message: 'recipient_emails is required' }]));
      this.addSuppressions(
        'unsubscribes',
        emails.map((email) => ({ email })),
      );
      return json(res, 201, { recipient_emails: emails });
    }
    json(res, 404, errorsBody([{ field: null, message: 'resource not found' }]));
  }

  private async mailSend(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer, authorized: boolean): Promise<void> {
    const call: SendGridCall = { at: new Date(), status: 0, personalizations: 0, bytes: raw.length };
    this.callLog.push(call);
    if (this.hangRemaining > 0) {
      this.hangRemaining--;
      return; // never answered; the client's timeout ends it
    }
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
    if (req.socket.destroyed) return;
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      call.status = status;
      json(res, status, body, headers);
    };
    if (!authorized || this.authFailure)
      return answer(401, errorsBody([{ field: null, message: 'The provided authorization grant is invalid, expired, or revoked' }]));
    const fault = this.failAllFault ?? (this.failNextFault && this.failNextFault.remaining-- > 0 ? this.failNextFault : null);
    if (this.failNextFault && this.failNextFault.remaining <= 0) this.failNextFault = null;
    if (fault) return this.answerFault(fault, answer);
    if (this.maxBytes !== null && raw.length > this.maxBytes) {
      call.status = 413;
      const page =
        '<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
      res.writeHead(413, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(page) });
      res.end(page);
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return answer(400, errorsBody([{ field: null, message: 'Bad Request' }]));
    }
    const parsed = this.validate(body);
    if ('errors' in parsed) return answer(400, errorsBody(parsed.errors));
    call.personalizations = parsed.messages.length;
    const xMessageId = randomBytes(11).toString('base64url');
    parsed.messages.forEach((m, i) => {
      const message: SendGridMessage = { ...m, xMessageId, sgMessageId: `${xMessageId}.filterdrecv-emulator-${i}.0`, at: new Date() };
      this.recorded.push(message);
      this.emit('message', message);
    });
    if (this.dropRemaining > 0) {
      this.dropRemaining--;
      res.socket?.destroy();
      return;
    }
    if (this.acceptThenFail && this.acceptThenFail.remaining-- > 0) {
      const f = this.acceptThenFail;
      if (f.remaining <= 0) this.acceptThenFail = null;
      return this.answerFault(f, answer);
    }
    call.status = 202;
    res.writeHead(202, { 'x-message-id': xMessageId, 'content-length': 0 });
    res.end();
  }

  private answerFault(fault: Fault, answer: (status: number, body: unknown, headers?: Record<string, string>) => void): void {
    if (fault.status === 429) {
      const reset = Math.floor(Date.now() / 1000) + (fault.resetSeconds ?? 1);
      return answer(429, errorsBody([{ field: null, message: 'too many requests' }]), {
        'x-ratelimit-limit': '600',
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(reset),
      });
    }
    const message = fault.status >= 500 ? 'Internal server error' : 'error';
    answer(fault.status, errorsBody(fault.errors ?? [{ field: null, message }]));
  }

  /** The request's messages, one per personalization, or SendGrid's field errors. */
  private validate(
    body: unknown,
  ): { messages: Array<Omit<SendGridMessage, 'xMessageId' | 'sgMessageId' | 'at'>> } | { errors: Array<{ field: string | null; message: string }> } {
    const errors: Array<{ field: string | null; message: string }> = [];
    if (!isObject(body)) return { errors: [{ field: null, message: 'Bad Request' }] };
    const from = isObject(body.from) && typeof body.from.email === 'string' && /^[^@\s]+@[^@\s]+$/.test(body.from.email) ? body.from.email : null;
    if (!from) errors.push({ field: 'from.email', message: 'The from email does not contain a valid address.' });
    const ps = Array.isArray(body.personalizations) ? body.personalizations : null;
    if (!ps || ps.length === 0)
      errors.push({ field: 'personalizations', message: 'The personalizations field is required and must have at least one personalization.' });
    else if (ps.length > 1000) errors.push({ field: 'personalizations', message: 'The personalizations field must have no more than 1000 personalizations.' });
    const content = Array.isArray(body.content) ? body.content.filter(isObject) : [];
    if (!content.length || content.some((c) => typeof c.value !== 'string' || c.value === ''))
      errors.push({ field: 'content', message: 'The content value must be a string at least one character in length.' });
    const topArgs = isObject(body.custom_args) ? body.custom_args : {};
    const categories = Array.isArray(body.categories) ? body.categories.map(String) : [];
    const messages: Array<Omit<SendGridMessage, 'xMessageId' | 'sgMessageId' | 'at'>> = [];
    (ps ?? []).forEach((p, i) => {
      if (
        !isObject(p) ||
        !Array.isArray(p.to) ||
        p.to.length !== 1 ||
        !isObject(p.to[0]) ||
        typeof p.to[0].email !== 'string' ||
        !p.to[0].email.includes('@')
      ) {
        errors.push({ field: `personalizations.${i}.to`, message: 'Each personalization must have one valid to address (the emulator takes one).' });
        return;
      }
      const subs = isObject(p.substitutions) ? (p.substitutions as Record<string, string>) : {};
      const subBytes = Object.entries(subs).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(String(v)), 0);
      if (subBytes > SUBSTITUTIONS_MAX_BYTES)
        errors.push({
          field: `personalizations.${i}.substitutions`,
          message: 'The total size of substitutions must not exceed 10,000 bytes per personalization.',
        });
      const subject = typeof p.subject === 'string' ? p.subject : typeof body.subject === 'string' ? body.subject : '';
      if (!subject)
        errors.push({
          field: `personalizations.${i}.subject`,
          message: 'The subject is required. You can get around this requirement if you use a template with a subject defined.',
        });
      const apply = (s: string) => Object.entries(subs).reduce((acc, [k, v]) => acc.split(k).join(String(v)), s);
      const headers: Record<string, string> = {};
      for (const src of [body.headers, p.headers]) if (isObject(src)) for (const [k, v] of Object.entries(src)) headers[k.toLowerCase()] = String(v);
      const args: Record<string, string> = {};
      for (const src of [topArgs, isObject(p.custom_args) ? p.custom_args : {}]) for (const [k, v] of Object.entries(src)) args[k] = String(v);
      messages.push({
        to: p.to[0].email,
        from: from ?? '',
        headers,
        subject: apply(subject),
        text: content.find((c) => c.type === 'text/plain') ? apply(String(content.find((c) => c.type === 'text/plain')!.value)) : undefined,
        html: content.find((c) => c.type === 'text/html') ? apply(String(content.find((c) => c.type === 'text/html')!.value)) : undefined,
        customArgs: args,
        categories,
      });
    });
    return errors.length ? { errors } : { messages };
  }

  /** GET /v3/messages: the Email Activity search, over accepted messages. */
  private activity(res: http.ServerResponse, url: URL): void {
    const query = url.searchParams.get('query') ?? '';
    const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get('limit') ?? 10) || 10));
    const filters: Array<(m: SendGridMessage) => boolean> = [];
    let rest = query;
    const take = (re: RegExp, make: (m: RegExpExecArray) => (x: SendGridMessage) => boolean) => {
      for (let m = re.exec(rest); m; m = re.exec(rest)) {
        filters.push(make(m));
        rest = rest.replace(m[0], '');
      }
    };
    take(/last_event_time\s+BETWEEN\s+TIMESTAMP\s+"([^"]*)"\s+AND\s+TIMESTAMP\s+"([^"]*)"/, (m) => {
      const [a, b] = [Date.parse(m[1]), Date.parse(m[2])];
      return (x) => x.at.getTime() >= a && x.at.getTime() <= b + 999;
    });
    take(/unique_args\['([^']+)'\]\s*=\s*"([^"]*)"/, (m) => (x) => x.customArgs[m[1]] === m[2]);
    take(/to_email\s*=\s*"([^"]*)"/, (m) => (x) => x.to.toLowerCase() === m[1].toLowerCase());
    if (rest.replace(/\bAND\b/g, '').trim() !== '')
      return json(res, 400, errorsBody([{ field: 'query', message: `emulator: unsupported query ${JSON.stringify(rest.trim())}` }]));
    const found = this.recorded
      .filter((x) => filters.every((f) => f(x)))
      .reverse()
      .slice(0, limit);
    json(res, 200, {
      messages: found.map((x) => ({
        from_email: x.from,
        msg_id: x.sgMessageId,
        subject: x.subject,
        to_email: x.to,
        status: 'delivered',
        opens_count: 0,
        clicks_count: 0,
        last_event_time: x.at.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      })),
    });
  }

  async stop(): Promise<void> {
    this.removeAllListeners();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}
