/**
 * Sends one batch (a seq range of a campaign) through one provider.
 *
 * Ledger protocol (design.md invariant 1): rows are claimed (pending -> sending) before
 * the provider call and settled one by one as the provider answers. A retry of the same
 * range skips settled rows; rows found still `sending` were left in flight by a crash and
 * are reconciled: looked up at the provider when it can, else resent or held per policy.
 */
import { randomUUID } from 'crypto';
import { Context, log } from '@temporalio/activity';
import { ProviderUnavailableError, TransientProviderError } from '../src/errors';
import type { InFlightMessage, LookupResult, OutgoingMessage, Provider, SendResult } from '../src/providers/provider';
import type { RecipientRow } from '../src/store/types';
import { TemplateError } from '../src/template';
import { unsubscribeLinks } from '../src/compliance/unsubscribe';
import { bounceAddress } from '../src/compliance/tokens';
import type { CampaignCache, LoadedCampaign } from './campaign-cache';
import { LedgerWriter } from './ledger-writer';
import { acquireSends } from './rate-limit';
import { toApplicationFailure } from './failures';
import type { ActivityDeps, BatchTally, SendBatchInput } from './index';

export function messageIdFor(campaignId: string, seq: number, domain: string): string {
  return `<mo.${campaignId}.${seq}@${domain}>`;
}

type Compliance = ActivityDeps['compliance'];

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
    };
  } catch (err) {
    if (err instanceof TemplateError) return { seq: row.seq, error: err.message };
    throw err;
  }
}

