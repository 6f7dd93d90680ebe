/**
 * One provider's shared health: a long-running workflow per provider (and task queue) that
 * holds the provider's circuit breaker for every campaign.
 *
 * closed ──(provider-level failures: N in a row, or a failure rate over the last outcomes)──▶ open
 * open ──(cool-down elapsed)──▶ half-open ──(good probe)──▶ closed
 *                                         └─(bad probe)──▶ open, cool-down doubled (capped)
 * An operator can hold it open (markDown: no probes) and close it (markUp).
 *
 * Campaigns report each batch outcome (reportOutcome) and subscribe; when the circuit opens or
 * closes, every subscribed campaign is signalled (providerHealth) and switches at its next batch
 * boundary, and the change is raised as an operational event (alerts, metrics).
 */
import * as wf from '@temporalio/workflow';
import type { CampaignActivities } from '../activities/contracts';
import type { OpsEvent } from '../src/ops-events';
import {
  healthStateQuery,
  markDownSignal,
  markUpSignal,
  providerHealthSignal,
  reportOutcomeSignal,
  subscribeSignal,
  unsubscribeSignal,
  updateSettingsSignal,
  type CircuitState,
  type HealthNotice,
  type HealthSettings,
  type OutcomeReport,
  type ProviderHealthInput,
  type ProviderHealthState,
} from './provider-health-api';

const MAX_TRANSITIONS = 20;
/** Continue-as-new well before histories get heavy (each report is one event). */
const MAX_HISTORY_EVENTS = 4_000;

const { probeHealth } = wf.proxyActivities<CampaignActivities>({
  startToCloseTimeout: '1 minute',
  // The probe is itself the retry: one attempt per half-open, the cool-down paces the next.
  retry: { maximumAttempts: 1 },
  summary: 'half-open probe',
});
const { notify } = wf.proxyActivities<CampaignActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

/** Whether the outcomes so far open the circuit under these settings; the reason if so. */
export function tripReason(settings: HealthSettings, consecutiveFailures: number, window: boolean[]): string | undefined {
  if (consecutiveFailures >= Math.max(1, settings.consecutiveFailures)) {
    return consecutiveFailures === 1 ? 'a provider-level failure' : `${consecutiveFailures} provider-level failures in a row`;
  }
  const rate = settings.failureRate;
  if (rate && window.length >= Math.max(1, rate.minReports)) {
    const failed = window.filter((ok) => !ok).length;
    if (failed / window.length >= rate.threshold) return `${failed} of the last ${window.length} batches failed at the provider level`;
  }
  return undefined;
}

