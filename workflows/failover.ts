/**
 * The failover decision, in one place: a pure reducer `decide(state, event) → { state, switch?, hold? }`.
 * Deterministic, no Temporal, no clock (events carry the workflow time): the campaign workflow
 * feeds it what happened and records what it decided; unit tests drive it with tables.
 *
 * A campaign has a provider plan: names in priority order, and the ones it has found down, with
 * why. Shared provider health (one circuit per provider across campaigns, workflows/provider-health.ts)
 * adds `sharedDown`: a provider whose circuit is open is skipped like one found down here. The
 * active provider is the first in order that is neither. When the active provider fails at the
 * provider level (or a drill forces it down) it is marked down and the campaign moves to the
 * next, recording the switch; with none left the campaign holds (`no-provider`) instead of
 * failing, until a provider recovers, an operator resumes (the order is retried from the top) or
 * sets a new order. A campaign that moved without a failure of its own (another campaign's failure
 * through shared health, or failback to a recovered provider) records that switch at its next batch.
 * The current hold, whatever its kind, is part of the state, so what ends which hold is decided here too.
 */
import type { HoldKind, ProviderPlan, ProviderSwitch } from './campaign-api';
import { weightedBatchStarting, weightedFailOver, weightedFailback } from './weighted-failover';
import { healthyProviders, intendedShare, isWeighted, splitMove, splitText } from './weighted-routing';

export type { ProviderPlan };

/** Why the campaign is not sending: one hold kind, with why and since when (workflow time, ISO 8601). */
export type Hold = { [K in HoldKind]: { kind: K; reason: string; since: string } }[HoldKind];

export interface FailoverState {
  plan: ProviderPlan;
  /** Shared health: provider -> why its circuit is open. */
  sharedDown: Record<string, string>;
  /** Providers whose shared circuit an operator opened last (`mailover provider down`); kept after it closes, for the switch it caused. */
  operatorDown?: string[];
  /** Why the campaign is not sending; undefined while it may send. */
  hold?: Hold;
  /** The provider the last batch was sent through (undefined at the start, after an operator's order, or when none was left). */
  lastProvider?: string;
}

/**
 * Why a campaign changed provider, from what happened (never from reason text): a bounded set,
 * the `reason_class` of the provider-switched metric.
 * - `provider-refused`: its own batch; the provider refuses us (auth, policy, connection refused...);
 * - `retries-exhausted`: its own batch; transient errors until the retry budget was spent;
 * - `shared-health`: the provider's shared circuit opened on other campaigns' failures (or a failed probe);
 * - `operator`: an operator marked the provider down;
 * - `failback`: back to a recovered higher-priority provider;
 * - `quota`: a quota or warm-up allowance was spent (overflow to the next provider), or reset (back to it).
 */
export type SwitchCause = 'provider-refused' | 'retries-exhausted' | 'shared-health' | 'operator' | 'failback' | 'quota';
export const SWITCH_CAUSES: readonly SwitchCause[] = ['provider-refused', 'retries-exhausted', 'shared-health', 'operator', 'failback', 'quota'];

/** How a batch failed at the provider level: the provider refused us, or transient errors spent the retry budget. */
export type ProviderFailureCause = Extract<SwitchCause, 'provider-refused' | 'retries-exhausted'>;

/** How a batch failed, as the campaign classified the activity failure. */
export type BatchFailure =
  /** the provider refuses us, or its retry budget is spent: switch */
  | 'provider'
  /** the provider refused the message itself: hold with its words */
  | 'message-refused'
  /** the store, Temporal or a bug failed the batch after its retries: hold with the reason */
  | 'store-or-bug'
  /** the worker died or hung (heartbeat or start-to-close timeout): the same batch again, same provider */
  | 'worker-timeout'
  /** the reputation breaker: the campaign's hard-bounce or complaint rate crossed its threshold (the reason has the figures): pause, never switch */
  | 'reputation';

