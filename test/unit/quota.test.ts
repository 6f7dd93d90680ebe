/**
 * Provider quotas and warm-up ramps on their own (src/quota.ts, and the quota events of the
 * failover decision in workflows/failover.ts): settings and their errors, the provider's clock
 * (zones, DST), allowances and resets. Pure: no store, no Temporal, no network.
 */
import { strict as assert } from 'assert';
import { parseConfig } from '../../src/config';
import {
  grantWithin,
  localTime,
  nextDayStart,
  nextHourStart,
  parseQuota,
  parseWarmup,
  quotaPeriods,
  warmupAllowance,
  warmupDay,
  type WarmupSettings,
} from '../../src/quota';
import { MailoverMetrics } from '../../src/metrics/metrics';
import { ProviderRegistry } from '../../src/providers/registry';
import { decide, type FailoverState } from '../../workflows/failover';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

function problemsOf(fn: (problems: string[]) => unknown): string[] {
  const problems: string[] = [];
  fn(problems);
  return problems;
}

describe('routing: quotas and warm-up (allowances, resets, settings)', () => {
  describe('the provider clock', () => {
    it('routing: a UTC day resets at the next UTC midnight, an hour at the next whole hour', () => {
      const now = at('2026-12-02T13:45:10.123Z');
      assert.equal(iso(nextDayStart(now, 'UTC')), '2026-12-03T00:00:00.000Z');
      assert.equal(iso(nextHourStart(now, 'UTC')), '2026-12-02T14:00:00.000Z');
      assert.equal(iso(nextDayStart(at('2026-12-02T23:59:59.999Z'), 'UTC')), '2026-12-03T00:00:00.000Z');
      assert.equal(iso(nextDayStart(at('2026-12-03T00:00:00.000Z'), 'UTC')), '2026-12-04T00:00:00.000Z');
    });

    it("routing: a zone's day resets at its local midnight (America/Los_Angeles, Asia/Kolkata at +05:30)", () => {
      // 07:30Z on Dec 2 is still Dec 1 in Los Angeles (UTC-8): its day ends at 08:00Z.
      assert.equal(localTime(at('2026-12-02T07:30:00Z'), 'America/Los_Angeles').date, '2026-12-01');
      assert.equal(iso(nextDayStart(at('2026-12-02T07:30:00Z'), 'America/Los_Angeles')), '2026-12-02T08:00:00.000Z');
      assert.equal(iso(nextDayStart(at('2026-12-02T10:00:00Z'), 'Asia/Kolkata')), '2026-12-02T18:30:00.000Z');
      // Kolkata's hours start at :30 UTC.
      assert.equal(iso(nextHourStart(at('2026-12-02T10:00:00Z'), 'Asia/Kolkata')), '2026-12-02T10:30:00.000Z');
    });

    it('routing: across DST, the provider day is 23 or 25 hours long and the repeated hour is a new hour', () => {
      // Europe/Berlin springs forward on 2026-03-29 (02:00 -> 03:00) and falls back on 2026-10-25.
      const springDay = at('2026-03-28T23:00:00Z'); // 00:00 local, +01:00
      assert.equal(nextDayStart(springDay, 'Europe/Berlin') - springDay, 23 * 3_600_000);
      const fallDay = at('2026-10-24T22:00:00Z'); // 00:00 local, +02:00
      assert.equal(nextDayStart(fallDay, 'Europe/Berlin') - fallDay, 25 * 3_600_000);
      // The local 02:00-03:00 hour happens twice on 2026-10-25: 00:xxZ (+02:00) then 01:xxZ (+01:00).
      const first = at('2026-10-25T00:30:00Z');
      assert.equal(iso(nextHourStart(first, 'Europe/Berlin')), '2026-10-25T01:00:00.000Z');
      const [a, b] = [
        quotaPeriods({ quota: { perHour: 10, zone: 'Europe/Berlin', onQuota: 'overflow' } }, first),
        quotaPeriods({ quota: { perHour: 10, zone: 'Europe/Berlin', onQuota: 'overflow' } }, at('2026-10-25T01:30:00Z')),
      ];
      assert.notEqual(a[0].key, b[0].key, 'the repeated hour counts on its own');
      // New York springs forward at 02:00 local on 2026-03-08: the hour after 01:xx is 03:00 (07:00Z).
      assert.equal(iso(nextHourStart(at('2026-03-08T06:10:00Z'), 'America/New_York')), '2026-03-08T07:00:00.000Z');
      assert.equal(localTime(at('2026-03-08T07:00:00Z'), 'America/New_York').hour, '03');
    });
  });

  describe('warm-up', () => {
    const w: WarmupSettings = { start: '2026-12-01', first: 500, growth: 1.5, until: 100_000 };

    it('routing: day d allows min(until, floor(first × growth^d)) and the ramp ends after the first day that reaches until', () => {
      assert.deepEqual(
        [0, 1, 2, 3, 4].map((d) => warmupAllowance(w, d)),
        [500, 750, 1125, 1687, 2531],
      );
      // 500 × 1.5^13 = 97,309.3; 1.5^14 → 145,973: day 14 is capped at 100,000, the last day of the ramp.
      assert.equal(warmupAllowance(w, 13), 97_309);
      assert.equal(warmupAllowance(w, 14), 100_000);
      assert.equal(warmupAllowance(w, 15), undefined);
      assert.equal(warmupAllowance({ ...w, growth: 1 }, 400), 500, 'growth 1 ramps never: first holds every day');
    });

    it("routing: warm-up days are counted on the provider's clock from start (day 0 before it)", () => {
      assert.equal(warmupDay(w, '2026-12-01'), 0);
      assert.equal(warmupDay(w, '2026-11-20'), 0);
      assert.equal(warmupDay(w, '2027-01-01'), 31);
      // 2026-12-03T02:00Z is Dec 2 in New York: day 1 (750), and its day ends at 05:00Z.
      const p = quotaPeriods({ warmup: w, quota: { perDay: 50_000, zone: 'America/New_York', onQuota: 'wait' } }, at('2026-12-03T02:00:00Z'));
      assert.deepEqual(p, [{ limit: 'warmup', key: 'day:2026-12-02', allowance: 750, resetAt: at('2026-12-03T05:00:00Z') }]);
    });

    it('routing: warm-up and perDay count the same day and the smaller allowance holds; perHour counts on its own', () => {
      const now = at('2026-12-11T12:00:00Z'); // day 10: 28,832
      const q = { perDay: 20_000, perHour: 5_000, zone: 'UTC', onQuota: 'overflow' as const };
      assert.deepEqual(
        quotaPeriods({ warmup: w, quota: q }, now).map((p) => [p.limit, p.allowance]),
        [
          ['day', 20_000],
          ['hour', 5_000],
        ],
      );
      assert.deepEqual(
        quotaPeriods({ warmup: w, quota: { ...q, perDay: 50_000 } }, now).map((p) => [p.limit, p.allowance]),
        [
          ['warmup', 28_832],
          ['hour', 5_000],
        ],
      );
      assert.deepEqual(quotaPeriods({ quota: { perSecond: 10, zone: 'UTC', onQuota: 'overflow' } }, now), [], 'perSecond only paces');
      // ...with the rate limit: the lower per-second figure holds, the rate limit's window is kept.
      const registry = new ProviderRegistry([
        {
          name: 'a',
          kind: 'smtp',
          quota: { perSecond: 5, zone: 'UTC', onQuota: 'overflow' },
          rateLimit: { perSecond: 10, perWindow: { max: 100, windowMs: 60_000 } },
        },
        { name: 'b', kind: 'smtp', quota: { perSecond: 20, zone: 'UTC', onQuota: 'overflow' }, rateLimit: { perSecond: 10 } },
        { name: 'c', kind: 'smtp', quota: { perDay: 20, zone: 'UTC', onQuota: 'overflow' } },
      ]);
      assert.deepEqual(registry.rateLimit('a'), { perSecond: 5, perWindow: { max: 100, windowMs: 60_000 } });
      assert.deepEqual(registry.rateLimit('b'), { perSecond: 10 });
      assert.equal(registry.rateLimit('c'), undefined);
    });
  });

  describe('grants', () => {
    const now = at('2026-12-02T13:00:00Z');
    const periods = quotaPeriods({ quota: { perDay: 100, perHour: 30, zone: 'UTC', onQuota: 'overflow' } }, now);

    it('routing: a take is granted up to the least room, and when short names the binding limit with its use and reset', () => {
      assert.deepEqual(grantWithin(periods, {}, 20), { granted: 20 });
      const hourKey = periods[1].key;
      const short = grantWithin(periods, { [periods[0].key]: 50, [hourKey]: 25 }, 20);
      assert.equal(short.granted, 5);
      assert.equal(short.binding?.limit, 'hour');
      assert.equal(short.binding?.used, 30);
      assert.equal(iso(short.binding!.resetAt), '2026-12-02T14:00:00.000Z');
      // Both spent: the day binds (the hour's reset would not help).
      const both = grantWithin(periods, { [periods[0].key]: 100, [hourKey]: 30 }, 1);
      assert.deepEqual([both.granted, both.binding?.limit, iso(both.binding!.resetAt)], [0, 'day', '2026-12-03T00:00:00.000Z']);
    });
  });

  describe('settings', () => {
    it('routing: quota and warmup errors name the field and the value', () => {
      assert.deepEqual(
        problemsOf((p) => parseQuota({ perDay: 0, perHour: 1.5, zone: 'Mars/Olympus', onQuota: 'spill', per: 3 }, 'providers[0].quota', p)),
        [
          'providers[0].quota.per: unknown setting (expected perSecond, perHour, perDay, zone, onQuota)',
          'providers[0].quota.perHour: expected a whole number of messages above 0, got 1.5',
          'providers[0].quota.perDay: expected a whole number of messages above 0, got 0',
          'providers[0].quota.zone: expected an IANA time zone (e.g. UTC, America/New_York, Europe/Berlin), got "Mars/Olympus"',
          'providers[0].quota.onQuota: expected overflow or wait, got "spill"',
        ],
      );
      assert.deepEqual(
        problemsOf((p) => parseWarmup({ start: '2026-02-30', first: 0, growth: 0.5, until: 10 }, 'providers[1].warmup', p)),
        [
          `providers[1].warmup.start: expected the ramp's first day as YYYY-MM-DD (on the provider's clock), got "2026-02-30"`,
          "providers[1].warmup.first: expected a whole number of messages above 0 (day 0's allowance), got 0",
          'providers[1].warmup.growth: expected a daily growth factor from 1 to 100 (e.g. 1.5), got 0.5',
        ],
      );
      assert.deepEqual(
        problemsOf((p) => parseWarmup({ start: '2026-12-01', first: 500, growth: 1.5, until: 100 }, 'w', p)),
        ['w.until: expected at least first (500), got 100'],
      );
      assert.deepEqual(
        problemsOf((p) => parseQuota({}, 'q', p)),
        ['q: set perSecond, perHour, perDay (or the zone and onQuota of a warm-up)'],
      );
    });

    it('routing: a provider file with quota and warmup parses them with their defaults (UTC, overflow), start a YYYY-MM-DD day', () => {
      const cfg = parseConfig({
        providers: [
          {
            name: 'ses',
            kind: 'smtp',
            host: 'h',
            port: 25,
            quota: { perDay: 50_000 },
            warmup: { start: '2026-12-01', first: 500, growth: 1.5, until: 100_000 },
          },
          { name: 'relay', kind: 'smtp', host: 'h', port: 25, quota: { perHour: 2_000, perSecond: 5, zone: 'Europe/Berlin', onQuota: 'wait' } },
        ],
      });
      assert.deepEqual(cfg.providers[0].quota, { perDay: 50_000, zone: 'UTC', onQuota: 'overflow' });
      assert.deepEqual(cfg.providers[0].warmup, { start: '2026-12-01', first: 500, growth: 1.5, until: 100_000 });
      assert.deepEqual(cfg.providers[1].quota, { perHour: 2_000, perSecond: 5, zone: 'Europe/Berlin', onQuota: 'wait' });
      assert.throws(
        () => parseConfig({ providers: [{ name: 'ses', kind: 'smtp', host: 'h', port: 25, quota: { perDay: -1 } }] }),
        /providers\[0\]\.quota\.perDay: expected a whole number of messages above 0, got -1/,
      );
    });
  });

  describe('the failover decision', () => {
    const AT = '2026-12-02T10:00:00.000Z';
    const RESET = '2026-12-03T00:00:00.000Z';
    const s0 = (over: Partial<FailoverState> = {}): FailoverState => ({
      plan: { order: ['ses', 'postmark'], down: {} },
      sharedDown: {},
      lastProvider: 'ses',
      ...over,
    });
    const spent = (onQuota: 'overflow' | 'wait') =>
      ({ type: 'quota-spent', provider: 'ses', limit: 'day', used: 50_000, allowance: 50_000, resetAt: RESET, onQuota, atSeq: 101, at: AT }) as const;

    it('routing: overflow moves the campaign to the next provider until the reset, recorded as a switch with the quota reason; a second report changes nothing', () => {
      const d = decide(s0(), spent('overflow'));
      assert.deepEqual(d.switch, {
        from: 'ses',
        to: 'postmark',
        reason: `quota: 50,000/day spent on ses; moved to postmark until ${RESET}`,
        at: AT,
        atSeq: 101,
      });
      assert.deepEqual(d.announce, { failback: false, cause: 'quota' });
      assert.equal(d.state.lastProvider, 'postmark');
      assert.match(d.state.plan.down.ses, /^quota: 50,000\/day spent on ses/);
      assert.equal(decide(d.state, spent('overflow')).switch, undefined);
      const back = decide(d.state, { type: 'quota-reset', provider: 'ses', moved: 12_345, atSeq: 900, at: RESET });
      assert.deepEqual(back.switch, {
        from: 'postmark',
        to: 'ses',
        reason: "quota: ses's quota reset; 12,345 moved to postmark meanwhile; back to ses",
        at: RESET,
        atSeq: 900,
      });
      assert.deepEqual(back.state.plan.down, {});
      assert.equal(back.state.lastProvider, 'ses');
    });

    it('routing: overflow with no provider left holds (no-provider) until the first reset', () => {
      const d = decide(s0({ plan: { order: ['ses', 'postmark'], down: { postmark: 'refused' } } }), spent('overflow'));
      assert.equal(d.hold?.kind, 'no-provider');
      const back = decide(d.state, { type: 'quota-reset', provider: 'ses', moved: 0, atSeq: 101, at: RESET });
      assert.equal(back.state.hold, undefined);
    });

    it("routing: in a weighted plan the spent provider's share goes to the others until the reset, then comes back (one switch each, weights kept)", () => {
      const weighted = s0({ plan: { order: ['ses', 'postmark'], down: {}, weights: { ses: 70, postmark: 30 }, sharing: ['ses', 'postmark'] } });
      const d = decide(weighted, spent('overflow'));
      assert.deepEqual(d.switch, {
        from: 'ses',
        to: 'postmark',
        reason: `quota: 50,000/day spent on ses; moved to postmark until ${RESET}; split now postmark 100 %`,
        at: AT,
        atSeq: 101,
      });
      assert.deepEqual(d.announce, { failback: false, cause: 'quota' });
      assert.deepEqual(d.state.plan.weights, { ses: 70, postmark: 30 });
      assert.equal(decide(d.state, spent('overflow')).switch, undefined, 'batches in flight reporting it too record nothing more');
      const back = decide(d.state, { type: 'quota-reset', provider: 'ses', moved: 12, atSeq: 301, at: RESET });
      assert.deepEqual(back.switch, {
        from: 'postmark',
        to: 'ses',
        reason: "quota: ses's quota reset; 12 sent elsewhere meanwhile; split now ses 70 %, postmark 30 %",
        at: RESET,
        atSeq: 301,
      });
      assert.deepEqual(back.state.plan.sharing, ['ses', 'postmark']);
      assert.deepEqual(back.state.plan.down, {});
    });

    it('routing: wait holds the campaign (kind quota) with the reason and the reset, and the reset ends the hold', () => {
      const d = decide(s0(), spent('wait'));
      assert.deepEqual(d.hold, { kind: 'quota', reason: `50,000/day spent on ses; waiting for the quota's reset at ${RESET}`, since: AT });
      assert.equal(d.switch, undefined);
      const back = decide(d.state, { type: 'quota-reset', provider: 'ses', atSeq: 101, at: RESET });
      assert.equal(back.state.hold, undefined);
      assert.equal(back.switch, undefined);
    });
  });

  describe('metrics', () => {
    it("routing: a take's use and allowance are gauges per provider and limit (the day's series is day or warmup, whichever holds), held-back recipients a counter", async () => {
      const m = new MailoverMetrics({ providers: ['ses'], defaultMetrics: false });
      m.observeQuota('ses', [
        { limit: 'warmup', used: 400, allowance: 500 },
        { limit: 'hour', used: 40, allowance: 100 },
      ]);
      m.observeQuota('ses', [{ limit: 'day', used: 700, allowance: 750 }]);
      m.countQuotaHeldBack('ses', 'day', 12);
      const text = await m.text();
      assert.match(text, /^mailover_provider_quota_used\{provider="ses",limit="day"\} 700$/m);
      assert.match(text, /^mailover_provider_quota_allowance\{provider="ses",limit="day"\} 750$/m);
      assert.match(text, /^mailover_provider_quota_used\{provider="ses",limit="hour"\} 40$/m);
      assert.doesNotMatch(text, /limit="warmup"/, 'the day counter shows under one limit at a time');
      assert.match(text, /^mailover_quota_held_back_total\{provider="ses",limit="day"\} 12$/m);
    });
  });
});
