/**
 * SendGrid provider: v3 Mail Send (POST /v3/mail/send) through @sendgrid/client, up to 1,000
 * personalizations (recipients) per call, and look-ups of calls left in doubt through the Email
 * Activity API when the account has it.
 *
 * - One call carries one content with two substitution tags (`%mailover_text%`,
 *   `%mailover_html%`); each recipient's personalization has its own subject, headers, custom
 *   args (`mailover_seq`; the call's `mailover_campaign`) and its rendered text and HTML as the
 *   tags' substitutions, so any rendering (escaping included) stays mailover's. SendGrid allows
 *   10,000 bytes of substitutions per personalization: a recipient whose rendered text and HTML
 *   are larger goes in a call of its own with its content inline.
 * - Answers are classified by ./errors.ts (a table from SendGrid's Mail Send reference): 413
 *   splits the call in halves; 5xx and lost answers leave the call's recipients in doubt.
 * - Look-up (`emailActivity: true`): one Email Activity query per campaign and time window
 *   (`unique_args['mailover_campaign']` and `last_event_time`), matched by recipient address; the
 *   API allows 6 requests a minute, so one query answers a whole call. A window that fills a
 *   page (1,000 messages) is asked recipient by recipient. Without it the provider has no
 *   look-up and the provider file's `inFlight` policy applies.
 */
import { sendCallsInParallel } from '../parallel-calls';
import { InvalidMessageError, ProviderUnavailableError, RecipientPermanentError, TransientProviderError, type ClassifiedError } from '../../errors';
import type { InFlightMessage, LookupResult, OutgoingMessage, Provider, SendResult } from '../provider';
import { sendGridBaseUrl, sendGridRequest, type SendGridApiConfig } from './api';
import { mailSendOutcome, networkCode, noAnswerError, sendGridErrorText } from './errors';

export const SENDGRID_MAX_PERSONALIZATIONS = 1000;
/** SendGrid's limit on one personalization's substitutions (keys and values), in bytes. */
export const SUBSTITUTIONS_MAX_BYTES = 10_000;
export const TEXT_TAG = '%mailover_text%';
export const HTML_TAG = '%mailover_html%';
/** The Email Activity API's page size limit. */
const ACTIVITY_PAGE = 1000;
/**
 * Recipients looked up one by one, at most, per look-up when the window query filled its page
 * (Email Activity allows 6 requests a minute); the others are held for review.
 */
export const ONE_BY_ONE_MAX = 5;
/** Tries of one look-up query (a transient failure is retried after 1 s, then 4 s). */
const LOOKUP_ATTEMPTS = 3;

export interface SendGridProviderConfig extends SendGridApiConfig {
  name: string;
  /** Personalizations per call (1-1000, default 1000). */
  callSize?: number;
  /** Calls in parallel (default 2). */
  concurrency?: number;
  /** Per-call timeout (default 30 s). */
  timeoutMs?: number;
  /** The account has the Email Activity API (a paid add-on): look calls left in doubt up there. */
  emailActivity?: boolean;
  /** How long after a call its messages may still be missing from Email Activity (default 120 s; 0 for the emulator). */
  lookupSettleMs?: number;
  /** The Event Webhook's verification key (Mail Settings → Signed Event Webhook), base64 as SendGrid shows it. */
  webhookPublicKey?: string;
}

/** Personalization headers mailover sets itself (any case of these in a message's headers is replaced). */
const OWN_HEADERS = ['X-Mailover-Campaign', 'X-Mailover-Recipient', 'X-Mailover-Message-Id'];

/** `Name <a@b>`, `"Name" <a@b>` or `a@b` as SendGrid's email object. */
export function sendGridAddress(from: string): { email: string; name?: string } {
  const m = /^\s*(.*?)\s*<([^<>]+)>\s*$/.exec(from);
  if (!m) return { email: from.trim() };
  const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(m[1]);
  const name = quoted ? quoted[1].replace(/\\(.)/g, '$1') : m[1];
  return name ? { email: m[2].trim(), name } : { email: m[2].trim() };
}

