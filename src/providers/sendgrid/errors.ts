/**
 * SendGrid's answers to a v3 Mail Send call (POST /v3/mail/send), in mailover's failure taxonomy
 * (src/errors.ts). The table follows the responses SendGrid documents for Mail Send and for the
 * v3 API as a whole:
 *   https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send (Responses: 202, 400,
 *     401, 403, 404, 405, 413, 415, 429, 500, 503)
 *   https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/errors
 *     (403 "too many bad requests, temporary block", 406, 429, 451 data residency, 500; error
 *     bodies are `{"errors": [{"field": "...", "message": "...", "help": "..."}]}`)
 *   https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits
 *     (429 with X-RateLimit-Limit / -Remaining / -Reset, the reset as Unix epoch seconds)
 *
 * | answer                     | mailover                                                          |
 * |----------------------------|-------------------------------------------------------------------|
 * | 2xx (202 Accepted)         | every personalization of the call accepted                        |
 * | 400                        | invalid message: the campaign holds with SendGrid's field errors  |
 * | 401, 403                   | provider refuses us (key revoked, sender not verified, blocked)   |
 * | 404, 405, 406, 415, 451    | provider refuses us (wrong base URL or region for this account)   |
 * | 413                        | not an error: the call is split in halves (one message: rejected) |
 * | 429                        | transient, retried once X-RateLimit-Reset has passed              |
 * | 5xx                        | transient, the call's recipients in doubt (the body was sent)     |
 * | no answer (reset, timeout) | transient, the call's recipients in doubt                         |
 * | refused, host not found    | provider refuses us (nothing was sent)                            |
 * | other 4xx                  | transient (unexpected): retried, then the retry budget switches   |
 */
import { InvalidMessageError, ProviderUnavailableError, TransientProviderError, type ClassifiedError } from '../../errors';

/** One HTTP answer of SendGrid's API (headers with lower-case names). */
export interface SendGridAnswer {
  status: number;
  headers: Record<string, unknown>;
  body: unknown;
}

export type MailSendOutcome =
  | { kind: 'accepted'; messageId: string }
  /** 413: send the call again in halves (a single message: rejected as too large). */
  | { kind: 'split' }
  | { kind: 'error'; error: ClassifiedError };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function header(headers: Record<string, unknown>, name: string): string | undefined {
  const v = headers[name];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
}

/**
 * How long SendGrid asks to wait after a 429: until X-RateLimit-Reset (Unix epoch seconds), else a
 * Retry-After (seconds); undefined when it says neither.
 */
export function rateLimitWaitMs(headers: Record<string, unknown>, now = Date.now()): number | undefined {
  const reset = header(headers, 'x-ratelimit-reset');
  if (reset !== undefined && /^\d{1,12}(\.\d+)?$/.test(reset.trim())) return Math.max(0, Math.ceil(Number(reset) * 1000 - now));
  const after = header(headers, 'retry-after');
  if (after !== undefined && /^\d{1,7}(\.\d+)?$/.test(after.trim())) return Math.round(Number(after) * 1000);
  return undefined;
}

/**
 * SendGrid's own words in an error body: each `errors[]` entry as `field: message` (the field
 * left out when SendGrid names none), joined with '; '. A body that is not SendGrid's JSON (an
 * HTML page from a proxy) gives its first 200 characters, tags removed.
 */
export function sendGridErrorText(body: unknown): string {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, 200);
    }
  }
  if (isObject(parsed) && Array.isArray(parsed.errors)) {
    const parts = parsed.errors.filter(isObject).map((e) => {
      const message = typeof e.message === 'string' ? e.message : JSON.stringify(e.message ?? null);
      return typeof e.field === 'string' && e.field !== '' ? `${e.field}: ${message}` : message;
    });
    if (parts.length) return parts.join('; ').slice(0, 2000);
  }
  return parsed === undefined || parsed === '' ? '' : JSON.stringify(parsed).slice(0, 200);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  451: 'Unavailable For Legal Reasons',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * What one Mail Send answer means for the call that got it. `provider` names the provider in
 * messages; `inDoubt` are the call's seqs (a 5xx leaves them in doubt); `secret` (the API key) is
 * never repeated in a message.
 */
export function mailSendOutcome(answer: SendGridAnswer, ctx: { provider: string; inDoubt: number[]; secret?: string; now?: number }): MailSendOutcome {
  const { status } = answer;
  if (status >= 200 && status < 300) return { kind: 'accepted', messageId: header(answer.headers, 'x-message-id') ?? '' };
  if (status === 413) return { kind: 'split' };
  const words = sendGridErrorText(answer.body) || STATUS_TEXT[status] || 'no message';
  const said = `${status} ${ctx.secret ? words.split(ctx.secret).join('***') : words}`;
  const p = ctx.provider;
  return { kind: 'error', error: statusError(status, said, p, answer.headers, ctx) };
}

function statusError(status: number, said: string, p: string, headers: Record<string, unknown>, ctx: { inDoubt: number[]; now?: number }): ClassifiedError {
  if (status === 400) return new InvalidMessageError(`${p}: SendGrid rejected the message (${said})`);
  if (status === 401) return new ProviderUnavailableError(`${p}: authentication failed (${said}): check the API key`);
  if (status === 403)
    return new ProviderUnavailableError(`${p}: SendGrid refuses this sender or key (${said}): check the key's Mail Send permission and the sender identity`);
  if (status === 404 || status === 405 || status === 406 || status === 415)
    return new ProviderUnavailableError(`${p}: not SendGrid's Mail Send API at this URL (${said}): check url/region`);
  if (status === 451) return new ProviderUnavailableError(`${p}: SendGrid refuses this region for the account (${said}): check region`);
  if (status === 429) {
    const wait = rateLimitWaitMs(headers, ctx.now);
    return new TransientProviderError(`${p}: rate limited (${said})${wait !== undefined ? `; retry after ${Math.ceil(wait / 1000)} s` : ''}`, wait);
  }
  if (status >= 500) {
    // The whole body was sent before this answer: SendGrid may have queued the call.
    return new TransientProviderError(`${p}: server error (${said})${inDoubtNote(ctx.inDoubt)}`, rateLimitWaitMs(headers, ctx.now), ctx.inDoubt);
  }
  return new TransientProviderError(`${p}: unexpected answer (${said})`);
}

const inDoubtNote = (seqs: number[]) => (seqs.length ? `; ${seqs.length} recipient(s) in doubt` : '');

/** Network failure codes after which the request cannot have reached SendGrid. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** The error code of a network failure (axios's, or its cause's). */
export function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A call that got no HTTP answer: never sent (refused, no such host) is the provider refusing us;
 * anything else (reset, timeout, cancelled) may have reached SendGrid: the call's seqs are in doubt.
 */
export function noAnswerError(err: unknown, ctx: { provider: string; baseUrl: string; inDoubt: number[]; timeoutMs: number }): ClassifiedError {
  const code = networkCode(err);
  if (code && NEVER_SENT.has(code)) return new ProviderUnavailableError(`${ctx.provider}: cannot reach ${ctx.baseUrl} (${code})`);
  const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT';
  const what = timedOut ? `no answer within ${ctx.timeoutMs} ms` : `connection lost (${code ?? (err as Error)?.message ?? 'unknown'})`;
  return new TransientProviderError(`${ctx.provider}: ${what} from ${ctx.baseUrl}${inDoubtNote(ctx.inDoubt)}`, undefined, ctx.inDoubt);
}
