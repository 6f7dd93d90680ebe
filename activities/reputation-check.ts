/**
 * The reputation breaker's check before a batch sends: the campaign's window of sends on each of
 * its providers (src/store/reputation.ts), judged against the worker's thresholds (src/reputation.ts).
 * A crossing throws a non-retryable ReputationBreachError whose details are the breach: the
 * campaign workflow turns it into a `reputation` hold (workflows/failover.ts), nothing is claimed
 * or sent. Each window judged sets the rate gauges of its provider.
 */
import { ApplicationFailure } from '@temporalio/common';
import { breachReason, DEFAULT_REPUTATION, worstBreach, type ReputationBreach } from '../src/reputation';
import type { LoadedCampaign } from './campaign-cache';
import { ERROR_TYPES, type SendBatchInput } from './contracts';
import type { ActivityDeps } from './index';

/** Resolves when the campaign may send; throws the breach (as an ApplicationFailure) when it may not. */
export async function checkReputation(deps: ActivityDeps, campaign: LoadedCampaign, input: SendBatchInput): Promise<void> {
  const settings = deps.reputation ?? DEFAULT_REPUTATION;
  const since = input.reputationSince ? new Date(input.reputationSince) : undefined;
  const providers = [input.provider, ...campaign.record.providers];
  const windows = await deps.store.sendWindows(input.campaignId, providers, { window: settings.window, ...(since ? { since } : {}) });
  for (const w of windows) if (w.sends >= settings.minSends) deps.metrics?.setReputationRates(w);
  const breach = worstBreach(input.campaignId, windows, settings);
  if (breach) throw reputationFailure(breach);
}

export function reputationFailure(breach: ReputationBreach): ApplicationFailure {
  return ApplicationFailure.create({ message: breachReason(breach), type: ERROR_TYPES.reputationBreach, nonRetryable: true, details: [breach] });
}
