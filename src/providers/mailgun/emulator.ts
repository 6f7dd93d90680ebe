/**
 * MailgunServer: a Mailgun-compatible HTTP API on loopback that records what it accepts and
 * can be told to misbehave.
 *
 * Used by the tests (the Mailgun provider is exercised over real HTTP with mailgun.js), by the
 * demo and by `mailover dev`. Everything is in memory; nothing is logged.
 *
 *   const mg = await MailgunServer.start({ apiKey: 'key-test' });   // free port on 127.0.0.1
 *   const client = new Mailgun(FormData).client({ username: 'api', key: 'key-test', url: mg.url });
 *   mg.failNext(2, 429, { retryAfterSeconds: 1 });
 *   await mg.waitForCount(10);
 *   mg.heal();
 *   await mg.stop();
 *
 * Endpoints (HTTP basic auth `api:<apiKey>`, else 401 `Forbidden`):
 * - POST /v3/:domain/messages (multipart/form-data or application/x-www-form-urlencoded):
 *   from, to (repeatable, each may be a comma-separated list), subject, text and/or html,
 *   recipient-variables (JSON object keyed by address), o:*, h:*, v:*. Answers
 *   `{ id: '<20261127220000.ABCD...@domain>', message: 'Queued. Thank you.' }` and records one
 *   message per recipient, with `%recipient.KEY%` rendered in subject, text, html, h: and v:
 *   values (an unknown key is left as is), and one `accepted` event per recipient.
 * - GET /v3/:domain/events[/:page] with `event`, `recipient`, `message-id`, `limit` (1..300,
 *   default 100), `ascending` (yes/no, default no), `begin`/`end` (epoch seconds or a date
 *   string) and `page`. Paging as Mailgun does it: `paging.next` etc. are absolute URLs of the
 *   form `<url>/v3/<domain>/events/<token>`, so mailgun.js's `pages.next.page` works; the token
 *   carries the filters and a cursor. A page past the end has empty `items` and its `next` stays
 *   put, so polling `next` picks up events that arrive later (in ascending order).
 *   With both `begin` and `end` the direction follows them (begin > end is descending);
 *   otherwise `ascending` decides. Ascending: begin <= timestamp <= end; descending:
 *   end <= timestamp <= begin (each bound optional).
 *
 * - POST /v1/analytics/logs, Mailgun's Logs API (the events API is deprecated in its favour), over
 *   the same event log, account-wide (all domains): JSON query with start/end, events, filter.AND
 *   predicates and token paging; see emulator-logs.ts for what is implemented and from which reference.
 *   `logQueries` holds the query bodies received. The events endpoint stays for `verify()`, a
 *   domain-scoped read (the Logs API is account-wide, so it cannot tell an unknown domain).
 *
 * - Suppression lists, as Mailgun keeps them per domain: GET /v3/:domain/bounces|unsubscribes|complaints
 *   with `limit` (1..10000, default 100) and Mailgun's paging (`paging.next` is
 *   `<url>/v3/<domain>/<list>?page=next&address=<last address>&limit=N`, so mailgun.js's
 *   `pages.next.page` works; a page past the end is empty); items in address order:
 *   bounces `{ address, code, error, created_at }`, unsubscribes `{ address, tags, created_at }`,
 *   complaints `{ address, created_at }` (created_at as an RFC 2822 date). POST adds entries: a JSON
 *   array (up to 1000) or one form entry (address, code, error, tag). `suppressions(list)` reads them.
 * - Event webhooks (`setWebhook(url, signingKey)`): `simulateEvent(recipient, 'delivered' | 'failed' |
 *   'complained' | 'unsubscribed')` writes the event to the events API, puts permanent failures,
 *   complaints and unsubscribes on the domain's lists as Mailgun does, and POSTs it to the webhook
 *   URL in Mailgun's JSON form, signed with Mailgun's scheme (HMAC-SHA256 of timestamp + token).
 *
 * Fault model (`heal()` clears every fault and the latency; a call already waiting out
 * acceptSlowlyNext is still accepted). POST /messages checks each call in this order:
 *   hangNext(n)             consumed when the request arrives: never answered, nothing recorded;
 *   setLatency(ms)          wait before deciding and answering;
 *   client gone             a call whose client went away by now records nothing (status 0);
 *   setAuthFailure / key    401 `Forbidden`;
 *   failAll(status)         every call answers `status` (JSON `{message}`, optional Retry-After);
 *   failNext(n, status)     the next n calls that get this far answer `status`;
 *   maxRecipientsPerCall(n) more than n recipients: 413 `{ message: 'Request entity too large' }`;
 *   validation              400 `{ message }` naming the parameter.
 * A call that gets past all of these is valid. The faults below are consumed by valid calls in
 * the order they get here (all at that moment, so they combine: acceptSlowlyNext with either
 * of the other two; a call consumes at most one of acceptThenDropNext and acceptThenFailNext,
 * drop checked first). A valid call is accepted (recorded, its `accepted` events written,
 * 'message' emitted) and then:
 *   acceptSlowlyNext(n, ms)       is accepted only `ms` later, whether or not its client is still
 *                                 connected (Mailgun has the whole body; a client timing out does
 *                                 not cancel the send); answered as below if the client is still
 *                                 there, else nothing is sent (status 0);
 *   acceptThenDropNext(n)         its socket is reset without a response;
 *   acceptThenFailNext(n, status) is answered `status` (JSON `{message}`, optional Retry-After):
 *                                 Mailgun took the call but the answer says error;
 *   otherwise                     answered 200 `{ id, message: 'Queued. Thank you.' }`.
 * GET /events (and /events/:page) and POST /v1/analytics/logs check in this order: setAuthFailure / key 401 `Forbidden`;
 * failEvents(status) every request answers `status` until failEvents(null); failEventsNext(n,
 * status) the next n requests that get this far answer `status` (both JSON `{message}`, optional
 * Retry-After); parameter errors 400; then the page. The suppression-list endpoints are only
 * affected by setAuthFailure.
 *
 * Error bodies. Mailgun documents only part of its error answers ("API Response Codes",
 * https://documentation.mailgun.com/docs/mailgun/quickstart-guide/responses): a 400 "will
 * typically contain a JSON response with a "message" key"; 429 is to be retried as the response
 * says; 500 is an internal error to retry with exponential backoff. 502/503/504 are not listed
 * and no 5xx body shape is documented. Mailgun's own clients do not depend on one: mailgun-php
 * (src/Api/HttpApi.php, handleErrors) throws HttpServerException::serverError($statusCode) for
 * any status >= 500 without reading the body, and mailgun.js (14.x, APIError) takes `details`
 * from a JSON body's `message` or from a text body as is. A Mailgun 504 has been seen without a
 * JSON body at all (events API, mitodl/mitxpro#1460), but no source shows what a Mailgun edge
 * actually sends with a 502/503/504, so every fault here answers JSON `{ message }`; clients must
 * not depend on that body for 5xx.
 *
 * `calls` holds every POST /messages in arrival order with the status it was answered with;
 * status 0 means no HTTP response was sent (hung, dropped after accepting, or the client left,
 * including a client that left before a slow acceptance). Emits 'message' (MailgunMessage) per
 * recorded message, 'call' (MailgunCall) when a call's outcome is decided (for acceptSlowlyNext:
 * when it is accepted) and 'pending' (MailgunCall) when a valid call starts waiting out
 * acceptSlowlyNext (`pendingAcceptCount` counts those still waiting).
 */
