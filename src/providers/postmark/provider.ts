/**
 * Postmark provider, through `postmark` (Postmark's own client): batch sending on /email/batch
 * (up to 500 messages a call, one result per message), look-ups of messages left in flight
 * through the outbound message search, and `verify` as an authenticated read of /server.
 *
 * - Marketing campaigns go on the broadcast message stream, transactional ones on the
 *   transactional stream (both names configurable). Every message carries Metadata
 *   { campaign, seq }: its identity for the look-up and for webhooks.
 * - The client is given a fetch of ours: it ties each call to the send attempt's cancellation and
 *   to `timeoutMs`, and keeps what the client hides (the network error that tells "never sent"
 *   from "maybe sent", and Retry-After).
 * - Per-message ErrorCodes and whole-call answers are classed by ./errors.ts (Postmark's
 *   published error codes): 406 inactive recipient → rejected, hard bounce (suppressed); 300
 *   invalid request for one address → rejected; 10 bad token, 400/401 sender signature, 405/412/413
 *   account → provider unavailable; 429 and ErrorCode 100 → transient; a 5xx, a reset or a
 *   timeout after the request was sent → transient with the call's messages in doubt (looked up,
 *   never resent blindly); connection refused → provider unavailable (nothing was sent).
 *   413 (payload too large) and ErrorCode 410 (too many batch messages) split the call in halves.
 */
import { callsOf, sendCallsInParallel } from '../parallel-calls';
import { createHash } from 'crypto';
import { ServerClient } from 'postmark';
import { InvalidMessageError, ProviderUnavailableError, RecipientPermanentError, TransientProviderError, type ClassifiedError } from '../../errors';
import type { InFlightMessage, LookupResult, OutgoingMessage, Provider, SendResult } from '../provider';
import { scrubAddresses } from '../refusals';
import { callClass, postmarkCode, type PostmarkCodeClass } from './errors';

export const POSTMARK_API_HOST = 'api.postmarkapp.com';
/** Postmark's limit of messages in one /email/batch call. */
export const POSTMARK_MAX_BATCH = 500;
/** Postmark's limit on one Metadata value. */
const METADATA_VALUE_MAX = 80;
const LOOKUP_CONCURRENCY = 8;
const LOOKUP_ATTEMPTS = 3;

export interface PostmarkProviderConfig {
  name: string;
  /** The server's API token (X-Postmark-Server-Token). */
  serverToken: string;
  /** API host (and port), default api.postmarkapp.com. */
  requestHost?: string;
  /** Default true; false only for a local API (the emulator). */
  useHttps?: boolean;
  /** Message stream of marketing campaigns (default `broadcast`). */
  broadcastStream?: string;
  /** Message stream of transactional campaigns (default `outbound`, Postmark's default transactional stream). */
  transactionalStream?: string;
  /** Messages per /email/batch call (1-500, default 500). */
  callSize?: number;
  /** Calls in parallel (default 2). */
  concurrency?: number;
  /** Per-call timeout (default 30 s). */
  timeoutMs?: number;
  /**
   * How long after a call its messages may still be missing from the outbound message search.
   * A message in flight for less than this, and not found, is looked up again later rather than
   * resent. Default 15 s (0 for a server whose search is immediate).
   */
  lookupSettleMs?: number;
  /** The HTTP basic auth credentials Postmark's webhooks must carry (set on the webhook URL in Postmark). */
  webhookAuth?: { user: string; pass: string };
}

/** The `campaign` Metadata value of a campaign: its id, or a digest of it when longer than Postmark takes. */
export function campaignMetadata(campaignId: string): string {
  if (campaignId.length <= METADATA_VALUE_MAX) return campaignId;
  return `sha256:${createHash('sha256').update(campaignId).digest('hex').slice(0, 64)}`;
}

/** What our fetch saw of one call, beyond what the client reports. */
interface CallTrace {
  networkError?: unknown;
  retryAfter?: string | null;
}

/** A Postmark client error (postmark's PostmarkError): an HTTP status and Postmark's ErrorCode. */
interface ClientError {
  message?: string;
  code?: number;
  statusCode?: number;
}

/** One result of /email/batch. */
export interface BatchResult {
  ErrorCode?: number;
  Message?: string;
  MessageID?: string;
  To?: string;
}

