/** Checks a campaign before anything is sent: it exists, has an audience, its template fields are all there, its providers are known. */
import { InvalidCampaignError } from '../src/errors';
import { workerCampaignProblems } from '../src/worker-campaign-checks';
import { toApplicationFailure } from './failures';
import type { PrepareInput, PrepareResult } from './contracts';
import type { ActivityDeps } from './index';
import type { CampaignCache } from './campaign-cache';

export async function prepareCampaign(deps: ActivityDeps, cache: CampaignCache, input: PrepareInput): Promise<PrepareResult> {
  try {
    const { template, record } = await cache.get(input.campaignId);
    const known = deps.providers.names();
    // The checks against this worker's configuration are shared with `mailover campaign start --dry-run`.
    const problems = workerCampaignProblems(
      { record, engineFields: template.engineFields, providers: input.providers },
      { providerNames: known, compliance: deps.compliance },
    );
    const total = await deps.store.countAudience(input.campaignId);
    if (total === 0) problems.push(`audience: campaign '${input.campaignId}' has no recipients`);
    if (template.fields.length > 0 && total > 0) {
      const missing = await deps.store.rowsMissingFields(input.campaignId, template.fields, 5);
      for (const m of missing) problems.push(`audience: recipient #${m.seq} has no value for merge field ${m.missing.map((f) => `'${f}'`).join(', ')}`);
    }
    if (problems.length) throw new InvalidCampaignError(`campaign '${input.campaignId}' is invalid: ${problems.join('; ')}`, problems);
    await deps.store.refreshPlannerStats();
    return { total, maxSeq: await deps.store.maxSeq(input.campaignId), knownProviders: known };
  } catch (err) {
    throw toApplicationFailure(err);
  }
}