import { EventEmitter } from 'node:events';
import { waitForEvents } from '../../dev/wait-for-event';
import type { EspEmulator, ReceivedMessage } from '../provider-module';
import http from 'node:http';
import type net from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { answerLogsQuery, LogsQueryError } from './emulator-logs';

export interface MailgunServerOptions {
  /** The API key clients must send as the password of HTTP basic auth with user `api`. */
  apiKey: string;
  /** TCP port on 127.0.0.1; 0 (default) picks a free port. */
  port?: number;
  /** Used in error messages. Default 'mailgun'. */
  name?: string;
}

/** One message accepted for one recipient, rendered with that recipient's variables. */
export interface MailgunMessage {
  /** The Mailgun id of the call that sent it, angle brackets included. */
  id: string;
  domain: string;
  from: string;
  /** The recipient's bare address, as given (case kept). */
  to: string;
  subject: string;
  text?: string;
  html?: string;
  /** From `h:` fields (prefix removed, name as given), rendered. */
  headers: Record<string, string>;
  /** From `v:` fields (prefix removed), rendered. */
  variables: Record<string, string>;
  /** From `o:` fields (prefix removed); repeated options are joined with ', '. */
  options: Record<string, string>;
  acceptedAt: Date;
}

/** One POST /messages call. */
export interface MailgunCall {
  /** The Mailgun id, when the call was accepted. */
  id?: string;
  /** Recipients the call named (0 when its body could not be parsed). */
  recipients: number;
  /** The HTTP status answered; 0 when no response was sent (hung, dropped, client left). */
  status: number;
  /** When the request arrived. */
  at: Date;
}

export type MailgunSuppressionList = 'bounces' | 'unsubscribes' | 'complaints';
export const MAILGUN_SUPPRESSION_LISTS: readonly MailgunSuppressionList[] = ['bounces', 'unsubscribes', 'complaints'];

/** One entry of a domain's suppression list, as the list endpoints return it. */
export interface MailgunSuppression {
  address: string;
  /** bounces only */
  code?: string;
  error?: string;
  /** unsubscribes only */
  tags?: string[];
  created_at: string;
}

export type SimulatedEventKind = 'delivered' | 'failed' | 'complained' | 'unsubscribed';

export interface SimulateEventOptions {
  /** failed only (default permanent). */
  severity?: 'permanent' | 'temporary';
  /** failed only: the SMTP code and message (default 550 / 5.1.1 mailbox does not exist). */
  code?: number;
  message?: string;
  /** Sign the webhook as if sent at this time (a stale request in tests). */
  signedAt?: Date;
}

/** An event as GET /v3/:domain/events returns it. */
export interface MailgunEvent {
  id: string;
  event: 'accepted' | SimulatedEventKind;
  severity?: 'permanent' | 'temporary';
  reason?: string;
  'delivery-status'?: { code: number; message: string; description: string };
  /** Epoch seconds (with milliseconds). */
  timestamp: number;
  'log-level': 'info' | 'warn' | 'error';
  method: 'HTTP';
  recipient: string;
  'recipient-domain': string;
  tags: string[];
  envelope: { sender: string; targets: string; transport: 'smtp' };
  message: { headers: { 'message-id': string; to: string; from: string; subject: string } };
  'user-variables': Record<string, string>;
}

export interface MailgunFaultOptions {
  /** Sent as the Retry-After header (seconds). */
  retryAfterSeconds?: number;
  /** The `message` of the JSON body (default: a text for the status). */
  message?: string;
}

interface Fault {
  status: number;
  retryAfterSeconds?: number;
  message?: string;
}

interface StoredEvent {
  seq: number;
  domain: string;
  item: MailgunEvent;
}

interface EventFilters {
  event?: string;
  recipient?: string;
  messageId?: string;
  begin?: number;
  end?: number;
  ascending?: boolean;
  limit?: number;
}

/** The state a paging token carries: filters plus a cursor. */
interface PageToken {
  f: EventFilters;
  /** Items strictly after this seq, in the page direction. */
  a?: number;
  /** Items strictly before this seq, in the page direction (the ones closest to it). */
  b?: number;
  /** The last page. */
  l?: 1;
}

interface ParsedSend {
  from?: string;
  toFields: string[];
  subject?: string;
  text?: string;
  html?: string;
  recipientVariables?: string;
  options: Record<string, string>;
  tags: string[];
  headers: Record<string, string>;
  variables: Record<string, string>;
}

class BadRequest extends Error {}

const MAX_RECIPIENTS = 1000;
const MAX_EVENTS_LIMIT = 300;
const DEFAULT_EVENTS_LIMIT = 100;
const MAX_BODY_BYTES = 50 * 1024 * 1024;

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request',
  401: 'Forbidden',
  402: 'Request failed',
  403: 'Forbidden',
  404: 'Not found',
  413: 'Request entity too large',
  429: 'Too many requests',
  500: 'Internal server error',
  502: 'Bad gateway',
  503: 'Service unavailable',
  504: 'Gateway timeout',
};

/**
 * Loopback Mailgun API for tests and `mailover dev`. Create with `MailgunServer.start()`;
 * always `stop()` it.
 */
export class MailgunServer extends EventEmitter implements EspEmulator {
  readonly name: string;
  readonly host = '127.0.0.1';
  private _port: number;
  /** The API key clients must send (a fake). */
  readonly apiKey: string;
  private readonly http: http.Server;

  private readonly recorded: MailgunMessage[] = [];
  private readonly callLog: MailgunCall[] = [];
  private readonly eventLog: StoredEvent[] = [];
  private readonly logQueryLog: unknown[] = [];
  /** domain (lower case) -> list -> address (lower case) -> entry */
  private readonly lists = new Map<string, Map<MailgunSuppressionList, Map<string, MailgunSuppression>>>();
  private webhook: { url: string; signingKey: string } | null = null;
  private nextSeq = 1;
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Valid calls waiting out acceptSlowlyNext. */
  private readonly slowCalls = new Set<MailgunCall>();

  // Faults
  private failNextFault: (Fault & { remaining: number }) | null = null;
  private failAllFault: Fault | null = null;
  private latencyMs = 0;
  private hangRemaining = 0;
  private dropRemaining = 0;
  private authFailure = false;
  private maxRecipients: number | null = null;
  private slowAccept: { remaining: number; ms: number } | null = null;
  private acceptThenFailFault: (Fault & { remaining: number }) | null = null;
  private eventsFailAll: Fault | null = null;
  private eventsFailNext: (Fault & { remaining: number }) | null = null;

