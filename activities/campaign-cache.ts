/** Campaign definitions with their compiled template, cached per worker (campaigns are immutable once started). */
import { InvalidCampaignError } from '../src/errors';
import type { CampaignRecord, Store } from '../src/store/types';
import { compileTemplate, TemplateError, type CompiledTemplate } from '../src/template';
import { needsUnsubscribeLink } from '../src/worker-campaign-checks';

export interface LoadedCampaign {
  record: CampaignRecord;
  template: CompiledTemplate;
  /** domain used for deterministic Message-Ids */
  domain: string;
  /**
   * Whether its messages carry the signed unsubscribe link: a marketing campaign always (in the
   * List-Unsubscribe headers), a transactional one only when its template uses {{unsubscribe_url}}.
   */
  needsUnsubscribeLink: boolean;
}

export class CampaignCache {
  private readonly entries = new Map<string, LoadedCampaign>();
  constructor(
    private readonly store: Store,
    private readonly capacity = 100,
  ) {}

  async get(campaignId: string): Promise<LoadedCampaign> {
    const hit = this.entries.get(campaignId);
    if (hit) return hit;
    const record = await this.store.getCampaign(campaignId);
    if (!record) throw new InvalidCampaignError(`campaign '${campaignId}' not found in the store`);
    let template: CompiledTemplate;
    try {
      template = compileTemplate(record.template);
    } catch (err) {
      if (err instanceof TemplateError) throw new InvalidCampaignError(`campaign '${campaignId}': ${err.message}`);
      throw err;
    }
    const domain = record.from.replace(/^.*@/, '').replace(/>.*$/, '') || 'mailover.invalid';
    const loaded = { record, template, domain, needsUnsubscribeLink: needsUnsubscribeLink(record, template.engineFields) };
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(campaignId, loaded);
    return loaded;
  }
}
