/**
 * The failover decision (./failover.ts) for a weighted plan: which provider a batch goes to, and
 * what is recorded when the set of healthy providers sharing the batches changes.
 *
 * Every batch may go to another provider, so a weighted plan does not record a switch per batch:
 * it keeps the set its last batch was split among (`plan.sharing`) and records one switch when
 * that set changes. A provider failing a batch itself records the switch at once, from it to the
 * provider that gains most of its share; a provider leaving through shared health (or an operator)
 * or coming back (failback) is recorded at the next batch, from the provider whose share fell most
 * to the one whose share rose most. The reason ends with the split now ("split now postmark 100 %").
 */
import type { ProviderPlan, ProviderSwitch } from './campaign-api';
import type { Decision, FailoverState, Hold, ProviderFailureCause, SwitchCause } from './failover';
import { batchIndexOf, healthyProviders, intendedShare, sharingChanged, splitMove, splitText, weightedPick, type ProviderWeights } from './weighted-routing';

type WeightedPlan = ProviderPlan & { weights: ProviderWeights };

const splitNow = (plan: ProviderPlan, sharedDown: Record<string, string>) => `split now ${splitText(intendedShare(plan, sharedDown))}`;

/** batch-starting on a weighted plan with at least one healthy provider. */
export function weightedBatchStarting(state: FailoverState, atSeq: number, at: string, recordMoves: boolean, batchSize: number | undefined): Decision {
  if (batchSize === undefined) throw new Error('failover: batch-starting on a weighted plan needs the batch size (batchSize)');
  const plan = state.plan as WeightedPlan;
  const healthy = healthyProviders(plan, state.sharedDown);
  const provider = weightedPick(batchIndexOf(atSeq, batchSize), healthy, plan.weights);
  if (!sharingChanged(plan, healthy)) return { state, provider };
  const next: FailoverState = { ...state, plan: { ...plan, sharing: healthy } };
  const before = plan.sharing ?? [];
  // The first batch, or the first after none was left (that was a hold, not a switch).
  if (!recordMoves || before.length === 0) return { state: next, provider };
  const { from, to } = splitMove(plan.weights, plan.order, before, healthy);
  if (from === undefined || to === undefined) return { state: next, provider };
  // Providers leave the set here only through shared health (their own failures were recorded when they happened).
  const left = before.filter((p) => !healthy.includes(p));
  const back = healthy.filter((p) => !before.includes(p));
  const isFailback = left.length === 0;
  const reason = isFailback
    ? `failback: ${back.join(', ')} healthy again; ${splitNow(plan, state.sharedDown)}`
    : `shared health: ${left.map((p) => state.sharedDown[p] ?? `${p} is down`).join('; ')}; ${splitNow(plan, state.sharedDown)}`;
  const cause: SwitchCause = isFailback ? 'failback' : left.some((p) => state.operatorDown?.includes(p)) ? 'operator' : 'shared-health';
  return { state: next, provider, switch: { from, to, reason, at, atSeq }, announce: { failback: isFailback, cause } };
}

/**
 * `provider` failed at the provider level (or a drill forced it down) in a weighted plan: it leaves
 * the set, its share goes to the others in proportion; recorded once (a later failure of a batch
 * that was already in flight on it records nothing more).
 */
export function weightedFailOver(
  state: FailoverState,
  provider: string,
  reason: string,
  atSeq: number,
  at: string,
  cause: ProviderFailureCause | undefined,
  noProviderLeft: (state: FailoverState, at: string) => Hold,
): Decision {
  const old = state.plan as WeightedPlan;
  if (old.down[provider] !== undefined) return { state };
  const down = { ...old.down, [provider]: reason };
  const healthy = healthyProviders({ ...old, down }, state.sharedDown);
  const plan: ProviderPlan = { ...old, down, sharing: healthy };
  const { to } = splitMove(old.weights, old.order, [provider, ...healthy], healthy);
  const moved: FailoverState = { ...state, plan };
  if (to === undefined) {
    const hold = noProviderLeft(moved, at);
    return { state: { ...moved, hold }, switch: { from: provider, reason, at, atSeq }, hold };
  }
  const sw: ProviderSwitch = { from: provider, to, reason: `${reason}; ${splitNow(plan, state.sharedDown)}`, at, atSeq };
  return { state: moved, switch: sw, ...(cause ? { announce: { failback: false, cause } } : {}) };
}

/**
 * A provider's shared circuit closed: does it come back only when told (failback manual)? In a
 * weighted plan every provider that was out is a failback (its share returns), unless none is
 * healthy (then it is how the campaign goes on).
 */
export function weightedFailback(plan: ProviderPlan, sharedDownBefore: Record<string, string>, current: string | undefined, provider: string): boolean {
  return current !== undefined && plan.order.includes(provider) && (sharedDownBefore[provider] !== undefined || plan.down[provider] !== undefined);
}