  /** goDownAfter's count-down, until the outage starts. */
  private outageAfter: (() => void) | null = null;

  private stopped = false;
  private stopping: Promise<void> | null = null;

  private constructor(opts: MailgunServerOptions) {
    super();
    if (typeof opts.apiKey !== 'string' || opts.apiKey === '') throw new Error('MailgunServer: apiKey is required');
    this.name = opts.name ?? 'mailgun';
    this._port = opts.port ?? 0;
    this.apiKey = opts.apiKey;
    this.http = http.createServer((req, res) => this.onRequest(req, res));
    this.http.on('connection', (socket: net.Socket) => this.onSocket(socket));
    this.http.on('error', () => undefined);
  }

  /** Starts a server listening on 127.0.0.1. Resolves once it accepts connections. */
  static async start(opts: MailgunServerOptions): Promise<MailgunServer> {
    const server = new MailgunServer(opts);
    await server.listen();
    return server;
  }

  get port(): number {
    return this._port;
  }

  /** `http://127.0.0.1:PORT`: the `url` option of mailgun.js's client. */
  get url(): string {
    return `http://${this.host}:${this._port}`;
  }

  /** The base URL (EspEmulator). */
  get endpoint(): string {
    return this.url;
  }

  /** Messages accepted so far (one per recipient), in acceptance order. */
  get messages(): readonly MailgunMessage[] {
    return this.recorded;
  }

  /** Accepted messages with their From and h: headers (EspEmulator). */
  received(): ReceivedMessage[] {
    return this.recorded.map((m) => ({ to: m.to, from: m.from, headers: m.headers }));
  }

  /** Every POST /messages call, in arrival order (faulted, hung and dropped ones included). */
  get calls(): readonly MailgunCall[] {
    return this.callLog;
  }

  /** Every POST /v1/analytics/logs body past the auth check (faulted ones too), parsed (undefined: not JSON), in arrival order. */
  get logQueries(): readonly unknown[] {
    return this.logQueryLog;
  }

  /** The event log (oldest first), as GET /events would return the items. */
  get events(): readonly MailgunEvent[] {
    return this.eventLog.map((e) => e.item);
  }

  get acceptedCount(): number {
    return this.recorded.length;
  }

  get callCount(): number {
    return this.callLog.length;
  }

  /** Valid calls waiting out acceptSlowlyNext (Mailgun has them; not accepted yet). */
  get pendingAcceptCount(): number {
    return this.slowCalls.size;
  }

  /** Number of accepted messages per recipient address (lower-cased). */
  countByRecipient(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const message of this.recorded) {
      const key = message.to.toLowerCase();
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * Resolves as soon as `predicate(this)` is true: checked now, after every recorded message,
   * every decided call and every call put on hold by acceptSlowlyNext. Rejects after
   * `timeoutMs` (default 5000) saying what arrived.
   */
  waitFor(predicate: (server: MailgunServer) => boolean, timeoutMs = 5000): Promise<void> {
    return waitForEvents(
      this,
      ['message', 'call', 'pending'],
      () => predicate(this),
      timeoutMs,
      () => `${this.name}: condition not met within ${timeoutMs} ms (${this.recorded.length} messages accepted, ${this.callLog.length} calls)`,
    );
  }

  /** Resolves once at least `n` messages (recipients) have been accepted in total. */
  waitForCount(n: number, timeoutMs = 5000): Promise<void> {
    return this.waitFor((server) => server.acceptedCount >= n, timeoutMs).catch((err: Error) => {
      throw new Error(`${this.name}: expected at least ${n} accepted messages within ${timeoutMs} ms, got ${this.recorded.length}`, { cause: err });
    });
  }

  // ---------------------------------------------------------------------------------------
  // Suppression lists and event webhooks

  /** Where event webhooks go, signed with this key (null: none). */
  setWebhook(url: string | null, signingKey = ''): void {
    this.webhook = url ? { url, signingKey } : null;
  }

  /** A domain's suppression list, in address order. */
  suppressions(list: MailgunSuppressionList, domain: string): MailgunSuppression[] {
    return [...this.listOf(domain, list).values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  /** Puts an address on a domain's list (as Mailgun does after a hard bounce, complaint or unsubscribe). */
  addSuppression(
    list: MailgunSuppressionList,
    domain: string,
    entry: { address: string; code?: number | string; error?: string; tags?: string[]; createdAt?: Date },
  ): void {
    const address = entry.address.trim().toLowerCase();
    const item: MailgunSuppression = { address, created_at: (entry.createdAt ?? new Date()).toUTCString().replace('GMT', 'UTC') };
    if (list === 'bounces') {
      item.code = String(entry.code ?? 550);
      item.error = entry.error ?? '';
    }
    if (list === 'unsubscribes') item.tags = entry.tags?.length ? entry.tags : ['*'];
    this.listOf(domain, list).set(address, item);
  }

  private listOf(domain: string, list: MailgunSuppressionList): Map<string, MailgunSuppression> {
    const key = domain.toLowerCase();
    let lists = this.lists.get(key);
    if (!lists) this.lists.set(key, (lists = new Map()));
    let entries = lists.get(list);
    if (!entries) lists.set(list, (entries = new Map()));
    return entries;
  }

  /**
   * An event about the last message accepted for `recipient` (its domain, message id and
   * user-variables): written to the events API, put on the suppression lists as Mailgun does, and
   * POSTed to the webhook when one is set. Resolves with the event and the webhook's HTTP status.
   */
  async simulateEvent(
    recipient: string,
    kind: SimulatedEventKind,
    opts: SimulateEventOptions = {},
  ): Promise<{ event: MailgunEvent; webhookStatus?: number; webhookBody?: string }> {
    const lower = recipient.toLowerCase();
    const sent = [...this.recorded].reverse().find((m) => m.to.toLowerCase() === lower);
    if (!sent) throw new Error(`${this.name}: no message to ${recipient} was accepted, so there is nothing to report about`);
    const at = recipient.lastIndexOf('@');
    const event: MailgunEvent = {
      id: randomBytes(16).toString('base64url').slice(0, 22),
      event: kind,
      timestamp: Date.now() / 1000,
      'log-level': kind === 'failed' ? (opts.severity === 'temporary' ? 'warn' : 'error') : kind === 'complained' ? 'warn' : 'info',
      method: 'HTTP',
      recipient: sent.to,
      'recipient-domain': recipient.slice(at + 1).toLowerCase(),
      tags: [],
      envelope: { sender: bareAddress(sent.from), targets: sent.to, transport: 'smtp' },
      message: { headers: { 'message-id': stripBrackets(sent.id), to: sent.to, from: sent.from, subject: sent.subject } },
      'user-variables': { ...sent.variables },
    };
    if (kind === 'failed') {
      const severity = opts.severity ?? 'permanent';
      event.severity = severity;
      event.reason = severity === 'permanent' ? 'bounce' : 'generic';
      const code = opts.code ?? (severity === 'permanent' ? 550 : 451);
      const message =
        opts.message ?? (severity === 'permanent' ? '5.1.1 The email account that you tried to reach does not exist' : '4.2.0 mailbox temporarily unavailable');
      event['delivery-status'] = { code, message, description: '' };
      if (severity === 'permanent') this.addSuppression('bounces', sent.domain, { address: sent.to, code, error: message });
    } else if (kind === 'delivered') {
      event['delivery-status'] = { code: 250, message: 'OK', description: '' };
    } else if (kind === 'complained') {
      this.addSuppression('complaints', sent.domain, { address: sent.to });
    } else if (kind === 'unsubscribed') {
      this.addSuppression('unsubscribes', sent.domain, { address: sent.to });
    }
    this.eventLog.push({ seq: this.nextSeq++, domain: sent.domain.toLowerCase(), item: event });
    if (!this.webhook) return { event };
    const delivery = await this.postWebhook({ 'event-data': event }, opts.signedAt);
    return { event, webhookStatus: delivery.status, webhookBody: delivery.body };
  }

  /** POSTs a webhook body signed with Mailgun's scheme; resolves with the receiver's answer. */
  async postWebhook(body: Record<string, unknown>, signedAt = new Date(), token = randomBytes(25).toString('hex')): Promise<{ status: number; body: string }> {
    if (!this.webhook) throw new Error(`${this.name}: no webhook URL set`);
    const timestamp = String(Math.floor(signedAt.getTime() / 1000));
    const signature = createHmac('sha256', this.webhook.signingKey)
      .update(timestamp + token)
      .digest('hex');
    const res = await fetch(this.webhook.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ signature: { timestamp, token, signature }, ...body }),
    });
    return { status: res.status, body: await res.text() };
  }

