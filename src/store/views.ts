/**
 * Read views over the ledger and the provider events, for operators (`mailover campaign
 * recipients`, `mailover recipient`, `campaign retry`, `campaign report`). Every per-row view is
 * keyset-paged by seq, so a caller streaming a million rows holds one page at a time.
 */
import { sql, type ExpressionBuilder } from 'kysely';
import { normEmail } from './columns';
import { listOf } from './campaigns';
import type { StoreConnection } from './connection';
import type { Database, EventsTable, RecipientsTable } from './schema';
import {
  RETRY_KINDS,
  type AddressHistory,
  type DeliveryEvent,
  type DeliveryEventType,
  type EventCount,
  type LedgerViewStore,
  type OutcomePage,
  type RecipientOutcome,
  type RecipientState,
  type RetryKind,
  type RetryRow,
  type SendsPerMinute,
  type StateCount,
} from './types';

/** Events that mean the message reached (or was refused by) the recipient after the send: a retry leaves these rows out. */
const FINAL_EVENTS: DeliveryEventType[] = ['delivered', 'complained', 'unsubscribed', 'failed-permanent'];
/** Rejections a retry never takes: the campaign's own message could not be built for the row. */
const INVALID_MESSAGE = 'invalid message:%';

type LastEvent = RecipientOutcome['lastEvent'];

export class LedgerViews implements LedgerViewStore {
  constructor(private readonly conn: StoreConnection) {}

  async pageOutcomes(campaignId: string, page: OutcomePage): Promise<RecipientOutcome[]> {
    let q = this.conn.db
      .selectFrom('recipients')
      .select(['seq', 'email', 'state', 'provider', 'provider_message_id', 'last_error', 'attempts', 'updated_at'])
      .where('campaign_id', '=', campaignId)
      .where('seq', '>', page.afterSeq ?? 0);
    if (page.states?.length) q = q.where('state', 'in', page.states);
    if (page.provider !== undefined) q = q.where('provider', '=', page.provider);
    const found = await q.orderBy('seq').limit(Math.max(1, page.limit)).execute();
    if (!found.length) return [];
    const last = await this.lastEvents(campaignId, Number(found[0].seq), Number(found[found.length - 1].seq));
    return found.map((r) => toOutcome(r, last.get(Number(r.seq)) ?? null));
  }

  /** The last event (by occurrence) of each row in a seq range that has one. */
  private async lastEvents(campaignId: string, fromSeq: number, toSeq: number): Promise<Map<number, LastEvent>> {
    const evs = await this.conn.db
      .selectFrom('events')
      .select(['seq', 'type', 'provider', 'occurred_at', 'reason'])
      .where('campaign_id', '=', campaignId)
      .where('seq', '>=', fromSeq)
      .where('seq', '<=', toSeq)
      .orderBy('seq')
      .orderBy('occurred_at')
      .orderBy('id')
      .execute();
    const last = new Map<number, LastEvent>();
    for (const e of evs)
      last.set(Number(e.seq), { type: e.type as DeliveryEventType, provider: e.provider, occurredAt: new Date(e.occurred_at), reason: e.reason });
    return last;
  }

  async addressHistory(address: string): Promise<AddressHistory> {
    const email = normEmail(address);
    const db = this.conn.db;
    const found = await db
      .selectFrom('recipients')
      .select(['campaign_id', 'seq', 'email', 'state', 'provider', 'provider_message_id', 'last_error', 'attempts', 'created_at', 'updated_at'])
      .where('email', '=', email)
      .orderBy('created_at')
      .orderBy('campaign_id')
      .execute();
    const evs = await db.selectFrom('events').selectAll().where('email', '=', email).orderBy('occurred_at').orderBy('id').execute();
    const events = evs.map(toEvent);
    const rows = found.map((r) => {
      const mine = events.filter((e) => e.campaignId === r.campaign_id && e.seq === Number(r.seq));
      const e = mine[mine.length - 1];
      const last: LastEvent = e ? { type: e.type, provider: e.provider, occurredAt: e.occurredAt, reason: e.reason } : null;
      return { ...toOutcome(r, last), campaignId: r.campaign_id, createdAt: new Date(r.created_at) };
    });
    const s = await db.selectFrom('suppressions').selectAll().where('email', '=', email).executeTakeFirst();
    const ls = await db.selectFrom('list_suppressions').selectAll().where('email', '=', email).orderBy('created_at').orderBy('list').execute();
    return {
      email,
      rows,
      events,
      suppression: s ? { email: s.email, reason: s.reason, source: s.source, createdAt: new Date(s.created_at) } : null,
      listSuppressions: ls.map((r) => ({ list: r.list, email: r.email, reason: r.reason, source: r.source, createdAt: new Date(r.created_at) })),
    };
  }

