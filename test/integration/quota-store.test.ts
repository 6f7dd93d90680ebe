/**
 * The store's quota counters (src/store/quota.ts) on SQLite and PostgreSQL: a take grants up to
 * what every counted period has left and names the limit that ran out with its reset; counters
 * are per provider and per period of the provider's clock; takes from several connections at
 * once never grant more than the allowance. Times are given (the quota's clock), never read.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { quotaPeriods, type ProviderQuotaFields } from '../../src/quota';
import { createScratchDatabase } from '../support/postgres';

let uniq = 0;
const id = (prefix: string) => `${prefix}-${process.pid}-${++uniq}`;
const at = (iso: string) => Date.parse(iso);

function suite(name: 'sqlite' | 'postgres', make: () => Promise<{ open(): Promise<Store>; cleanup(): Promise<void> }>) {
  describe(`routing: quota counters in the store (${name})`, function () {
    this.timeout(30_000);
    let backend: { open(): Promise<Store>; cleanup(): Promise<void> };
    const stores: Store[] = [];
    let store: Store;

    before(async () => {
      backend = await make();
      store = await backend.open();
      stores.push(store);
    });
    after(async () => {
      for (const s of stores) await s.close();
      await backend?.cleanup();
    });

    const daily: ProviderQuotaFields = { quota: { perDay: 100, perHour: 40, zone: 'America/New_York', onQuota: 'overflow' } };

    it(`routing: a take is granted up to the hour's and the day's room; short, it names the limit spent, its use and its reset (${name})`, async () => {
      const p = id('ses');
      const now = at('2026-12-02T15:10:00Z'); // 10:10 in New York
      assert.deepEqual((await store.takeQuota(p, 30, quotaPeriods(daily, now))).granted, 30);
      const short = await store.takeQuota(p, 30, quotaPeriods(daily, now + 60_000));
      assert.equal(short.granted, 10);
      assert.deepEqual(
        { limit: short.spent?.limit, used: short.spent?.used, allowance: short.spent?.allowance, resetAt: new Date(short.spent!.resetAt).toISOString() },
        { limit: 'hour', used: 40, allowance: 40, resetAt: '2026-12-02T16:00:00.000Z' },
      );
      // The next hour has room again; the day goes on counting.
      const next = await store.takeQuota(p, 80, quotaPeriods(daily, at('2026-12-02T16:00:00Z')));
      assert.equal(next.granted, 40);
      assert.equal(next.spent?.limit, 'hour');
      const dayEnd = await store.takeQuota(p, 80, quotaPeriods(daily, at('2026-12-02T17:00:00Z')));
      assert.equal(dayEnd.granted, 20);
      assert.equal(dayEnd.spent?.limit, 'day');
      assert.equal(new Date(dayEnd.spent!.resetAt).toISOString(), '2026-12-03T05:00:00.000Z', "New York's midnight");
      assert.equal((await store.takeQuota(p, 1, quotaPeriods(daily, at('2026-12-03T04:59:59Z')))).granted, 0);
      assert.equal((await store.takeQuota(p, 1, quotaPeriods(daily, at('2026-12-03T05:00:00Z')))).granted, 1, 'a new day on the provider clock');
      // Another provider has its own counters; reading use takes nothing.
      assert.equal((await store.takeQuota(id('other'), 40, quotaPeriods(daily, now))).granted, 40);
      const usage = await store.quotaUsage(p, quotaPeriods(daily, at('2026-12-03T05:00:00Z')));
      assert.deepEqual(
        usage.map((u) => [u.limit, u.used, u.allowance]),
        [
          ['day', 1],
          ['hour', 1],
        ].map(([l, n]) => [l, n, l === 'day' ? 100 : 40]),
      );
    });

    it(`routing: a warm-up day's allowance is counted with the provider's day (${name})`, async () => {
      const p = id('warm');
      const w: ProviderQuotaFields = { warmup: { start: '2026-12-01', first: 10, growth: 2, until: 1000 } };
      assert.equal((await store.takeQuota(p, 50, quotaPeriods(w, at('2026-12-01T12:00:00Z')))).granted, 10);
      const day1 = await store.takeQuota(p, 50, quotaPeriods(w, at('2026-12-02T12:00:00Z')));
      assert.deepEqual([day1.granted, day1.spent?.limit, day1.spent?.allowance], [20, 'warmup', 20]);
    });

    it(`routing: takes from several connections at once never grant more than the allowance (${name})`, async () => {
      const p = id('race');
      const others = await Promise.all([backend.open(), backend.open()]);
      stores.push(...others);
      const all = [store, ...others];
      const now = at('2026-12-02T12:00:00Z');
      const q: ProviderQuotaFields = { quota: { perDay: 50, zone: 'UTC', onQuota: 'overflow' } };
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => all[i % all.length].takeQuota(p, 3, quotaPeriods(q, now))));
      assert.equal(
        results.reduce((n, r) => n + r.granted, 0),
        50,
      );
      assert.ok(results.some((r) => r.spent?.limit === 'day'));
      assert.deepEqual(
        (await store.quotaUsage(p, quotaPeriods(q, now))).map((u) => u.used),
        [50],
      );
    });
  });
}

suite('sqlite', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-quota-'));
  const file = path.join(dir, 'mailover.db');
  return { open: () => openStore({ databaseUrl: '', sqlitePath: file }), cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) };
});

suite('postgres', async () => {
  const db = await createScratchDatabase();
  return { open: () => openStore({ databaseUrl: db.url }), cleanup: () => db.drop() };
});
