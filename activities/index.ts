/**
 * Campaign activities: all I/O of a campaign happens here (store, providers).
 * Inputs and results carry ids, seq ranges, counts and provider names only.
 */
import type { BounceSettings, UnsubscribeSettings } from '../src/compliance/settings';
import type { InFlightPolicy } from '../src/config';
import type { ProviderRegistry } from '../src/providers/registry';
import type { Store } from '../src/store/types';
import type { OpsEvent } from '../src/ops-events';
import { CampaignCache } from './campaign-cache';
import { notify } from './notify';
import { prepareCampaign } from './prepare-campaign';
import { sendBatch } from './send-batch';

export interface ActivityDeps {
  store: Store;
  providers: ProviderRegistry;
  inFlightPolicy: InFlightPolicy;
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
}

/** Final states of one batch's rows (recomputed from the ledger, so retries never double count). */
export interface BatchTally {
  acceptedByProvider: Record<string, number>;
  rejected: number;
  suppressed: number;
  inFlightRecovered: number;
  heldForReview: number;
}

export function createActivities(deps: ActivityDeps) {
  const cache = new CampaignCache(deps.store);
  return {
    prepareCampaign: (input: PrepareInput): Promise<PrepareResult> => prepareCampaign(deps, cache, input),
    sendBatch: (input: SendBatchInput): Promise<BatchTally> => sendBatch(deps, cache, input),
    notify: (event: OpsEvent): Promise<void> => notify(event),
  };
}

export type CampaignActivities = ReturnType<typeof createActivities>;
