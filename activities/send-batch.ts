/**
 * Sends one batch (a seq range of a campaign, or a sweep of rows behind its cursor) through one
 * provider. First the reputation breaker (./reputation-check): a campaign whose hard-bounce or
 * complaint rate crossed its threshold sends nothing (the workflow pauses it).
 *
 * Ledger protocol (design.md invariant 1): rows are claimed (pending -> sending) before the
 * provider call, marked dispatched right before they are handed over, and settled one by one as
 * the provider answers. A retry of the same range skips settled rows; rows found still `sending`
 * and dispatched were left in flight and are reconciled (./reconcile-in-flight).
 *
 * What the provider answers per recipient (design.md failure taxonomy):
 * - accepted: settled at once;
 * - rejected / deferred: kept until the batch is done, then settled (rejected with the reason,
 *   hard bounces suppressed; deferred with their own backoff) unless most of the batch was
 *   refused alike: then it is the provider refusing us, not them (a relay that answers every
 *   RCPT TO with 550 5.1.1), and nobody is rejected, suppressed or deferred: the batch fails
 *   at the provider level (5xx: switch; 4xx: retry, then switch).
 */
import { randomUUID } from 'crypto';
import { ProviderUnavailableError, TransientProviderError } from '../src/errors';
import type { OutgoingMessage, SendResult } from '../src/providers/provider';
import { alikeRefusal } from '../src/providers/refusals';
import type { ClaimResult, RecipientRow } from '../src/store/types';
import { TemplateError } from '../src/template';
import { unsubscribeLinks } from '../src/compliance/unsubscribe';
import { bounceAddress } from '../src/compliance/tokens';
import { DEFAULT_DEFERRAL } from '../workflows/deferral';
import { AttemptClock } from './attempt-clock';
import type { CampaignCache, LoadedCampaign } from './campaign-cache';
import { LedgerWriter } from './ledger-writer';
import { acquireSends } from './rate-limit';
import { QuotaGate } from './quota-gate';
import { reconcileInFlight } from './reconcile-in-flight';
import { checkReputation } from './reputation-check';
import { toApplicationFailure } from './failures';
import type { BatchTally, SendBatchInput } from './contracts';
import type { ActivityDeps } from './index';

export function messageIdFor(campaignId: string, seq: number, domain: string): string {
  return `<mo.${campaignId}.${seq}@${domain}>`;
}

type Compliance = ActivityDeps['compliance'];

/** A batch answered alike this early, with nothing accepted, stops there (no need to go through the rest). */
const ALIKE_EARLY_ANSWERS = 20;

/**
 * One recipient's message: merge fields, the engine's fields (`{{unsubscribe_url}}`,
 * `{{postal_address}}`), identity headers, List-Unsubscribe (marketing campaigns) and the VERP
 * Return-Path (when a bounce domain is configured).
 */
function render(campaign: LoadedCampaign, row: RecipientRow, compliance: Compliance): OutgoingMessage | { seq: number; error: string } {
  try {
    const { record } = campaign;
    // Signed per recipient, so only when the message will carry it.
    const links = compliance?.unsubscribe && campaign.needsUnsubscribeLink ? unsubscribeLinks(compliance.unsubscribe, record.id, row.email) : undefined;
    const body = campaign.template.render(row.fields, {
      ...(links ? { unsubscribe_url: links.url } : {}),
      ...(record.postalAddress ? { postal_address: record.postalAddress } : {}),
    });
    const headers: Record<string, string> = { 'X-Mailover-Campaign': record.id, 'X-Mailover-Recipient': String(row.seq) };
    if (links && !record.transactional) Object.assign(headers, links.headers);
    const bounces = compliance?.bounces;
    return {
      campaignId: record.id,
      seq: row.seq,
      to: row.email,
      from: record.from,
      ...body,
      messageId: messageIdFor(record.id, row.seq, campaign.domain),
      headers,
      ...(bounces ? { envelopeFrom: bounceAddress(bounces, record.id, row.seq) } : {}),
      ...(record.list ? { list: record.list } : {}),
      ...(record.transactional ? { transactional: true } : {}),
    };
  } catch (err) {
    if (err instanceof TemplateError) return { seq: row.seq, error: err.message };
    throw err;
  }
}

