/**
 * Campaign activities: all I/O of a campaign happens here (store, providers).
 * Inputs and results carry ids, seq ranges, counts and provider names only; their types, and the
 * failure types the workflows decide on, are in ./contracts.ts.
 */
import type { AlertTarget, HealthConfig, InFlightPolicy } from '../src/config';
import type { DrillSettings } from '../src/drill-settings';
import type { MailoverMetrics } from '../src/metrics/metrics';
import type { BounceSettings, UnsubscribeSettings } from '../src/compliance/settings';
import type { ProviderRegistry } from '../src/providers/registry';
import type { ReputationSettings } from '../src/reputation';
import type { Store } from '../src/store/types';
import { CampaignCache } from './campaign-cache';
import type { CampaignActivities } from './contracts';
import { drillActivities } from './drill';
import { probeProvider } from './probe';
import { notify } from './notify';
import { probeHealth, watchProviders } from './health';
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
  /** The reputation breaker's thresholds and window (`reputation:` in the worker config); defaults when absent. */
  reputation?: ReputationSettings;
  /** Signed unsubscribe links (List-Unsubscribe, `{{unsubscribe_url}}`) and VERP bounce addresses. */
  compliance?: { unsubscribe?: UnsubscribeSettings; bounces?: BounceSettings };
  /** The quotas' clock (epoch ms): providers' hours, days and warm-up days are counted on it. Default the wall clock; tests move it. */
  quotaClock?: () => number;
}

export function createActivities(deps: ActivityDeps): CampaignActivities {
  const cache = new CampaignCache(deps.store);
  return {
    prepareCampaign: (input) => prepareCampaign(deps, cache, input),
    sendBatch: (input) => sendBatch(deps, cache, input),
    releaseHeld: (input) => deps.store.releaseHeld(input.campaignId, input),
    notify: (event) => notify(deps, event),
    watchProviders: (input) => watchProviders(deps, input),
    probeHealth: (input) => probeHealth(deps, input),
    probeProvider: (input) => probeProvider(deps, input),
    ...drillActivities(deps),
  };
}