/** Retry-After: seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
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

const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** One result of /email/batch for its message: a report for it, or an error about the provider. */
export function messageResult(provider: string, m: Pick<OutgoingMessage, 'messageId'>, r: BatchResult): SendResult | { error: ClassifiedError } {
  const code = Number(r.ErrorCode ?? 0);
  const entry = postmarkCode(code);
  const said = scrubAddresses(String(r.Message ?? entry.name)).slice(0, 300);
  switch (entry.class) {
    case 'ok':
      return { status: 'accepted', providerMessageId: r.MessageID || m.messageId };
    case 'recipient-suppressed':
      return { status: 'rejected', reason: `${provider}: inactive recipient (ErrorCode ${code}: ${said})`, hardBounce: true, signature: `postmark ${code}` };
    case 'recipient-rejected':
      return { status: 'rejected', reason: `${provider}: ${entry.name} (ErrorCode ${code}: ${said})`, hardBounce: false, signature: `postmark ${code}` };
    case 'unknown':
      return { status: 'deferred', reason: `${provider}: ${entry.name} (${said})`, signature: `postmark ${code}` };
    default:
      return { error: classedError(provider, entry.class, 200, code, said, undefined) };
  }
}

/** The error of a class, worded for people: what Postmark answered (status 200: inside a batch result) and what to check. */
export function classedError(
  provider: string,
  cls: PostmarkCodeClass,
  status: number,
  code: number | undefined,
  said: string,
  retryAfterMs: number | undefined,
): ClassifiedError {
  const answer = `${status === 200 ? '' : `${status} `}${code !== undefined ? `ErrorCode ${code}: ` : ''}${said}`;
  const name = code !== undefined ? postmarkCode(code).name : undefined;
  switch (cls) {
    case 'provider-unavailable':
      if (code === 10 || (status === 401 && code === undefined))
        return new ProviderUnavailableError(`${provider}: bad or missing server token (${answer}): check serverToken`);
      return new ProviderUnavailableError(`${provider}: ${name ?? 'refused'} (${answer})`);
    case 'transient': {
      const wait = retryAfterMs !== undefined ? `; retry after ${Math.ceil(retryAfterMs / 1000)} s` : '';
      const what = status === 429 || code === 429 ? 'rate limited' : status >= 500 ? 'server error' : (name ?? 'temporary failure');
      return new TransientProviderError(`${provider}: ${what} (${answer})${wait}`, retryAfterMs);
    }
    case 'invalid-message':
    case 'recipient-rejected':
    case 'recipient-suppressed':
    case 'split':
      return new InvalidMessageError(`${provider}: Postmark rejected the message (${answer})`);
    default:
      return new TransientProviderError(`${provider}: unexpected answer (${answer})`, retryAfterMs);
  }
}

export class PostmarkProvider implements Provider {
  readonly kind = 'postmark';
  readonly name: string;
  readonly inDoubtWindowMs: number;
  private readonly host: string;
  private readonly useHttps: boolean;
  private readonly callSize: number;
  private readonly concurrency: number;
  private readonly timeoutMs: number;
  private readonly broadcastStream: string;
  private readonly transactionalStream: string;

  constructor(private readonly config: PostmarkProviderConfig) {
    this.name = config.name;
    this.host = config.requestHost ?? POSTMARK_API_HOST;
    this.useHttps = config.useHttps ?? true;
    this.callSize = Math.min(POSTMARK_MAX_BATCH, Math.max(1, config.callSize ?? POSTMARK_MAX_BATCH));
    this.concurrency = Math.max(1, config.concurrency ?? 2);
    this.timeoutMs = config.timeoutMs ?? 30_000;
    this.inDoubtWindowMs = this.timeoutMs + (config.lookupSettleMs ?? 15_000);
    this.broadcastStream = config.broadcastStream ?? 'broadcast';
    this.transactionalStream = config.transactionalStream ?? 'outbound';
  }

  /** The message stream a message goes on. */
  streamOf(message: Pick<OutgoingMessage, 'transactional'>): string {
    return message.transactional ? this.transactionalStream : this.broadcastStream;
  }