export async function sendBatch(deps: ActivityDeps, cache: CampaignCache, input: SendBatchInput): Promise<BatchTally> {
  const started = process.hrtime.bigint();
  const clock = new AttemptClock();
  clock.start({ fromSeq: input.fromSeq, settled: 0 });
  try {
    return await sendBatchAttempt(deps, cache, input, clock);
  } catch (err) {
    throw toApplicationFailure(err);
  } finally {
    clock.stop();
    deps.metrics?.observeBatch(input.provider, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

/** A refusal kept until the batch is done (see the file comment). */
interface Refusal {
  message: OutgoingMessage;
  result: Extract<SendResult, { status: 'rejected' | 'deferred' }>;
}

/**
 * One attempt. Messages are counted (metrics) only where this attempt settled them itself:
 * the claim's suppressions, the look-up's acceptances, render failures and the provider's answers.
 */
async function sendBatchAttempt(deps: ActivityDeps, cache: CampaignCache, input: SendBatchInput, clock: AttemptClock): Promise<BatchTally> {
  const { campaignId, fromSeq, toSeq } = input;
  const metrics = deps.metrics;
  const deferral = input.deferral ?? DEFAULT_DEFERRAL;
  const campaign = await cache.get(campaignId);
  if (!deps.providers.has(input.provider)) {
    throw new ProviderUnavailableError(`provider '${input.provider}' is not configured on this worker`);
  }
  const provider = deps.providers.get(input.provider);
  // The reputation breaker: a campaign whose bounce or complaint rate crossed its threshold sends nothing more.
  await checkReputation(deps, campaign, input);
  const claimToken = randomUUID();
  const sweep = input.mode === 'sweep';
  const claim: ClaimResult & { fromDeferred?: number; fromPending?: number } = sweep
    ? await deps.store.claimSweep(campaignId, input.provider, claimToken, { upToSeq: toSeq, limit: input.limit ?? 100, now: new Date() })
    : await deps.store.claimRange(campaignId, fromSeq, toSeq, input.provider, claimToken);
  metrics?.countMessages(input.provider, 'suppressed', claim.suppressed);
  const renderable = (row: RecipientRow) => {
    const m = render(campaign, row, deps.compliance);
    return 'to' in m ? m : undefined;
  };
  const reconciled = await reconcileInFlight(deps, campaignId, claim.inFlight, clock, renderable);
  const rows = [...claim.claimed, ...reconciled.resend];

  const messages: OutgoingMessage[] = [];
  for (const row of rows) {
    const m = render(campaign, row, deps.compliance);
    if ('error' in m) {
      await deps.store.settleRejected(campaignId, m.seq, input.provider, `invalid message: ${m.error}`, false);
      metrics?.countMessages(input.provider, 'rejected');
    } else messages.push(m);
  }

  const reported = new Set<number>();
  const refusals: Refusal[] = [];
  let accepted = 0;
  const ledger = new LedgerWriter((w) => deps.store.recordSends(campaignId, input.provider, claimToken, w));
  const report = async (m: OutgoingMessage, result: SendResult) => {
    reported.add(m.seq);
    if (result.status === 'accepted') {
      await ledger.settleAccepted(m.seq, result.providerMessageId);
      metrics?.countMessages(input.provider, 'accepted');
      accepted++;
    } else refusals.push({ message: m, result });
    clock.progress({ fromSeq, settled: reported.size });
  };
  /** Most of the batch refused alike (so far, with nothing accepted): the provider refuses us. */
  const alikeSoFar = () =>
    accepted === 0 && reported.size >= ALIKE_EARLY_ANSWERS
      ? alikeRefusal(
          reported.size,
          refusals.map((r) => ({ signature: r.result.signature ?? r.result.reason })),
        )
      : undefined;
  const limits = deps.providers.rateLimit(input.provider);
  const quota = new QuotaGate(deps, input.provider);
  const dispatching = async (all: OutgoingMessage[]) => {
    // A batch Temporal has given up on (heartbeat timeout, cancellation) stops handing out messages.
    clock.signal?.throwIfAborted();
    const alike = alikeSoFar();
    if (alike) throw alikeFailure(input.provider, alike, reported.size, refusals);
    // The provider's hourly, daily and warm-up counters (in the store): the rest of a spent quota's batch is not sent.
    const ms = await quota.take(all);
    if (!ms.length) return ms;
    // The provider's plan limits hold across every campaign and worker (grants live in the store).
    if (limits)
      await acquireSends(deps.store, input.provider, limits, ms.length, {
        signal: clock.signal,
        onWait: () => clock.progress({ fromSeq, settled: reported.size, waiting: 'rate limit' }),
      });
    const mine = await ledger.markDispatched(ms.map((m) => m.seq));
    // A newer attempt claimed the range (Temporal gave up on this one): it sends the rest, not us.
    if (mine.size < ms.length) throw new AttemptSupersededError(`batch from recipient #${fromSeq}: a newer send attempt took over its rows; this one stops`);
    return ms;
  };

  let failure: unknown;
  try {
    if (messages.length) await provider.sendBatch(messages, report, dispatching, clock.signal);
  } catch (err) {
    failure = err;
  }
  const alike = alikeRefusal(
    reported.size,
    refusals.map((r) => ({ signature: r.result.signature ?? r.result.reason })),
  );
  if (alike && (failure === undefined || failure instanceof TransientProviderError || failure instanceof ProviderUnavailableError)) {
    failure = alikeFailure(input.provider, alike, reported.size, refusals);
  } else {
    // Real answers about each recipient: settled whatever happened to the rest of the batch.
    for (const { message, result } of refusals) {
      if (result.status === 'rejected') {
        await deps.store.settleRejected(campaignId, message.seq, input.provider, result.reason, result.hardBounce);
        metrics?.countMessages(input.provider, 'rejected');
      } else {
        const outcome = await deps.store.settleDeferred(campaignId, message.seq, input.provider, result.reason, deferral, new Date(), result.retryAfterMs);
        if (outcome.state === 'rejected') metrics?.countMessages(input.provider, 'rejected');
      }
    }
    refusals.length = 0;
  }
  if (failure !== undefined) {
    if (failure instanceof TransientProviderError || failure instanceof ProviderUnavailableError) {
      // Provider contract: unreported messages were not accepted, so they go back to pending (and so do
      // the refusals of a batch refused alike); those in doubt stay in flight and are looked up next time.
      const inDoubt = new Set(failure instanceof TransientProviderError ? failure.inDoubt : []);
      const refused = new Set(refusals.map((r) => r.message.seq));
      const unsent = messages.filter((m) => (!reported.has(m.seq) || refused.has(m.seq)) && !inDoubt.has(m.seq)).map((m) => m.seq);
      if (unsent.length) await deps.store.release(campaignId, unsent, failure.message, claimToken);
    }
    // Anything else (a ledger write failed) leaves rows as they are: the retry reconciles them.
    throw failure;
  }
  // Rows held back by a spent quota go back to pending (never sent, never lost): the workflow sends them on.
  if (quota.heldBack.length) await deps.store.release(campaignId, quota.heldBack, quota.reason(), claimToken);

  const seqs = sweep ? [...claim.claimed, ...claim.inFlight].map((r) => r.seq) : [];
  const tally = sweep ? await deps.store.tallyRows(campaignId, seqs) : await deps.store.tallyRange(campaignId, fromSeq, toSeq);
  const next = await deps.store.nextDeferral(campaignId);
  return {
    acceptedByProvider: tally.accepted,
    rejected: tally.rejected,
    suppressed: tally.suppressed,
    // A sweep's rows were counted when their batch first ran.
    inFlightRecovered: sweep ? 0 : tally.inFlightRecovered,
    heldForReview: tally.held,
    deferred: tally.deferred,
    ...(next ? { nextDeferredAt: next.getTime() } : {}),
    ...(sweep ? { swept: { deferred: claim.fromDeferred ?? 0, pending: claim.fromPending ?? 0 } } : {}),
    ...(reconciled.remaining > 0 || tally.sending > 0 ? { incomplete: true } : {}),
    ...(quota.spent && quota.heldBack.length ? { quotaSpent: { ...quota.spent, heldBack: quota.heldBack.length } } : {}),
  };
}

/** This attempt's rows were claimed by a newer attempt of the same batch: it stops handing any out. */
export class AttemptSupersededError extends Error {
  override readonly name = 'AttemptSupersededError';
}

/** The provider-level failure of a batch refused alike: 5xx means it refuses us (switch), 4xx means not now (retry, then switch). */
function alikeFailure(
  provider: string,
  alike: { signature: string; count: number },
  answered: number,
  refusals: Refusal[],
): TransientProviderError | ProviderUnavailableError {
  const example = refusals.find((r) => (r.result.signature ?? r.result.reason) === alike.signature)?.result.reason ?? alike.signature;
  const text = `${provider}: ${alike.count} of ${answered} recipients of the batch were refused alike (${alike.signature}), so it is the provider refusing us, not them; nobody was rejected or suppressed. First answer: ${example}`;
  return refusals.some((r) => (r.result.signature ?? r.result.reason) === alike.signature && r.result.status === 'deferred')
    ? new TransientProviderError(text)
    : new ProviderUnavailableError(text);
}
