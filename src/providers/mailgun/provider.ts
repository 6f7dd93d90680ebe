/**
 * Mailgun provider: batch sending (up to 1,000 recipients per API call with
 * recipient-variables), a deterministic identity per message, and look-ups through the
 * Logs API (mailgun.js `logs.list`, Mailgun's official client) for sends left in flight.
 *
 * - Every recipient's rendered subject, text and html travel as its recipient variables;
 *   the call's template is `%recipient.subject%` etc., so any rendering (escaping included)
 *   stays mailover's. Identity: `v:mailover-campaign` + the recipient address (unique in a
 *   campaign), plus `v:mailover-seq` and X-Mailover-* headers.
 * - The send call is posted with fetch rather than mailgun.js: mailgun.js hides the response
 *   headers (Retry-After) and the network error codes that tell "never sent" (refused) from
 *   "maybe sent" (reset or timed out after the request went out). The request is the same
 *   multipart form mailgun.js would post, built as one buffer (`multipartBody`).
 * - HTTP classes: 429 → transient honouring Retry-After (Mailgun refused the call); 5xx, timeouts,
 *   resets → transient with the call's recipients in doubt (the body was sent: Mailgun may have
 *   taken it; they are looked up before any resend); 401/403/404 → provider unavailable;
 *   400 → invalid message (the campaign holds with the reason); 413 → the call is split in halves.
 * - A call is tied to the send attempt's cancellation, and times out after `timeoutMs`. A message
 *   dispatched less than `timeoutMs + lookupSettleMs` ago may still be in an open call (or not in
 *   the Logs API yet): `inDoubtWindowMs` tells the engine to wait that long before looking it up.
 */
import { callsOf, sendCallsInParallel } from '../parallel-calls';
import { randomBytes } from 'crypto';
import Mailgun from 'mailgun.js';
import { InvalidMessageError, ProviderUnavailableError, RecipientPermanentError, TransientProviderError, type ClassifiedError } from '../../errors';
import type { InFlightMessage, LookupResult, OutgoingMessage, Provider, SendResult } from '../provider';

export const MAILGUN_REGIONS = { us: 'https://api.mailgun.net', eu: 'https://api.eu.mailgun.net' } as const;
export const MAILGUN_MAX_RECIPIENTS_PER_CALL = 1000;
/** Look-ups of one recipient each, at most this many at a time. */
const LOOKUP_CONCURRENCY = 8;
/** Tries of one look-up (a transient failure is retried after 250 ms, then 1 s). */
const LOOKUP_ATTEMPTS = 3;
/** Log entries per Logs API page (Mailgun's maximum), and pages read per recipient at most. */
const LOOKUP_PAGE_SIZE = 100;
const LOOKUP_MAX_PAGES = 10;

type MailgunLogsPage = Awaited<ReturnType<ReturnType<Mailgun['client']>['logs']['list']>>;

/** A Logs API filter predicate: `attribute` equals `value`. */
function logsEquals(attribute: string, value: string) {
  return { attribute, comparator: '=', values: [{ label: value, value }] };
}

/** A log entry's user variables: a JSON string in the Logs API (an object in the old events API). */
function userVariables(raw: unknown): Record<string, unknown> {
  let value = raw;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return {};
    }
  }
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

export interface MailgunProviderConfig {
  name: string;
  /** Sending domain, e.g. mg.example.org */
  domain: string;
  apiKey: string;
  /** API base URL; default from region (us). */
  url?: string;
  region?: keyof typeof MAILGUN_REGIONS;
  /** Recipients per API call (1-1000, default 1000). */
  callSize?: number;
  /** API calls in parallel (default 2). */
  concurrency?: number;
  /** Per-call timeout (default 30 s). */
  timeoutMs?: number;
  /**
   * How long after a call its accepted events may still be missing from the Logs API.
   * A message in flight for less than this, and not found, is "unknown": looked up again later
   * rather than resent. Default 10 s (0 for a server whose events are immediate).
   */
  lookupSettleMs?: number;
  /** Mailgun's HTTP webhook signing key: `mailover webhooks` verifies this provider's events with it. */
  webhookSigningKey?: string;
}

/** Headers mailover sets on every message itself (the Mailgun call sets them from recipient variables). */
const OWN_HEADERS = new Set(['x-mailover-campaign', 'x-mailover-recipient']);

interface CallError {
  kind: 'http';
  status: number;
  message: string;
  retryAfterMs?: number;
}

