/**
 * Routing by weight end to end on a real Temporal dev server, two real SMTP sinks and a SQLite
 * store: a campaign file with `providers: [{ name, weight }]` launched from code splits 2,000
 * recipients 70/30 at the sinks (progress, Web UI details and metrics show it), its move when the
 * 70 % provider starts refusing with a policy error, and a failover drill on two weighted providers.
 */
import { strict as assert } from 'assert';
import { writeFileSync } from 'fs';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadCampaignDefinition } from '../../src/campaign-definition';
import { campaignProgress } from '../../src/client';
import { drillTable, startDrill } from '../../src/drill-client';
import { launchCampaign } from '../../src/launch';
import { MailoverMetrics } from '../../src/metrics/metrics';
import { DEFAULT_BATCHES_IN_FLIGHT, type CampaignResult } from '../../workflows/campaign-api';
import { DRILL_FORCED_REASON } from '../../workflows/drill-api';
import { DEFAULT_HEALTH_SETTINGS } from '../../workflows/provider-health-api';
import { weightedDrillProvider } from '../../workflows/weighted-drill';
import { assertExactlyOnce, FAST, Harness, POSTAL_ADDRESS, TEMPLATE, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';

const PRIMARY = 'smtp-primary';
/** Batches of 50: 40 batches for 2,000 recipients (the unit tests cover batches of 1 and 10). */
const BATCH = 50;
const SECONDARY = 'smtp-secondary';

/** Within ±5 percentage points of `want` percent. */
function assertShare(n: number, of: number, want: number, what: string) {
  const got = (n * 100) / of;
  assert.ok(Math.abs(got - want) <= 5, `${what}: ${n} of ${of} is ${got.toFixed(1)} %, want ${want} % ± 5`);
}

describe('routing by weight (Temporal dev server, two SMTP sinks, SQLite ledger)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment;
  const harnesses: Harness[] = [];
  const harness = async (opts: Partial<Parameters<typeof Harness.create>[0]> = {}) => {
    const h = await Harness.create({ env, ...opts });
    harnesses.push(h);
    await h.startWorker();
    return h;
  };

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    for (const h of harnesses) await h.close();
    await env?.teardown();
  });

  /** A campaign file with weighted providers and a CSV audience of `n` recipients, launched from code as `campaign start` does. */
  async function launchWeighted(h: Harness, id: string, n: number, weights: Record<string, number>, batchSize: number) {
    const file = join(h.dir, `${id}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        id,
        from: 'News <news@mailover.test>',
        template: TEMPLATE,
        postalAddress: POSTAL_ADDRESS,
        batchSize,
        providers: Object.entries(weights).map(([name, weight]) => ({ name, weight })),
      }),
    );
    const audienceFile = join(h.dir, `${id}.csv`);
    writeFileSync(audienceFile, ['email,first_name', ...Array.from({ length: n }, (_, i) => `user${i + 1}@example.com,User${i + 1}`)].join('\n'));
    const definition = loadCampaignDefinition(file, h.registry.names());
    assert.deepEqual(definition.weights, weights);
    await launchCampaign({ client: h.client, store: h.store, definition, audienceFile, taskQueue: h.taskQueue, options: FAST });
    return h.client.workflow.getHandle(id);
  }

  it('routing: a 70/30 campaign of 2,000 recipients splits within ±5 % at the sinks, each recipient exactly once; progress, Web UI details and metrics show the split', async () => {
    const metrics = new MailoverMetrics({ providers: [PRIMARY, SECONDARY], defaultMetrics: false });
    const h = await harness({ metrics });
    const id = uniqueId('weights');
    const handle = await launchWeighted(h, id, 2000, { [PRIMARY]: 70, [SECONDARY]: 30 }, BATCH);
    const result = (await handle.result()) as CampaignResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 2000);
    assertExactlyOnce(h, 2000);
    assertShare(h.primary.acceptedCount, 2000, 70, 'at the primary sink');
    assertShare(h.secondary.acceptedCount, 2000, 30, 'at the secondary sink');
    assert.deepEqual(result.acceptedByProvider, { [PRIMARY]: h.primary.acceptedCount, [SECONDARY]: h.secondary.acceptedCount });
    assert.deepEqual(result.switches, [], 'a split is not a switch per batch');
    assert.deepEqual(result.weights, { [PRIMARY]: 70, [SECONDARY]: 30 });
    assert.deepEqual(result.intendedShare, { [PRIMARY]: 70, [SECONDARY]: 30 });
    assert.equal(result.activeProvider, `${PRIMARY}+${SECONDARY}`);
    // The store kept the weights (a retry of the campaign splits the same way).
    assert.deepEqual((await h.store.getCampaign(id))?.weights, { [PRIMARY]: 70, [SECONDARY]: 30 });
    // The Web UI's current details (the workflow metadata query) show the split.
    const meta = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
    assert.match(meta.currentDetails ?? '', /Split by weight: smtp-primary 70 %, smtp-secondary 30 % \(weights smtp-primary 70, smtp-secondary 30\)/);
    assert.match(meta.currentDetails ?? '', new RegExp(`accepted via smtp-primary: ${h.primary.acceptedCount} \\(\\d+\\.\\d %; intended 70 %\\)`));
    // Metrics: the per-provider accepted counter holds the same split.
    const counted = (await metrics.registry.getSingleMetric('mailover_messages_total')!.get()).values.filter((v) => v.labels.outcome === 'accepted');
    const byProvider = Object.fromEntries(counted.map((v) => [v.labels.provider, v.value]));
    assert.deepEqual(byProvider, { [PRIMARY]: h.primary.acceptedCount, [SECONDARY]: h.secondary.acceptedCount });
  });

  it('routing: the 70 % provider refuses with a policy error mid-campaign: one switch recorded, its share moves to the other, each recipient exactly once', async () => {
    // No half-open probe during the test (a connection check would pass and fail back to the refusing sink).
    const h = await harness({ health: { ...DEFAULT_HEALTH_SETTINGS, cooldownMs: 600_000, maxCooldownMs: 600_000 } });
    const id = uniqueId('weights-down');
    h.primary.failAfter(600, { code: 550, message: '5.7.1 Relay access denied (policy)' });
    const handle = await launchWeighted(h, id, 2000, { [PRIMARY]: 70, [SECONDARY]: 30 }, BATCH);
    const result = (await handle.result()) as CampaignResult;
    assert.equal(result.status, 'completed');
    assertExactlyOnce(h, 2000);
    assert.equal(h.primary.acceptedCount, 600);
    assert.equal(h.secondary.acceptedCount, 1400);
    assert.equal(result.switches.length, 1, JSON.stringify(result.switches));
    const sw = result.switches[0];
    assert.equal(sw.from, PRIMARY);
    assert.equal(sw.to, SECONDARY);
    assert.match(sw.reason, /5\.7\.1/);
    assert.match(sw.reason, /split now smtp-secondary 100 %$/);
    assert.deepEqual(result.intendedShare, { [PRIMARY]: 0, [SECONDARY]: 100 });
    assert.ok(result.providersDown[PRIMARY], 'the primary is down in the plan');
    // Before the switch the rows were split by weight; from it all went to the secondary.
    const rows = await h.store.listRecipients(id);
    const before = rows.filter((r) => r.seq < sw.atSeq);
    assertShare(before.filter((r) => r.provider === PRIMARY).length, before.length, 70, 'before the switch, on the primary');
    // Batches in flight on the primary when it failed (the window) may have had rows taken first; none later.
    const lastOnPrimary = Math.max(...rows.filter((r) => r.provider === PRIMARY).map((r) => r.seq));
    const inFlightBatches = FAST.batchesInFlight ?? DEFAULT_BATCHES_IN_FLIGHT;
    assert.ok(lastOnPrimary < sw.atSeq + inFlightBatches * BATCH, `the primary took nothing after the batches in flight (last #${lastOnPrimary})`);
    assert.ok(
      rows.filter((r) => r.seq > lastOnPrimary).every((r) => r.provider === SECONDARY),
      'after the failure every row went to the secondary',
    );
    const progress = await campaignProgress(h.client, id).catch(() => undefined);
    if (progress) assert.equal(progress.activeProvider, SECONDARY);
  });

  it('routing: a failover drill on two weighted providers passes: batches split by weight, the forced-down primary’s share moves to the secondary, every synthetic recipient exactly once', async () => {
    const seeds = ['ops@example.com', 'oncall@example.com'];
    const drills = {
      from: 'Drills <drills@mailover.test>',
      seeds,
      recipients: 40,
      batchSize: 5,
      providers: [PRIMARY, SECONDARY],
      weights: { [PRIMARY]: 70, [SECONDARY]: 30 },
      timeoutMs: 120_000,
    };
    const h = await harness({ drills });
    const drillId = uniqueId('wdrill').replace(/[^A-Za-z0-9-]/g, '');
    const report = await (await startDrill(h.client, { taskQueue: h.taskQueue, drillId })).result();
    assert.equal(report.passed, true, drillTable(report));
    const switchCheck = report.checks.find((c) => c.check === 'failover switch')!;
    const at = Number(/switched at recipient #(\d+)/.exec(switchCheck.detail)?.[1]);
    assert.ok(at >= 21, `forced from half-way: ${switchCheck.detail}`);
    assert.ok(switchCheck.detail.includes(DRILL_FORCED_REASON));
    assert.match(report.checks.find((c) => c.check === 'exactly once')!.detail, /via smtp-primary and smtp-secondary by weight/);
    // At the sinks: each synthetic recipient once, on the provider the weights (before the switch) or the failover (from it) gave it.
    const plan = { primary: PRIMARY, secondary: SECONDARY, weights: drills.weights, batchSize: 5 };
    const synthetic = (n: number) => `${seeds[(n - 1) % seeds.length].replace('@', `+drill-${drillId}-${n}@`)}`;
    const sinkOf = (name: string) => (name === PRIMARY ? h.primary : h.secondary);
    const onBoth = new Set<string>();
    for (let n = 1; n <= 40; n++) {
      const expected = weightedDrillProvider(plan, at, n)!;
      const other = expected === PRIMARY ? SECONDARY : PRIMARY;
      const count = (name: string) => sinkOf(name).messages.filter((m) => m.to.includes(synthetic(n))).length;
      assert.equal(count(expected), 1, `#${n} once via ${expected}`);
      assert.equal(count(other), 0, `#${n} never via ${other}`);
      if (n < at) onBoth.add(expected);
    }
    assert.deepEqual([...onBoth].sort(), [PRIMARY, SECONDARY], 'before the switch both providers sent their share');
  });
});
