/**
 * The shared provider health surface: one long-running workflow per provider (per task
 * queue) holds that provider's circuit. Campaigns report batch outcomes to it and subscribe
 * to its changes; operators mark providers down or up; the metrics endpoint and the CLI query it.
 *
 * Definitions only (ids, signals, query, types), importable from workflows, activities and the CLI.
 */
import * as wf from '@temporalio/workflow';

/** closed: sending; open: down, campaigns avoid it; half-open: cooling down is over, a probe is being tried. */
export type CircuitState = 'closed' | 'open' | 'half-open';

export interface HealthSettings {
  /** Provider-level batch failures in a row (across all campaigns) that open the circuit. Default 1. */
  consecutiveFailures: number;
  /** Or: at least `threshold` (0..1] of the last `window` batch outcomes failed, once `minReports` are in. */
  failureRate?: { threshold: number; window: number; minReports: number };
  /** Wait this long after opening before the half-open probe. Default 30 s. */
  cooldownMs: number;
  /** Each failed probe doubles the cool-down, up to this. Default 10 minutes. */
  maxCooldownMs: number;
  /** auto: campaigns go back to a recovered higher-priority provider at the next batch; manual: they stay until told. */
  failback: 'auto' | 'manual';
}

export const DEFAULT_HEALTH_SETTINGS: HealthSettings = {
  consecutiveFailures: 1,
  cooldownMs: 30_000,
  maxCooldownMs: 600_000,
  failback: 'auto',
};

export interface CircuitTransition {
  to: CircuitState;
  reason: string;
  /** ISO 8601, workflow time */
  at: string;
}

export interface ProviderHealthState {
  provider: string;
  circuit: CircuitState;
  /** Why it is open (or was last opened). */
  reason?: string;
  /** Set while an operator holds it down: no probes until marked up. */
  manualDown?: string;
  consecutiveFailures: number;
  /** Outcomes in the failure-rate window. */
  recent: { ok: number; failed: number };
  probes: { tried: number; failed: number; last?: string };
  /** Campaign workflows told about changes. */
  subscribers: string[];
  /** ISO 8601 time of the last transition. */
  since: string;
  /** The last transitions, newest last (at most 20). */
  transitions: CircuitTransition[];
  settings: HealthSettings;
}

export interface OutcomeReport {
  ok: boolean;
  campaignId: string;
  /** How many batch outcomes alike this report stands for (campaigns tell successes in aggregate); 1 when absent. */
  count?: number;
  /** Provider-level failure reason (when !ok). */
  reason?: string;
}

/** What a subscribed campaign is told when a circuit changes. */
export interface HealthNotice {
  provider: string;
  circuit: CircuitState;
  reason: string;
  /** Who opened or closed it (absent in notices sent before it was told). */
  by?: 'failures' | 'operator' | 'probe';
}

export interface ProviderHealthInput {
  provider: string;
  settings: HealthSettings;
  /** State carried over continue-as-new. */
  carried?: { state: ProviderHealthState; window: boolean[]; cooldownMs: number };
}

export const reportOutcomeSignal = wf.defineSignal<[OutcomeReport]>('reportOutcome');
export const subscribeSignal = wf.defineSignal<[workflowId: string]>('subscribe');
export const unsubscribeSignal = wf.defineSignal<[workflowId: string]>('unsubscribe');
/** Operator: hold the provider down (planned maintenance) until marked up. */
export const markDownSignal = wf.defineSignal<[reason: string]>('markDown');
/** Operator: the provider is good again; close the circuit now. */
export const markUpSignal = wf.defineSignal<[reason: string]>('markUp');
/** New settings from a newer config (applied from the next decision on). */
export const updateSettingsSignal = wf.defineSignal<[HealthSettings]>('updateSettings');
export const healthStateQuery = wf.defineQuery<ProviderHealthState>('healthState');

/** Sent by a health workflow to its subscribed campaigns. */
export const providerHealthSignal = wf.defineSignal<[HealthNotice]>('providerHealth');

/** One health workflow per provider and task queue (a worker fleet with its own provider config). */
export function providerHealthWorkflowId(taskQueue: string, provider: string): string {
  return `mailover-health:${taskQueue}:${provider}`;
}
