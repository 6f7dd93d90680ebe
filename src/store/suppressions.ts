/**
 * Suppressions: addresses never sent to, on any provider (the `suppressions` table), and
 * addresses suppressed for the campaigns of one list only (`list_suppressions`, unsubscribe
 * scope `list`). Addresses are kept trimmed and lower-cased.
 */
import { normEmail, now } from './columns';
import { INSERT_CHUNK, type StoreConnection } from './connection';
import type { ListSuppressionRow, SuppressionRow, SuppressionStore } from './types';

export class Suppressions implements SuppressionStore {
  constructor(private readonly conn: StoreConnection) {}

  async addSuppression(email: string, reason: string, source: string): Promise<void> {
    await this.addSuppressions([email], reason, source);
  }

  async addSuppressions(emails: string[], reason: string, source: string): Promise<number> {
    let added = 0;
    const createdAt = now();
    for (let i = 0; i < emails.length; i += INSERT_CHUNK) {
      const values = emails.slice(i, i + INSERT_CHUNK).map((email) => ({ email: normEmail(email), reason, source, created_at: createdAt }));
      const r = await this.conn.db
        .insertInto('suppressions')
        .values(values)
        .onConflict((oc) => oc.column('email').doNothing())
        .executeTakeFirst();
      added += Number(r.numInsertedOrUpdatedRows ?? 0);
    }
    return added;
  }

  async removeSuppression(email: string): Promise<boolean> {
    const r = await this.conn.db.deleteFrom('suppressions').where('email', '=', normEmail(email)).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async isSuppressed(email: string): Promise<boolean> {
    const r = await this.conn.db.selectFrom('suppressions').select('email').where('email', '=', normEmail(email)).executeTakeFirst();
    return r !== undefined;
  }

  async listSuppressions(): Promise<SuppressionRow[]> {
    const rs = await this.conn.db.selectFrom('suppressions').selectAll().orderBy('created_at').orderBy('email').execute();
    return rs.map((r) => ({ email: r.email, reason: r.reason, source: r.source, createdAt: new Date(r.created_at) }));
  }

  async addListSuppression(list: string, email: string, reason: string, source: string): Promise<void> {
    await this.conn.db
      .insertInto('list_suppressions')
      .values({ list, email: normEmail(email), reason, source, created_at: now() })
      .onConflict((oc) => oc.columns(['list', 'email']).doNothing())
      .execute();
  }

  async listListSuppressions(): Promise<ListSuppressionRow[]> {
    const rs = await this.conn.db.selectFrom('list_suppressions').selectAll().orderBy('created_at').orderBy('list').orderBy('email').execute();
    return rs.map((r) => ({ list: r.list, email: r.email, reason: r.reason, source: r.source, createdAt: new Date(r.created_at) }));
  }
}