  /** Forgets recorded messages, calls and events (faults stay; see `heal()`). */
  clear(): void {
    this.recorded.length = 0;
    this.callLog.length = 0;
    this.eventLog.length = 0;
    this.logQueryLog.length = 0;
  }

  // ---------------------------------------------------------------------------------------
  // Faults

  /** The next `n` calls answer `status` with JSON `{ message }` (and Retry-After when given). */
  failNext(n: number, status: number, opts: MailgunFaultOptions = {}): void {
    this.failNextFault = n > 0 ? { remaining: n, ...fault(status, opts) } : null;
  }

  /** Every call answers `status` until `failAll(null)` (or `heal()`). */
  failAll(status: number | null, opts: MailgunFaultOptions = {}): void {
    this.failAllFault = status === null ? null : fault(status, opts);
  }

  /** Waits `ms` before deciding and answering every call (0 = at once). */
  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  /** The next `n` calls are never answered; their sockets stay open until the client leaves or stop(). */
  hangNext(n: number): void {
    this.hangRemaining = Math.max(0, n);
  }

  /** The next `n` valid calls are accepted and recorded, then their socket is reset with no response. */
  acceptThenDropNext(n: number): void {
    this.dropRemaining = Math.max(0, n);
  }

  /**
   * The next `n` valid calls are accepted only after `ms` (Mailgun slow to accept): the messages,
   * their `accepted` events and the 'message' emissions happen then, even if the client has gone
   * away meanwhile; a client still connected is answered then (200 unless another fault says
   * otherwise), one that left is not (its call keeps status 0).
   */
  acceptSlowlyNext(n: number, ms: number): void {
    this.slowAccept = n > 0 ? { remaining: n, ms: Math.max(0, ms) } : null;
  }

  /**
   * The next `n` valid calls are accepted (recorded, events written, 'message' emitted) and then
   * answered `status` with JSON `{ message }` (and Retry-After when given): e.g. a 502 from a
   * gateway in front of the API, or 500/503/504.
   */
  acceptThenFailNext(n: number, status: number, opts: MailgunFaultOptions = {}): void {
    this.acceptThenFailFault = n > 0 ? { remaining: n, ...fault(status, opts) } : null;
  }

  /** GET /events and POST /v1/analytics/logs answer `status` with JSON `{ message }` until `failEvents(null)` (or `heal()`). */
  failEvents(status: number | null, opts: MailgunFaultOptions = {}): void {
    this.eventsFailAll = status === null ? null : fault(status, opts);
  }

  /** The next `n` GET /events or POST /v1/analytics/logs requests (past the auth check) answer `status` with JSON `{ message }`. */
  failEventsNext(n: number, status: number, opts: MailgunFaultOptions = {}): void {
    this.eventsFailNext = n > 0 ? { remaining: n, ...fault(status, opts) } : null;
  }

  /** While on, every request (events too) answers 401 whatever the key. */
  setAuthFailure(on: boolean): void {
    this.authFailure = on;
  }

  /** Calls naming more than `n` recipients answer 413 (null = no limit but Mailgun's 1000). */
  maxRecipientsPerCall(n: number | null): void {
    this.maxRecipients = n;
  }