  async pageRetryRows(campaignId: string, kinds: readonly RetryKind[], afterSeq: number, limit: number): Promise<RetryRow[]> {
    if (!kinds.length) return [];
    const db = this.conn.db;
    const campaign = await db.selectFrom('campaigns').select('compliance_json').where('id', '=', campaignId).executeTakeFirst();
    const list = listOf(campaignId, campaign?.compliance_json ?? null);
    const found = await db
      .selectFrom('recipients as r')
      .select(['r.seq', 'r.email', 'r.fields_json', 'r.state'])
      .where('r.campaign_id', '=', campaignId)
      .where('r.seq', '>', afterSeq)
      .where((eb) => eb.or(kinds.map((k) => kindFilter(eb, k))))
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('suppressions as s').select('s.email').whereRef('s.email', '=', 'r.email'))))
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('list_suppressions as l').select('l.email').where('l.list', '=', list).whereRef('l.email', '=', 'r.email'))),
      )
      .where(({ not, exists, selectFrom }) =>
        not(exists(selectFrom('events as e').select('e.id').where('e.type', '=', 'failed-permanent').whereRef('e.email', '=', 'r.email'))),
      )
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('events as e')
              .select('e.id')
              .where('e.campaign_id', '=', campaignId)
              .whereRef('e.seq', '=', 'r.seq')
              .where('e.type', 'in', FINAL_EVENTS),
          ),
        ),
      )
      // Rows an earlier retry of this campaign took are that retry's (retry it instead).
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('recipients as t')
              .innerJoin('campaigns as c', 'c.id', 't.campaign_id')
              .select('t.seq')
              .where('c.retry_of', '=', campaignId)
              .whereRef('t.email', '=', 'r.email'),
          ),
        ),
      )
      .orderBy('r.seq')
      .limit(Math.max(1, limit))
      .execute();
    return found.map((r) => ({ seq: Number(r.seq), kind: kindOf(r.state), email: r.email, fields: JSON.parse(r.fields_json) as Record<string, string> }));
  }

  async countRetryKinds(campaignId: string, kinds: readonly RetryKind[]): Promise<Record<RetryKind, number>> {
    const counts = Object.fromEntries(RETRY_KINDS.map((k) => [k, 0])) as Record<RetryKind, number>;
    for (const k of kinds) {
      const r = await this.conn.db
        .selectFrom('recipients as r')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('r.campaign_id', '=', campaignId)
        .where((eb) => kindFilter(eb, k))
        .executeTakeFirst();
      counts[k] = Number(r?.n ?? 0);
    }
    return counts;
  }

  async sendsPerMinute(campaignId: string): Promise<SendsPerMinute[]> {
    // When the row was handed to its provider, else (settled without a dispatch mark) when it was settled.
    const minute = sql<string>`substr(coalesce(dispatched_at, updated_at), 1, 16)`;
    const rs = await this.conn.db
      .selectFrom('recipients')
      .select((eb) => [minute.as('minute'), 'provider', eb.fn.countAll().as('n')])
      .where('campaign_id', '=', campaignId)
      .where('state', '=', 'accepted')
      .groupBy([minute, 'provider'])
      .orderBy('minute')
      .orderBy('provider')
      .execute();
    return rs.map((r) => ({ minute: r.minute, provider: r.provider ?? 'unknown', sent: Number(r.n) }));
  }

  async stateCounts(campaignId: string): Promise<StateCount[]> {
    const rs = await this.conn.db
      .selectFrom('recipients')
      .select((eb) => ['state', 'provider', eb.fn.countAll().as('n')])
      .where('campaign_id', '=', campaignId)
      .groupBy(['state', 'provider'])
      .orderBy('state')
      .orderBy('provider')
      .execute();
    return rs.map((r) => ({ state: r.state, provider: r.provider, rows: Number(r.n) }));
  }

  async eventCounts(campaignId: string): Promise<EventCount[]> {
    const rs = await this.conn.db
      .selectFrom('events')
      .select((eb) => ['provider', 'type', eb.fn.count(sql`distinct seq`).as('n')])
      .where('campaign_id', '=', campaignId)
      .where('seq', 'is not', null)
      .groupBy(['provider', 'type'])
      .orderBy('provider')
      .orderBy('type')
      .execute();
    return rs.map((r) => ({ provider: r.provider, type: r.type as DeliveryEventType, rows: Number(r.n) }));
  }

  async retriesOf(campaignId: string): Promise<string[]> {
    const rs = await this.conn.db.selectFrom('campaigns').select('id').where('retry_of', '=', campaignId).orderBy('created_at').orderBy('id').execute();
    return rs.map((r) => r.id);
  }
}

function kindFilter(eb: ExpressionBuilder<Database & { r: RecipientsTable }, 'r'>, kind: RetryKind) {
  switch (kind) {
    case 'deferred':
      return eb('r.state', '=', 'deferred');
    case 'held':
      return eb('r.state', '=', 'held');
    case 'rejected-soft':
      return eb.and([eb('r.state', '=', 'rejected'), eb(eb.fn.coalesce('r.last_error', sql.lit('')), 'not like', INVALID_MESSAGE)]);
  }
}

function kindOf(state: RecipientState): RetryKind {
  return state === 'rejected' ? 'rejected-soft' : (state as RetryKind);
}

function toOutcome(
  r: Pick<RecipientsTable, 'seq' | 'email' | 'state' | 'provider' | 'provider_message_id' | 'last_error' | 'attempts' | 'updated_at'>,
  lastEvent: LastEvent,
): RecipientOutcome {
  return {
    seq: Number(r.seq),
    email: r.email,
    state: r.state,
    provider: r.provider,
    providerMessageId: r.provider_message_id,
    answer: r.last_error,
    attempts: Number(r.attempts),
    updatedAt: new Date(r.updated_at),
    lastEvent,
  };
}

function toEvent(r: EventsTable): DeliveryEvent {
  return {
    id: r.id,
    provider: r.provider,
    type: r.type as DeliveryEventType,
    occurredAt: new Date(r.occurred_at),
    receivedAt: new Date(r.received_at),
    email: r.email,
    campaignId: r.campaign_id,
    seq: r.seq === null ? null : Number(r.seq),
    reason: r.reason,
  };
}
