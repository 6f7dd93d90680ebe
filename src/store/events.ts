/**
 * What providers report about sent messages (webhooks, DSNs: the `events` table, linked to the
 * ledger row when it is found, with the suppression it implies in the same transaction), and
 * the webhook signature tokens already accepted (replay protection).
 */
import { normEmail, now } from './columns';
import { exec, rows, type StoreConnection } from './connection';
import type { DeliveryEvent, DeliveryEventInput, DeliveryEventType, EventStore, RecordEventResult } from './types';

export class Events implements EventStore {
  constructor(private readonly conn: StoreConnection) {}

  recordEvent(event: DeliveryEventInput, suppress?: { reason: string; source: string; list?: string }): Promise<RecordEventResult> {
    const db = this.conn.db;
    const email = normEmail(event.email);
    const id = `${event.provider}:${event.providerEventId}`;
    return this.conn.tx(function* () {
      const ts = now();
      let campaignId: string | null = null;
      let seq: number | null = null;
      if (event.campaignId) {
        // The identity must name a row of this very address: a mismatch links nothing.
        let q = db.selectFrom('recipients').select('seq').where('campaign_id', '=', event.campaignId).where('email', '=', email);
        if (event.seq !== undefined) q = q.where('seq', '=', event.seq);
        const [row] = yield* rows(q.limit(1));
        if (row) {
          campaignId = event.campaignId;
          seq = Number(row.seq);
        }
      }
      const inserted = yield* exec(
        db
          .insertInto('events')
          .values({
            id,
            provider: event.provider,
            type: event.type,
            occurred_at: event.occurredAt.toISOString(),
            received_at: ts,
            email,
            campaign_id: campaignId,
            seq,
            reason: event.reason,
          })
          .onConflict((oc) => oc.column('id').doNothing()),
      );
      let suppressed = false;
      if (suppress) {
        const n = suppress.list
          ? yield* exec(
              db
                .insertInto('list_suppressions')
                .values({ list: suppress.list, email, reason: suppress.reason, source: suppress.source, created_at: ts })
                .onConflict((oc) => oc.columns(['list', 'email']).doNothing()),
            )
          : yield* exec(
              db
                .insertInto('suppressions')
                .values({ email, reason: suppress.reason, source: suppress.source, created_at: ts })
                .onConflict((oc) => oc.column('email').doNothing()),
            );
        suppressed = n > 0;
      }
      return { recorded: inserted > 0, linked: campaignId !== null, suppressed };
    });
  }

  async listEvents(filter: { campaignId?: string; email?: string } = {}): Promise<DeliveryEvent[]> {
    let q = this.conn.db.selectFrom('events').selectAll();
    if (filter.campaignId !== undefined) q = q.where('campaign_id', '=', filter.campaignId);
    if (filter.email !== undefined) q = q.where('email', '=', normEmail(filter.email));
    const rs = await q.orderBy('received_at').orderBy('id').execute();
    return rs.map((r) => ({
      id: r.id,
      provider: r.provider,
      type: r.type as DeliveryEventType,
      occurredAt: new Date(r.occurred_at),
      receivedAt: new Date(r.received_at),
      email: r.email,
      campaignId: r.campaign_id,
      seq: r.seq === null ? null : Number(r.seq),
      reason: r.reason,
    }));
  }

  async rememberWebhookToken(provider: string, token: string, forgetBefore: Date): Promise<boolean> {
    await this.conn.db.deleteFrom('webhook_tokens').where('seen_at', '<', forgetBefore.toISOString()).execute();
    const r = await this.conn.db
      .insertInto('webhook_tokens')
      .values({ provider, token, seen_at: now() })
      .onConflict((oc) => oc.columns(['provider', 'token']).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async forgetWebhookToken(provider: string, token: string): Promise<void> {
    await this.conn.db.deleteFrom('webhook_tokens').where('provider', '=', provider).where('token', '=', token).execute();
  }
}
