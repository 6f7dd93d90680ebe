/**
 * A campaign is one workflow (workflow id = campaign id). Its history holds ids,
 * cursors, counts and provider names only: never addresses, merge data, bodies or secrets.
 *
 * Loop: hold while paused; keep up to `batchesInFlight` batches (seq ranges) in flight on the
 * active provider (the window, ./batch-window.ts); on a provider-level failure switch to the next
 * provider: the failed range and every range not yet started go there;
 * with no provider left, hold with the reason until resumed or given a new order.
 * Which provider, which switch and which hold is decided in one place (./failover.ts);
 * this file keeps the state, the handlers, the loop and continue-as-new, in that order.
 * The public surface (signals, query, updates, types, patch ids) is in ./campaign-api.ts.
 */
import * as wf from '@temporalio/workflow';
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import { ERROR_TYPES, type BatchTally, type CampaignActivities } from '../activities/contracts';
import type { OpsEvent } from '../src/ops-events';
import type { ReputationBreach } from '../src/reputation';
import {
  cancelSignal,
  UNSET_BATCHES_IN_FLIGHT,
  BATCH_WINDOW_PATCH,
  HOLD_KINDS_PATCH,
  pauseSignal,
  progressQuery,
  releaseHeldUpdate,
  resumeSignal,
  setProvidersUpdate,
  SHARED_HEALTH_PATCH,
  STALE_FAILURE_PATCH,
  type CampaignCounts,
  type CampaignInput,
  type CampaignOptions,
  type CampaignProgress,
  type CampaignResult,
  type CampaignStatus,
  type CarriedState,
  type HoldKind,
  type ProviderSwitch,
  type ReleaseHeldOutcome,
  type ReleaseHeldRequest,
} from './campaign-api';
import {
  activeProvider,
  decide,
  initialPlan,
  providerOrderProblems,
  type BatchFailure,
  type Decision,
  type FailoverEvent,
  type FailoverState,
  type Hold,
  type ProviderFailureCause,
} from './failover';
import {
  providerHealthSignal,
  providerHealthWorkflowId,
  reportOutcomeSignal,
  unsubscribeSignal,
  type HealthNotice,
  type OutcomeReport,
} from './provider-health-api';
import { DEFAULT_DEFERRAL } from './deferral';
import { nextRange, settle, type SeqRange } from './batch-window';
import { AcceptedCountKey, ActiveProviderKey, CampaignIdKey, CampaignStatusKey, HoldKindKey } from './search-attributes';
import { drillCampaignSignal, type DrillCampaignNotice } from './drill-api';
import { CampaignSchedule, waitText } from './send-schedule';
import { routingProgress, routingDetails, validateProviderChoices, parseProviderChoices, type ProviderChoice } from './routing-view';
import { quotaHook } from './quota-routing';

