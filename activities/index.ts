/**
 * Campaign activities: all I/O of a campaign happens here (store, providers).
 * Inputs and results carry ids, seq ranges, counts and provider names only.
 */
import type { AlertTarget, HealthConfig, InFlightPolicy } from '../src/config';
import type { DrillSettings } from '../src/drill-settings';
import type { MailoverMetrics } from '../src/metrics/metrics';
import type { BounceSettings, UnsubscribeSettings } from '../src/compliance/settings';
import type { ProviderRegistry } from '../src/providers/registry';
import type { DeferralPolicy, ReleaseHeldInput, ReleaseHeldResult, Store } from '../src/store/types';
import type { OpsEvent } from '../src/ops-events';
import { CampaignCache } from './campaign-cache';
import { drillActivities } from './drill';
import { probeProvider, type ProbeInput, type ProbeResult } from './probe';
import { notify } from './notify';
import { probeHealth, watchProviders, type WatchProvidersInput, type WatchProvidersResult } from './health';
import type { ProbeResult as HealthProbeResult } from '../workflows/provider-health-api';
import { prepareCampaign } from './prepare-campaign';
import { sendBatch } from './send-batch';

export interface ActivityDeps {
  store: Store;
  providers: ProviderRegistry;
  inFlightPolicy: InFlightPolicy;
  /** Shared provider health settings (circuit thresholds, failback, probe). */
  health: HealthConfig;
  /** Failover drill settings (`drills:` in the worker config), when configured. */
  drills?: DrillSettings;
  /** Where the notify activity posts operational events (none: they are only logged). */
  alerts?: AlertTarget[];
  /** This worker's Prometheus metrics (none: nothing is counted). */
  metrics?: MailoverMetrics;
  /** Signed unsubscribe links (List-Unsubscribe, `{{unsubscribe_url}}`) and VERP bounce addresses. */
  compliance?: { unsubscribe?: UnsubscribeSettings; bounces?: BounceSettings };
}

export interface PrepareInput {
  campaignId: string;
  providers: string[];
}

export interface PrepareResult {
  total: number;
  maxSeq: number;
  /** Provider names this worker can send through (for validating provider updates). */
  knownProviders: string[];
}

export interface SendBatchInput {
  campaignId: string;
  provider: string;
  fromSeq: number;
  toSeq: number;
  /**
   * 'range' (default): the rows fromSeq..toSeq. 'sweep': rows up to toSeq (the cursor) that still
   * need sending (deferred rows whose time has come, rows released from held), at most `limit`.
   */
  mode?: 'range' | 'sweep';
  limit?: number;
  /** How recipients the provider answers "later" are retried (default DEFAULT_DEFERRAL). */
  deferral?: DeferralPolicy;
}

/** Final states of one batch's rows (recomputed from the ledger, so retries never double count). */
export interface BatchTally {
  acceptedByProvider: Record<string, number>;
  rejected: number;
  suppressed: number;
  inFlightRecovered: number;
  /** Rows held for an operator (outcome unknown and not settled by a look-up). */
  heldForReview: number;
  /** Rows waiting for their deferred retry. Absent in results recorded before deferrals. */
  deferred?: number;
  /** When the campaign's next deferred row is due (epoch ms), if any is deferred. */
  nextDeferredAt?: number;
  /** A sweep: how many of the rows it took were deferred and how many pending before. */
  swept?: { deferred: number; pending: number };
  /**
   * Rows found in flight are still to be looked up (the attempt ran out of time for them): the
   * workflow sends the same batch again (it is not a failure).
   */
  incomplete?: boolean;
}

export function createActivities(deps: ActivityDeps) {
  const cache = new CampaignCache(deps.store);
  return {
    prepareCampaign: (input: PrepareInput): Promise<PrepareResult> => prepareCampaign(deps, cache, input),
    sendBatch: (input: SendBatchInput): Promise<BatchTally> => sendBatch(deps, cache, input),
    /** Held rows -> pending (resend) or accepted (mark-sent), recorded with who and when. */
    releaseHeld: (input: ReleaseHeldInput & { campaignId: string }): Promise<ReleaseHeldResult> => deps.store.releaseHeld(input.campaignId, input),
    notify: (event: OpsEvent): Promise<void> => notify(deps, event),
    watchProviders: (input: WatchProvidersInput): Promise<WatchProvidersResult> => watchProviders(deps, input),
    probeHealth: (input: { provider: string }): Promise<HealthProbeResult> => probeHealth(deps, input),
    probeProvider: (input: ProbeInput): Promise<ProbeResult> => probeProvider(deps, input),
    ...drillActivities(deps),
  };
}

export type CampaignActivities = ReturnType<typeof createActivities>;
