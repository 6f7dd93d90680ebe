/**
 * Campaign definitions (the `campaigns` table).
 */
import { now } from './columns';
import type { StoreConnection } from './connection';
import type { CampaignRecord, CampaignStore } from './types';
import { parseProviderList, providerChoices } from '../../workflows/weighted-routing';

/** providers_json: names in priority order, or { name, weight } entries for a weighted campaign. */
function providersOf(json: string): Pick<CampaignRecord, 'providers' | 'weights'> {
  const { order, weights } = parseProviderList(JSON.parse(json));
  return weights ? { providers: order, weights } : { providers: order };
}

export class Campaigns implements CampaignStore {
  constructor(private readonly conn: StoreConnection) {}

  async createCampaign(c: Omit<CampaignRecord, 'createdAt'>): Promise<void> {
    const res = await this.conn.db
      .insertInto('campaigns')
      .values({
        id: c.id,
        name: c.name ?? null,
        from_address: c.from,
        template_json: JSON.stringify(c.template),
        providers_json: JSON.stringify(providerChoices(c.providers, c.weights)),
        batch_size: c.batchSize,
        compliance_json: complianceJson(c),
        retry_of: c.retryOf ?? null,
        created_at: now(),
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) {
      throw new Error(`campaign '${c.id}' already exists`);
    }
  }

  async getCampaign(id: string): Promise<CampaignRecord | undefined> {
    const r = await this.conn.db.selectFrom('campaigns').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) return undefined;
    const rec: CampaignRecord = {
      id: r.id,
      from: r.from_address,
      template: JSON.parse(r.template_json),
      ...providersOf(r.providers_json),
      batchSize: Number(r.batch_size),
      createdAt: new Date(r.created_at),
    };
    if (r.name !== null) rec.name = r.name;
    if (r.retry_of) rec.retryOf = r.retry_of;
    if (r.compliance_json) {
      const c = JSON.parse(r.compliance_json) as Pick<CampaignRecord, 'transactional' | 'postalAddress' | 'list' | 'window'>;
      if (c.transactional) rec.transactional = true;
      if (typeof c.postalAddress === 'string') rec.postalAddress = c.postalAddress;
      if (typeof c.list === 'string') rec.list = c.list;
      if (c.window) rec.window = c.window;
    }
    return rec;
  }

  async listCampaignIds(): Promise<string[]> {
    const rs = await this.conn.db.selectFrom('campaigns').select('id').orderBy('id').execute();
    return rs.map((r) => r.id);
  }
}

/** The compliance fields (and the send window, which rules when it may send) as one JSON column; null when none is set. */
function complianceJson(c: Omit<CampaignRecord, 'createdAt'>): string | null {
  const v: Record<string, unknown> = {};
  if (c.transactional) v.transactional = true;
  if (c.postalAddress !== undefined) v.postalAddress = c.postalAddress;
  if (c.list !== undefined) v.list = c.list;
  if (c.window !== undefined) v.window = c.window;
  return Object.keys(v).length ? JSON.stringify(v) : null;
}

/** The list a campaign belongs to (its `list`, else its own id), from its compliance_json column. */
export function listOf(campaignId: string, complianceJson: string | null): string {
  if (!complianceJson) return campaignId;
  try {
    const v = JSON.parse(complianceJson) as { list?: unknown };
    return typeof v.list === 'string' ? v.list : campaignId;
  } catch {
    return campaignId;
  }
}
