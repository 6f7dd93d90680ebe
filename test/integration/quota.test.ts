/**
 * Provider quotas and warm-up end to end (real Temporal dev server, real SMTP sinks, SQLite):
 * a daily quota that overflows to the next provider, one that waits for its reset (the test
 * moves the quota's clock, never the wall clock), and a warm-up day's allowance held across two
 * campaigns on two workers that share only the store.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { campaignProgress, startCampaign } from '../../src/client';
import { quotaPeriods, type QuotaSettings } from '../../src/quota';
import { ProviderRegistry } from '../../src/providers/registry';
import { openStore } from '../../src/store/open-store';
import { createCampaignWorker } from '../../src/worker';
import { assertExactlyOnce, audience, FAST, Harness, POSTAL_ADDRESS, TEMPLATE, uniqueId } from '../support/harness';
import { maybeRecordHistory } from '../support/histories';
import { writeProviderFile } from '../support/provider-file';
import { startDevServer, workflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';

const CLI = join(__dirname, '..', '..', 'src', 'cli', 'main.js');

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const quota = (over: Partial<QuotaSettings>): QuotaSettings => ({ zone: 'UTC', onQuota: 'overflow', ...over });

/** Each address of `domain` (user1..userN) accepted exactly once across both sinks. */
function assertDomainExactlyOnce(h: Harness, domain: string, n: number): void {
  const got = h.deliveries();
  const bad: string[] = [];
  for (let i = 1; i <= n; i++) {
    const c = got.get(`user${i}@${domain}`) ?? 0;
    if (c !== 1) bad.push(`user${i}@${domain} x${c}`);
  }
  assert.deepEqual(bad.slice(0, 10), [], `every ${domain} recipient exactly once`);
}