/** Retry-After: seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if ((e as { name?: unknown }).name === 'TimeoutError') return 'ETIMEDOUT';
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A multipart/form-data body (RFC 7578) as one buffer: the form FormData would post, written to
 * the socket at once instead of part by part through a web stream (a 1,000-recipient call was
 * thousands of small writes). Field names are ours (ASCII, no quotes); values are UTF-8.
 */
export function multipartBody(fields: Array<[string, string]>): { boundary: string; body: Buffer } {
  let boundary: string;
  do boundary = `mailover-${randomBytes(16).toString('hex')}`;
  while (fields.some(([, value]) => value.includes(boundary)));
  let text = '';
  for (const [name, value] of fields) text += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  text += `--${boundary}--\r\n`;
  return { boundary, body: Buffer.from(text, 'utf8') };
}

export class MailgunProvider implements Provider {
  readonly kind = 'mailgun';
  readonly name: string;
  private readonly baseUrl: string;
  private readonly callSize: number;
  private readonly concurrency: number;
  private readonly timeoutMs: number;
  private readonly lookupSettleMs: number;
  private readonly auth: string;
  readonly inDoubtWindowMs: number;
  private client?: ReturnType<Mailgun['client']>;

  constructor(private readonly config: MailgunProviderConfig) {
    this.name = config.name;
    this.baseUrl = (config.url ?? MAILGUN_REGIONS[config.region ?? 'us']).replace(/\/+$/, '');
    this.callSize = Math.min(MAILGUN_MAX_RECIPIENTS_PER_CALL, Math.max(1, config.callSize ?? MAILGUN_MAX_RECIPIENTS_PER_CALL));
    this.concurrency = Math.max(1, config.concurrency ?? 2);
    this.timeoutMs = config.timeoutMs ?? 30_000;
    this.lookupSettleMs = config.lookupSettleMs ?? 10_000;
    this.inDoubtWindowMs = this.timeoutMs + this.lookupSettleMs;
    this.auth = 'Basic ' + Buffer.from(`api:${config.apiKey}`).toString('base64');
  }

  private mg(): ReturnType<Mailgun['client']> {
    this.client ??= new Mailgun(FormData).client({ username: 'api', key: this.config.apiKey, url: this.baseUrl, timeout: this.timeoutMs });
    return this.client;
  }

  async sendBatch(
    messages: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    dispatching?: (messages: OutgoingMessage[]) => Promise<OutgoingMessage[]>,
    signal?: AbortSignal,
  ): Promise<void> {
    const calls = callsOf(messages, this.callSize);
    await sendCallsInParallel(calls, this.concurrency, dispatching, (call) => this.sendCall(call, report, signal));
  }

  /** One API call; 413 splits it in halves. Reports every recipient of a call that was accepted. */
  private async sendCall(
    call: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    let response: Response;
    let text: string;
    const form = multipartBody(this.fields(call));
    const callSignal = signal ? AbortSignal.any([AbortSignal.timeout(this.timeoutMs), signal]) : AbortSignal.timeout(this.timeoutMs);
    try {
      response = await fetch(`${this.baseUrl}/v3/${encodeURIComponent(this.config.domain)}/messages`, {
        method: 'POST',
        headers: { authorization: this.auth, 'content-type': `multipart/form-data; boundary=${form.boundary}` },
        body: form.body,
        signal: callSignal,
      });
      text = await response.text();
    } catch (err) {
      throw this.networkError(err, call);
    }
    if (response.ok) {
      let id = '';
      try {
        id = String((JSON.parse(text) as { id?: unknown }).id ?? '');
      } catch {
        // a 2xx without JSON still means queued
      }
      // All at once: the ledger settles a whole call in one transaction.
      await Promise.all(call.map((m) => report(m, { status: 'accepted', providerMessageId: id || m.messageId })));
      return;
    }
    if (response.status === 413 && call.length > 1) {
      const half = Math.ceil(call.length / 2);
      await this.sendCall(call.slice(0, half), report, signal);
      await this.sendCall(call.slice(half), report, signal);
      return;
    }
    if (response.status === 413) {
      await report(call[0], { status: 'rejected', reason: `${this.name}: message too large for Mailgun (413)`, hardBounce: false });
      return;
    }
    let message = text.trim();
    try {
      message = String((JSON.parse(text) as { message?: unknown }).message ?? message);
    } catch {
      // plain-text body (Mailgun answers 401 with "Forbidden")
    }
    const error = this.classify({
      kind: 'http',
      status: response.status,
      message: message || response.statusText,
      retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
    } satisfies CallError);
    if (response.status >= 500 && error instanceof TransientProviderError) {
      // The whole body was sent before this answer: Mailgun (or the gateway in front of it) may have
      // taken the call. Its recipients are in doubt: looked up, never resent blindly.
      throw new TransientProviderError(
        `${error.message}; ${call.length} recipient(s) in doubt`,
        error.retryAfterMs,
        call.map((m) => m.seq),
      );
    }
    throw error;
  }