  /** A client for one call: its requests go through our fetch, tied to `signal` and `timeoutMs`, traced into `trace`. */
  private client(trace: CallTrace, signal?: AbortSignal): ServerClient {
    const timeoutMs = this.timeoutMs;
    const tracedFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const deadline = AbortSignal.timeout(timeoutMs);
      try {
        const response = await fetch(input, { ...init, signal: signal ? AbortSignal.any([deadline, signal]) : deadline });
        trace.retryAfter = response.headers.get('retry-after');
        return response;
      } catch (err) {
        trace.networkError = err;
        throw err;
      }
    };
    // The client's own timeout (seconds) stays above ours: ours is the one that fires.
    return new ServerClient(this.config.serverToken, {
      requestHost: this.host,
      useHttps: this.useHttps,
      timeout: Math.ceil(timeoutMs / 1000) + 5,
      fetch: tracedFetch,
    });
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

  /** The message as /email/batch takes it. */
  private toPostmark(m: OutgoingMessage) {
    const headers = Object.entries(m.headers ?? {}).map(([Name, Value]) => ({ Name, Value }));
    headers.push({ Name: 'X-Mailover-Message-Id', Value: m.messageId });
    return {
      From: m.from,
      To: m.to,
      Subject: m.subject,
      TextBody: m.text,
      ...(m.html !== undefined ? { HtmlBody: m.html } : {}),
      MessageStream: this.streamOf(m),
      Headers: headers,
      Metadata: { campaign: campaignMetadata(m.campaignId), seq: String(m.seq) },
      ...(m.list ? { Tag: m.list } : {}),
    };
  }

  /** One /email/batch call; 413 or ErrorCode 410 splits it in halves. Reports each message Postmark answered for. */
  private async sendCall(
    call: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    const trace: CallTrace = {};
    let results: BatchResult[];
    try {
      results = (await this.client(trace, signal).sendEmailBatch(call.map((m) => this.toPostmark(m)))) as BatchResult[];
    } catch (err) {
      const error = this.callError(err, trace, call);
      if (error !== 'split') throw error;
      if (call.length === 1) {
        await report(call[0], { status: 'rejected', reason: `${this.name}: message too large for Postmark`, hardBounce: false });
        return;
      }
      const half = Math.ceil(call.length / 2);
      await this.sendCall(call.slice(0, half), report, signal);
      await this.sendCall(call.slice(half), report, signal);
      return;
    }
    const reports: Array<Promise<void>> = [];
    const unanswered: number[] = [];
    let failure: ClassifiedError | undefined;
    call.forEach((m, i) => {
      const r = Array.isArray(results) ? results[i] : undefined;
      if (!r || typeof r !== 'object') return unanswered.push(m.seq);
      const result = messageResult(this.name, m, r);
      if ('error' in result) failure ??= result.error;
      else reports.push(report(m, result));
    });
    // All at once: the ledger settles a whole call in one transaction.
    await Promise.all(reports);
    if (unanswered.length) {
      // Postmark took the call but its answer left these out: they may have gone.
      throw new TransientProviderError(
        `${this.name}: /email/batch answered for ${call.length - unanswered.length} of ${call.length} messages; ${unanswered.length} in doubt`,
        undefined,
        unanswered,
      );
    }
    if (failure) throw failure;
  }

  /** The classified error of a call that threw, or 'split' when it was too big. */
  private callError(err: unknown, trace: CallTrace, call: OutgoingMessage[]): ClassifiedError | 'split' {
    const e = (err ?? {}) as ClientError;
    if (trace.networkError !== undefined || typeof e.statusCode !== 'number' || e.statusCode === 0) return this.networkError(trace.networkError ?? err, call);
    const status = e.statusCode;
    const code = typeof e.code === 'number' && e.code !== 0 ? e.code : undefined;
    const cls = callClass(status, code);
    if (cls === 'split')
      return call.length > 1 || status === 413 ? 'split' : classedError(this.name, 'invalid-message', status, code, this.safe(e.message), undefined);
    const error = classedError(this.name, cls, status, code, this.safe(e.message), parseRetryAfter(trace.retryAfter));
    if (status >= 500 && error instanceof TransientProviderError && call.length) {
      // The whole request was sent before this answer: Postmark may have taken it. Its messages
      // are in doubt: looked up, never resent blindly.
      return new TransientProviderError(
        `${error.message}; ${call.length} message(s) in doubt`,
        error.retryAfterMs,
        call.map((m) => m.seq),
      );
    }
    return error;
  }

