/**
 * A campaign is one workflow (workflow id = campaign id). Its history holds ids,
 * cursors, counts and provider names only: never addresses, merge data, bodies or secrets.
 *
 * Loop: hold while paused; send the next batch (a seq range) on the active provider;
 * on a provider-level failure switch to the next provider and retry the same range;
 * with no provider left, hold with the reason until resumed or given a new order.
 */
import * as wf from '@temporalio/workflow';
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { ERROR_TYPES, type BatchTally, type CampaignActivities } from '../activities/contracts';
import type { OpsEvent } from '../src/ops-events';
import {
  cancelSignal,
  HOLD_KINDS_PATCH,
  pauseSignal,
  progressQuery,
  releaseHeldUpdate,
  resumeSignal,
  setProvidersUpdate,
  SHARED_HEALTH_PATCH,
  type CampaignCounts,
  type CampaignInput,
  type CampaignOptions,
  type CampaignProgress,
  type CampaignResult,
  type CampaignStatus,
  type CampaignHold,
  type ProviderSwitch,
  type CarriedState,
  type HoldKind,
  type ReleaseHeldOutcome,
  type ReleaseHeldRequest,
} from './campaign-api';
import { activeProvider, decide, initialPlan, providerOrderProblems, type BatchFailure, type FailoverEvent, type FailoverState, type Hold } from './failover';
import { providerHealthSignal, providerHealthWorkflowId, reportOutcomeSignal, unsubscribeSignal, type HealthNotice, type OutcomeReport } from './provider-health-api';
import { DEFAULT_DEFERRAL } from './deferral';
import { AcceptedCountKey, ActiveProviderKey, CampaignIdKey, CampaignStatusKey, HoldKindKey } from './search-attributes';

const DEFAULTS: Required<CampaignOptions> = {
  heartbeatTimeoutMs: 20_000,
  sendMaxAttempts: 6,
  sendInitialIntervalMs: 1_000,
  sendMaxIntervalMs: 30_000,
  batchesPerRun: 500,
  deferralFirstRetryMs: DEFAULT_DEFERRAL.firstRetryMs,
  deferralMaxRetryMs: DEFAULT_DEFERRAL.maxRetryMs,
  deferralWindowMs: DEFAULT_DEFERRAL.windowMs,
};

/** Whether an activity failure means the provider is unavailable, and why; undefined for other failures. */
export function providerFailureReason(err: unknown): string | undefined {
  if (!(err instanceof ActivityFailure)) return undefined;
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    if (cause.type === ERROR_TYPES.providerUnavailable) return cause.message;
    if (cause.type === ERROR_TYPES.transient) return `retry budget exhausted: ${cause.message}`;
  }
  return undefined;
}

function isInvalidCampaign(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === ERROR_TYPES.invalidCampaign;
}

function isInvalidMessage(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === ERROR_TYPES.invalidMessage;
}

/** The kind of a hold carried from a run before hold kinds (its reason says which). */
function legacyHoldKind(reason: string | undefined): HoldKind {
  if (reason?.startsWith('no provider left')) return 'no-provider';
  if (reason?.startsWith('batch from recipient')) return 'store-or-bug';
  return 'operator';
}

function errorMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** A batch that ended on a timeout (a worker that died or hung), not on the provider's answer. */
function isWorkerTimeout(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
}