  /** The call's form fields, in order (name, value); posted as multipart/form-data. */
  private fields(call: OutgoingMessage[]): Array<[string, string]> {
    const first = call[0];
    const fields: Array<[string, string]> = [['from', first.from]];
    const vars: Record<string, Record<string, string>> = {};
    // Other headers (List-Unsubscribe...) differ per recipient: each travels as a recipient variable.
    const extra: string[] = [];
    for (const m of call) {
      for (const name of Object.keys(m.headers ?? {})) if (!OWN_HEADERS.has(name.toLowerCase()) && !extra.includes(name)) extra.push(name);
    }
    for (const m of call) {
      fields.push(['to', m.to]);
      vars[m.to] = { subject: m.subject, text: m.text, html: m.html ?? '', seq: String(m.seq), mid: m.messageId };
      extra.forEach((name, i) => (vars[m.to][`h${i}`] = m.headers?.[name] ?? ''));
    }
    extra.forEach((name, i) => fields.push([`h:${name}`, `%recipient.h${i}%`]));
    fields.push(['subject', '%recipient.subject%'], ['text', '%recipient.text%']);
    if (call.some((m) => m.html !== undefined)) fields.push(['html', '%recipient.html%']);
    fields.push(
      ['recipient-variables', JSON.stringify(vars)],
      ['v:mailover-campaign', first.campaignId],
      ['v:mailover-seq', '%recipient.seq%'],
      ['h:X-Mailover-Campaign', first.campaignId],
      ['h:X-Mailover-Recipient', '%recipient.seq%'],
      ['h:X-Mailover-Message-Id', '%recipient.mid%'],
    );
    // One call is one campaign's: its list, if any, is the message tag (tag-scoped unsubscribes).
    if (first.list) fields.push(['o:tag', first.list]);
    return fields;
  }