export type FailoverEvent =
  /** The campaign is about to send the batch from `atSeq`: on which provider (and did it move since the last batch)? */
  | {
      type: 'batch-starting';
      atSeq: number;
      at: string;
      /** record moves without a failure (shared health; not in runs recorded before it) */ recordMoves: boolean;
      /** the campaign's batch size: a weighted plan picks the provider by the batch's index (required for one) */ batchSize?: number;
    }
  | { type: 'batch-succeeded'; provider: string }
  | {
      type: 'batch-failed';
      provider: string;
      failure: BatchFailure;
      reason: string;
      atSeq: number;
      at: string;
      /** failure `provider`: refused, or retries spent (absent: refused) */
      cause?: ProviderFailureCause;
    }
  /** A failover drill treats `provider` as failed at the provider level from its forced recipient on. */
  | { type: 'drill-forced'; provider: string; reason: string; atSeq: number; at: string }
  /** A provider's shared circuit opened or closed; `failback` is the worker's policy for a recovered higher-priority provider. */
  | {
      type: 'health-changed';
      provider: string;
      circuit: 'open' | 'closed';
      reason: string;
      failback: 'auto' | 'manual';
      /** who opened or closed it (absent in notices sent before it was told) */ by?: 'failures' | 'operator' | 'probe';
    }
  /** The providers' shared circuits as the campaign found them when it (re)subscribed: provider -> why open; which of them an operator holds down. */
  | { type: 'health-known'; down: Record<string, string>; operatorDown?: string[] }
  /** An operator set a new provider order (setProviders), weighted when `weights` is given. */
  | { type: 'operator-order'; providers: string[]; weights?: Record<string, number> }
  | { type: 'pause'; reason?: string; at: string }
  | { type: 'resume' }
  /** A step other than a batch holds the campaign: checking it or watching shared health failed (store-or-bug), or rows wait for review. */
  | { type: 'hold'; kind: 'store-or-bug' | 'review'; reason: string; at: string }
  /** Held rows were released (releaseHeld). */
  | { type: 'rows-released' }
  /** A batch found `provider`'s quota (or warm-up allowance) spent: overflow to the next provider, or hold until `resetAt` (ISO 8601). */
  | {
      type: 'quota-spent';
      provider: string;
      limit: 'day' | 'hour' | 'second' | 'warmup';
      used: number;
      allowance: number;
      resetAt: string;
      onQuota: 'overflow' | 'wait';
      atSeq: number;
      at: string;
    }
  /** `provider`'s spent quota has reset: back to it (with how many recipients went elsewhere meanwhile), or end the wait. */
  | { type: 'quota-reset'; provider: string; moved?: number; atSeq: number; at: string };

export interface Decision {
  state: FailoverState;
  /** A switch to append to the campaign's switch log. */
  switch?: ProviderSwitch;
  /** Raise the switch as a provider-switched event (not for a drill's forced switch, nor when none is left: that is a hold), with what caused it. */
  announce?: { failback: boolean; cause: SwitchCause };
  /** A hold that starts with this event (also in `state.hold`). */
  hold?: Hold;
  /** batch-starting: the provider to send the batch through (undefined: none is left, the campaign holds). */
  provider?: string;
}

export function initialPlan(order: string[], weights?: Record<string, number>): ProviderPlan {
  return weights ? { order: [...order], down: {}, weights: { ...weights } } : { order: [...order], down: {} };
}

/** The first provider in order that this campaign has not found down and whose shared circuit is not open. */
export function activeProvider(plan: ProviderPlan, sharedDown: Record<string, string> = {}): string | undefined {
  return plan.order.find((name) => plan.down[name] === undefined && sharedDown[name] === undefined);
}

/** Problems with a proposed provider order (empty when valid). */
export function providerOrderProblems(order: unknown, known: string[]): string[] {
  if (!Array.isArray(order) || order.length === 0) return ['providers: expected a non-empty list of provider names'];
  const problems: string[] = [];
  const seen = new Set<string>();
  order.forEach((name, i) => {
    if (typeof name !== 'string') problems.push(`providers[${i}]: expected a provider name, got ${JSON.stringify(name)}`);
    else if (!known.includes(name)) problems.push(`providers[${i}]: unknown provider '${name}' (known: ${known.join(', ')})`);
    else if (seen.has(name)) problems.push(`providers[${i}]: '${name}' is listed twice`);
    seen.add(String(name));
  });
  return problems;
}

