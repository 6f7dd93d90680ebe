/**
 * The reputation breaker's windows (src/reputation.ts judges them): for one campaign and one
 * provider, its last `window` sends, newest settled first, and how many of them hard-bounced or
 * were reported as spam. A send is a row the provider answered for: accepted; or rejected after it
 * was handed over (`dispatched_at`), or as a hard bounce (SMTP refuses those at RCPT TO, before
 * the message is handed over). A message that could not be rendered, or a soft refusal before
 * hand-over, is not a send. Accepted rows are taken whatever their `dispatched_at` (an acceptance
 * written with its dispatch mark has none).
 *
 * A hard bounce: the row was rejected with a hard-bounce answer (SMTP 5.1.x, an ESP's invalid
 * address: `hard_bounce` = 1), or a `failed-permanent` event (webhook, DSN) is linked to it.
 * A complaint: a `complained` event is linked to it. Each row counts once, however many events it has.
 * One statement per provider on both dialects; the window's rows come from the
 * (campaign_id, provider, updated_at, seq) index read backwards, in the window's own order (a
 * settled row is not updated again), the events from (campaign_id, seq).
 */
import { sql } from 'kysely';
import type { SendWindow } from '../reputation';
import type { StoreConnection } from './connection';
import type { ReputationStore, SendWindowQuery } from './types';

export class Reputation implements ReputationStore {
  constructor(private readonly conn: StoreConnection) {}

  async sendWindows(campaignId: string, providers: string[], q: SendWindowQuery): Promise<SendWindow[]> {
    const out: SendWindow[] = [];
    for (const provider of [...new Set(providers)]) out.push(await this.#window(campaignId, provider, q));
    return out;
  }

  async #window(campaignId: string, provider: string, q: SendWindowQuery): Promise<SendWindow> {
    const since = q.since ? sql`and r.updated_at >= ${q.since.toISOString()}` : sql``;
    const eventOf = (type: string) => sql`exists (select 1 from events e where e.campaign_id = w.campaign_id and e.seq = w.seq and e.type = ${type})`;
    const { rows } = await sql<{ sends: number | string; hard: number | string | null; complaints: number | string | null }>`
      select count(*) as sends,
        sum(case when w.hard_bounce = 1 or ${eventOf('failed-permanent')} then 1 else 0 end) as hard,
        sum(case when ${eventOf('complained')} then 1 else 0 end) as complaints
      from (
        select r.campaign_id, r.seq, r.hard_bounce from recipients r
        where r.campaign_id = ${campaignId} and r.provider = ${provider}
          and (r.state = 'accepted' or (r.state = 'rejected' and (r.dispatched_at is not null or r.hard_bounce = 1))) ${since}
        order by r.updated_at desc, r.seq desc
        limit ${q.window}
      ) w`.execute(this.conn.db);
    const r = rows[0];
    return { provider, sends: Number(r?.sends ?? 0), hardBounces: Number(r?.hard ?? 0), complaints: Number(r?.complaints ?? 0) };
  }
}
