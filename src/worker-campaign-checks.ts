/**
 * What a worker checks of a campaign against its own configuration before it sends anything (the
 * prepareCampaign activity). `mailover campaign start --dry-run` runs the same checks with the
 * configuration a worker would load, so a dry run never says "ready" for a campaign a worker refuses.
 */
import type { UnsubscribeSettings } from './compliance/settings';
import type { CampaignRecord } from './store/types';

/** The parts of a worker's configuration these checks read. */
export interface WorkerCampaignContext {
  /** Provider names the worker can send through. */
  providerNames: readonly string[];
  compliance?: { unsubscribe?: UnsubscribeSettings };
}

/** The parts of a campaign these checks read; `engineFields`: the engine fields its template uses (CompiledTemplate.engineFields). */
export interface CampaignForWorker {
  record: Pick<CampaignRecord, 'transactional' | 'postalAddress'>;
  engineFields: readonly string[];
  /** The provider order it starts with. */
  providers: readonly string[];
}

/**
 * Whether a campaign's messages carry the signed unsubscribe link: a marketing campaign always (in the
 * List-Unsubscribe headers), a transactional one only when its template uses {{unsubscribe_url}}.
 */
export function needsUnsubscribeLink(record: Pick<CampaignRecord, 'transactional'>, engineFields: readonly string[]): boolean {
  return !record.transactional || engineFields.includes('unsubscribe_url');
}

/** Problems (field: what is wrong) that make a worker with this configuration refuse the campaign. */
export function workerCampaignProblems(campaign: CampaignForWorker, worker: WorkerCampaignContext): string[] {
  const { record, engineFields } = campaign;
  const problems: string[] = [];
  if (!worker.compliance?.unsubscribe && needsUnsubscribeLink(record, engineFields)) {
    problems.push(
      `unsubscribe: this worker has no unsubscribe: section in its config, so it cannot add the unsubscribe link a ${record.transactional ? 'template using {{unsubscribe_url}}' : 'marketing campaign'} needs`,
    );
  }
  if (engineFields.includes('postal_address') && !record.postalAddress) {
    problems.push(`postalAddress: the template uses {{postal_address}} but the campaign has no postalAddress`);
  }
  for (const p of campaign.providers) {
    if (!worker.providerNames.includes(p))
      problems.push(`providers: unknown provider '${p}' (configured on the worker: ${worker.providerNames.join(', ') || 'none'})`);
  }
  return problems;
}