/** What the event does to the campaign's providers and hold. Pure: `state` is not changed; parts left as they were keep their identity. */
export function decide(state: FailoverState, event: FailoverEvent): Decision {
  switch (event.type) {
    case 'batch-starting':
      return batchStarting(state, event.atSeq, event.at, event.recordMoves, event.batchSize);
    case 'batch-succeeded':
      // The campaign stays where it is (its provider's shared health hears of it from the campaign).
      return { state };
    case 'batch-failed':
      return batchFailed(state, event.provider, event.failure, event.reason, event.atSeq, event.at, event.cause ?? 'provider-refused');
    case 'drill-forced':
      // A drill's failure goes the way a real one does, but is not raised as a provider switch (nor told to shared health).
      return failOver(state, event.provider, event.reason, event.atSeq, event.at);
    case 'health-changed':
      return healthChanged(state, event.provider, event.circuit, event.reason, event.failback, event.by);
    case 'health-known':
      return { state: withOperatorDown({ ...state, sharedDown: { ...event.down } }, Object.keys(event.down), event.operatorDown ?? []) };
    case 'operator-order':
      // Everything in the new order gets a fresh chance; an operator's order is not a switch (nothing recorded for it).
      return {
        state: {
          ...state,
          plan: initialPlan(event.providers, event.weights),
          lastProvider: undefined,
          hold: state.hold?.kind === 'no-provider' ? undefined : state.hold,
        },
      };
    case 'pause':
      return holding(state, { kind: 'operator', reason: event.reason ?? 'paused by operator', since: event.at });
    case 'resume': {
      // With no provider left, try the order again from the top.
      const plan = activeProvider(state.plan, state.sharedDown) === undefined ? initialPlan(state.plan.order, state.plan.weights) : state.plan;
      return { state: { ...state, plan, hold: undefined } };
    }
    case 'hold':
      return holding(state, { kind: event.kind, reason: event.reason, since: event.at });
    case 'rows-released':
      return state.hold?.kind === 'review' ? { state: { ...state, hold: undefined } } : { state };
    case 'quota-spent':
    case 'quota-reset':
      return quotaChanged(state, event);
  }
}

/** Why a provider is down for its quota: the reason starts so (plan.down), which is how a quota reset knows its own. */
export const QUOTA_REASON_PREFIX = 'quota: ';

const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
const limitText = (limit: string, allowance: number) =>
  limit === 'warmup' ? `${thousands(allowance)}/day warm-up allowance` : `${thousands(allowance)}/${limit}`;

/**
 * A provider's quota was spent or reset. Spent, `overflow`: the provider counts as down for the
 * campaign (reason `quota: ...`) until its reset, and the campaign moves to the next one, recorded
 * as a switch (none left: the no-provider hold, which ends at the first reset). Spent, `wait`: a
 * `quota` hold until the reset. A quota already spent is not spent again (batches in flight
 * together report it alike). Reset: the provider is back, and the campaign with it when it comes
 * first (recorded as a switch with how many went elsewhere); a quota hold ends.
 */