function substitutionsOf(m: OutgoingMessage): Record<string, string> {
  return { [TEXT_TAG]: m.text, ...(m.html !== undefined ? { [HTML_TAG]: m.html } : {}) };
}

function substitutionBytes(m: OutgoingMessage): number {
  let n = 0;
  for (const [k, v] of Object.entries(substitutionsOf(m))) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

/**
 * The calls a batch goes out in, in order: recipients whose substitutions fit share calls of up to
 * `callSize` (one call per sender and content shape); the others go one per call.
 */
export function planCalls(messages: OutgoingMessage[], callSize: number): OutgoingMessage[][] {
  const calls: OutgoingMessage[][] = [];
  const open = new Map<string, OutgoingMessage[]>();
  for (const m of messages) {
    if (substitutionBytes(m) > SUBSTITUTIONS_MAX_BYTES) {
      calls.push([m]);
      continue;
    }
    const key = `${m.campaignId}\n${m.from}\n${m.html !== undefined}`;
    let call = open.get(key);
    if (!call || call.length >= callSize) {
      call = [];
      open.set(key, call);
      calls.push(call);
    }
    call.push(m);
  }
  return calls;
}

/** The Mail Send request body of one call (all its messages of one campaign, sender and content shape). */
export function mailSendBody(call: OutgoingMessage[]): Record<string, unknown> {
  const first = call[0];
  const inline = call.length === 1 && substitutionBytes(first) > SUBSTITUTIONS_MAX_BYTES;
  const hasHtml = first.html !== undefined;
  const personalizations = call.map((m) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.headers ?? {})) if (!OWN_HEADERS.some((h) => h.toLowerCase() === k.toLowerCase())) headers[k] = v;
    headers['X-Mailover-Campaign'] = m.campaignId;
    headers['X-Mailover-Recipient'] = String(m.seq);
    headers['X-Mailover-Message-Id'] = m.messageId;
    return {
      to: [{ email: m.to }],
      subject: m.subject,
      headers,
      custom_args: { mailover_seq: String(m.seq) },
      ...(inline ? {} : { substitutions: substitutionsOf(m) }),
    };
  });
  const content = [{ type: 'text/plain', value: inline ? first.text : TEXT_TAG }];
  if (hasHtml) content.push({ type: 'text/html', value: inline ? (first.html ?? '') : HTML_TAG });
  return {
    from: sendGridAddress(first.from),
    personalizations,
    content,
    custom_args: { mailover_campaign: first.campaignId },
    ...(first.list ? { categories: [first.list.slice(0, 255)] } : {}),
  };
}

/** The Email Activity query that finds a campaign's messages whose last event falls in a window (the query reference's syntax). */
export function activityQuery(campaignId: string, from: Date, to: Date, recipient?: string): string {
  const q = (s: string) => `"${s.replace(/["\\]/g, '')}"`;
  const parts = [`unique_args['mailover_campaign']=${q(campaignId)}`];
  if (recipient) parts.push(`to_email=${q(recipient)}`);
  parts.push(
    `last_event_time BETWEEN TIMESTAMP ${q(from.toISOString().replace(/\.\d{3}Z$/, 'Z'))} AND TIMESTAMP ${q(to.toISOString().replace(/\.\d{3}Z$/, 'Z'))}`,
  );
  return parts.join(' AND ');
}

export class SendGridProvider implements Provider {
  readonly kind = 'sendgrid';
  readonly name: string;
  readonly inDoubtWindowMs: number;
  readonly lookup?: (messages: InFlightMessage[], signal?: AbortSignal) => Promise<Map<number, LookupResult>>;
  private readonly baseUrl: string;
  private readonly callSize: number;
  private readonly concurrency: number;
  private readonly timeoutMs: number;

  constructor(private readonly config: SendGridProviderConfig) {
    this.name = config.name;
    this.baseUrl = sendGridBaseUrl(config);
    this.callSize = Math.min(SENDGRID_MAX_PERSONALIZATIONS, Math.max(1, config.callSize ?? SENDGRID_MAX_PERSONALIZATIONS));
    this.concurrency = Math.max(1, config.concurrency ?? 2);
    this.timeoutMs = config.timeoutMs ?? 30_000;
    const settle = config.emailActivity ? (config.lookupSettleMs ?? 120_000) : 0;
    this.inDoubtWindowMs = this.timeoutMs + settle;
    if (config.emailActivity) this.lookup = (messages, signal) => this.lookupInActivity(messages, signal);
  }

