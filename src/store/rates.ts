/**
 * Providers' sending limits, enforced across every worker and campaign on the store: the sends
 * granted are recorded in `rate_grants` (pruned past the longest window) and counted per window.
 */
import { sql } from 'kysely';
import { exec, rows, type StoreConnection } from './connection';
import type { RateReservation, RateStore, SendRateLimits } from './types';

export class RateGrants implements RateStore {
  constructor(private readonly conn: StoreConnection) {}

  async reserveSends(provider: string, want: number, limits: SendRateLimits, nowMs: number): Promise<RateReservation> {
    if (want <= 0) return { granted: 0, retryAfterMs: 0 };
    const windows: Array<{ ms: number; max: number }> = [];
    if (limits.perSecond !== undefined) windows.push({ ms: 1_000, max: limits.perSecond });
    if (limits.perWindow !== undefined) windows.push({ ms: limits.perWindow.windowMs, max: limits.perWindow.max });
    if (!windows.length) return { granted: want, retryAfterMs: 0 };
    const longest = Math.max(...windows.map((w) => w.ms));
    const db = this.conn.db;
    const postgres = this.conn.dialect === 'postgres';
    return this.conn.tx(function* () {
      // PostgreSQL: one reserver per provider at a time (SQLite's BEGIN IMMEDIATE already serialises).
      if (postgres) yield* rows({ compile: () => sql`select pg_advisory_xact_lock(hashtext(${'mailover-rate:' + provider}))`.compile(db) });
      yield* exec(
        db
          .deleteFrom('rate_grants')
          .where('provider', '=', provider)
          .where('at_ms', '<=', nowMs - longest),
      );
      const recent = yield* rows(
        db
          .selectFrom('rate_grants')
          .select(['at_ms', 'count'])
          .where('provider', '=', provider)
          .where('at_ms', '>', nowMs - longest)
          .orderBy('at_ms'),
      );
      const grants = recent.map((r) => ({ at: Number(r.at_ms), count: Number(r.count) }));
      let granted = want;
      let retryAfterMs = 0;
      for (const w of windows) {
        const inWindow = grants.filter((g) => g.at > nowMs - w.ms);
        const used = inWindow.reduce((n, g) => n + g.count, 0);
        const room = Math.max(0, w.max - used);
        if (room < want) {
          // Capacity frees as the oldest grants in this window age out.
          let freed = room;
          let wait = w.ms;
          for (const g of inWindow) {
            freed += g.count;
            wait = g.at + w.ms - nowMs;
            if (freed >= Math.min(want, w.max)) break;
          }
          retryAfterMs = Math.max(retryAfterMs, wait);
        }
        granted = Math.min(granted, room);
      }
      if (granted > 0) yield* exec(db.insertInto('rate_grants').values({ provider, at_ms: nowMs, count: granted }));
      return { granted, retryAfterMs: granted < want ? Math.max(1, retryAfterMs) : 0 };
    });
  }
}
