/**
 * Failover drills between providers of every kind: three drills, run side by side on one
 * Temporal dev server (each on its own worker and task queue, against local ESPs started
 * through their modules' emulators), whose pairs cover all five kinds: ses → postmark,
 * sendgrid → mailgun, smtp → ses. Each must pass, switch at the forced recipient, deliver every
 * synthetic address exactly once across the emulators, and probe each seed once through each provider.
 */
import { strict as assert } from 'assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { drillTable, startDrill } from '../../src/drill-client';
import type { DrillSettings } from '../../src/drill-settings';
import { DRILL_FORCED_REASON } from '../../workflows/drill-api';
import { Harness, type HarnessOptions, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';

const SEEDS = ['ops@example.com', 'oncall@example.com'];
const DRILLS: Omit<DrillSettings, 'providers'> = { from: 'Drills <drills@mailover.test>', seeds: SEEDS, recipients: 20, batchSize: 5, timeoutMs: 120_000 };

/** Each pair: its primary and secondary provider names, and the local ESPs its harness runs besides the two SMTP sinks. */
const PAIRS: Array<{ primary: string; secondary: string; extra: Pick<HarnessOptions, 'esps' | 'mailgun'> }> = [
  {
    primary: 'ses',
    secondary: 'postmark',
    extra: {
      esps: [
        { kind: 'ses', name: 'ses' },
        { kind: 'postmark', name: 'postmark' },
      ],
    },
  },
  { primary: 'sendgrid', secondary: 'mailgun', extra: { esps: [{ kind: 'sendgrid', name: 'sendgrid' }], mailgun: true } },
  { primary: 'smtp-primary', secondary: 'ses', extra: { esps: [{ kind: 'ses', name: 'ses' }] } },
];

const synthetic = (drillId: string, n: number) => SEEDS[(n - 1) % SEEDS.length].replace('@', `+drill-${drillId}-${n}@`);
const countsAt = (h: Harness, provider: string, addresses: string[]) => {
  const counts = h.esp(provider).countByRecipient();
  return addresses.map((a) => counts.get(a) ?? 0);
};

describe('failover drills between providers of every kind', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  const harnesses: Harness[] = [];

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    for (const h of harnesses) await h.close();
    await env?.teardown();
  });

  it('drill: passing drills ses → postmark, sendgrid → mailgun and smtp → ses: each switches at the forced recipient, mails each synthetic address exactly once across the emulators and probes each seed once through each provider', async () => {
    const kinds = new Set<string>();
    for (const pair of PAIRS) {
      const h = await Harness.create({ env, ...pair.extra, drills: { ...DRILLS, providers: [pair.primary, pair.secondary] } });
      harnesses.push(h);
      for (const name of [pair.primary, pair.secondary]) kinds.add(h.providerDefs.find((d) => d.name === name)!.kind);
      await h.startWorker();
    }
    assert.deepEqual([...kinds].sort(), ['mailgun', 'postmark', 'sendgrid', 'ses', 'smtp'], 'the pairs cover all five kinds');

    const runs = await Promise.all(
      PAIRS.map(async (pair, i) => {
        const h = harnesses[i];
        const drillId = uniqueId(`kinds${i}`).replace(/[^A-Za-z0-9-]/g, '');
        const report = await (await startDrill(h.client, { taskQueue: h.taskQueue, drillId })).result();
        return { pair, h, drillId, report };
      }),
    );

    for (const { pair, h, drillId, report } of runs) {
      const { primary, secondary } = pair;
      const arrow = `${primary} → ${secondary}`;
      assert.equal(report.passed, true, `${arrow}:\n${drillTable(report)}`);
      assert.deepEqual(
        report.checks.map((c) => [c.check, c.provider, c.passed]),
        [
          ['probe', primary, true],
          ['probe', secondary, true],
          ['failover switch', arrow, true],
          ['failover delivery', secondary, true],
          ['exactly once', arrow, true],
        ],
      );
      const detail = (name: string) => report.checks.find((c) => c.check === name)!.detail;
      assert.match(detail('failover switch'), new RegExp(`^switched at recipient #11 as forced \\(${DRILL_FORCED_REASON}\\)$`), arrow);
      assert.equal(detail('failover delivery'), `20/20 accepted (10 via ${primary}, 10 via ${secondary})`, arrow);

      // One probe per seed through each provider.
      assert.deepEqual(countsAt(h, primary, SEEDS), [1, 1], `${arrow}: probes at ${primary}`);
      assert.deepEqual(countsAt(h, secondary, SEEDS), [1, 1], `${arrow}: probes at ${secondary}`);
      // #1-#10 only at the primary, #11-#20 only at the secondary; each synthetic address once across every emulator.
      const first = Array.from({ length: 10 }, (_, n) => synthetic(drillId, n + 1));
      const second = Array.from({ length: 10 }, (_, n) => synthetic(drillId, n + 11));
      assert.deepEqual(countsAt(h, primary, first), Array(10).fill(1), `${arrow}: #1-#10 at ${primary}`);
      assert.deepEqual(countsAt(h, secondary, second), Array(10).fill(1), `${arrow}: #11-#20 at ${secondary}`);
      const everywhere = h.deliveries();
      assert.deepEqual(
        [...first, ...second].map((a) => everywhere.get(a) ?? 0),
        Array(20).fill(1),
        `${arrow}: each synthetic address exactly once across the emulators`,
      );
      assert.equal(
        [...everywhere.values()].reduce((a, b) => a + b, 0),
        4 + 20,
        `${arrow}: nobody else was mailed`,
      );
    }
  });
});