  /**
   * An outage after `n` more accepted messages (0: now): every send call answers 503 until
   * heal(), as Mailgun does when it is down.
   */
  goDownAfter(n: number): void {
    if (this.outageAfter) this.off('message', this.outageAfter);
    this.outageAfter = null;
    const down = () => this.failAll(503, { message: 'Service Unavailable' });
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

  /** simulateEvent(recipient, 'complained'): a spam complaint, posted to the webhook (EspEmulator). */
  reportComplaint(recipient: string): Promise<{ webhookStatus?: number }> {
    return this.simulateEvent(recipient, 'complained');
  }

  /**
   * Clears every fault and the latency. Calls already waiting out acceptSlowlyNext are still
   * accepted when their time comes (Mailgun already has them).
   */
  heal(): void {
    if (this.outageAfter) this.off('message', this.outageAfter);
    this.outageAfter = null;
    this.failNextFault = null;
    this.failAllFault = null;
    this.latencyMs = 0;
    this.hangRemaining = 0;
    this.dropRemaining = 0;
    this.authFailure = false;
    this.maxRecipients = null;
    this.slowAccept = null;
    this.acceptThenFailFault = null;
    this.eventsFailAll = null;
    this.eventsFailNext = null;
  }

  /** Closes the listener and destroys every open socket (hung requests included). Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopped = true;
      for (const timer of this.timers) clearTimeout(timer);
      this.timers.clear();
      this.slowCalls.clear(); // their timers are gone: never accepted
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      this.stopping = closed;
    }
    return this.stopping;
  }

  // ---------------------------------------------------------------------------------------
  // Listening and sockets

  private listen(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        this.http.off('listening', onListening);
        reject(new Error(`${this.name}: cannot listen on ${this.host}:${this._port}: ${err.message}`));
      };
      const onListening = () => {
        this.http.off('error', onError);
        const address = this.http.address();
        if (address && typeof address === 'object') this._port = address.port;
        resolve();
      };
      this.http.once('error', onError);
      this.http.once('listening', onListening);
      this.http.listen(this._port, this.host);
    });
  }

  private onSocket(socket: net.Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
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

  // ---------------------------------------------------------------------------------------
  // Routing

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.stopped) {
      req.socket.destroy();
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', this.url);
    } catch {
      sendJson(res, 400, { message: 'Invalid request URL' });
      return;
    }
    const send = /^\/v3\/([^/]+)\/messages\/?$/.exec(url.pathname);
    if (send) {
      if (req.method !== 'POST') return void sendJson(res, 405, { message: 'Method not allowed' }, { allow: 'POST' });
      void this.handleSend(req, res, decodeSegment(send[1] ?? '')).catch(() => {
        if (!res.headersSent && !req.socket.destroyed) sendJson(res, 500, { message: 'Internal server error' });
      });
      return;
    }
    const events = /^\/v3\/([^/]+)\/events(?:\/([^/]+))?\/?$/.exec(url.pathname);
    if (events) {
      if (req.method !== 'GET') return void sendJson(res, 405, { message: 'Method not allowed' }, { allow: 'GET' });
      req.resume();
      if (!this.authorized(req)) return void forbidden(res);
      const f = this.eventLogFault();
      if (f) return void sendFault(res, f);
      try {
        this.handleEvents(res, decodeSegment(events[1] ?? ''), url.searchParams, events[2]);
      } catch (err) {
        if (err instanceof BadRequest) sendJson(res, 400, { message: err.message });
        else sendJson(res, 500, { message: 'Internal server error' });
      }
      return;
    }
    if (/^\/v1\/analytics\/logs\/?$/.test(url.pathname)) {
      if (req.method !== 'POST') {
        req.resume();
        return void sendJson(res, 405, { message: 'Method not allowed' }, { allow: 'POST' });
      }
      void this.handleLogs(req, res).catch(() => sendJson(res, 500, { message: 'Internal server error' }));
      return;
    }
    const lists = /^\/v3\/([^/]+)\/(bounces|unsubscribes|complaints)\/?$/.exec(url.pathname);
    if (lists) {
      const domain = decodeSegment(lists[1] ?? '');
      const list = lists[2] as MailgunSuppressionList;
      if (req.method === 'GET') {
        req.resume();
        if (!this.authorized(req)) return void forbidden(res);
        try {
          this.handleListGet(res, domain, list, url.searchParams);
        } catch (err) {
          sendJson(res, err instanceof BadRequest ? 400 : 500, { message: err instanceof BadRequest ? err.message : 'Internal server error' });
        }
        return;
      }
      if (req.method === 'POST') {
        if (!this.authorized(req)) {
          req.resume();
          return void forbidden(res);
        }
        void this.handleListPost(req, res, domain, list).catch((err: unknown) => {
          sendJson(res, err instanceof BadRequest ? 400 : 500, { message: err instanceof BadRequest ? err.message : 'Internal server error' });
        });
        return;
      }
      req.resume();
      return void sendJson(res, 405, { message: 'Method not allowed' }, { allow: 'GET, POST' });
    }
    req.resume();
    sendJson(res, 404, { message: 'Not found' });
  }

  private handleListGet(res: http.ServerResponse, domain: string, list: MailgunSuppressionList, query: URLSearchParams): void {
    const limitText = query.get('limit');
    const limit = limitText === null || limitText === '' ? 100 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
      throw new BadRequest(`'limit' parameter must be an integer between 1 and 10000, got ${JSON.stringify(limitText)}`);
    const all = this.suppressions(list, domain);
    const page = query.get('page') ?? 'first';
    const cursor = (query.get('address') ?? '').toLowerCase();
    let items: MailgunSuppression[];
    if (page === 'next') items = all.filter((e) => e.address > cursor).slice(0, limit);
    else if (page === 'previous') items = all.filter((e) => e.address < cursor).slice(-limit);
    else if (page === 'last') items = all.slice(-limit);
    else if (page === 'first') items = all.slice(0, limit);
    else throw new BadRequest(`'page' parameter must be first, last, next or previous, got ${JSON.stringify(page)}`);
    const base = `${this.url}/v3/${encodeURIComponent(domain)}/${list}`;
    const link = (p: string, address?: string) => `${base}?page=${p}${address !== undefined ? `&address=${encodeURIComponent(address)}` : ''}&limit=${limit}`;
    const first = items[0]?.address ?? cursor;
    const last = items[items.length - 1]?.address ?? cursor;
    sendJson(res, 200, { items, paging: { first: link('first'), last: link('last'), next: link('next', last), previous: link('previous', first) } });
  }

  private async handleListPost(req: http.IncomingMessage, res: http.ServerResponse, domain: string, list: MailgunSuppressionList): Promise<void> {
    const body = await readBody(req, MAX_BODY_BYTES);
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    let entries: Array<Record<string, unknown>>;
    if (type.startsWith('application/json')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new BadRequest('Invalid JSON');
      }
      entries = (Array.isArray(parsed) ? parsed : [parsed]) as Array<Record<string, unknown>>;
      if (entries.length > 1000) throw new BadRequest('Too many addresses (max 1000)');
    } else {
      let form: FormData;
      try {
        form = await new Response(body, { headers: { 'content-type': req.headers['content-type'] ?? '' } }).formData();
      } catch {
        throw new BadRequest('Invalid form data');
      }
      const one: Record<string, unknown> = {};
      for (const [k, v] of form.entries()) if (typeof v === 'string') one[k] = v;
      entries = [one];
    }
    for (const [i, e] of entries.entries()) {
      if (!e || typeof e !== 'object' || typeof e.address !== 'string' || !isAddress(e.address.trim()))
        throw new BadRequest(`'address' parameter is not a valid address (entry ${i + 1})`);
    }
    for (const e of entries) {
      const tags = Array.isArray(e.tags) ? e.tags.map(String) : typeof e.tag === 'string' ? [e.tag] : undefined;
      const created = typeof e.created_at === 'string' ? new Date(e.created_at) : undefined;
      this.addSuppression(list, domain, {
        address: String(e.address),
        ...(e.code !== undefined ? { code: String(e.code) } : {}),
        ...(typeof e.error === 'string' ? { error: e.error } : {}),
        ...(tags ? { tags } : {}),
        ...(created && !Number.isNaN(created.getTime()) ? { createdAt: created } : {}),
      });
    }
    const one = entries.length === 1;
    sendJson(
      res,
      200,
      one
        ? { message: `Address has been added to the ${list} table`, address: String(entries[0].address) }
        : { message: `${entries.length} addresses have been added to the ${list} table` },
    );
  }

  private authorized(req: http.IncomingMessage): boolean {
    if (this.authFailure) return false;
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+(\S+)\s*$/i.exec(header);
    if (!m || m[1] === undefined) return false;
    return Buffer.from(m[1], 'base64').toString('utf8') === `api:${this.apiKey}`;
  }

  // ---------------------------------------------------------------------------------------
  // POST /v3/:domain/messages

  private async handleSend(req: http.IncomingMessage, res: http.ServerResponse, domain: string): Promise<void> {
    const call: MailgunCall = { recipients: 0, status: 0, at: new Date() };
    this.callLog.push(call);
    const hang = this.hangRemaining > 0;
    if (hang) this.hangRemaining -= 1;

    let body: Buffer;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof BadRequest && !req.socket.destroyed) {
        this.answer(res, call, 413, { message: 'Request entity too large' });
      }
      return;
    }

    let parsed: ParsedSend | undefined;
    let parseError: string | undefined;
    try {
      parsed = await parseSendForm(body, req.headers['content-type']);
    } catch (err) {
      parseError = err instanceof BadRequest ? err.message : 'Invalid form data';
    }
    const recipients = parsed ? splitRecipients(parsed.toFields) : [];
    call.recipients = recipients.length;

    if (hang) {
      // Never answered; stop() or the client closes the socket.
      this.emit('call', call);
      return;
    }
    if (this.latencyMs > 0) await this.delay(this.latencyMs);
    if (this.stopped || req.socket.destroyed) {
      this.emit('call', call);
      return;
    }

    if (!this.authorized(req)) return forbidden(res, call, this);
    if (this.failAllFault) return this.answerFault(res, call, this.failAllFault);
    if (this.failNextFault) {
      const f = this.failNextFault;
      if (--f.remaining <= 0) this.failNextFault = null;
      return this.answerFault(res, call, f);
    }
    if (!parsed) return this.answer(res, call, 400, { message: parseError ?? 'Invalid form data' });
    if (this.maxRecipients !== null && recipients.length > this.maxRecipients) {
      return this.answer(res, call, 413, { message: 'Request entity too large' });
    }
    let variables: Record<string, unknown>;
    try {
      variables = validateSend(parsed, recipients);
    } catch (err) {
      return this.answer(res, call, 400, { message: err instanceof BadRequest ? err.message : 'Bad request' });
    }

    // Valid. The faults for valid calls are all consumed now, in the order calls get here.
    let slowMs: number | null = null;
    if (this.slowAccept) {
      const slow = this.slowAccept;
      slowMs = slow.ms;
      if (--slow.remaining <= 0) this.slowAccept = null;
    }
    let then: 'drop' | Fault | null = null;
    if (this.dropRemaining > 0) {
      this.dropRemaining -= 1;
      then = 'drop';
    } else if (this.acceptThenFailFault) {
      const f = this.acceptThenFailFault;
      if (--f.remaining <= 0) this.acceptThenFailFault = null;
      then = f;
    }
    // Slow to accept: from here on the call no longer depends on its client (Mailgun has the
    // whole body), so a client that leaves meanwhile does not cancel it. stop() does.
    if (slowMs !== null) {
      this.slowCalls.add(call);
      this.emit('pending', call);
      await this.delay(slowMs);
      this.slowCalls.delete(call);
      if (this.stopped) return;
    }

    // Accepted.
    const id = `<${mailgunStamp(new Date())}.${randomBytes(8).toString('hex').toUpperCase()}@${domain}>`;
    call.id = id;
    const acceptedAt = new Date();
    const send = parsed;
    const records = recipients.map((r) => this.record(domain, id, send, r, variables, acceptedAt));

    // Listeners hear of the acceptance before the answer is written: a test that kills the
    // client on 'message' kills it before it can read the answer (a call accepted, then lost).
    for (const record of records) this.emit('message', record);
    if (res.destroyed || req.socket.destroyed) {
      // The client left while the acceptance was slow: nothing to answer; status stays 0.
    } else if (then === 'drop') {
      req.socket.resetAndDestroy();
    } else if (then) {
      this.answerFault(res, call, then, false);
    } else {
      this.answer(res, call, 200, { id, message: 'Queued. Thank you.' }, false);
    }
    this.emit('call', call);
  }

  private record(
    domain: string,
    id: string,
    parsed: ParsedSend,
    recipient: { address: string; display: string },
    allVariables: Record<string, unknown>,
    acceptedAt: Date,
  ): MailgunMessage {
    const vars = lookupVariables(allVariables, recipient.address);
    const render = (s: string) => renderRecipient(s, vars);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed.headers)) headers[k] = render(v);
    const variables: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed.variables)) variables[k] = render(v);
    const message: MailgunMessage = {
      id,
      domain,
      from: parsed.from ?? '',
      to: recipient.address,
      subject: render(parsed.subject ?? ''),
      headers,
      variables,
      options: { ...parsed.options },
      acceptedAt,
    };
    if (parsed.text !== undefined) message.text = render(parsed.text);
    if (parsed.html !== undefined) message.html = render(parsed.html);
    this.recorded.push(message);

    const at = recipient.address.lastIndexOf('@');
    this.eventLog.push({
      seq: this.nextSeq++,
      domain: domain.toLowerCase(),
      item: {
        id: randomBytes(16).toString('base64url').slice(0, 22),
        event: 'accepted',
        timestamp: acceptedAt.getTime() / 1000,
        'log-level': 'info',
        method: 'HTTP',
        recipient: recipient.address,
        'recipient-domain': recipient.address.slice(at + 1).toLowerCase(),
        tags: [...parsed.tags],
        envelope: { sender: bareAddress(message.from), targets: recipient.address, transport: 'smtp' },
        message: { headers: { 'message-id': stripBrackets(id), to: recipient.display, from: message.from, subject: message.subject } },
        'user-variables': { ...variables },
      },
    });
    return message;
  }

  private answerFault(res: http.ServerResponse, call: MailgunCall, f: Fault, emit = true): void {
    call.status = f.status;
    sendFault(res, f);
    if (emit) this.emit('call', call);
  }

  private answer(res: http.ServerResponse, call: MailgunCall, status: number, body: unknown, emit = true, headers: Record<string, string> = {}): void {
    call.status = status;
    sendJson(res, status, body, headers);
    if (emit) this.emit('call', call);
  }

  // ---------------------------------------------------------------------------------------
  // POST /v1/analytics/logs (emulator-logs.ts)

  private async handleLogs(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_BODY_BYTES).catch(() => null);
    if (!this.authorized(req)) return forbidden(res);
    let query: unknown;
    try {
      query = JSON.parse(body ? body.toString('utf8') : '');
    } catch {
      query = undefined;
    }
    this.logQueryLog.push(query);
    const f = this.eventLogFault();
    if (f) return sendFault(res, f);
    if (query === undefined) return sendJson(res, 400, { message: 'the body must be JSON' });
    try {
      sendJson(res, 200, answerLogsQuery(query, this.eventLog));
    } catch (err) {
      if (err instanceof LogsQueryError) sendJson(res, 400, { message: err.message });
      else throw err;
    }
  }

  /** failEvents / failEventsNext, consumed by a request to either event log endpoint. */
  private eventLogFault(): Fault | null {
    if (this.eventsFailAll) return this.eventsFailAll;
    if (this.eventsFailNext) {
      const f = this.eventsFailNext;
      if (--f.remaining <= 0) this.eventsFailNext = null;
      return f;
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------
  // GET /v3/:domain/events

  private handleEvents(res: http.ServerResponse, domain: string, query: URLSearchParams, pathToken: string | undefined): void {
    const tokenText = pathToken ?? query.get('page') ?? undefined;
    const token: PageToken = tokenText ? decodeToken(tokenText) : { f: {} };
    const f: EventFilters = { ...token.f, ...parseEventFilters(query) };
    const limit = f.limit ?? DEFAULT_EVENTS_LIMIT;
    const asc = f.begin !== undefined && f.end !== undefined ? f.begin <= f.end : (f.ascending ?? false);
    const lo = asc ? f.begin : f.end;
    const hi = asc ? f.end : f.begin;
    const eventSet = orSet(f.event);
    const recipientSet = orSet(f.recipient);
    const wantedId = f.messageId !== undefined ? stripBrackets(f.messageId).toLowerCase() : undefined;
    const key = domain.toLowerCase();

    let list = this.eventLog.filter((e) => {
      if (e.domain !== key) return false;
      const item = e.item;
      if (eventSet && !eventSet.has(item.event)) return false;
      if (recipientSet && !recipientSet.has(item.recipient.toLowerCase())) return false;
      if (wantedId !== undefined && item.message.headers['message-id'].toLowerCase() !== wantedId) return false;
      if (lo !== undefined && item.timestamp < lo) return false;
      if (hi !== undefined && item.timestamp > hi) return false;
      return true;
    });
    if (!asc) list = list.reverse();
    const after = (seq: number, cursor: number) => (asc ? seq > cursor : seq < cursor);

    let page: StoredEvent[];
    if (token.a !== undefined) {
      const a = token.a;
      page = list.filter((e) => after(e.seq, a)).slice(0, limit);
    } else if (token.b !== undefined) {
      const b = token.b;
      page = list.filter((e) => after(b, e.seq)).slice(-limit);
    } else if (token.l) {
      page = list.slice(-limit);
    } else {
      page = list.slice(0, limit);
    }

    // A cursor just outside the whole log, at its start in the page direction.
    const beforeStart = asc ? 0 : Number.MAX_SAFE_INTEGER;
    const firstItem = page[0];
    const lastItem = page[page.length - 1];
    let next: PageToken;
    let previous: PageToken;
    if (firstItem && lastItem) {
      next = { f, a: lastItem.seq };
      previous = { f, b: firstItem.seq };
    } else if (token.a !== undefined) {
      next = { f, a: token.a };
      previous = { f, b: asc ? token.a + 1 : token.a - 1 };
    } else if (token.b !== undefined) {
      next = { f, a: asc ? token.b - 1 : token.b + 1 };
      previous = { f, b: token.b };
    } else {
      next = { f, a: beforeStart };
      previous = { f, b: beforeStart };
    }
    const base = `${this.url}/v3/${encodeURIComponent(domain)}/events/`;
    sendJson(res, 200, {
      items: page.map((e) => e.item),
      paging: {
        first: base + encodeToken({ f }),
        last: base + encodeToken({ f, l: 1 }),
        next: base + encodeToken(next),
        previous: base + encodeToken(previous),
      },
    });
  }
}

// -----------------------------------------------------------------------------------------
// Helpers

function fault(status: number, opts: MailgunFaultOptions): Fault {
  const f: Fault = { status };
  if (opts.retryAfterSeconds !== undefined) f.retryAfterSeconds = opts.retryAfterSeconds;
  if (opts.message !== undefined) f.message = opts.message;
  return f;
}

/** A fault's answer: JSON `{ message }` (see "Error bodies" at the top), Retry-After when set. */
function sendFault(res: http.ServerResponse, f: Fault): void {
  const headers: Record<string, string> = {};
  if (f.retryAfterSeconds !== undefined) headers['retry-after'] = String(f.retryAfterSeconds);
  sendJson(res, f.status, { message: f.message ?? STATUS_TEXT[f.status] ?? `Error ${f.status}` }, headers);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

/** 401 `Forbidden` as text/plain, like Mailgun. */
function forbidden(res: http.ServerResponse, call?: MailgunCall, emitter?: EventEmitter): void {
  if (!res.headersSent && !res.destroyed) {
    res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 9, 'www-authenticate': 'Basic realm="MG API"' });
    res.end('Forbidden');
  }
  if (call) {
    call.status = 401;
    emitter?.emit('call', call);
  }
}

function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => (tooLarge ? reject(new BadRequest('Request entity too large')) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('request aborted'));
    });
  });
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