/** How a batch failed: an invalid campaign fails the workflow; every other failure goes to the failover decision. */
function batchFailure(err: unknown, holdKinds: boolean): BatchFailure | 'invalid-campaign' {
  if (providerFailureReason(err) !== undefined) return 'provider';
  if (isInvalidCampaign(err)) return 'invalid-campaign';
  // Before hold kinds, a message the provider refused held the campaign as any other failure did.
  if (holdKinds && isInvalidMessage(err)) return 'message-refused';
  if (isWorkerTimeout(err)) return 'worker-timeout';
  return 'store-or-bug';
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

function addTally(counts: CampaignCounts, t: BatchTally): CampaignCounts {
  const acceptedByProvider = { ...counts.acceptedByProvider };
  for (const [p, n] of Object.entries(t.acceptedByProvider)) acceptedByProvider[p] = (acceptedByProvider[p] ?? 0) + n;
  const next: CampaignCounts = {
    acceptedByProvider,
    rejected: counts.rejected + t.rejected,
    suppressed: counts.suppressed + t.suppressed,
    inFlightRecovered: counts.inFlightRecovered + t.inFlightRecovered,
    heldForReview: counts.heldForReview + t.heldForReview,
  };
  // Only once deferrals exist: state carried (and results recorded) before them stay as they were.
  if (counts.deferred !== undefined || t.deferred !== undefined) next.deferred = (counts.deferred ?? 0) + (t.deferred ?? 0);
  return next;
}

export async function campaignWorkflow(input: CampaignInput): Promise<CampaignResult> {
  const opts = { ...DEFAULTS, ...input.options };
  const deferral = { firstRetryMs: opts.deferralFirstRetryMs, maxRetryMs: opts.deferralMaxRetryMs, windowMs: opts.deferralWindowMs };
  const { prepareCampaign } = wf.proxyActivities<CampaignActivities>({
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 5, nonRetryableErrorTypes: [ERROR_TYPES.invalidCampaign] },
  });
  const sendOptions: wf.ActivityOptions = {
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: opts.heartbeatTimeoutMs,
    retry: {
      initialInterval: opts.sendInitialIntervalMs,
      backoffCoefficient: 2,
      maximumInterval: opts.sendMaxIntervalMs,
      maximumAttempts: opts.sendMaxAttempts,
      nonRetryableErrorTypes: [ERROR_TYPES.providerUnavailable, ERROR_TYPES.invalidCampaign, ERROR_TYPES.invalidMessage],
    },
  };
  const { watchProviders } = wf.proxyActivities<CampaignActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
  });
  // Alerts have their own retries and never hold a campaign up: not awaited, failures logged.
  const { notify } = wf.proxyActivities<CampaignActivities>({
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
  const { releaseHeld } = wf.proxyActivities<CampaignActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
  });
  /** sendBatch with a one-line summary the Web UI shows on the activity ("batch 3: recipients #101–150 via mailgun"). */
  const sendBatchAs = (summary: string) => wf.proxyActivities<CampaignActivities>({ ...sendOptions, summary }).sendBatch;

  // Handlers answer from the first workflow task on; until prepareCampaign returns, the
  // campaign is `starting` with no counts yet.
  let state: CarriedState = input.carried
    ? { ...input.carried, runs: input.carried.runs + 1 }
    : {
        total: 0,
        maxSeq: 0,
        knownProviders: [],
        cursor: 0,
        counts: { acceptedByProvider: {}, rejected: 0, suppressed: 0, inFlightRecovered: 0, heldForReview: 0 },
        plan: initialPlan(input.providers),
        switches: [],
        paused: false,
        runs: 1,
      };
  let prepared = input.carried !== undefined;
  let cancelled = false;
  let batchInFlight = false;
  const sharedHealth = wf.patched(SHARED_HEALTH_PATCH);
  /** Hold kinds (status holding for every hold but the operator's, the HoldKind attribute), deferrals and reviews. */
  const holdKinds = wf.patched(HOLD_KINDS_PATCH);
  /** Set when the provider order changed: subscribe to the new providers' health before the next batch. */
  let watchNeeded = sharedHealth;
  const pendingEvents = new Set<Promise<void>>();
  const raise = (event: OpsEvent) => {
    if (!sharedHealth) return;
    const p: Promise<void> = notify(event)
      .catch((err) => wf.log.warn('operational event not delivered', { event: event.kind, error: errorMessage(err) }))
      .then(() => {
        pendingEvents.delete(p);
      });
    pendingEvents.add(p);
  };
  const healthId = (provider: string) => providerHealthWorkflowId(wf.workflowInfo().taskQueue, provider);
  /** Tell the provider's health workflow how a batch went (not awaited: the campaign never waits on health). */
  const reportOutcome = (provider: string, report: OutcomeReport) => {
    if (!sharedHealth) return;
    wf.getExternalWorkflowHandle(healthId(provider))
      .signal(reportOutcomeSignal, report)
      .catch((err) => wf.log.warn('provider health not told', { provider, error: errorMessage(err) }));
  };
  const sharedDown = () => state.sharedDown ?? {};

  /** The kind of the current hold (state carried from before hold kinds has none: its reason tells). */
  const holdKind = (): HoldKind | undefined => (state.paused ? state.holdKind ?? legacyHoldKind(state.pauseReason) : undefined);
  /** The failover decision's view of the campaign's state. */
  const failoverState = (): FailoverState => {
    const kind = holdKind();
    const hold = kind ? ({ kind, reason: state.pauseReason ?? '', since: state.holdSince ?? '' } as Hold) : undefined;
    return { plan: state.plan, sharedDown: sharedDown(), hold, lastProvider: state.lastProvider };
  };
  const setHold = (h: Hold | undefined) => {
    state.paused = h !== undefined;
    state.pauseReason = h?.reason;
    state.holdKind = h?.kind;
    state.holdSince = h?.since;
  };
  const recordSwitch = (sw: ProviderSwitch, announce: { failback: boolean } | undefined) => {
    state.switches = [...state.switches, sw];
    wf.log.warn('provider switch', { campaignId: input.campaignId, from: sw.from, to: sw.to ?? 'none', reason: sw.reason });
    if (announce && sw.to !== undefined) raise({ kind: 'provider-switched', campaignId: input.campaignId, from: sw.from, to: sw.to, reason: sw.reason, atSeq: sw.atSeq, failback: announce.failback });
  };
  const holdStarted = (h: CampaignHold) => {
    if (h.kind !== 'operator') raise({ kind: 'campaign-holding', campaignId: input.campaignId, reason: h.reason });
  };
  /** Runs a failover event through the decision (workflows/failover.ts) and records what it decided. */
  const apply = (event: FailoverEvent) => {
    const before = failoverState();
    const d = decide(before, event);
    if (d.state.plan !== before.plan) state.plan = d.state.plan;
    if (d.state.sharedDown !== before.sharedDown) state.sharedDown = d.state.sharedDown;
    if (d.state.lastProvider !== before.lastProvider) state.lastProvider = d.state.lastProvider;
    if (d.state.hold !== before.hold) setHold(d.state.hold);
    if (d.switch) recordSwitch(d.switch, d.announce);
    if (d.hold) holdStarted(d.hold);
    return d;
  };
  /** Workflow time, ISO 8601. */
  const nowIso = () => new Date().toISOString();
  const deferredCount = () => state.counts.deferred ?? 0;
  /** The audience's first pass is done and nothing is left to retry or review. */
  const finished = () =>
    state.cursor >= state.maxSeq &&
    deferredCount() === 0 &&
    (state.releasedPending ?? 0) === 0 &&
    (!holdKinds || state.counts.heldForReview === 0 || state.reviewDone === true);

  const status = (): CampaignStatus => {
    if (cancelled) return 'cancelled';
    if (!prepared) return state.paused ? 'holding' : 'starting';
    if (finished()) return 'completed';
    if (state.paused) {
      // Before hold kinds only "no provider left" showed as holding (runs recorded then replay so).
      if (!holdKinds) return activeProvider(state.plan, sharedDown()) === undefined ? 'holding' : 'paused';
      return holdKind() === 'operator' ? 'paused' : 'holding';
    }
    return 'running';
  };
  const progress = (): CampaignProgress => {
    const accepted = sum(state.counts.acceptedByProvider);
    const kind = holdKind();
    return {
      campaignId: input.campaignId,
      status: status(),
      total: state.total,
      accepted,
      acceptedByProvider: state.counts.acceptedByProvider,
      rejected: state.counts.rejected,
      suppressed: state.counts.suppressed,
      remaining: Math.max(0, state.total - accepted - state.counts.rejected - state.counts.suppressed - state.counts.heldForReview),
      inFlightRecovered: state.counts.inFlightRecovered,
      heldForReview: state.counts.heldForReview,
      deferred: deferredCount(),
      ...(deferredCount() > 0 && state.nextDeferredAt !== undefined ? { nextDeferredAt: new Date(state.nextDeferredAt).toISOString() } : {}),
      paused: state.paused,
      pauseReason: state.pauseReason,
      ...(kind ? { hold: { kind, reason: state.pauseReason ?? '', since: state.holdSince ?? '' } } : {}),
      activeProvider: activeProvider(state.plan, sharedDown()),
      providers: state.plan.order,
      providersDown: state.plan.down,
      sharedDown: sharedDown(),
      switches: state.switches,
      cursor: state.cursor,
      batchInFlight,
      runs: state.runs,
    };
  };
  let lastBatch = '';
  /** What the Web UI shows as the campaign's current details (markdown). */
  const details = (p: CampaignProgress): string =>
    [
      `**${p.status}**${p.pauseReason ? ` (${p.hold ? `${p.hold.kind}: ` : ''}${p.pauseReason})` : ''} · ${p.total - p.remaining} of ${p.total} done · active provider **${p.activeProvider ?? 'none'}**`,
      '',
      '| accepted | rejected | suppressed | deferred | held | remaining | switches |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      `| ${p.accepted} | ${p.rejected} | ${p.suppressed} | ${p.deferred} | ${p.heldForReview} | ${p.remaining} | ${p.switches.length} |`,
      ...Object.entries(p.acceptedByProvider).map(([name, n]) => `- accepted via ${name}: ${n}`),
      ...(p.deferred ? ['', `${p.deferred} recipient(s) deferred (the provider said "later" for them); next retry ${p.nextDeferredAt ?? 'soon'}`] : []),
      ...(p.heldForReview ? ['', `${p.heldForReview} recipient(s) held for review: \`mailover campaign held ${p.campaignId}\``] : []),
      ...(lastBatch ? ['', `Last: ${lastBatch}`] : []),
      ...(Object.keys(p.sharedDown).length ? ['', 'Shared provider health (every campaign avoids these):', ''] : []),
      ...Object.entries(p.sharedDown).map(([name, why]) => `- ${name} is down: ${why}`),
      ...(p.switches.length ? ['', 'Provider switches:', ''] : []),
      ...p.switches.map((sw) => `- switched ${sw.from} → ${sw.to ?? 'none (holding)'} at recipient #${sw.atSeq}: ${sw.reason}`),
    ].join('\n');
  let lastUpsert = '';
  const upsertSearchAttributes = () => {
    const p = progress();
    wf.setCurrentDetails(details(p));
    const kind = p.hold?.kind ?? 'none';
    const key = `${p.status}|${p.activeProvider ?? ''}|${p.accepted}${holdKinds ? `|${kind}` : ''}`;
    if (key === lastUpsert) return;
    lastUpsert = key;
    wf.upsertSearchAttributes([
      { key: CampaignIdKey, value: input.campaignId },
      { key: CampaignStatusKey, value: p.status },
      { key: ActiveProviderKey, value: p.activeProvider ?? 'none' },
      { key: AcceptedCountKey, value: p.accepted },
      ...(holdKinds ? [{ key: HoldKindKey, value: kind }] : []),
    ]);
  };

  wf.setHandler(progressQuery, progress);
  wf.setHandler(pauseSignal, (reason?: string) => {
    apply({ type: 'pause', reason, at: nowIso() });
  });
  wf.setHandler(resumeSignal, () => {
    // Resuming a review hold means: done reviewing, complete with whatever is still held.
    if (holdKind() === 'review') state.reviewDone = true;
    apply({ type: 'resume' });
  });
  wf.setHandler(cancelSignal, () => {
    cancelled = true;
  });
  wf.setHandler(
    setProvidersUpdate,
    (providers: string[]) => {
      apply({ type: 'operator-order', providers });
      watchNeeded = sharedHealth;
      return state.plan.order;
    },
    {
      validator: (providers: string[]) => {
        if (!prepared) throw new Error('the campaign is still starting (checking its audience and providers); try again in a moment');
        const problems = providerOrderProblems(providers, state.knownProviders);
        if (problems.length) throw new Error(problems.join('; '));
      },
    },
  );
  wf.setHandler(
    releaseHeldUpdate,
    async (request: ReleaseHeldRequest): Promise<ReleaseHeldOutcome> => {
      const r = await releaseHeld({ campaignId: input.campaignId, ...request });
      state.counts = { ...state.counts, heldForReview: Math.max(0, state.counts.heldForReview - r.released) };
      if (request.action === 'mark-sent') {
        state.counts = addTally(state.counts, { acceptedByProvider: r.acceptedByProvider, rejected: 0, suppressed: 0, inFlightRecovered: 0, heldForReview: 0 });
      } else {
        state.releasedPending = (state.releasedPending ?? 0) + r.released;
      }
      apply({ type: 'rows-released' });
      upsertSearchAttributes();
      return { released: r.released, ranges: r.ranges };
    },
    {
      validator: (request: ReleaseHeldRequest) => {
        if (!prepared) throw new Error('the campaign is still starting; nothing can be held yet');
        if (request.action !== 'resend' && request.action !== 'mark-sent') throw new Error(`action: expected 'resend' or 'mark-sent', got ${JSON.stringify(request.action)}`);
        for (const k of ['fromSeq', 'toSeq'] as const) {
          const v = request[k];
          if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`${k}: expected a recipient number (1 or more), got ${JSON.stringify(v)}`);
        }
        if (request.fromSeq !== undefined && request.toSeq !== undefined && request.fromSeq > request.toSeq) throw new Error(`fromSeq ${request.fromSeq} is after toSeq ${request.toSeq}`);
        if (typeof request.by !== 'string' || !request.by.trim()) throw new Error('by: who releases the rows is required');
      },
    },
  );

  wf.setHandler(providerHealthSignal, (n: HealthNotice) => {
    apply({ type: 'health-changed', provider: n.provider, circuit: n.circuit === 'closed' ? 'closed' : 'open', reason: n.reason, failback: state.failback ?? 'auto' });
  });

  /** Subscribe to the providers' shared health; returns when their circuits are known. */
  const watch = async () => {
    const w = await watchProviders({ providers: state.plan.order });
    state.failback = w.failback;
    apply({ type: 'health-known', down: Object.fromEntries(Object.entries(w.circuits).filter(([, c]) => c.circuit !== 'closed').map(([p, c]) => [p, c.reason ?? `circuit ${c.circuit}`])) });
  };
  const cancelledResult = (): CampaignResult => {
    const { batchInFlight: _b, paused: _p, pauseReason: _r, hold: _h, ...result } = progress();
    return result;
  };

  // Checking the campaign: an invalid one fails here, before anything is sent; anything else
  // (the store is down, a bug) holds it with the reason until it is fixed and resumed.
  while (!prepared) {
    try {
      const prep = await prepareCampaign({ campaignId: input.campaignId, providers: input.providers });
      state = { ...state, total: prep.total, maxSeq: prep.maxSeq, knownProviders: prep.knownProviders };
      prepared = true;
    } catch (err) {
      if (isInvalidCampaign(err)) {
        raise({ kind: 'campaign-failed', campaignId: input.campaignId, reason: errorMessage(err) });
        await Promise.all(pendingEvents);
        throw err;
      }
      apply({ type: 'hold', kind: 'store-or-bug', reason: `checking the campaign failed: ${errorMessage(err)}`, at: nowIso() });
      wf.log.error('campaign check failed; campaign holds', { campaignId: input.campaignId, error: errorMessage(err) });
      upsertSearchAttributes();
      await wf.condition(() => !state.paused || cancelled);
      if (cancelled) {
        await Promise.all(pendingEvents);
        return cancelledResult();
      }
    }
  }
  upsertSearchAttributes();
  let batchesThisRun = 0;
  while (!cancelled) {
    await wf.condition(() => !state.paused || cancelled);
    upsertSearchAttributes();
    if (cancelled || finished()) break;
    if (watchNeeded) {
      watchNeeded = false;
      try {
        await watch();
      } catch (err) {
        watchNeeded = true;
        apply({ type: 'hold', kind: 'store-or-bug', reason: `watching the providers' shared health failed: ${errorMessage(err)}`, at: nowIso() });
        continue;
      }
    }
    // What is left: the first pass through the audience, then rows behind the cursor (released ones
    // at once, deferred ones when due), then rows held for review.
    const now = Date.now();
    const deferredDue = deferredCount() > 0 && (state.nextDeferredAt === undefined || state.nextDeferredAt <= now);
    const sweep = (state.releasedPending ?? 0) > 0 || deferredDue;
    if (state.cursor >= state.maxSeq && !sweep) {
      if (deferredCount() > 0) {
        // Nothing else to send: wait for the next deferred retry (or an operator).
        const wait = Math.max(1, (state.nextDeferredAt ?? now) - now);
        const releasedBefore = state.releasedPending ?? 0;
        await wf.condition(() => state.paused || cancelled || (state.releasedPending ?? 0) !== releasedBefore, wait);
        continue;
      }
      apply({
        type: 'hold',
        kind: 'review',
        reason: `${state.counts.heldForReview} recipient(s) held for review (their outcome is unknown): list them with \`mailover campaign held ${input.campaignId}\`, settle them with \`mailover campaign release ${input.campaignId} --resend | --mark-sent\`, or resume to finish without them`,
        at: nowIso(),
      });
      upsertSearchAttributes();
      continue;
    }
    const fromSeq = sweep ? 1 : state.cursor + 1;
    const { provider } = apply({ type: 'batch-starting', atSeq: fromSeq, at: nowIso(), recordMoves: sharedHealth });
    // Every provider is down (here or by shared health): holding until one comes back or an operator acts.
    if (provider === undefined) continue;
    const forced = input.forcedDown;
    if (forced && forced.provider === provider && fromSeq >= forced.fromSeq) {
      // A failover drill: the provider fails here the way a real failure would (shared health is not told).
      apply({ type: 'drill-forced', provider, reason: forced.reason, atSeq: fromSeq, at: nowIso() });
      upsertSearchAttributes();
      continue;
    }
    const toSeq = sweep ? state.cursor : Math.min(state.cursor + input.batchSize, state.maxSeq);
    const batchNo = Math.floor(state.cursor / input.batchSize) + 1;
    batchInFlight = true;
    try {
      if (sweep) {
        const tally = await sendBatchAs(`retry: deferred and released recipients up to #${toSeq} via ${provider}`)({
          campaignId: input.campaignId,
          provider,
          fromSeq,
          toSeq,
          mode: 'sweep',
          limit: input.batchSize,
          deferral,
        });
        const swept = tally.swept ?? { deferred: 0, pending: 0 };
        state.counts = addTally({ ...state.counts, deferred: Math.max(0, deferredCount() - swept.deferred) }, tally);
        state.releasedPending = swept.deferred + swept.pending === 0 ? 0 : Math.max(0, (state.releasedPending ?? 0) - swept.pending);
        state.nextDeferredAt = tally.nextDeferredAt;
        // The store has no deferred row left: nothing to wait for, whatever the counters thought.
        if (tally.nextDeferredAt === undefined) state.counts = { ...state.counts, deferred: 0 };
        lastBatch = `retry of ${swept.deferred + swept.pending} deferred or released recipient(s) via ${provider}: ${sum(tally.acceptedByProvider)} accepted, ${tally.rejected} rejected, ${tally.deferred ?? 0} deferred again`;
      } else {
        const tally = await sendBatchAs(`batch ${batchNo}: recipients #${fromSeq}–${toSeq} via ${provider}`)({ campaignId: input.campaignId, provider, fromSeq, toSeq, deferral });
        if (tally.incomplete) {
          // Rows of the batch are still in flight (their look-up did not fit the attempt): the same batch again.
          lastBatch = `batch ${batchNo}: looking up messages in flight on ${provider}; the batch goes on`;
        } else {
          state.counts = addTally(state.counts, tally);
          state.cursor = toSeq;
          batchesThisRun++;
          if (tally.nextDeferredAt !== undefined || tally.deferred !== undefined) state.nextDeferredAt = tally.nextDeferredAt;
          lastBatch = `batch ${batchNo}: ${toSeq - fromSeq + 1} recipients via ${provider}, ${sum(tally.acceptedByProvider)} accepted, ${tally.rejected} rejected, ${tally.suppressed} suppressed${tally.deferred ? `, ${tally.deferred} deferred` : ''}`;
        }
      }
      reportOutcome(provider, { ok: true, campaignId: input.campaignId });
      apply({ type: 'batch-succeeded', provider });
    } catch (err) {
      const failure = batchFailure(err, holdKinds);
      if (failure === 'invalid-campaign') {
        raise({ kind: 'campaign-failed', campaignId: input.campaignId, reason: errorMessage(err) });
        await Promise.all(pendingEvents);
        throw err;
      }
      const reason = providerFailureReason(err) ?? errorMessage(err);
      // Before shared health (old histories) reportOutcome and the events a switch raises are no-ops.
      if (failure === 'provider') reportOutcome(provider, { ok: false, campaignId: input.campaignId, reason });
      apply({ type: 'batch-failed', provider, failure, reason, atSeq: fromSeq, at: nowIso() });
      if (failure === 'message-refused') wf.log.error('provider refused the message; campaign holds', { campaignId: input.campaignId, fromSeq, error: reason });
      if (failure === 'store-or-bug') wf.log.error('batch failed; campaign holds', { campaignId: input.campaignId, fromSeq, error: reason });
    } finally {
      batchInFlight = false;
    }
    upsertSearchAttributes();

    if (!finished() && !cancelled && (batchesThisRun >= opts.batchesPerRun || wf.workflowInfo().continueAsNewSuggested)) {
      await wf.condition(wf.allHandlersFinished);
      await Promise.all(pendingEvents);
      return await wf.continueAsNew<typeof campaignWorkflow>({ ...input, providers: state.plan.order, carried: state });
    }
  }
  upsertSearchAttributes();
  if (sharedHealth) {
    // Awaited: Temporal drops signals a workflow initiates in the task that closes it.
    await Promise.allSettled(state.plan.order.map((provider) => wf.getExternalWorkflowHandle(healthId(provider)).signal(unsubscribeSignal, wf.workflowInfo().workflowId)));
  }
  await Promise.all(pendingEvents);
  await wf.condition(wf.allHandlersFinished);
  return cancelledResult();
}