export async function campaignWorkflow(input: CampaignInput): Promise<CampaignResult> {
  // ── State ────────────────────────────────────────────────────────────────────────────────
  const opts = { ...DEFAULTS, ...input.options };
  const { prepareCampaign, watchProviders, notify, releaseHeld, sendBatchAs } = activitiesFor(opts);
  const campaignId = input.campaignId;
  // Handlers answer from the first workflow task on; until prepareCampaign returns, the
  // campaign is `starting` with no counts yet.
  let state: CarriedState = input.carried ? { ...input.carried, runs: input.carried.runs + 1 } : firstRunState(input.providers, input.weights);
  let prepared = input.carried !== undefined;
  let cancelled = false;
  let batchesThisRun = 0;
  /** One line on the last batch, for the Web UI. */
  let lastBatch = '';
  const sharedHealth = wf.patched(SHARED_HEALTH_PATCH);
  /** Hold kinds (status holding for every hold but the operator's, the HoldKind attribute), deferrals and reviews. */
  const holdKinds = wf.patched(HOLD_KINDS_PATCH);
  /** Several batches in flight, health told in aggregate (runs recorded before it send one batch at a time). */
  const windowed = wf.patched(BATCH_WINDOW_PATCH);
  const windowSize = windowed ? Math.max(1, Math.floor(opts.batchesInFlight)) : 1;
  /** With more than one batch in flight, shared health hears successes in aggregate and AcceptedCount follows every few batches. */
  const aggregated = windowSize > 1;
  /** The batches in flight, by dispatch number; a sweep (rows behind the cursor) has no range and runs alone. */
  const inFlight = new Map<number, { range?: SeqRange; provider: string }>();
  let dispatched = 0;
  /** Bumped whenever a batch ends, however it ended: wakes the loop waiting for a slot or for the window to drain. */
  let batchesEnded = 0;
  /** The cursor at which the last sweep found due rows it could not reach (they are above it); undefined otherwise. */
  let sweepStuckAt: number | undefined;
  const sweepInFlight = () => [...inFlight.values()].some((b) => b.range === undefined);
  const inFlightRanges = () => [...inFlight.values()].flatMap((b) => (b.range ? [b.range] : []));
  /** Per provider, the dispatch number of the last batch started before it was last found down (by a batch of this run). */
  const foundDownAfter = new Map<string, number>();
  /** Set when the provider order changed: subscribe to the new providers' health before the next batch. */
  let watchNeeded = sharedHealth;

  const finished = () => isFinished(state, holdKinds);
  /** Its start time and send window (./send-schedule.ts); campaigns without them never wait there. */
  const schedule = new CampaignSchedule(input, { cancelled: () => cancelled, paused: () => state.paused, changed: () => upsertSearchAttributes() });
  const status = (): CampaignStatus => schedule.status(statusOf(state, { cancelled, prepared, holdKinds }));
  const progress = (): CampaignProgress => ({ ...progressOf(state, campaignId, status(), inFlight.size, windowSize), ...schedule.progress() });
  const result = (): CampaignResult => {
    const { batchInFlight: _b, batchesInFlight: _n, paused: _p, pauseReason: _r, hold: _h, ...r } = progress();
    return r;
  };

  // ── Side effects: operational events, shared health, search attributes ──────────────────
  // Before shared health (histories recorded then) events and outcome reports are no-ops.
  const pendingEvents = new Set<Promise<void>>();
  /** Raise an operational event (alerts have their own retries and never hold a campaign up: not awaited, failures logged). */
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
  /** Tell the provider's health workflow how batches went (not awaited but where the run ends: the campaign never waits on health). */
  const reportOutcome = (provider: string, report: OutcomeReport): Promise<void> => {
    if (!sharedHealth) return Promise.resolve();
    return wf
      .getExternalWorkflowHandle(healthId(provider))
      .signal(reportOutcomeSignal, report)
      .catch((err) => wf.log.warn('provider health not told', { provider, error: errorMessage(err) }));
  };
  // With the window, successes are told in aggregate: at once when they follow a failure (or are the
  // first on the provider in this run), else every HEALTH_OK_EVERY of them and before the run ends.
  // Failures are told at once, after the successes before them.
  const okUntold: Record<string, number> = {};
  const lastTold: Record<string, 'ok' | 'failed'> = {};
  const tellOks = (provider: string): Promise<void> => {
    const count = okUntold[provider] ?? 0;
    if (count === 0) return Promise.resolve();
    okUntold[provider] = 0;
    lastTold[provider] = 'ok';
    return reportOutcome(provider, { ok: true, campaignId, ...(count > 1 ? { count } : {}) });
  };
  const tellHealth = (provider: string, outcome: { ok: true } | { ok: false; reason: string }) => {
    if (!aggregated) return void reportOutcome(provider, { ...outcome, campaignId });
    if (outcome.ok) {
      okUntold[provider] = (okUntold[provider] ?? 0) + 1;
      if (lastTold[provider] !== 'ok' || okUntold[provider] >= HEALTH_OK_EVERY) void tellOks(provider);
      return;
    }
    void tellOks(provider);
    lastTold[provider] = 'failed';
    void reportOutcome(provider, { ...outcome, campaignId });
  };
  /** Successes not yet told, told now (awaited before the run ends: Temporal drops signals initiated in the closing task). */
  const tellAllOks = () => Promise.all(Object.keys(okUntold).map(tellOks));
  /**
   * A drill's synthetic campaign (started with notifyParent) tells its drill when it starts holding
   * and when it ends; failures are logged (a drill that is gone has nothing to be told).
   */
  const tellDrill = (notice: Omit<DrillCampaignNotice, 'campaignId'>): Promise<void> => {
    const parent = wf.workflowInfo().parent;
    if (!input.notifyParent || !parent) return Promise.resolve();
    return wf
      .getExternalWorkflowHandle(parent.workflowId, parent.runId)
      .signal(drillCampaignSignal, { campaignId, ...notice })
      .catch((err) => wf.log.warn('drill not told', { campaignId, status: notice.status, error: errorMessage(err) }));
  };
  let lastUpsert = '';
  let lastUpsertState = '';
  let batchesSinceUpsert = 0;
  const upsertSearchAttributes = () => {
    const p = progress();
    wf.setCurrentDetails(detailsOf(p, lastBatch));
    const kind = p.hold?.kind ?? 'none';
    const key = `${p.status}|${p.activeProvider ?? ''}|${p.accepted}${holdKinds ? `|${kind}` : ''}`;
    if (key === lastUpsert) return;
    if (aggregated) {
      // The AcceptedCount attribute follows every ACCEPTED_EVERY batches (the Web UI's details follow each one);
      // a change of status, provider or hold is written at once.
      const stateKey = `${p.status}|${p.activeProvider ?? ''}|${kind}`;
      if (stateKey === lastUpsertState && batchesSinceUpsert < ACCEPTED_EVERY && p.status === 'running') return;
      lastUpsertState = stateKey;
      batchesSinceUpsert = 0;
    }
    lastUpsert = key;
    wf.upsertSearchAttributes([
      { key: CampaignIdKey, value: campaignId },
      { key: CampaignStatusKey, value: p.status },
      { key: ActiveProviderKey, value: p.activeProvider ?? 'none' },
      { key: AcceptedCountKey, value: p.accepted },
      ...(holdKinds ? [{ key: HoldKindKey, value: kind }] : []),
    ]);
  };

  // ── Failover: every event goes through decide (./failover.ts); this records what it decided ──
  const recordSwitch = (sw: ProviderSwitch, announce: Decision['announce']) => {
    state.switches = [...state.switches, sw];
    wf.log.warn('provider switch', { campaignId, from: sw.from, to: sw.to ?? 'none', reason: sw.reason });
    if (announce && sw.to !== undefined) {
      raise({
        kind: 'provider-switched',
        campaignId,
        from: sw.from,
        to: sw.to,
        reason: sw.reason,
        atSeq: sw.atSeq,
        failback: announce.failback,
        cause: announce.cause,
      });
    }
  };
  const holdStarted = (hold: Hold) => {
    if (hold.kind === 'operator') return;
    // A reputation pause is raised with its figures where its batch failed (reputation-paused).
    if (hold.kind !== 'reputation') raise({ kind: 'campaign-holding', campaignId, reason: hold.reason });
    void tellDrill({ status: 'holding', reason: hold.reason });
  };
  const apply = (event: FailoverEvent): Decision => {
    const before = failoverStateOf(state);
    const d = decide(before, event);
    state = withFailoverState(state, before, d.state);
    if (d.switch) recordSwitch(d.switch, d.announce);
    if (d.hold) holdStarted(d.hold);
    return d;
  };
  // Spent quotas: overflow or wait, and their resets (./quota-routing.ts).
  const quotas = quotaHook({ state: () => state, apply, changed: () => upsertSearchAttributes() });
  quotas.resume();

  // ── Handlers ─────────────────────────────────────────────────────────────────────────────
  wf.setHandler(progressQuery, progress);
  wf.setHandler(pauseSignal, (reason?: string) => {
    apply({ type: 'pause', reason, at: nowIso() });
  });
  wf.setHandler(resumeSignal, () => {
    // Resuming a review hold means: done reviewing, complete with whatever is still held.
    if (holdKindOf(state) === 'review') state.reviewDone = true;
    // Resuming a reputation hold: the breaker judges the sends from now on (a fresh window).
    if (holdKindOf(state) === 'reputation') state.reputationSince = nowIso();
    apply({ type: 'resume' });
  });
  wf.setHandler(cancelSignal, () => {
    cancelled = true;
  });
  wf.setHandler(
    setProvidersUpdate,
    (providers: ProviderChoice[]) => {
      apply({ type: 'operator-order', ...parseProviderChoices(providers) });
      watchNeeded = sharedHealth;
      return state.plan.order;
    },
    {
      validator: (providers: ProviderChoice[]) => {
        if (!prepared) throw new Error('the campaign is still starting (checking its audience and providers); try again in a moment');
        validateProviderChoices(providers, state.knownProviders, providerOrderProblems);
      },
    },
  );
  wf.setHandler(
    releaseHeldUpdate,
    async (request: ReleaseHeldRequest): Promise<ReleaseHeldOutcome> => {
      const r = await releaseHeld({ campaignId, ...request });
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
    { validator: (request: ReleaseHeldRequest) => validateRelease(request, prepared) },
  );
  wf.setHandler(providerHealthSignal, (n: HealthNotice) => {
    apply({
      type: 'health-changed',
      provider: n.provider,
      circuit: n.circuit === 'closed' ? 'closed' : 'open',
      reason: n.reason,
      failback: state.failback ?? 'auto',
      by: n.by,
    });
  });

  // ── Steps of the loop ────────────────────────────────────────────────────────────────────
  /** An invalid campaign fails the workflow (once its campaign-failed event is raised). */
  const failInvalid = async (err: unknown): Promise<never> => {
    raise({ kind: 'campaign-failed', campaignId, reason: errorMessage(err) });
    if (input.notifyParent) await tellDrill({ status: 'failed', reason: errorMessage(err) });
    await Promise.all(pendingEvents);
    throw err;
  };

  /** The reputation breaker paused the campaign: raised with the breach's provider and measure (the failure's details). */
  const raiseReputationPaused = (err: unknown, provider: string, reason: string) => {
    const breach = reputationBreachOf(err);
    raise({ kind: 'reputation-paused', campaignId, provider: breach?.provider || provider, measure: breach?.measure ?? 'complaints', reason });
    wf.log.warn('reputation breaker paused the campaign', { campaignId, reason });
  };

  /** Subscribe to the providers' shared health and learn their circuits; false (holding) when that failed. */
  const watchHealth = async (): Promise<boolean> => {
    watchNeeded = false;
    try {
      const w = await watchProviders({ providers: state.plan.order });
      state.failback = w.failback;
      const open = Object.entries(w.circuits).filter(([, c]) => c.circuit !== 'closed');
      apply({
        type: 'health-known',
        down: Object.fromEntries(open.map(([p, c]) => [p, c.reason ?? `circuit ${c.circuit}`])),
        operatorDown: open.filter(([, c]) => c.by === 'operator').map(([p]) => p),
      });
      return true;
    } catch (err) {
      watchNeeded = true;
      apply({ type: 'hold', kind: 'store-or-bug', reason: `watching the providers' shared health failed: ${errorMessage(err)}`, at: nowIso() });
      return false;
    }
  };

  /** Every row is through its first pass and none is due: wait for the next deferred retry, or hold for review. */
  const waitOrHoldForReview = async (now: number) => {
    if (deferredCount(state) > 0) {
      // Nothing else to send: wait for the next deferred retry (or an operator).
      const wait = Math.max(1, (state.nextDeferredAt ?? now) - now);
      const releasedBefore = state.releasedPending ?? 0;
      await wf.condition(() => state.paused || cancelled || (state.releasedPending ?? 0) !== releasedBefore, wait);
      return;
    }
    apply({
      type: 'hold',
      kind: 'review',
      reason: `${state.counts.heldForReview} recipient(s) held for review (their outcome is unknown): list them with \`mailover campaign held ${campaignId}\`, settle them with \`mailover campaign release ${campaignId} --resend | --mark-sent\`, or resume to finish without them`,
      at: nowIso(),
    });
    upsertSearchAttributes();
  };

  /** A failover drill forces its primary down from a recipient on: that failure goes through decide as a real one would (shared health is not told). */
  const drillForced = (provider: string, fromSeq: number): boolean => {
    const forced = input.forcedDown;
    if (!forced || forced.provider !== provider || fromSeq < forced.fromSeq) return false;
    apply({ type: 'drill-forced', provider, reason: forced.reason, atSeq: fromSeq, at: nowIso() });
    upsertSearchAttributes();
    return true;
  };

  /** Rows behind the cursor that still need sending (deferred ones now due, released ones), at most a batch. */
  const sendSweep = async (provider: string, toSeq: number) => {
    const tally = await sendBatchAs(`retry: deferred and released recipients up to #${toSeq} via ${provider}`)({
      campaignId,
      provider,
      fromSeq: 1,
      toSeq,
      mode: 'sweep',
      limit: input.batchSize,
      deferral: deferralOf(opts),
      ...reputationOf(state),
    });
    const swept = tally.swept ?? { deferred: 0, pending: 0 };
    // With the window, rows due may sit in ranges settled above the cursor, out of a sweep's reach: sweep
    // again only once the cursor has moved (else the loop would sweep for nothing and never move it).
    if (windowed)
      sweepStuckAt = swept.deferred + swept.pending === 0 && tally.nextDeferredAt !== undefined && tally.nextDeferredAt <= Date.now() ? toSeq : undefined;
    state.counts = addTally({ ...state.counts, deferred: Math.max(0, deferredCount(state) - swept.deferred) }, tally);
    state.releasedPending = swept.deferred + swept.pending === 0 ? 0 : Math.max(0, (state.releasedPending ?? 0) - swept.pending);
    if (quotas.heldBack(provider, tally, 1)) state.releasedPending = (state.releasedPending ?? 0) + (tally.quotaSpent?.heldBack ?? 0);
    state.nextDeferredAt = tally.nextDeferredAt;
    // The store has no deferred row left: nothing to wait for, whatever the counters thought.
    if (tally.nextDeferredAt === undefined) state.counts = { ...state.counts, deferred: 0 };
    lastBatch = `retry of ${swept.deferred + swept.pending} deferred or released recipient(s) via ${provider}: ${sum(tally.acceptedByProvider)} accepted, ${tally.rejected} rejected, ${tally.deferred ?? 0} deferred again`;
  };

  /** A range of the audience's first pass. */
  const sendRange = async (provider: string, fromSeq: number, toSeq: number) => {
    const batchNo = Math.floor((fromSeq - 1) / input.batchSize) + 1;
    const tally = await sendBatchAs(`batch ${batchNo}: recipients #${fromSeq}–${toSeq} via ${provider}`)({
      campaignId,
      provider,
      fromSeq,
      toSeq,
      deferral: deferralOf(opts),
      ...reputationOf(state),
    });
    if (tally.incomplete) {
      // Rows of the batch are still in flight (their look-up did not fit the attempt): the same batch again.
      lastBatch = `batch ${batchNo}: looking up messages in flight on ${provider}; the batch goes on`;
      return;
    }
    if (quotas.heldBack(provider, tally, fromSeq)) {
      // Its rows past the quota are back to pending: the same batch again, on the next provider or after the reset.
      lastBatch = `batch ${batchNo}: ${provider}'s quota is spent; ${tally.quotaSpent?.heldBack ?? 0} recipient(s) not sent yet`;
      return;
    }
    state.counts = addTally(state.counts, tally);
    if (windowed) {
      const pass = settle({ cursor: state.cursor, settledAbove: state.settledAbove ?? [] }, fromSeq, toSeq);
      state.cursor = pass.cursor;
      state.settledAbove = pass.settledAbove;
      // Batches settle out of order and each tells the store's next deferral as it saw it: keep the earliest
      // (one too early costs a sweep that finds nothing due; sweeps run alone and say what is left).
      if (tally.nextDeferredAt !== undefined) state.nextDeferredAt = Math.min(state.nextDeferredAt ?? Infinity, tally.nextDeferredAt);
    } else {
      state.cursor = toSeq;
      if (tally.nextDeferredAt !== undefined || tally.deferred !== undefined) state.nextDeferredAt = tally.nextDeferredAt;
    }
    batchesThisRun++;
    batchesSinceUpsert++;
    lastBatch = `batch ${batchNo}: ${toSeq - fromSeq + 1} recipients via ${provider}, ${sum(tally.acceptedByProvider)} accepted, ${tally.rejected} rejected, ${tally.suppressed} suppressed${tally.deferred ? `, ${tally.deferred} deferred` : ''}`;
  };

  /** One batch on `provider` (a range of the first pass, or a sweep); its outcome goes to shared health and to the failover decision. */
  const sendBatch = async (provider: string, range: SeqRange | undefined, dispatchNo: number) => {
    const fromSeq = range ? range[0] : 1;
    try {
      if (range === undefined) await sendSweep(provider, state.cursor);
      else await sendRange(provider, range[0], range[1]);
      tellHealth(provider, { ok: true });
      apply({ type: 'batch-succeeded', provider });
    } catch (err) {
      const failure = batchFailure(err, holdKinds);
      if (failure === 'invalid-campaign') return await failInvalid(err);
      const reason = providerFailureReason(err) ?? errorMessage(err);
      if (failure === 'provider' && windowed) {
        // Old news: another batch found the provider down after this one started (its attempts ran meanwhile).
        // The campaign has moved already, and the provider may be back since: its range goes to the active one.
        const downAfter = foundDownAfter.get(provider);
        if (downAfter !== undefined && dispatchNo <= downAfter && wf.patched(STALE_FAILURE_PATCH)) return;
        foundDownAfter.set(provider, dispatched);
      }
      if (failure === 'provider') tellHealth(provider, { ok: false, reason });
      // Several batches in flight may all find the breach: one pause, raised once.
      if (failure === 'reputation' && holdKindOf(state) !== 'reputation') raiseReputationPaused(err, provider, reason);
      apply({
        type: 'batch-failed',
        provider,
        failure,
        reason,
        atSeq: fromSeq,
        at: nowIso(),
        ...(failure === 'provider' ? { cause: providerFailureCause(err) } : {}),
      });
      if (failure === 'message-refused') wf.log.error('provider refused the message; campaign holds', { campaignId, fromSeq, error: reason });
      if (failure === 'store-or-bug') wf.log.error('batch failed; campaign holds', { campaignId, fromSeq, error: reason });
    }
  };

  /** Start a batch; with the window it runs on while the loop starts others (its end updates the state when it comes). */
  const dispatch = (provider: string, range: SeqRange | undefined): Promise<void> => {
    const id = ++dispatched;
    inFlight.set(id, { range, provider });
    return sendBatch(provider, range, id).finally(() => {
      inFlight.delete(id);
      batchesEnded++;
      quotas.afterBatch();
      if (windowed) upsertSearchAttributes();
    });
  };
  /** Wait until a batch in flight ends (or the campaign is cancelled). */
  const aBatchEnds = async () => {
    const ended = batchesEnded;
    await wf.condition(() => batchesEnded !== ended || cancelled);
  };
  /** Time for a fresh history: batchesPerRun batches settled (with the window, settled or in flight), or Temporal suggests it. */
  const continueAsNewDue = () =>
    !finished() && !cancelled && (batchesThisRun + (windowed ? inFlight.size : 0) >= opts.batchesPerRun || wf.workflowInfo().continueAsNewSuggested);

  // ── Check the campaign ───────────────────────────────────────────────────────────────────
  // An invalid one fails here, before anything is sent; anything else (the store is down, a
  // bug) holds it with the reason until it is fixed and resumed.
  while (!prepared) {
    try {
      const prep = await prepareCampaign({ campaignId, providers: input.providers });
      state = { ...state, total: prep.total, maxSeq: prep.maxSeq, knownProviders: prep.knownProviders };
      prepared = true;
    } catch (err) {
      if (isInvalidCampaign(err)) return failInvalid(err);
      apply({ type: 'hold', kind: 'store-or-bug', reason: `checking the campaign failed: ${errorMessage(err)}`, at: nowIso() });
      wf.log.error('campaign check failed; campaign holds', { campaignId, error: errorMessage(err) });
      upsertSearchAttributes();
      await wf.condition(() => !state.paused || cancelled);
      if (cancelled) {
        if (input.notifyParent) await tellDrill({ status: 'cancelled' });
        await Promise.all(pendingEvents);
        return result();
      }
    }
  }
  if (schedule.problem) return failInvalid(ApplicationFailure.nonRetryable(`campaign '${campaignId}': ${schedule.problem}`, ERROR_TYPES.invalidCampaign));
  await schedule.untilStart();
  upsertSearchAttributes();

  // ── The loop: fill the window, one batch per turn ────────────────────────────────────────
  while (!cancelled) {
    // A slot in the window (runs before the window: the last batch has ended); no batch while paused or a sweep runs.
    await wf.condition(() => cancelled || (!state.paused && inFlight.size < windowSize && !sweepInFlight()));
    upsertSearchAttributes();
    if (cancelled || finished()) break;
    if (watchNeeded && !(await watchHealth())) continue;
    // What is left: the first pass through the audience, then rows behind the cursor (released ones
    // at once, deferred ones when due), then rows held for review.
    const now = Date.now();
    const deferredDue = deferredCount(state) > 0 && (state.nextDeferredAt === undefined || state.nextDeferredAt <= now) && sweepStuckAt !== state.cursor;
    const sweep = (state.releasedPending ?? 0) > 0 || deferredDue;
    // A sweep runs alone: it settles what the counters say is left behind the cursor.
    if (sweep && inFlight.size > 0) {
      await wf.condition(() => inFlight.size === 0 || cancelled);
      continue;
    }
    const range = sweep
      ? undefined
      : nextRange({ cursor: state.cursor, settledAbove: state.settledAbove ?? [] }, state.maxSeq, input.batchSize, inFlightRanges());
    if (!sweep && range === undefined) {
      // Every recipient of the first pass is settled or in flight.
      if (inFlight.size > 0) await aBatchEnds();
      else await waitOrHoldForReview(now);
      continue;
    }
    // Outside its send window: it waited (batches in flight finish; pause and cancel end the wait); look again.
    if (!(await schedule.windowOpen())) continue;
    const fromSeq = range ? range[0] : 1;
    const { provider } = apply({ type: 'batch-starting', atSeq: fromSeq, at: nowIso(), recordMoves: sharedHealth, batchSize: input.batchSize });
    // No provider left (here or by shared health): holding until one comes back or an operator acts.
    if (provider === undefined) continue;
    if (drillForced(provider, fromSeq)) continue;
    const sent = dispatch(provider, range);
    if (!windowed) {
      await sent;
      upsertSearchAttributes();
    }

    // ── Continue-as-new: a fresh history every batchesPerRun batches (or when Temporal suggests it) ──
    if (continueAsNewDue()) {
      // The window drains first: the next run starts with nothing in flight and carries the settled ranges.
      if (windowed) {
        await wf.condition(() => inFlight.size === 0);
        if (!continueAsNewDue()) continue;
        await tellAllOks();
      }
      await wf.condition(wf.allHandlersFinished);
      await Promise.all(pendingEvents);
      return await wf.continueAsNew<typeof campaignWorkflow>({ ...input, providers: state.plan.order, carried: state });
    }
  }
  // Cancelled (or done): the batches in flight finish first.
  await wf.condition(() => inFlight.size === 0);

  // ── Done (completed or cancelled) ────────────────────────────────────────────────────────
  upsertSearchAttributes();
  const goodbyes: Array<Promise<unknown>> = [];
  if (windowed) goodbyes.push(tellAllOks());
  if (sharedHealth)
    goodbyes.push(
      ...state.plan.order.map((provider) => wf.getExternalWorkflowHandle(healthId(provider)).signal(unsubscribeSignal, wf.workflowInfo().workflowId)),
    );
  if (input.notifyParent) goodbyes.push(tellDrill({ status: cancelled ? 'cancelled' : 'completed' }));
  // Awaited: Temporal drops signals a workflow initiates in the task that closes it.
  if (goodbyes.length) await Promise.allSettled(goodbyes);
  await Promise.all(pendingEvents);
  await wf.condition(wf.allHandlersFinished);
  return result();
}

// ── Options and activities ─────────────────────────────────────────────────────────────────

/** With the window, successes are told to shared health once per this many batches (or sooner after a failure). */
const HEALTH_OK_EVERY = 10;
/** With the window, the AcceptedCount search attribute follows once per this many settled batches (besides every change of status). */
const ACCEPTED_EVERY = 10;

const DEFAULTS: Required<CampaignOptions> = {
  heartbeatTimeoutMs: 20_000,
  sendMaxAttempts: 6,
  sendInitialIntervalMs: 1_000,
  sendMaxIntervalMs: 30_000,
  batchesPerRun: 500,
  batchesInFlight: UNSET_BATCHES_IN_FLIGHT,
  deferralFirstRetryMs: DEFAULT_DEFERRAL.firstRetryMs,
  deferralMaxRetryMs: DEFAULT_DEFERRAL.maxRetryMs,
  deferralWindowMs: DEFAULT_DEFERRAL.windowMs,
};

function deferralOf(opts: Required<CampaignOptions>) {
  return { firstRetryMs: opts.deferralFirstRetryMs, maxRetryMs: opts.deferralMaxRetryMs, windowMs: opts.deferralWindowMs };
}

function activitiesFor(opts: Required<CampaignOptions>) {
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
  return { prepareCampaign, watchProviders, notify, releaseHeld, sendBatchAs };
}

// ── Failures ───────────────────────────────────────────────────────────────────────────────

/** Whether an activity failure means the provider is unavailable, and why; undefined for other failures. */
function providerFailureReason(err: unknown): string | undefined {
  if (!(err instanceof ActivityFailure)) return undefined;
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    if (cause.type === ERROR_TYPES.providerUnavailable) return cause.message;
    if (cause.type === ERROR_TYPES.transient) return `retry budget exhausted: ${cause.message}`;
  }
  return undefined;
}