function cancelled(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

/**
 * A heartbeat for this activity, sent at most every tenth of its heartbeat timeout (and at most
 * every second). The SDK encodes and hands every call to its core, which then throttles what
 * reaches the server: one call per message was a tenth of the worker's CPU in an SMTP campaign.
 */
function heartbeater(): (details: unknown) => void {
  let context: Context;
  try {
    context = Context.current();
  } catch {
    return () => {}; // not running inside an activity (direct call from a tool): nothing to heartbeat
  }
  const everyMs = Math.min(1000, (context.info.heartbeatTimeoutMs ?? 10_000) / 10);
  let last = -Infinity;
  return (details) => {
    const now = performance.now();
    if (now - last < everyMs) return;
    last = now;
    context.heartbeat(details);
  };
}

/**
 * Rows left `sending` by a crash (or by a call whose answer was lost): settle what the provider
 * they were handed to can confirm, and return the ones to send again. Rows the provider cannot
 * tell about yet (its event log lags) make the attempt retry later, with nothing resent.
 */
async function reconcileInFlight(deps: ActivityDeps, campaign: LoadedCampaign, rows: RecipientRow[]): Promise<RecipientRow[]> {
  const resend: RecipientRow[] = [];
  const byProvider = new Map<string, RecipientRow[]>();
  for (const row of rows) {
    const key = row.provider ?? '';
    byProvider.set(key, [...(byProvider.get(key) ?? []), row]);
  }
  let waitMs = 0;
  for (const [providerName, group] of byProvider) {
    const previous: Provider | undefined = providerName && deps.providers.has(providerName) ? deps.providers.get(providerName) : undefined;
    if (previous?.lookup) {
      const inFlight: InFlightMessage[] = [];
      for (const row of group) {
        const m = render(campaign, row, deps.compliance);
        if ('to' in m) inFlight.push({ message: m, dispatchedAt: row.dispatchedAt });
        else resend.push(row); // cannot render: the send path rejects it with the reason
      }
      let found: Map<number, LookupResult>;
      try {
        found = await previous.lookup(inFlight);
      } catch (err) {
        // The provider that may have them cannot be asked now: sending again could mail them twice,
        // so they stay in flight, held for review (counted), and the rest of the batch goes on.
        log.warn('in-flight look-up failed; rows held for review', { provider: providerName, rows: group.length, error: (err as Error).message });
        continue;
      }
      for (const row of group) {
        const r = found.get(row.seq);
        if (r?.status === 'accepted') {
          await deps.store.settleAccepted(campaign.record.id, row.seq, providerName, r.providerMessageId);
          deps.metrics?.countMessages(providerName, 'accepted');
        } else if (r?.status === 'unknown') waitMs = Math.max(waitMs, r.retryAfterMs);
        else if (!resend.includes(row)) resend.push(row);
      }
    } else if (deps.inFlightPolicy === 'resend') {
      resend.push(...group);
    }
    // policy `hold`: rows stay `sending` for an operator to review; counted as heldForReview.
  }
  if (waitMs > 0) {
    throw new TransientProviderError(`waiting for the provider's event log to show messages in flight since the last attempt (${Math.ceil(waitMs / 1000)} s)`, waitMs);
  }
  return resend;
}

export async function sendBatch(deps: ActivityDeps, cache: CampaignCache, input: SendBatchInput): Promise<BatchTally> {
  const started = process.hrtime.bigint();
  try {
    return await sendBatchAttempt(deps, cache, input);
  } finally {
    deps.metrics?.observeBatch(input.provider, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

/**
 * One attempt. Messages are counted (metrics) only where this attempt settled them itself:
 * the claim's suppressions, the look-up's acceptances, render failures and the provider's answers.
 */
async function sendBatchAttempt(deps: ActivityDeps, cache: CampaignCache, input: SendBatchInput): Promise<BatchTally> {
  const { campaignId, fromSeq, toSeq } = input;
  const metrics = deps.metrics;
  try {
    const campaign = await cache.get(campaignId);
    if (!deps.providers.has(input.provider)) {
      throw new ProviderUnavailableError(`provider '${input.provider}' is not configured on this worker`);
    }
    const provider = deps.providers.get(input.provider);
    const claimToken = randomUUID();
    const claim = await deps.store.claimRange(campaignId, fromSeq, toSeq, input.provider, claimToken);
    metrics?.countMessages(input.provider, 'suppressed', claim.suppressed);
    const rows = [...claim.claimed, ...(await reconcileInFlight(deps, campaign, claim.inFlight))];

    const messages: OutgoingMessage[] = [];
    for (const row of rows) {
      const m = render(campaign, row, deps.compliance);
      if ('error' in m) {
        await deps.store.settleRejected(campaignId, m.seq, input.provider, `invalid message: ${m.error}`, false);
        metrics?.countMessages(input.provider, 'rejected');
      } else messages.push(m);
    }

    const heartbeat = heartbeater();
    const reported = new Set<number>();
    let settled = 0;
    const ledger = new LedgerWriter((w) => deps.store.recordSends(campaignId, input.provider, claimToken, w));
    const report = async (m: OutgoingMessage, result: SendResult) => {
      if (result.status === 'accepted') await ledger.settleAccepted(m.seq, result.providerMessageId);
      else await deps.store.settleRejected(campaignId, m.seq, input.provider, result.reason, result.hardBounce);
      metrics?.countMessages(input.provider, result.status === 'accepted' ? 'accepted' : 'rejected');
      reported.add(m.seq);
      settled++;
      heartbeat({ fromSeq, settled });
    };
    heartbeat({ fromSeq, settled });
    try {
      const limits = deps.providers.rateLimit(input.provider);
      const dispatching = async (ms: OutgoingMessage[]) => {
        // A batch Temporal has given up on (heartbeat timeout, cancellation) stops handing out messages.
        cancelled()?.throwIfAborted();
        // The provider's plan limits hold across every campaign and worker (grants live in the store).
        if (limits) await acquireSends(deps.store, input.provider, limits, ms.length, { signal: cancelled(), onWait: () => heartbeat({ fromSeq, settled, waiting: 'rate limit' }) });
        const mine = await ledger.markDispatched(ms.map((m) => m.seq));
        return ms.filter((m) => mine.has(m.seq));
      };
      if (messages.length) await provider.sendBatch(messages, report, dispatching);
    } catch (err) {
      if (err instanceof TransientProviderError || err instanceof ProviderUnavailableError) {
        // Provider contract: unreported messages were not accepted, so they go back to pending;
        // those in doubt stay in flight and are looked up on the next attempt.
        const inDoubt = new Set(err instanceof TransientProviderError ? err.inDoubt : []);
        const unsent = messages.filter((m) => !reported.has(m.seq) && !inDoubt.has(m.seq)).map((m) => m.seq);
        if (unsent.length) await deps.store.release(campaignId, unsent, err.message, claimToken);
      }
      // Anything else (a ledger write failed) leaves rows as they are: the retry reconciles them.
      throw err;
    }

    const tally = await deps.store.tallyRange(campaignId, fromSeq, toSeq);
    return {
      acceptedByProvider: tally.accepted,
      rejected: tally.rejected,
      suppressed: tally.suppressed,
      inFlightRecovered: tally.inFlightRecovered,
      heldForReview: tally.sending,
    };
  } catch (err) {
    throw toApplicationFailure(err);
  }
}