export async function providerHealthWorkflow(input: ProviderHealthInput): Promise<void> {
  let settings = input.settings;
  const now = () => new Date().toISOString();
  const state: ProviderHealthState = input.carried?.state ?? {
    provider: input.provider,
    circuit: 'closed',
    consecutiveFailures: 0,
    recent: { ok: 0, failed: 0 },
    probes: { tried: 0, failed: 0 },
    subscribers: [],
    since: now(),
    transitions: [],
    settings,
  };
  let window: boolean[] = input.carried?.window ?? [];
  let cooldownMs = input.carried?.cooldownMs ?? settings.cooldownMs;
  /** Changes to tell subscribers and raise as events, in order. */
  const outbox: Array<{ notice?: HealthNotice; event: OpsEvent }> = [];

  const windowSize = () => Math.max(1, settings.failureRate?.window ?? 20);
  const transition = (to: CircuitState, reason: string, by: 'failures' | 'operator' | 'probe') => {
    state.circuit = to;
    state.since = now();
    state.transitions = [...state.transitions, { to, reason, at: state.since }].slice(-MAX_TRANSITIONS);
    if (to === 'open') {
      state.reason = reason;
      outbox.push({
        notice: { provider: input.provider, circuit: 'open', reason, by },
        event: { kind: 'circuit-opened', provider: input.provider, reason, by },
      });
    } else if (to === 'closed') {
      state.consecutiveFailures = 0;
      window = [];
      state.recent = { ok: 0, failed: 0 };
      cooldownMs = settings.cooldownMs;
      outbox.push({
        notice: { provider: input.provider, circuit: 'closed', reason, by },
        event: { kind: 'circuit-closed', provider: input.provider, reason, by: by === 'operator' ? 'operator' : 'probe' },
      });
    }
  };

  wf.setHandler(healthStateQuery, () => ({ ...state, settings }));
  wf.setHandler(reportOutcomeSignal, (r: OutcomeReport) => {
    const count = typeof r.count === 'number' && r.count > 1 ? Math.min(Math.floor(r.count), windowSize()) : 1;
    window = [...window, ...Array<boolean>(count).fill(r.ok)].slice(-windowSize());
    state.recent = { ok: window.filter(Boolean).length, failed: window.filter((ok) => !ok).length };
    if (r.ok) {
      state.consecutiveFailures = 0;
      return;
    }
    state.consecutiveFailures += 1;
    if (state.circuit !== 'closed') return; // already open: nothing more to decide
    const trip = tripReason(settings, state.consecutiveFailures, window);
    if (trip) transition('open', `${trip} (campaign ${r.campaignId}): ${r.reason ?? 'unknown reason'}`, 'failures');
  });
  wf.setHandler(subscribeSignal, (workflowId: string) => {
    if (!state.subscribers.includes(workflowId)) state.subscribers = [...state.subscribers, workflowId];
  });
  wf.setHandler(unsubscribeSignal, (workflowId: string) => {
    state.subscribers = state.subscribers.filter((id) => id !== workflowId);
  });
  wf.setHandler(markDownSignal, (reason: string) => {
    state.manualDown = reason || 'marked down by an operator';
    if (state.circuit !== 'open') transition('open', `marked down by an operator: ${state.manualDown}`, 'operator');
    else state.reason = `marked down by an operator: ${state.manualDown}`;
  });
  wf.setHandler(markUpSignal, (reason: string) => {
    const wasDown = state.circuit !== 'closed' || state.manualDown !== undefined;
    state.manualDown = undefined;
    if (wasDown) transition('closed', `marked up by an operator${reason ? `: ${reason}` : ''}`, 'operator');
  });
  wf.setHandler(updateSettingsSignal, (next: HealthSettings) => {
    settings = next;
    state.settings = next;
  });

  /** Tell subscribers (dropping the ones that are gone) and raise the events; alerts never block health. */
  const flush = async () => {
    while (outbox.length) {
      const { notice, event } = outbox.shift()!;
      if (notice) {
        const results = await Promise.allSettled(state.subscribers.map((id) => wf.getExternalWorkflowHandle(id).signal(providerHealthSignal, notice)));
        const gone = state.subscribers.filter((_, i) => results[i].status === 'rejected');
        if (gone.length) state.subscribers = state.subscribers.filter((id) => !gone.includes(id));
      }
      try {
        await notify(event);
      } catch (err) {
        wf.log.warn('operational event could not be delivered', { event: event.kind, error: err instanceof Error ? err.message : String(err) });
      }
    }
  };

  const tooLong = () => wf.workflowInfo().continueAsNewSuggested || wf.workflowInfo().historyLength > MAX_HISTORY_EVENTS;
  for (;;) {
    await flush();
    if (tooLong()) break;
    if (state.circuit === 'open' && state.manualDown === undefined) {
      // Cool down; anything that changes the circuit in the meantime restarts the loop.
      const changed = await wf.condition(() => outbox.length > 0 || state.circuit !== 'open' || state.manualDown !== undefined, cooldownMs);
      if (changed) continue;
      transition('half-open', 'cool-down over: probing', 'probe');
      state.probes = { ...state.probes, tried: state.probes.tried + 1 };
      let probe: { ok: boolean; detail: string };
      try {
        probe = await probeHealth({ provider: input.provider });
      } catch (err) {
        probe = { ok: false, detail: err instanceof Error ? err.message : String(err) };
      }
      state.probes.last = `${probe.ok ? 'ok' : 'failed'}: ${probe.detail}`;
      // An operator may have acted while the probe ran; their word wins.
      if ((state.circuit as CircuitState) !== 'half-open') continue;
      if (probe.ok) {
        transition('closed', `probe succeeded: ${probe.detail}`, 'probe');
      } else {
        state.probes.failed += 1;
        cooldownMs = Math.min(cooldownMs * 2, Math.max(settings.maxCooldownMs, settings.cooldownMs));
        state.circuit = 'open';
        state.since = now();
        state.transitions = [...state.transitions, { to: 'open' as CircuitState, reason: `probe failed: ${probe.detail}`, at: state.since }].slice(
          -MAX_TRANSITIONS,
        );
      }
      continue;
    }
    await wf.condition(() => outbox.length > 0 || (state.circuit === 'open' && state.manualDown === undefined) || tooLong());
  }
  await wf.condition(wf.allHandlersFinished);
  await wf.continueAsNew<typeof providerHealthWorkflow>({ provider: input.provider, settings, carried: { state, window, cooldownMs } });
}