async function parseSendForm(body: Buffer, contentType: string | undefined): Promise<ParsedSend> {
  const type = (contentType ?? '').toLowerCase();
  if (!type.startsWith('multipart/form-data') && !type.startsWith('application/x-www-form-urlencoded')) {
    throw new BadRequest('Content-Type must be multipart/form-data or application/x-www-form-urlencoded');
  }
  let form: FormData;
  try {
    form = await new Response(body, { headers: { 'content-type': contentType ?? '' } }).formData();
  } catch {
    throw new BadRequest('Invalid form data');
  }
  const parsed: ParsedSend = { toFields: [], options: {}, tags: [], headers: {}, variables: {} };
  const first = <K extends 'from' | 'subject' | 'text' | 'html' | 'recipientVariables'>(key: K, value: string) => {
    if (parsed[key] === undefined) parsed[key] = value;
  };
  for (const [name, value] of form.entries()) {
    if (typeof value !== 'string') continue; // attachments and inline files are not recorded
    if (name === 'from') first('from', value);
    else if (name === 'to') parsed.toFields.push(value);
    else if (name === 'subject') first('subject', value);
    else if (name === 'text') first('text', value);
    else if (name === 'html') first('html', value);
    else if (name === 'recipient-variables') first('recipientVariables', value);
    else if (name.startsWith('o:')) {
      const key = name.slice(2);
      parsed.options[key] = key in parsed.options ? `${parsed.options[key]}, ${value}` : value;
      if (key === 'tag') parsed.tags.push(value);
    } else if (name.startsWith('h:')) parsed.headers[name.slice(2)] = value;
    else if (name.startsWith('v:')) parsed.variables[name.slice(2)] = value;
  }
  return parsed;
}

