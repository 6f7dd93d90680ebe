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
import type { BatchTally, CampaignActivities } from '../activities';
import type { OpsEvent } from '../src/ops-events';
import { activeProvider, initialPlan, onProviderFailure, providerOrderProblems, retryAll, withOrder, type ProviderPlan } from './failover';
import { providerHealthSignal, providerHealthWorkflowId, reportOutcomeSignal, unsubscribeSignal, type HealthNotice, type OutcomeReport } from './provider-health-api';
import { AcceptedCountKey, ActiveProviderKey, CampaignIdKey, CampaignStatusKey } from './search-attributes';

export type CampaignStatus = 'starting' | 'running' | 'paused' | 'holding' | 'completed' | 'cancelled';

export interface ProviderSwitch {
  from: string;
  /** undefined when no provider was left and the campaign started holding */
  to?: string;
  reason: string;
  /** workflow time, ISO 8601 */
  at: string;
  /** first seq of the batch that was moved */
  atSeq: number;
}

export interface CampaignOptions {
  /** Heartbeat timeout of a batch send: how fast a crashed worker's batch is retried. Default 20 s. */
  heartbeatTimeoutMs?: number;
  /** Attempts per batch on one provider before it counts as unavailable. Default 6. */
  sendMaxAttempts?: number;
  /** First retry delay for transient provider errors. Default 1 s. */
  sendInitialIntervalMs?: number;
  /** Longest retry delay. Default 30 s. */
  sendMaxIntervalMs?: number;
  /** Continue-as-new after this many batches (besides Temporal's own suggestion). Default 500. */
  batchesPerRun?: number;
}

export interface CampaignInput {
  campaignId: string;
  /** Provider names in priority order. */
  providers: string[];
  batchSize: number;
  options?: CampaignOptions;
  /**
   * Failover drills only: treat `provider` as down (provider-level failure with `reason`) from
   * recipient `fromSeq` on, so the drill sees a real switch. Real campaigns never set it.
   */
  forcedDown?: { provider: string; fromSeq: number; reason: string };
  /** State carried over continue-as-new; absent on the first run. */
  carried?: CarriedState;
}

export interface CampaignCounts {
  acceptedByProvider: Record<string, number>;
  rejected: number;
  suppressed: number;
  /** rows found in flight after a crash (resent, settled from a look-up, or held) */
  inFlightRecovered: number;
  /** rows held for review (in-flight policy `hold`) */
  heldForReview: number;
}

export interface CarriedState {
  total: number;
  maxSeq: number;
  knownProviders: string[];
  cursor: number;
  counts: CampaignCounts;
  plan: ProviderPlan;
  switches: ProviderSwitch[];
  paused: boolean;
  pauseReason?: string;
  runs: number;
  /** Shared provider health: provider -> why its circuit is open (campaigns started before it have none). */
  sharedDown?: Record<string, string>;
  /** Whether to go back to a recovered higher-priority provider by itself (from the worker's health config). */
  failback?: 'auto' | 'manual';
  /** The provider the last batch was sent through. */
  lastProvider?: string;
}

export interface CampaignProgress {
  campaignId: string;
  status: CampaignStatus;
  total: number;
  accepted: number;
  acceptedByProvider: Record<string, number>;
  rejected: number;
  suppressed: number;
  remaining: number;
  inFlightRecovered: number;
  heldForReview: number;
  paused: boolean;
  pauseReason?: string;
  activeProvider?: string;
  providers: string[];
  providersDown: Record<string, string>;
  /** Providers whose shared circuit is open (every campaign avoids them), with why. */
  sharedDown: Record<string, string>;
  switches: ProviderSwitch[];
  /** last seq whose batch is settled */
  cursor: number;
  batchInFlight: boolean;
  /** continue-as-new runs so far */
  runs: number;
}

export type CampaignResult = Omit<CampaignProgress, 'batchInFlight' | 'paused' | 'pauseReason'>;

export const pauseSignal = wf.defineSignal<[reason?: string]>('pause');
export const resumeSignal = wf.defineSignal('resume');
export const cancelSignal = wf.defineSignal('cancel');
export const progressQuery = wf.defineQuery<CampaignProgress>('progress');
export const setProvidersUpdate = wf.defineUpdate<string[], [string[]]>('setProviders');