describe('routing: provider quotas and warm-up (overflow, wait for the reset, shared across workers)', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let h: Harness | undefined;

  before(async () => {
    env = await startDevServer();
  });
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });
  after(async () => {
    await env?.teardown();
  });

  it('routing: a daily quota spent mid-campaign overflows the rest to the next provider, every recipient exactly once, the switch recorded with the quota reason and the count moved', async () => {
    h = await Harness.create({ env, providerExtras: { 'smtp-primary': { quota: quota({ perDay: 50 }) } } });
    await h.startWorker();
    const id = uniqueId('quota-overflow');
    const handle = await h.launch(id, audience(120), { batchSize: 20 });
    const r = await handle.result();
    await maybeRecordHistory('quota-window-overflow', handle, env.address);
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.acceptedByProvider, { 'smtp-primary': 50, 'smtp-secondary': 70 });
    assertExactlyOnce(h, 120);
    assert.equal(h.primary.acceptedCount, 50);
    assert.equal(r.switches.length, 1, JSON.stringify(r.switches));
    const sw = r.switches[0];
    assert.equal(sw.from, 'smtp-primary');
    assert.equal(sw.to, 'smtp-secondary');
    assert.match(sw.reason, /^quota: 50\/day spent on smtp-primary; 70 moved to smtp-secondary until \d{4}-\d{2}-\d{2}T00:00:00\.000Z$/);
    // Several batches are in flight (the window): the first to find the quota spent is where the switch is recorded.
    assert.equal((sw.atSeq - 1) % 20, 0, `the switch is recorded at the start of the batch the quota ran out in (#${sw.atSeq})`);
    const used = await h.store.quotaUsage('smtp-primary', quotaPeriods({ quota: quota({ perDay: 50 }) }, Date.now()));
    assert.equal(used[0].used, 50);

    // `mailover provider status` shows today's quota and its use, from the store's counters.
    const configPath = join(h.dir, 'mailover.yaml');
    const cliEnv = {
      ...writeProviderFile(configPath, h.providerDefs),
      MAILOVER_CONFIG: configPath,
      MAILOVER_DB: join(h.dir, 'mailover.db'),
      TEMPORAL_ADDRESS: env.address,
      MAILOVER_TASK_QUEUE: h.taskQueue,
    };
    const status = await cli(['provider', 'status'], cliEnv);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Quotas today/);
    assert.match(status.stdout, /│ smtp-primary\s+│ per day\s+│\s+50 │\s+50 │\s+0 │ \d{4}-\d{2}-\d{2}T00:00:00\.000Z/);
    assert.doesNotMatch(status.stdout, /│ smtp-secondary\s+│ per/, 'a provider without quotas has no quota row');
    const json = JSON.parse((await cli(['provider', 'status', 'smtp-primary', '--json'], cliEnv)).stdout) as Array<{
      quota?: Array<{ limit: string; used: number; allowance: number; left: number }>;
    }>;
    assert.deepEqual(
      json[0].quota?.map((q) => [q.limit, q.used, q.allowance, q.left]),
      [['day', 50, 50, 0]],
    );
  });

  it("routing: a daily quota with onQuota wait holds the campaign visibly until its reset; moving the quota's clock past midnight lets it complete on the same provider", async () => {
    let quotaNow = Date.parse('2026-12-02T23:59:58Z');
    h = await Harness.create({ env, quotaClock: () => quotaNow, providerExtras: { 'smtp-primary': { quota: quota({ perDay: 50, onQuota: 'wait' }) } } });
    await h.startWorker();
    const id = uniqueId('quota-wait');
    const handle = await h.launch(id, audience(80), { batchSize: 20 });
    const held = await waitUntil(async () => {
      const p = await campaignProgress(h!.client, id);
      return p.hold?.kind === 'quota' && !p.batchInFlight ? p : undefined;
    }, 'the campaign holding for the quota');
    assert.equal(held.status, 'holding');
    assert.equal(held.hold?.reason, "50/day spent on smtp-primary; waiting for the quota's reset at 2026-12-03T00:00:00.000Z");
    assert.equal(h.primary.acceptedCount, 50, 'nothing past the quota went out');
    assert.equal(h.secondary.acceptedCount, 0, 'wait does not overflow');

    quotaNow = Date.parse('2026-12-03T00:00:01Z');
    const r = await handle.result();
    await maybeRecordHistory('quota-window-wait', handle, env.address);
    assert.equal(r.status, 'completed');
    assert.deepEqual(r.acceptedByProvider, { 'smtp-primary': 80 });
    assert.deepEqual(r.switches, []);
    assertExactlyOnce(h, 80);
  });

  it("routing: a warm-up day's allowance holds across two campaigns on two workers sharing only the store: at most the allowance on that provider, the rest on the next, each recipient once", async () => {
    const quotaNow = Date.parse('2026-12-03T12:00:00Z'); // day 2 of the ramp: 10 × 2^2 = 40
    const warmup = { start: '2026-12-01', first: 10, growth: 2, until: 10_000 };
    h = await Harness.create({ env, quotaClock: () => quotaNow, providerExtras: { 'smtp-primary': { warmup } } });
    await h.startWorker();
    // A second worker as another deployment runs it: its own store connection, provider pools and task queue.
    const store2 = await openStore({ databaseUrl: '', sqlitePath: join(h.dir, 'mailover.db') });
    const registry2 = new ProviderRegistry(h.providerDefs);
    const taskQueue2 = `${h.taskQueue}-2`;
    const worker2: Worker = await createCampaignWorker({
      connection: env.nativeConnection,
      taskQueue: taskQueue2,
      store: store2,
      providers: registry2,
      compliance: h.compliance,
      quotaClock: () => quotaNow,
      workflowBundle: await workflowBundle(),
    });
    const running2 = worker2.run();
    try {
      const one = await h.launch(uniqueId('warm-1'), audience(60, 'one.example.com'), { batchSize: 10 });
      const id2 = uniqueId('warm-2');
      const providers = ['smtp-primary', 'smtp-secondary'];
      await h.store.createCampaign({ id: id2, from: 'News <news@mailover.test>', template: TEMPLATE, providers, batchSize: 10, postalAddress: POSTAL_ADDRESS });
      await h.store.importAudience(id2, audience(60, 'two.example.com'));
      const two = await startCampaign(h.client, { campaignId: id2, providers, batchSize: 10, taskQueue: taskQueue2, options: FAST });
      const [r1, r2] = await Promise.all([one.result(), two.result()]);
      assert.equal(r1.status, 'completed');
      assert.equal(r2.status, 'completed');
      assertDomainExactlyOnce(h, 'one.example.com', 60);
      assertDomainExactlyOnce(h, 'two.example.com', 60);
      const onPrimary = (r1.acceptedByProvider['smtp-primary'] ?? 0) + (r2.acceptedByProvider['smtp-primary'] ?? 0);
      assert.equal(h.primary.acceptedCount, onPrimary);
      assert.ok(onPrimary <= 40, `${onPrimary} sent on smtp-primary, above the day's warm-up allowance of 40`);
      assert.equal(onPrimary, 40, 'the allowance is used up, not left idle');
      assert.equal(h.secondary.acceptedCount, 120 - onPrimary);
      for (const r of [r1, r2]) {
        if ((r.acceptedByProvider['smtp-secondary'] ?? 0) === 0) continue;
        assert.match(
          r.switches[0]?.reason ?? '',
          /^quota: 40\/day warm-up allowance spent on smtp-primary; \d+ moved to smtp-secondary until 2026-12-04T00:00:00\.000Z$/,
        );
      }
      const [day] = await h.store.quotaUsage('smtp-primary', quotaPeriods({ warmup }, quotaNow));
      assert.deepEqual([day.limit, day.used, day.allowance], ['warmup', 40, 40]);
    } finally {
      worker2.shutdown();
      await running2;
      await registry2.closeAll();
      await store2.close();
    }
  });
});