export function quotaChanged(state: FailoverState, event: Extract<FailoverEvent, { type: 'quota-spent' | 'quota-reset' }>): Decision {
  const { provider, atSeq, at } = event;
  const downForQuota = state.plan.down[provider]?.startsWith(QUOTA_REASON_PREFIX) === true;
  if (event.type === 'quota-spent') {
    const spent = `${QUOTA_REASON_PREFIX}${limitText(event.limit, event.allowance)} spent on ${provider}`;
    if (event.onQuota === 'wait') {
      if (state.hold?.kind === 'quota') return { state };
      // The hold's kind says `quota`: its reason starts with the limit.
      const reason = `${limitText(event.limit, event.allowance)} spent on ${provider}; waiting for the quota's reset at ${event.resetAt}`;
      return holding(state, { kind: 'quota', reason, since: at });
    }
    if (downForQuota) return { state };
    const downReason = `${spent} (until ${event.resetAt})`;
    if (isWeighted(state.plan)) {
      // Its share goes to the others until the reset (one switch, as for a failure; the reason says the split now).
      const d = weightedFailOver(state, provider, downReason, atSeq, at, undefined, noProviderLeft);
      if (!d.switch?.to) return d;
      const split = d.switch.reason.slice(downReason.length);
      return {
        ...d,
        switch: { ...d.switch, reason: `${spent}; moved to ${d.switch.to} until ${event.resetAt}${split}` },
        announce: { failback: false, cause: 'quota' },
      };
    }
    const plan = { ...state.plan, down: { ...state.plan.down, [provider]: downReason } };
    const next = activeProvider(plan, state.sharedDown);
    const moved: FailoverState = { ...state, plan, lastProvider: next };
    const reason = next === undefined ? `${spent}; no provider left until ${event.resetAt}` : `${spent}; moved to ${next} until ${event.resetAt}`;
    const sw: ProviderSwitch = { from: provider, to: next, reason, at, atSeq };
    if (next === undefined) {
      const hold = noProviderLeft(moved, at);
      return { state: { ...moved, hold }, switch: sw, hold };
    }
    return { state: moved, switch: sw, announce: { failback: false, cause: 'quota' } };
  }
  // Reset.
  let next: FailoverState = state.hold?.kind === 'quota' ? { ...state, hold: undefined } : state;
  if (!downForQuota) return { state: next };
  const { [provider]: _was, ...down } = state.plan.down;
  const plan: ProviderPlan = { ...state.plan, down };
  next = { ...next, plan };
  if (next.hold?.kind === 'no-provider' && activeProvider(plan, next.sharedDown) !== undefined) next = { ...next, hold: undefined };
  if (isWeighted(plan)) {
    // Its share comes back: recorded now, from the provider whose share falls most.
    const before = plan.sharing ?? [];
    const healthy = healthyProviders(plan, next.sharedDown);
    const { from } = splitMove(plan.weights, plan.order, before, healthy);
    next = { ...next, plan: { ...plan, sharing: healthy } };
    if (from === undefined || before.length === 0 || !healthy.includes(provider)) return { state: next };
    const meanwhile = event.moved !== undefined ? `; ${thousands(event.moved)} sent elsewhere meanwhile` : '';
    return {
      state: next,
      switch: {
        from,
        to: provider,
        reason: `${QUOTA_REASON_PREFIX}${provider}'s quota reset${meanwhile}; split now ${splitText(intendedShare(plan, next.sharedDown))}`,
        at,
        atSeq,
      },
      announce: { failback: true, cause: 'quota' },
    };
  }
  const active = activeProvider(plan, next.sharedDown);
  const last = state.lastProvider;
  if (active !== provider || last === undefined || last === provider) return { state: next };
  const meanwhile = event.moved !== undefined ? `; ${thousands(event.moved)} moved to ${last} meanwhile` : '';
  return {
    state: { ...next, lastProvider: provider },
    switch: { from: last, to: provider, reason: `${QUOTA_REASON_PREFIX}${provider}'s quota reset${meanwhile}; back to ${provider}`, at, atSeq },
    announce: { failback: true, cause: 'quota' },
  };
}

function batchFailed(
  state: FailoverState,
  provider: string,
  failure: BatchFailure,
  reason: string,
  atSeq: number,
  at: string,
  cause: ProviderFailureCause,
): Decision {
  switch (failure) {
    case 'provider':
      // With several batches in flight, the others on a provider already found down fail alike: the campaign
      // has moved already (their ranges go to the active provider); nothing new to record.
      if (state.plan.down[provider] !== undefined) return { state };
      return failOver(state, provider, reason, atSeq, at, cause);
    case 'message-refused':
      // No other provider is likelier to take the message: hold with the provider's words.
      return holding(state, { kind: 'message-refused', reason: `batch from recipient #${atSeq}: ${reason}`, since: at });
    case 'store-or-bug':
      // Not the provider's fault: hold rather than fail, so an operator can fix it and resume from the same batch.
      return holding(state, { kind: 'store-or-bug', reason: `batch from recipient #${atSeq} failed: ${reason}`, since: at });
    case 'worker-timeout':
      // A crashed or hung worker is not the provider's fault: the same range again on the same provider.
      return { state };
    case 'reputation':
      // The list is the problem, not the provider: another ESP would only burn its reputation too. Hold until an operator resumes.
      // Other batches in flight that find the breach too leave the hold as it started (its figures, its since).
      if (state.hold?.kind === 'reputation') return { state };
      return holding(state, { kind: 'reputation', reason, since: at });
  }
}

function holding(state: FailoverState, hold: Hold): Decision {
  return { state: { ...state, hold }, hold };
}

/** Why each provider is down, here or by shared health (here wins). */
function downReasons(state: FailoverState): string {
  return Object.entries({ ...state.sharedDown, ...state.plan.down })
    .map(([p, r]) => `${p}: ${r}`)
    .join('; ');
}

function noProviderLeft(state: FailoverState, at: string): Hold {
  return { kind: 'no-provider', reason: `no provider left: ${downReasons(state)}`, since: at };
}