/** A provider-level failure: the provider refused us, or transient errors spent the retry budget. */
function providerFailureCause(err: unknown): ProviderFailureCause {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === ERROR_TYPES.transient
    ? 'retries-exhausted'
    : 'provider-refused';
}

function isInvalidCampaign(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === ERROR_TYPES.invalidCampaign;
}

function isInvalidMessage(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === ERROR_TYPES.invalidMessage;
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
  if (reputationBreachOf(err) !== undefined) return 'reputation';
  return 'store-or-bug';
}

/** The reputation breach a batch failed on (its failure's details), undefined for other failures. */
function reputationBreachOf(err: unknown): Pick<ReputationBreach, 'provider' | 'measure'> | undefined {
  if (!(err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === ERROR_TYPES.reputationBreach)) return undefined;
  const d = err.cause.details?.[0] as Partial<ReputationBreach> | undefined;
  return { provider: typeof d?.provider === 'string' ? d.provider : '', measure: d?.measure === 'hard-bounces' ? 'hard-bounces' : 'complaints' };
}

/** The activity input that tells the reputation breaker since when to judge (absent until a reputation hold was resumed). */
function reputationOf(s: CarriedState): { reputationSince?: string } {
  return s.reputationSince ? { reputationSince: s.reputationSince } : {};
}

function errorMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

function validateRelease(request: ReleaseHeldRequest, prepared: boolean): void {
  if (!prepared) throw new Error('the campaign is still starting; nothing can be held yet');
  if (request.action !== 'resend' && request.action !== 'mark-sent')
    throw new Error(`action: expected 'resend' or 'mark-sent', got ${JSON.stringify(request.action)}`);
  for (const k of ['fromSeq', 'toSeq'] as const) {
    const v = request[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new Error(`${k}: expected a recipient number (1 or more), got ${JSON.stringify(v)}`);
  }
  if (request.fromSeq !== undefined && request.toSeq !== undefined && request.fromSeq > request.toSeq)
    throw new Error(`fromSeq ${request.fromSeq} is after toSeq ${request.toSeq}`);
  if (typeof request.by !== 'string' || !request.by.trim()) throw new Error('by: who releases the rows is required');
}

// ── The carried state (pure) ───────────────────────────────────────────────────────────────

/** Workflow time, ISO 8601. */
const nowIso = () => new Date().toISOString();

function firstRunState(providers: string[], weights?: Record<string, number>): CarriedState {
  return {
    total: 0,
    maxSeq: 0,
    knownProviders: [],
    cursor: 0,
    counts: { acceptedByProvider: {}, rejected: 0, suppressed: 0, inFlightRecovered: 0, heldForReview: 0 },
    plan: initialPlan(providers, weights),
    switches: [],
    paused: false,
    runs: 1,
  };
}

/** The kind of a hold carried from a run before hold kinds (its reason says which). */
function legacyHoldKind(reason: string | undefined): HoldKind {
  if (reason?.startsWith('no provider left')) return 'no-provider';
  if (reason?.startsWith('batch from recipient')) return 'store-or-bug';
  return 'operator';
}

/** The kind of the current hold (state carried from before hold kinds has none: its reason tells). */
function holdKindOf(s: CarriedState): HoldKind | undefined {
  return s.paused ? (s.holdKind ?? legacyHoldKind(s.pauseReason)) : undefined;
}

const sharedDownOf = (s: CarriedState) => s.sharedDown ?? {};

/** The failover decision's view of the carried state. */
function failoverStateOf(s: CarriedState): FailoverState {
  const kind = holdKindOf(s);
  const hold = kind ? ({ kind, reason: s.pauseReason ?? '', since: s.holdSince ?? '' } as Hold) : undefined;
  return { plan: s.plan, sharedDown: sharedDownOf(s), hold, lastProvider: s.lastProvider, ...(s.operatorDown ? { operatorDown: s.operatorDown } : {}) };
}

/** The carried state with what the decision changed (only that: the rest keeps its shape). */
function withFailoverState(s: CarriedState, before: FailoverState, after: FailoverState): CarriedState {
  const next = { ...s };
  if (after.plan !== before.plan) next.plan = after.plan;
  if (after.sharedDown !== before.sharedDown) next.sharedDown = after.sharedDown;
  if (after.lastProvider !== before.lastProvider) next.lastProvider = after.lastProvider;
  if (after.operatorDown !== before.operatorDown) next.operatorDown = after.operatorDown;
  if (after.hold !== before.hold) {
    const h = after.hold;
    next.paused = h !== undefined;
    next.pauseReason = h?.reason;
    next.holdKind = h?.kind;
    next.holdSince = h?.since;
  }
  return next;
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

const deferredCount = (s: CarriedState) => s.counts.deferred ?? 0;

/** The audience's first pass is done and nothing is left to retry or review. */
function isFinished(s: CarriedState, holdKinds: boolean): boolean {
  return (
    s.cursor >= s.maxSeq && deferredCount(s) === 0 && (s.releasedPending ?? 0) === 0 && (!holdKinds || s.counts.heldForReview === 0 || s.reviewDone === true)
  );
}

function statusOf(s: CarriedState, run: { cancelled: boolean; prepared: boolean; holdKinds: boolean }): CampaignStatus {
  if (run.cancelled) return 'cancelled';
  if (!run.prepared) return s.paused ? 'holding' : 'starting';
  if (isFinished(s, run.holdKinds)) return 'completed';
  if (s.paused) {
    // Before hold kinds only "no provider left" showed as holding (runs recorded then replay so).
    if (!run.holdKinds) return activeProvider(s.plan, sharedDownOf(s)) === undefined ? 'holding' : 'paused';
    return holdKindOf(s) === 'operator' ? 'paused' : 'holding';
  }
  return 'running';
}

function progressOf(s: CarriedState, campaignId: string, status: CampaignStatus, batchesInFlight: number, window: number): CampaignProgress {
  const accepted = sum(s.counts.acceptedByProvider);
  const kind = holdKindOf(s);
  return {
    campaignId,
    status,
    total: s.total,
    accepted,
    acceptedByProvider: s.counts.acceptedByProvider,
    rejected: s.counts.rejected,
    suppressed: s.counts.suppressed,
    remaining: Math.max(0, s.total - accepted - s.counts.rejected - s.counts.suppressed - s.counts.heldForReview),
    inFlightRecovered: s.counts.inFlightRecovered,
    heldForReview: s.counts.heldForReview,
    deferred: deferredCount(s),
    ...(deferredCount(s) > 0 && s.nextDeferredAt !== undefined ? { nextDeferredAt: new Date(s.nextDeferredAt).toISOString() } : {}),
    paused: s.paused,
    pauseReason: s.pauseReason,
    ...(kind ? { hold: { kind, reason: s.pauseReason ?? '', since: s.holdSince ?? '' } } : {}),
    activeProvider: activeProvider(s.plan, sharedDownOf(s)),
    providers: s.plan.order,
    ...routingProgress(s.plan, sharedDownOf(s)),
    providersDown: s.plan.down,
    sharedDown: sharedDownOf(s),
    switches: s.switches,
    cursor: s.cursor,
    settledAbove: s.settledAbove ?? [],
    batchInFlight: batchesInFlight > 0,
    batchesInFlight,
    window,
    runs: s.runs,
  };
}

/** What the Web UI shows as the campaign's current details (markdown). */
function detailsOf(p: CampaignProgress, lastBatch: string): string {
  return [
    `**${p.status}**${p.pauseReason ? ` (${p.hold ? `${p.hold.kind}: ` : ''}${p.pauseReason})` : ''} · ${p.total - p.remaining} of ${p.total} done · active provider **${p.activeProvider ?? 'none'}**`,
    ...(waitText(p) ? ['', `⏳ ${waitText(p)}`] : []),
    '',
    '| accepted | rejected | suppressed | deferred | held | remaining | switches |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${p.accepted} | ${p.rejected} | ${p.suppressed} | ${p.deferred} | ${p.heldForReview} | ${p.remaining} | ${p.switches.length} |`,
    ...routingDetails(p),
    ...(p.deferred ? ['', `${p.deferred} recipient(s) deferred (the provider said "later" for them); next retry ${p.nextDeferredAt ?? 'soon'}`] : []),
    ...(p.heldForReview ? ['', `${p.heldForReview} recipient(s) held for review: \`mailover campaign held ${p.campaignId}\``] : []),
    ...(lastBatch ? ['', `Last: ${lastBatch}`] : []),
    ...(Object.keys(p.sharedDown).length ? ['', 'Shared provider health (every campaign avoids these):', ''] : []),
    ...Object.entries(p.sharedDown).map(([name, why]) => `- ${name} is down: ${why}`),
    ...(p.switches.length ? ['', 'Provider switches:', ''] : []),
    ...p.switches.map((sw) => `- switched ${sw.from} → ${sw.to ?? 'none (holding)'} at recipient #${sw.atSeq}: ${sw.reason}`),
  ].join('\n');
}
