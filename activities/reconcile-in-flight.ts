/**
 * Rows a send attempt finds in flight: handed to a provider (dispatched) and never settled. An
 * earlier attempt crashed, or lost the answer of its call. Their outcome is unknown; a second
 * send could mail the recipient twice, a dropped row would lose them. Per provider they were
 * handed to:
 *
 * 1. Wait until each was dispatched at least the provider's `inDoubtWindowMs` ago: until then its
 *    call may still be open (an attempt Temporal gave up on may still be running) and the provider's
 *    records may not show it yet. Rows the waiting attempt settles meanwhile drop out.
 * 2. A provider that can be asked (Mailgun's events API) settles them: accepted ones are settled,
 *    ones it never saw are sent again, ones whose own look-up failed are held (only those).
 * 3. A provider that cannot be asked (SMTP): the worker's `inFlight` policy: `resend` sends them
 *    again (counted), `hold` holds them for an operator (`mailover campaign held`).
 *
 * Look-ups stop while the attempt still has time to finish: rows not looked up stay in flight and
 * the attempt says so (`remaining`), so the batch runs again instead of timing out half-way.
 */
import { log } from '@temporalio/activity';
import type { InFlightMessage, LookupResult, OutgoingMessage, Provider } from '../src/providers/provider';
import type { RecipientRow } from '../src/store/types';
import type { AttemptClock } from './attempt-clock';
import type { ActivityDeps } from './index';

/** Look-ups per round; a round is checked against the time the attempt has left. */
const LOOKUP_CHUNK = 64;
/** Time kept in hand at the end of an attempt (settling, tallying, answering Temporal). */
const MARGIN_MS = 30_000;
/** Rounds of "too early to tell" before a row is held instead. */
const UNKNOWN_ROUNDS = 3;

export interface ReconcileResult {
  /** Rows to send again: the provider never saw them, or the policy is `resend`. */
  resend: RecipientRow[];
  /** Rows settled as accepted from a look-up. */
  settled: number;
  /** Rows held for an operator. */
  held: number;
  /** Rows left in flight for the next attempt (this one ran out of time for them). */
  remaining: number;
}

type Render = (row: RecipientRow) => OutgoingMessage | undefined;

export async function reconcileInFlight(
  deps: ActivityDeps,
  campaignId: string,
  rows: RecipientRow[],
  clock: AttemptClock,
  render: Render,
): Promise<ReconcileResult> {
  const result: ReconcileResult = { resend: [], settled: 0, held: 0, remaining: 0 };
  const byProvider = new Map<string, RecipientRow[]>();
  for (const row of rows) {
    const key = row.provider ?? '';
    const group = byProvider.get(key);
    if (group) group.push(row);
    else byProvider.set(key, [row]);
  }
  for (const [providerName, group] of byProvider) {
    const provider: Provider | undefined = providerName && deps.providers.has(providerName) ? deps.providers.get(providerName) : undefined;
    const window = provider?.inDoubtWindowMs ?? 0;
    const youngest = Math.max(...group.map((r) => r.dispatchedAt?.getTime() ?? 0));
    const waitMs = youngest + window - Date.now();
    if (waitMs > 0) {
      if (waitMs > clock.remainingMs() - MARGIN_MS) {
        result.remaining += group.length;
        continue;
      }
      clock.progress({ waiting: `${group.length} message(s) in flight on ${providerName}: ${Math.ceil(waitMs / 1000)} s until their calls are over` });
      await clock.sleep(waitMs);
    }
    // The attempt that sent them may have settled some while we waited.
    const still = (
      await deps.store.getRecipients(
        campaignId,
        group.map((r) => r.seq),
      )
    ).filter((r) => r.state === 'sending');
    if (!still.length) continue;
    if (provider?.lookup) await lookUp(deps, campaignId, provider, still, clock, render, result);
    else if (deps.inFlightPolicy === 'resend') result.resend.push(...still);
    else {
      await deps.store.holdRows(
        campaignId,
        still.map((r) => r.seq),
        `in doubt: handed to ${providerName || 'a provider'} and no answer came (its reply was lost or the worker stopped); ${providerName ? `${providerName} cannot be asked, and ` : ''}the in-flight policy is hold`,
      );
      result.held += still.length;
    }
  }
  return result;
}

async function lookUp(
  deps: ActivityDeps,
  campaignId: string,
  provider: Provider,
  rows: RecipientRow[],
  clock: AttemptClock,
  render: Render,
  result: ReconcileResult,
): Promise<void> {
  let pending = rows;
  for (let round = 1; pending.length; round++) {
    const unknown: Array<{ row: RecipientRow; retryAfterMs: number }> = [];
    for (let i = 0; i < pending.length; i += LOOKUP_CHUNK) {
      if (clock.remainingMs() < MARGIN_MS + provider.inDoubtWindowMs) {
        result.remaining += pending.length - i;
        return;
      }
      const chunk = pending.slice(i, i + LOOKUP_CHUNK);
      const asked: InFlightMessage[] = [];
      for (const row of chunk) {
        const message = render(row);
        if (message) asked.push({ message, dispatchedAt: row.dispatchedAt });
        else result.resend.push(row); // cannot be rendered: the send path rejects it with the reason
      }
      clock.progress({ lookingUp: `${asked.length} message(s) in flight on ${provider.name}` });
      let found: Map<number, LookupResult>;
      try {
        found = await provider.lookup!(asked, clock.signal);
      } catch (err) {
        clock.signal?.throwIfAborted();
        found = new Map(asked.map((a) => [a.message.seq, { status: 'failed', reason: `look-up failed: ${(err as Error).message}` } as LookupResult]));
      }
      const failed = new Map<string, number[]>();
      for (const { message } of asked) {
        const r = found.get(message.seq) ?? ({ status: 'failed', reason: 'look-up gave no answer for it' } as LookupResult);
        const row = chunk.find((c) => c.seq === message.seq)!;
        if (r.status === 'accepted') {
          await deps.store.settleAccepted(campaignId, row.seq, provider.name, r.providerMessageId);
          deps.metrics?.countMessages(provider.name, 'accepted');
          result.settled++;
        } else if (r.status === 'not-found') result.resend.push(row);
        else if (r.status === 'unknown') unknown.push({ row, retryAfterMs: r.retryAfterMs });
        else failed.set(r.reason, [...(failed.get(r.reason) ?? []), row.seq]);
      }
      for (const [reason, seqs] of failed) {
        // The provider that may have them cannot be asked now: sending again could mail them twice.
        log.warn('in-flight look-up failed; those rows are held for review', { provider: provider.name, rows: seqs.length, error: reason });
        await deps.store.holdRows(campaignId, seqs, `in doubt: handed to ${provider.name}, no answer, and ${reason}`);
        result.held += seqs.length;
      }
    }
    if (!unknown.length) return;
    if (round >= UNKNOWN_ROUNDS) {
      await deps.store.holdRows(
        campaignId,
        unknown.map((u) => u.row.seq),
        `in doubt: handed to ${provider.name}, no answer, and ${provider.name} still could not say whether it took them`,
      );
      result.held += unknown.length;
      return;
    }
    const wait = Math.max(...unknown.map((u) => u.retryAfterMs));
    if (wait > clock.remainingMs() - MARGIN_MS) {
      result.remaining += unknown.length;
      return;
    }
    await clock.sleep(wait);
    pending = unknown.map((u) => u.row);
  }
}