  async sendBatch(
    messages: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    dispatching?: (messages: OutgoingMessage[]) => Promise<OutgoingMessage[]>,
    signal?: AbortSignal,
  ): Promise<void> {
    const calls = planCalls(messages, this.callSize);
    await sendCallsInParallel(calls, this.concurrency, dispatching, (call) => this.sendCall(call, report, signal));
  }

  /** One Mail Send call; 413 splits it in halves. Reports every recipient of a call that was accepted. */
  private async sendCall(
    call: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    const seqs = call.map((m) => m.seq);
    let answer;
    try {
      answer = await sendGridRequest(this.config, { method: 'POST', url: '/v3/mail/send', body: mailSendBody(call) }, { timeoutMs: this.timeoutMs, signal });
    } catch (err) {
      throw noAnswerError(err, { provider: this.name, baseUrl: this.baseUrl, inDoubt: seqs, timeoutMs: this.timeoutMs });
    }
    const outcome = mailSendOutcome(answer, { provider: this.name, inDoubt: seqs, secret: this.config.apiKey });
    if (outcome.kind === 'accepted') {
      // All at once: the ledger settles a whole call in one transaction.
      await Promise.all(call.map((m) => report(m, { status: 'accepted', providerMessageId: outcome.messageId || m.messageId })));
      return;
    }
    if (outcome.kind === 'split' && call.length > 1) {
      const half = Math.ceil(call.length / 2);
      await this.sendCall(call.slice(0, half), report, signal);
      await this.sendCall(call.slice(half), report, signal);
      return;
    }
    if (outcome.kind === 'split') {
      await report(call[0], { status: 'rejected', reason: `${this.name}: message too large for SendGrid (413)`, hardBounce: false });
      return;
    }
    throw outcome.error;
  }

  classify(err: unknown): ClassifiedError {
    if (
      err instanceof TransientProviderError ||
      err instanceof ProviderUnavailableError ||
      err instanceof RecipientPermanentError ||
      err instanceof InvalidMessageError
    )
      return err;
    const answer = err as { status?: unknown; headers?: Record<string, unknown>; body?: unknown };
    if (typeof answer?.status === 'number') {
      const outcome = mailSendOutcome(
        { status: answer.status, headers: answer.headers ?? {}, body: answer.body },
        { provider: this.name, inDoubt: [], secret: this.config.apiKey },
      );
      if (outcome.kind === 'error') return outcome.error;
      return new TransientProviderError(`${this.name}: unexpected answer (${answer.status})`);
    }
    if (networkCode(err)) return noAnswerError(err, { provider: this.name, baseUrl: this.baseUrl, inDoubt: [], timeoutMs: this.timeoutMs });
    return new TransientProviderError(
      `${this.name}: ${String((err as Error)?.message ?? err)
        .split(this.config.apiKey)
        .join('***')}`,
    );
  }

  /** One GET of the API, its non-2xx answers classified (never in doubt: a read). */
  private async get(url: string, qs: Record<string, string | number>, signal?: AbortSignal): Promise<unknown> {
    let answer;
    try {
      answer = await sendGridRequest(this.config, { method: 'GET', url, qs }, { timeoutMs: this.timeoutMs, signal });
    } catch (err) {
      throw noAnswerError(err, { provider: this.name, baseUrl: this.baseUrl, inDoubt: [], timeoutMs: this.timeoutMs });
    }
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    const outcome = mailSendOutcome(answer, { provider: this.name, inDoubt: [], secret: this.config.apiKey });
    if (outcome.kind === 'error') throw outcome.error;
    throw new TransientProviderError(`${this.name}: ${url} answered ${answer.status} ${sendGridErrorText(answer.body)}`.trim());
  }

