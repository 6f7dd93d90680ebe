/**
 * Providers' hourly, daily and warm-up counters (src/quota.ts), enforced across every worker and
 * campaign on the store: one row per provider and period (`day:2026-12-02`, `hour:2026-12-02T13+01:00`)
 * with the sends taken from it. A take is one transaction (PostgreSQL: one taker per provider at a
 * time, by an advisory lock; SQLite: BEGIN IMMEDIATE), so two workers never both take the last send.
 * Periods are computed by the caller on its quota clock; rows a day past their reset are pruned.
 */
import { sql } from 'kysely';
import { grantWithin, type QuotaPeriod, type QuotaUsage } from '../quota';
import { exec, rows, type StoreConnection } from './connection';
import type { QuotaStore, QuotaTake } from './types';

/** Counters are kept this long after their period ended (for `provider status` and inquiries). */
const KEEP_MS = 2 * 86_400_000;

export class QuotaCounters implements QuotaStore {
  constructor(private readonly conn: StoreConnection) {}

  async takeQuota(provider: string, want: number, periods: QuotaPeriod[]): Promise<QuotaTake> {
    if (!periods.length) return { granted: Math.max(0, want), usage: [] };
    const db = this.conn.db;
    const postgres = this.conn.dialect === 'postgres';
    const keys = periods.map((p) => p.key);
    const oldest = Math.min(...periods.map((p) => p.resetAt)) - KEEP_MS;
    return this.conn.tx(function* () {
      if (postgres) yield* rows({ compile: () => sql`select pg_advisory_xact_lock(hashtext(${'mailover-quota:' + provider}))`.compile(db) });
      yield* exec(db.deleteFrom('quota_usage').where('provider', '=', provider).where('reset_at_ms', '<', oldest));
      const found = yield* rows(db.selectFrom('quota_usage').select(['period', 'used']).where('provider', '=', provider).where('period', 'in', keys));
      const used: Record<string, number> = Object.fromEntries(found.map((r) => [r.period, Number(r.used)]));
      const { granted, binding } = grantWithin(periods, used, Math.max(0, want));
      if (granted > 0) {
        for (const p of periods) {
          yield* exec(
            db
              .insertInto('quota_usage')
              .values({ provider, period: p.key, used: granted, reset_at_ms: p.resetAt })
              .onConflict((oc) => oc.columns(['provider', 'period']).doUpdateSet({ used: sql`quota_usage.used + ${granted}` })),
          );
        }
      }
      const usage = periods.map((p) => ({ ...p, used: (used[p.key] ?? 0) + granted }));
      return { granted, usage, ...(binding ? { spent: binding } : {}) };
    });
  }

  async quotaUsage(provider: string, periods: QuotaPeriod[]): Promise<QuotaUsage[]> {
    if (!periods.length) return [];
    const found = await this.conn.db
      .selectFrom('quota_usage')
      .select(['period', 'used'])
      .where('provider', '=', provider)
      .where(
        'period',
        'in',
        periods.map((p) => p.key),
      )
      .execute();
    const used = new Map(found.map((r) => [r.period, Number(r.used)]));
    return periods.map((p) => ({ ...p, used: used.get(p.key) ?? 0 }));
  }
}