const DEFAULTS: Required<CampaignOptions> = {
  heartbeatTimeoutMs: 20_000,
  sendMaxAttempts: 6,
  sendInitialIntervalMs: 1_000,
  sendMaxIntervalMs: 30_000,
  batchesPerRun: 500,
};

/** Whether an activity failure means the provider is unavailable, and why; undefined for other failures. */
export function providerFailureReason(err: unknown): string | undefined {
  if (!(err instanceof ActivityFailure)) return undefined;
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    if (cause.type === 'ProviderUnavailableError') return cause.message;
    if (cause.type === 'TransientProviderError') return `retry budget exhausted: ${cause.message}`;
  }
  return undefined;
}

function isInvalidCampaign(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'InvalidCampaignError';
}

function errorMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** Patch id of shared provider health, failback and operational events (histories recorded before it replay without). */
export const SHARED_HEALTH_PATCH = 'shared-provider-health';

/** A batch that ended on a timeout (a worker that died or hung), not on the provider's answer. */
function isWorkerTimeout(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

function addTally(counts: CampaignCounts, t: BatchTally): CampaignCounts {
  const acceptedByProvider = { ...counts.acceptedByProvider };
  for (const [p, n] of Object.entries(t.acceptedByProvider)) acceptedByProvider[p] = (acceptedByProvider[p] ?? 0) + n;
  return {
    acceptedByProvider,
    rejected: counts.rejected + t.rejected,
    suppressed: counts.suppressed + t.suppressed,
    inFlightRecovered: counts.inFlightRecovered + t.inFlightRecovered,
    heldForReview: counts.heldForReview + t.heldForReview,
  };
}

export async function campaignWorkflow(input: CampaignInput): Promise<CampaignResult> {
  const opts = { ...DEFAULTS, ...input.options };
  const { prepareCampaign } = wf.proxyActivities<CampaignActivities>({
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['InvalidCampaignError'] },
  });
  const sendOptions: wf.ActivityOptions = {
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: opts.heartbeatTimeoutMs,
    retry: {
      initialInterval: opts.sendInitialIntervalMs,
      backoffCoefficient: 2,
      maximumInterval: opts.sendMaxIntervalMs,
      maximumAttempts: opts.sendMaxAttempts,
      nonRetryableErrorTypes: ['ProviderUnavailableError', 'InvalidCampaignError'],
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
  const downReasons = () =>
    Object.entries({ ...sharedDown(), ...state.plan.down })
      .map(([p, r]) => `${p}: ${r}`)
      .join('; ');

  const status = (): CampaignStatus => {
    if (cancelled) return 'cancelled';
    if (!prepared) return 'starting';
    if (state.cursor >= state.maxSeq) return 'completed';
    if (state.paused) return activeProvider(state.plan, sharedDown()) === undefined ? 'holding' : 'paused';
    return 'running';
  };
  const progress = (): CampaignProgress => {
    const accepted = sum(state.counts.acceptedByProvider);
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
      paused: state.paused,
      pauseReason: state.pauseReason,
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
      `**${p.status}**${p.pauseReason ? ` (${p.pauseReason})` : ''} · ${p.total - p.remaining} of ${p.total} done · active provider **${p.activeProvider ?? 'none'}**`,
      '',
      '| accepted | rejected | suppressed | remaining | switches |',
      '| ---: | ---: | ---: | ---: | ---: |',
      `| ${p.accepted} | ${p.rejected} | ${p.suppressed} | ${p.remaining} | ${p.switches.length} |`,
      ...Object.entries(p.acceptedByProvider).map(([name, n]) => `- accepted via ${name}: ${n}`),
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
    const key = `${p.status}|${p.activeProvider ?? ''}|${p.accepted}`;
    if (key === lastUpsert) return;
    lastUpsert = key;
    wf.upsertSearchAttributes([
      { key: CampaignIdKey, value: input.campaignId },
      { key: CampaignStatusKey, value: p.status },
      { key: ActiveProviderKey, value: p.activeProvider ?? 'none' },
      { key: AcceptedCountKey, value: p.accepted },
    ]);
  };

  wf.setHandler(progressQuery, progress);
  wf.setHandler(pauseSignal, (reason?: string) => {
    state.paused = true;
    state.pauseReason = reason ?? 'paused by operator';
  });
  wf.setHandler(resumeSignal, () => {
    if (activeProvider(state.plan, sharedDown()) === undefined) state.plan = retryAll(state.plan);
    state.paused = false;
    state.pauseReason = undefined;
  });
  wf.setHandler(cancelSignal, () => {
    cancelled = true;
  });
  wf.setHandler(
    setProvidersUpdate,
    (providers: string[]) => {
      state.plan = withOrder(providers);
      watchNeeded = sharedHealth;
      // An operator's new order is not a switch (failure or failback): nothing to record for it.
      state.lastProvider = undefined;
      if (state.paused && state.pauseReason?.startsWith('no provider left')) {
        state.paused = false;
        state.pauseReason = undefined;
      }
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

  wf.setHandler(providerHealthSignal, (n: HealthNotice) => {
    const shared = { ...sharedDown() };
    if (n.circuit === 'closed') {
      const current = activeProvider(state.plan, sharedDown());
      const order = state.plan.order;
      delete shared[n.provider];
      const higher = current !== undefined && order.includes(n.provider) && order.indexOf(n.provider) < order.indexOf(current);
      if (state.failback === 'manual' && higher) {
        // Stay on the current provider until told (campaign providers / resume): keep the recovered one out.
        state.plan = { ...state.plan, down: { ...state.plan.down, [n.provider]: `recovered (${n.reason}); failback is manual: set the provider order to go back` } };
      } else if (state.plan.down[n.provider] !== undefined) {
        const { [n.provider]: _gone, ...down } = state.plan.down;
        state.plan = { ...state.plan, down };
      }
    } else {
      shared[n.provider] = n.reason;
    }
    state.sharedDown = shared;
    // A campaign holding for want of a provider goes on by itself when one comes back.
    if (state.paused && state.pauseReason?.startsWith('no provider left') && activeProvider(state.plan, shared) !== undefined) {
      state.paused = false;
      state.pauseReason = undefined;
    }
  });

  /** Subscribe to the providers' shared health; returns when their circuits are known. */
  const watch = async () => {
    const w = await watchProviders({ providers: state.plan.order });
    state.failback = w.failback;
    state.sharedDown = Object.fromEntries(Object.entries(w.circuits).filter(([, c]) => c.circuit !== 'closed').map(([p, c]) => [p, c.reason ?? `circuit ${c.circuit}`]));
  };
  const holdNoProvider = () => {
    state.paused = true;
    state.pauseReason = `no provider left: ${downReasons()}`;
    raise({ kind: 'campaign-holding', campaignId: input.campaignId, reason: state.pauseReason });
  };
  /** A provider-level failure of `provider` at `fromSeq`: mark it down here and move on (or hold). */
  const failOver = (provider: string, reason: string, fromSeq: number, forced: boolean) => {
    const decision = onProviderFailure(state.plan, provider, reason);
    state.plan = decision.plan;
    const next = activeProvider(state.plan, sharedDown());
    state.switches = [...state.switches, { from: provider, to: next, reason, at: new Date().toISOString(), atSeq: fromSeq }];
    state.lastProvider = next;
    wf.log.warn('provider switch', { campaignId: input.campaignId, from: provider, to: next ?? 'none', reason });
    if (next === undefined) holdNoProvider();
    else if (!forced) raise({ kind: 'provider-switched', campaignId: input.campaignId, from: provider, to: next, reason, atSeq: fromSeq, failback: false });
  };

  if (!prepared) {
    const prep = await prepareCampaign({ campaignId: input.campaignId, providers: input.providers });
    state = { ...state, total: prep.total, maxSeq: prep.maxSeq, knownProviders: prep.knownProviders };
    prepared = true;
  }
  upsertSearchAttributes();
  let batchesThisRun = 0;
  while (state.cursor < state.maxSeq && !cancelled) {
    await wf.condition(() => !state.paused || cancelled);
    upsertSearchAttributes();
    if (cancelled) break;
    if (watchNeeded) {
      watchNeeded = false;
      await watch();
    }
    const provider = activeProvider(state.plan, sharedDown());
    if (provider === undefined) {
      // Every provider is down (here or by shared health): hold until one comes back or an operator acts.
      holdNoProvider();
      continue;
    }
    const fromSeq = state.cursor + 1;
    if (sharedHealth && state.lastProvider !== undefined && provider !== state.lastProvider) {
      // Moved without a failure of its own: another campaign's failure (shared health), or failback.
      const order = state.plan.order;
      const failback = order.indexOf(provider) < order.indexOf(state.lastProvider) || !order.includes(state.lastProvider);
      const why = sharedDown()[state.lastProvider];
      const reason = why !== undefined ? `shared health: ${why}` : failback ? `failback: ${provider} is healthy again` : `moved to ${provider}`;
      state.switches = [...state.switches, { from: state.lastProvider, to: provider, reason, at: new Date().toISOString(), atSeq: fromSeq }];
      wf.log.warn('provider switch', { campaignId: input.campaignId, from: state.lastProvider, to: provider, reason });
      raise({ kind: 'provider-switched', campaignId: input.campaignId, from: state.lastProvider, to: provider, reason, atSeq: fromSeq, failback: why === undefined && failback });
    }
    state.lastProvider = provider;
    const forced = input.forcedDown;
    if (forced && forced.provider === provider && fromSeq >= forced.fromSeq) {
      // A failover drill: the provider is treated as failed here only (shared health is not told).
      failOver(provider, forced.reason, fromSeq, true);
      upsertSearchAttributes();
      continue;
    }
    const toSeq = Math.min(state.cursor + input.batchSize, state.maxSeq);
    const batchNo = Math.floor(state.cursor / input.batchSize) + 1;
    batchInFlight = true;
    try {
      const tally = await sendBatchAs(`batch ${batchNo}: recipients #${fromSeq}–${toSeq} via ${provider}`)({ campaignId: input.campaignId, provider, fromSeq, toSeq });
      state.counts = addTally(state.counts, tally);
      state.cursor = toSeq;
      batchesThisRun++;
      lastBatch = `batch ${batchNo}: ${toSeq - fromSeq + 1} recipients via ${provider}, ${sum(tally.acceptedByProvider)} accepted, ${tally.rejected} rejected, ${tally.suppressed} suppressed`;
      reportOutcome(provider, { ok: true, campaignId: input.campaignId });
    } catch (err) {
      const reason = providerFailureReason(err);
      if (reason !== undefined) {
        // Before shared health (old histories) reportOutcome and the events failOver raises are no-ops.
        reportOutcome(provider, { ok: false, campaignId: input.campaignId, reason });
        failOver(provider, reason, fromSeq, false);
      } else if (isInvalidCampaign(err)) {
        raise({ kind: 'campaign-failed', campaignId: input.campaignId, reason: errorMessage(err) });
        await Promise.all(pendingEvents);
        throw err;
      } else if (!isWorkerTimeout(err)) {
        // Something other than the provider failed (the store, a bug): hold with the reason
        // rather than fail, so an operator can fix it and resume from the same batch.
        state.paused = true;
        state.pauseReason = `batch from recipient #${fromSeq} failed: ${errorMessage(err)}`;
        wf.log.error('batch failed; campaign holds', { campaignId: input.campaignId, fromSeq, error: errorMessage(err) });
        raise({ kind: 'campaign-holding', campaignId: input.campaignId, reason: state.pauseReason });
      }
      // A worker timeout (crash or hang) retries the same range on the same provider.
    } finally {
      batchInFlight = false;
    }
    upsertSearchAttributes();

    if (state.cursor < state.maxSeq && !cancelled && (batchesThisRun >= opts.batchesPerRun || wf.workflowInfo().continueAsNewSuggested)) {
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
  const { batchInFlight: _b, paused: _p, pauseReason: _r, ...result } = progress();
  return result;
}