  /**
   * Looks in-doubt messages up in Email Activity, by campaign: one query for the window from a
   * minute before the earliest dispatch to now, matched by recipient; then, when that page was
   * full, one query per recipient not found in it (at most ONE_BY_ONE_MAX). A query that keeps
   * failing, or a recipient past that many, is 'failed' (held, never resent blindly).
   */
  private async lookupInActivity(messages: InFlightMessage[], signal?: AbortSignal): Promise<Map<number, LookupResult>> {
    const results = new Map<number, LookupResult>();
    const byCampaign = new Map<string, InFlightMessage[]>();
    for (const m of messages) byCampaign.set(m.message.campaignId, [...(byCampaign.get(m.message.campaignId) ?? []), m]);
    const now = new Date(Date.now() + 60_000);
    for (const [campaignId, group] of byCampaign) {
      const earliest = Math.min(...group.map((m) => m.dispatchedAt?.getTime() ?? Date.now() - 3 * 86_400_000));
      const from = new Date(earliest - 60_000);
      let page: Set<string>;
      let full: boolean;
      try {
        const found = await this.activity(activityQuery(campaignId, from, now), signal);
        page = new Set(found);
        full = found.length >= ACTIVITY_PAGE;
      } catch (err) {
        for (const m of group) results.set(m.message.seq, { status: 'failed', reason: `look-up failed: ${this.classify(err).message}` });
        continue;
      }
      let oneByOne = 0;
      for (const m of group) {
        let seen = page.has(m.message.to.toLowerCase());
        if (!seen && full) {
          if (++oneByOne > ONE_BY_ONE_MAX) {
            const reason = `look-up failed: ${this.name}: Email Activity's page was full and more than ${ONE_BY_ONE_MAX} recipients are left to look up one by one (6 requests a minute)`;
            results.set(m.message.seq, { status: 'failed', reason });
            continue;
          }
          try {
            seen = (await this.activity(activityQuery(campaignId, from, now, m.message.to), signal)).length > 0;
          } catch (err) {
            results.set(m.message.seq, { status: 'failed', reason: `look-up failed: ${this.classify(err).message}` });
            continue;
          }
        }
        results.set(m.message.seq, seen ? { status: 'accepted', providerMessageId: m.message.messageId } : this.notSeen(m.dispatchedAt));
      }
    }
    return results;
  }

  private notSeen(dispatchedAt: Date | null): LookupResult {
    const age = dispatchedAt ? Date.now() - dispatchedAt.getTime() : Infinity;
    // Its call may still be open, or Email Activity may not show it yet.
    if (age < this.inDoubtWindowMs) return { status: 'unknown', retryAfterMs: this.inDoubtWindowMs - age };
    return { status: 'not-found' };
  }

  /** The recipients (lower case) of the messages an Email Activity query finds; transient failures retried. */
  private async activity(query: string, signal?: AbortSignal): Promise<string[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const body = await this.get('/v3/messages', { query, limit: ACTIVITY_PAGE }, signal);
        const list = (body as { messages?: unknown })?.messages;
        if (!Array.isArray(list)) throw new TransientProviderError(`${this.name}: Email Activity answered without messages`);
        return list.map((x) => String((x as { to_email?: unknown })?.to_email ?? '').toLowerCase()).filter((s) => s.includes('@'));
      } catch (err) {
        const e = this.classify(err);
        if (!(e instanceof TransientProviderError) || attempt >= LOOKUP_ATTEMPTS || signal?.aborted) throw e;
        // The Email Activity API allows 6 requests a minute: a 429 says when to come back.
        await new Promise((r) => setTimeout(r, Math.min(e.retryAfterMs ?? 1000 * 4 ** (attempt - 1), 60_000)));
      }
    }
  }

  /** An authenticated read (the key's scopes): reachable, key accepted, and allowed to send mail. */
  async verify(): Promise<void> {
    const body = await this.get('/v3/scopes', {});
    const scopes = (body as { scopes?: unknown })?.scopes;
    if (Array.isArray(scopes) && !scopes.includes('mail.send')) throw new ProviderUnavailableError(`${this.name}: the API key lacks the mail.send scope`);
  }

  async close(): Promise<void> {}
}