  private networkError(err: unknown, call: OutgoingMessage[]): ClassifiedError {
    const code = networkCode(err);
    const where = `${this.useHttps ? 'https' : 'http'}://${this.host}`;
    if (code && NEVER_SENT.has(code)) return new ProviderUnavailableError(`${this.name}: cannot reach ${where} (${code})`);
    const what =
      code === 'ETIMEDOUT' || code === 'UND_ERR_HEADERS_TIMEOUT'
        ? `no answer within ${this.timeoutMs} ms`
        : `connection lost (${code ?? this.safe((err as Error)?.message) ?? 'unknown'})`;
    return new TransientProviderError(
      `${this.name}: ${what} from ${where}; ${call.length} message(s) in doubt`,
      undefined,
      call.map((m) => m.seq),
    );
  }

  private safe(message: string | undefined): string {
    return scrubAddresses(
      String(message || 'no message')
        .split(this.config.serverToken)
        .join('***'),
    ).slice(0, 300);
  }

  classify(err: unknown): ClassifiedError {
    if (
      err instanceof TransientProviderError ||
      err instanceof ProviderUnavailableError ||
      err instanceof RecipientPermanentError ||
      err instanceof InvalidMessageError
    )
      return err;
    const e = (err ?? {}) as ClientError;
    if (typeof e.statusCode !== 'number' || e.statusCode === 0) return new TransientProviderError(`${this.name}: ${this.safe(e.message)}`);
    const code = typeof e.code === 'number' && e.code !== 0 ? e.code : undefined;
    return classedError(this.name, callClass(e.statusCode, code), e.statusCode, code, this.safe(e.message), undefined);
  }

  /**
   * Each message looked up in the outbound message search by recipient and Metadata campaign,
   * matched on its seq. A message whose look-up keeps failing (after two quick retries of a
   * transient failure) is 'failed'; the others are still answered.
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
      const trace: CallTrace = {};
      try {
        return await this.lookupOne(message, dispatchedAt, trace, signal);
      } catch (err) {
        const classified = err instanceof Error && 'failureClass' in err ? this.classify(err) : this.callErrorOf(err, trace);
        if (!(classified instanceof TransientProviderError) || attempt >= LOOKUP_ATTEMPTS || signal?.aborted) {
          return { status: 'failed', reason: `look-up failed: ${classified.message}` };
        }
        await new Promise((r) => setTimeout(r, 250 * 4 ** (attempt - 1)));
      }
    }
  }

  /** A read call's error (nothing of ours in doubt). */
  private callErrorOf(err: unknown, trace: CallTrace): ClassifiedError {
    const e = this.callError(err, trace, []);
    return e === 'split' ? new TransientProviderError(`${this.name}: unexpected 413 on a read`) : e;
  }

  private async lookupOne(message: OutgoingMessage, dispatchedAt: Date | null, trace: CallTrace, signal?: AbortSignal): Promise<LookupResult> {
    const campaign = campaignMetadata(message.campaignId);
    const seq = String(message.seq);
    const page = await this.client(trace, signal).getOutboundMessages({ count: 500, offset: 0, recipient: message.to, metadata_campaign: campaign });
    for (const item of page.Messages ?? []) {
      if (item.Metadata?.campaign === campaign && item.Metadata?.seq === seq) return { status: 'accepted', providerMessageId: item.MessageID };
    }
    // Its call may still be open, or Postmark's search may not show it yet.
    const age = dispatchedAt ? Date.now() - dispatchedAt.getTime() : Infinity;
    if (age < this.inDoubtWindowMs) return { status: 'unknown', retryAfterMs: this.inDoubtWindowMs - age };
    return { status: 'not-found' };
  }

  /** An authenticated read of the server's settings: reachable, token accepted. */
  async verify(): Promise<void> {
    const trace: CallTrace = {};
    try {
      await this.client(trace).getServer();
    } catch (err) {
      throw this.callErrorOf(err, trace);
    }
  }

  async close(): Promise<void> {
    // Nothing pooled: each call's client is its own.
  }
}