/** Validates a parsed send; returns the recipient variables (an object, maybe empty). */
function validateSend(parsed: ParsedSend, recipients: Array<{ address: string; display: string }>): Record<string, unknown> {
  if (parsed.from === undefined || parsed.from.trim() === '') throw new BadRequest("'from' parameter is missing");
  if (!isAddress(bareAddress(parsed.from))) throw new BadRequest(`'from' parameter is not a valid address: ${JSON.stringify(parsed.from)}`);
  if (recipients.length === 0) throw new BadRequest("'to' parameter is missing");
  for (const r of recipients) {
    if (!isAddress(r.address)) throw new BadRequest(`'to' parameter is not a valid address: ${JSON.stringify(r.display)}`);
  }
  if (recipients.length > MAX_RECIPIENTS) throw new BadRequest(`Too many recipients (max ${MAX_RECIPIENTS})`);
  if (parsed.subject === undefined) throw new BadRequest("'subject' parameter is missing");
  if (parsed.text === undefined && parsed.html === undefined) throw new BadRequest("Need at least one of 'text' or 'html' parameters specified");
  if (parsed.recipientVariables === undefined || parsed.recipientVariables.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(parsed.recipientVariables);
  } catch (err) {
    throw new BadRequest(`'recipient-variables' parameter is not a valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadRequest("'recipient-variables' parameter must be a JSON object keyed by recipient address");
  }
  return value as Record<string, unknown>;
}

/** Splits `to` fields on commas outside quotes and angle brackets. */
function splitRecipients(fields: string[]): Array<{ address: string; display: string }> {
  const out: Array<{ address: string; display: string }> = [];
  for (const field of fields) {
    let current = '';
    let quoted = false;
    let angle = false;
    const push = () => {
      const display = current.trim();
      if (display !== '') out.push({ address: bareAddress(display), display });
      current = '';
    };
    for (let i = 0; i < field.length; i++) {
      const ch = field[i];
      if (ch === '"' && field[i - 1] !== '\\') quoted = !quoted;
      else if (ch === '<' && !quoted) angle = true;
      else if (ch === '>' && !quoted) angle = false;
      if (ch === ',' && !quoted && !angle) push();
      else current += ch;
    }
    push();
  }
  return out;
}

/** `Name <a@b>` -> `a@b`; `a@b` -> `a@b`. */
function bareAddress(value: string): string {
  const m = /<([^<>]*)>\s*$/.exec(value);
  return (m ? (m[1] ?? '') : value).trim();
}

function isAddress(value: string): boolean {
  return /^[^\s@<>",]+@[^\s@<>",]+$/.test(value);
}

function stripBrackets(id: string): string {
  return id.trim().replace(/^</, '').replace(/>$/, '');
}

function lookupVariables(all: Record<string, unknown>, address: string): Record<string, unknown> | undefined {
  const exact = all[address];
  if (exact !== undefined) return asObject(exact);
  const lower = address.toLowerCase();
  for (const [k, v] of Object.entries(all)) if (k.toLowerCase() === lower) return asObject(v);
  return undefined;
}

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** Replaces `%recipient.KEY%` with the recipient's variable; unknown keys are left as is. */
function renderRecipient(text: string, vars: Record<string, unknown> | undefined): string {
  if (!vars) return text;
  return text.replace(/%recipient\.([^%\s]+)%/g, (whole, key: string) => {
    if (!Object.prototype.hasOwnProperty.call(vars, key)) return whole;
    const v = vars[key];
    if (v === undefined) return whole;
    return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}

/** `20261127220000`: UTC yyyyMMddHHmmss, as in Mailgun message ids. */
function mailgunStamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

function parseEventFilters(query: URLSearchParams): EventFilters {
  const f: EventFilters = {};
  const event = query.get('event');
  if (event !== null && event !== '') f.event = event;
  const recipient = query.get('recipient');
  if (recipient !== null && recipient !== '') f.recipient = recipient;
  const messageId = query.get('message-id');
  if (messageId !== null && messageId !== '') f.messageId = messageId;
  const limit = query.get('limit');
  if (limit !== null && limit !== '') {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > MAX_EVENTS_LIMIT) {
      throw new BadRequest(`'limit' parameter must be an integer between 1 and ${MAX_EVENTS_LIMIT}, got ${JSON.stringify(limit)}`);
    }
    f.limit = n;
  }
  const ascending = query.get('ascending');
  if (ascending !== null && ascending !== '') {
    const v = ascending.toLowerCase();
    if (v === 'yes' || v === 'true') f.ascending = true;
    else if (v === 'no' || v === 'false') f.ascending = false;
    else throw new BadRequest(`'ascending' parameter must be yes or no, got ${JSON.stringify(ascending)}`);
  }
  for (const name of ['begin', 'end'] as const) {
    const raw = query.get(name);
    if (raw === null || raw === '') continue;
    const t = /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : Date.parse(raw) / 1000;
    if (!Number.isFinite(t)) throw new BadRequest(`'${name}' parameter is not a valid time (epoch seconds or a date): ${JSON.stringify(raw)}`);
    f[name] = t;
  }
  return f;
}

/** `a OR b` -> {a, b} (lower-cased); undefined when no filter. */
function orSet(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  return new Set(
    value
      .split(/\s+OR\s+/i)
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== ''),
  );
}

/** Keeps only well-typed filters from a token (tokens come back from clients). */
function sanitizeFilters(raw: Record<string, unknown>): EventFilters {
  const f: EventFilters = {};
  const str = (k: string) => (typeof raw[k] === 'string' ? (raw[k] as string) : undefined);
  const num = (k: string) => (typeof raw[k] === 'number' && Number.isFinite(raw[k]) ? (raw[k] as number) : undefined);
  const event = str('event');
  if (event !== undefined) f.event = event;
  const recipient = str('recipient');
  if (recipient !== undefined) f.recipient = recipient;
  const messageId = str('messageId');
  if (messageId !== undefined) f.messageId = messageId;
  const begin = num('begin');
  if (begin !== undefined) f.begin = begin;
  const end = num('end');
  if (end !== undefined) f.end = end;
  if (typeof raw['ascending'] === 'boolean') f.ascending = raw['ascending'];
  const limit = num('limit');
  if (limit !== undefined && Number.isInteger(limit) && limit >= 1 && limit <= MAX_EVENTS_LIMIT) f.limit = limit;
  return f;
}

function encodeToken(token: PageToken): string {
  return Buffer.from(JSON.stringify(token), 'utf8').toString('base64url');
}

function decodeToken(text: string): PageToken {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    const t = asObject(value);
    const f = t ? asObject(t['f']) : undefined;
    if (!t || !f) throw new Error('not a token');
    const token: PageToken = { f: sanitizeFilters(f) };
    if (typeof t['a'] === 'number') token.a = t['a'];
    if (typeof t['b'] === 'number') token.b = t['b'];
    if (t['l'] === 1) token.l = 1;
    return token;
  } catch {
    throw new BadRequest(`'page' parameter is not a valid page token: ${JSON.stringify(text)}`);
  }
}