  private networkError(err: unknown, call: OutgoingMessage[]): ClassifiedError {
    const code = networkCode(err);
    const where = this.baseUrl;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
      return new ProviderUnavailableError(`${this.name}: cannot reach ${where} (${code})`);
    }
    // The request may have reached Mailgun: its recipients are in doubt until looked up.
    const what =
      code === 'ETIMEDOUT' || code === 'UND_ERR_HEADERS_TIMEOUT'
        ? `no answer within ${this.timeoutMs} ms`
        : `connection lost (${code ?? (err as Error)?.message ?? 'unknown'})`;
    return new TransientProviderError(
      `${this.name}: ${what} from ${where}; ${call.length} recipient(s) in doubt`,
      undefined,
      call.map((m) => m.seq),
    );
  }

  classify(err: unknown): ClassifiedError {
    if (
      err instanceof TransientProviderError ||
      err instanceof ProviderUnavailableError ||
      err instanceof RecipientPermanentError ||
      err instanceof InvalidMessageError
    )
      return err;
    const e = err as Partial<CallError> & { status?: number; message?: string; details?: string };
    const status = typeof e.status === 'number' ? e.status : undefined;
    const msg = (e.message || e.details || 'no message').split(this.config.apiKey).join('***');
    if (status === undefined) return new TransientProviderError(`${this.name}: ${msg}`);
    if (status === 401 || status === 403)
      return new ProviderUnavailableError(`${this.name}: authentication failed (${status} ${msg}): check the API key for ${this.config.domain}`);
    if (status === 404) return new ProviderUnavailableError(`${this.name}: domain ${this.config.domain} not found at ${this.baseUrl} (404 ${msg})`);
    if (status === 429) {
      const wait = e.retryAfterMs !== undefined ? `; retry after ${Math.ceil(e.retryAfterMs / 1000)} s` : '';
      return new TransientProviderError(`${this.name}: rate limited (429 ${msg})${wait}`, e.retryAfterMs);
    }
    if (status >= 500) return new TransientProviderError(`${this.name}: server error (${status} ${msg})`, e.retryAfterMs);
    if (status === 400) return new InvalidMessageError(`${this.name}: Mailgun rejected the message (400 ${msg})`);
    return new TransientProviderError(`${this.name}: unexpected answer (${status} ${msg})`);
  }

  /**
   * Accepted log entries by recipient, matched on the campaign identity (`v:mailover-campaign`). A
   * recipient whose look-up keeps failing (after two quick retries of a transient failure) is
   * 'failed'; the others are still answered.
   */
  async lookup(messages: InFlightMessage[], signal?: AbortSignal): Promise<Map<number, LookupResult>> {
    const results = new Map<number, LookupResult>();
    let next = 0;
    const worker = async () => {
      while (next < messages.length) {
        signal?.throwIfAborted();
        const { message, dispatchedAt } = messages[next++];
        results.set(message.seq, await this.lookupWithRetries(message, dispatchedAt, signal));
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, messages.length) }, worker));
    return results;
  }

  private async lookupWithRetries(message: OutgoingMessage, dispatchedAt: Date | null, signal?: AbortSignal): Promise<LookupResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.lookupOne(message, dispatchedAt);
      } catch (err) {
        const classified = this.classify(err);
        if (!(classified instanceof TransientProviderError) || attempt >= LOOKUP_ATTEMPTS || signal?.aborted) {
          return { status: 'failed', reason: `look-up failed: ${classified.message}` };
        }
        await new Promise((r) => setTimeout(r, 250 * 4 ** (attempt - 1)));
      }
    }
  }

  /**
   * One recipient's `accepted` log entries on this domain, from a minute before the message was
   * handed over (a recipient's older campaigns stay out), oldest first, page by page until the
   * campaign's entry turns up or the pages run out. Mailgun's Logs API (POST /v1/analytics/logs,
   * mailgun.js `logs.list`), which replaces the deprecated events API: it is account-wide, so the
   * domain is a filter; `user-variables` come as a JSON string.
   */
  private async lookupOne(message: OutgoingMessage, dispatchedAt: Date | null): Promise<LookupResult> {
    const start = new Date((dispatchedAt?.getTime() ?? Date.now() - 3 * 86_400_000) - 60_000);
    // mailgun.js sends whole seconds (RFC 2822): a second ahead keeps this second's entries in.
    const end = new Date(Date.now() + 1_000);
    let token: string | undefined;
    for (let page = 1; page <= LOOKUP_MAX_PAGES; page++) {
      let list: MailgunLogsPage;
      try {
        list = await this.mg().logs.list({
          start,
          end,
          events: ['accepted'],
          filter: { AND: [logsEquals('domain', this.config.domain), logsEquals('recipient', message.to)] },
          pagination: { sort: 'timestamp:asc', limit: LOOKUP_PAGE_SIZE, ...(token ? { token } : {}) },
        });
      } catch (err) {
        throw this.classify(err);
      }
      for (const item of list.items) {
        if (userVariables(item['user-variables'])['mailover-campaign'] === message.campaignId) {
          const id = item.message?.headers?.['message-id'];
          return { status: 'accepted', providerMessageId: id ? `<${id.replace(/^<|>$/g, '')}>` : message.messageId };
        }
      }
      token = list.pagination?.next;
      if (!token || list.items.length === 0) {
        // Its call may still be open, or Mailgun's log may not show it yet.
        const age = dispatchedAt ? Date.now() - dispatchedAt.getTime() : Infinity;
        if (age < this.inDoubtWindowMs) return { status: 'unknown', retryAfterMs: this.inDoubtWindowMs - age };
        return { status: 'not-found' };
      }
    }
    // Not found in the pages read, and more remain: not proof that it was never accepted.
    return {
      status: 'failed',
      reason: `look-up failed: ${this.name}: more than ${LOOKUP_MAX_PAGES * LOOKUP_PAGE_SIZE} accepted log entries for one recipient since the send; not resent`,
    };
  }

  /**
   * An authenticated read of the domain's event log (one item): reachable, key accepted, domain
   * known. Still the events API: it is scoped to the domain (404 for an unknown one), which the
   * account-wide Logs API is not.
   */
  async verify(): Promise<void> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}/v3/${encodeURIComponent(this.config.domain)}/events?limit=1`, {
        headers: { authorization: this.auth },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw this.networkError(err, []);
    }
    const text = await response.text().catch(() => '');
    if (response.ok) return;
    let message = text.trim();
    try {
      message = String((JSON.parse(text) as { message?: unknown }).message ?? message);
    } catch {
      // plain-text body
    }
    throw this.classify({
      kind: 'http',
      status: response.status,
      message: message || response.statusText,
      retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
    } satisfies CallError);
  }

  async close(): Promise<void> {
    this.client = undefined;
  }
}