/** `provider` failed at the provider level at `atSeq`: mark it down here and move on to the next, or hold with none left. Raised with `cause` (a drill's forced failure has none: not raised). */
function failOver(state: FailoverState, provider: string, reason: string, atSeq: number, at: string, cause?: ProviderFailureCause): Decision {
  if (isWeighted(state.plan)) return weightedFailOver(state, provider, reason, atSeq, at, cause, noProviderLeft);
  const plan = { order: state.plan.order, down: { ...state.plan.down, [provider]: reason } };
  const next = activeProvider(plan, state.sharedDown);
  const moved: FailoverState = { ...state, plan, lastProvider: next };
  const sw: ProviderSwitch = { from: provider, to: next, reason, at, atSeq };
  if (next === undefined) {
    const hold = noProviderLeft(moved, at);
    return { state: { ...moved, hold }, switch: sw, hold };
  }
  return { state: moved, switch: sw, ...(cause ? { announce: { failback: false, cause } } : {}) };
}

function batchStarting(state: FailoverState, atSeq: number, at: string, recordMoves: boolean, batchSize?: number): Decision {
  const provider = activeProvider(state.plan, state.sharedDown);
  // Every provider is down (here or by shared health): hold until one comes back or an operator acts.
  if (provider === undefined) return holding(state, noProviderLeft(state, at));
  if (isWeighted(state.plan)) return weightedBatchStarting(state, atSeq, at, recordMoves, batchSize);
  const last = state.lastProvider;
  const next: FailoverState = last === provider ? state : { ...state, lastProvider: provider };
  if (!recordMoves || last === undefined || provider === last) return { state: next, provider };
  // Moved without a failure of its own: another campaign's failure (shared health), or failback.
  const order = state.plan.order;
  const failback = order.indexOf(provider) < order.indexOf(last) || !order.includes(last);
  const why = state.sharedDown[last];
  const reason = why !== undefined ? `shared health: ${why}` : failback ? `failback: ${provider} is healthy again` : `moved to ${provider}`;
  const isFailback = why === undefined && failback;
  // Not a failback: the last provider's shared circuit opened (or opened and closed with failback manual): by whom.
  const cause: SwitchCause = isFailback ? 'failback' : state.operatorDown?.includes(last) ? 'operator' : 'shared-health';
  return { state: next, provider, switch: { from: last, to: provider, reason, at, atSeq }, announce: { failback: isFailback, cause } };
}

function healthChanged(
  state: FailoverState,
  provider: string,
  circuit: 'open' | 'closed',
  reason: string,
  failback: 'auto' | 'manual',
  by?: 'failures' | 'operator' | 'probe',
): Decision {
  const sharedDown = { ...state.sharedDown };
  let plan = state.plan;
  if (circuit === 'closed') {
    const current = activeProvider(state.plan, state.sharedDown);
    const order = state.plan.order;
    delete sharedDown[provider];
    const higher = isWeighted(plan)
      ? weightedFailback(plan, state.sharedDown, current, provider)
      : current !== undefined && order.includes(provider) && order.indexOf(provider) < order.indexOf(current);
    if (failback === 'manual' && higher) {
      // Stay on the current provider until told (campaign providers / resume): keep the recovered one out.
      plan = { ...plan, down: { ...plan.down, [provider]: `recovered (${reason}); failback is manual: set the provider order to go back` } };
    } else if (plan.down[provider] !== undefined) {
      const { [provider]: _gone, ...down } = plan.down;
      plan = { ...plan, down };
    }
  } else {
    sharedDown[provider] = reason;
  }
  // A campaign holding for want of a provider goes on by itself when one comes back (other holds wait for their own end).
  const recovered = state.hold?.kind === 'no-provider' && activeProvider(plan, sharedDown) !== undefined;
  const next = { ...state, plan, sharedDown, hold: recovered ? undefined : state.hold };
  // Who opened it decides the cause of the switch it brings (kept after it closes: with failback manual the move may come later).
  return { state: circuit === 'open' ? withOperatorDown(next, [provider], by === 'operator' ? [provider] : []) : next };
}

/** `state` with each of `providers` in operatorDown exactly when it is in `byOperator` (the same object when nothing changes). */
function withOperatorDown(state: FailoverState, providers: string[], byOperator: string[]): FailoverState {
  const before = state.operatorDown ?? [];
  const after = [...before.filter((p) => !providers.includes(p)), ...providers.filter((p) => byOperator.includes(p))];
  if (after.length === before.length && after.every((p) => before.includes(p))) return state;
  return { ...state, operatorDown: after };
}
