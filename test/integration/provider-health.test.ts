/**
 * Shared provider health end to end (real Temporal dev server, real SMTP sinks, SQLite):
 * one campaign's provider failure moves every other campaign; the circuit's half-open probe
 * and failback; operators marking a provider down and up with the CLI; a rate limit held
 * across two workers and two campaigns.
 */
import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { campaignProgress, pauseCampaign, resumeCampaign, setCampaignProviders, startCampaign } from '../../src/client';
import type { HealthConfig } from '../../src/config';
import { providerHealth } from '../../src/provider-health-client';
import { ProviderRegistry } from '../../src/providers/registry';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { createCampaignWorker } from '../../src/worker';
import { DEFAULT_HEALTH_SETTINGS, providerHealthWorkflowId } from '../../workflows/provider-health-api';
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

const health = (over: Partial<HealthConfig>): HealthConfig => ({ ...DEFAULT_HEALTH_SETTINGS, ...over });

describe('shared provider health (circuit breaker across campaigns, failback, operators, rate limits)', function () {
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

  it('shared health: a provider that fails one campaign is left by a second running campaign before it fails there itself', async () => {
    h = await Harness.create({ env, health: health({ cooldownMs: 600_000 }) });
    await h.startWorker();
    const idB = uniqueId('shared-b');
    const idA = uniqueId('shared-a');
    h.primary.setAcceptDelay(5);
    const b = await h.launch(idB, audience(300, 'b.example.com'), { batchSize: 20 });
    await h.primary.waitFor((s) => s.acceptedCount >= 40, 30_000);
    await pauseCampaign(h.client, idB, 'test: hold B while A runs');
    await waitUntil(async () => {
      const p = await campaignProgress(h!.client, idB);
      return p.status === 'paused' && !p.batchInFlight;
    }, 'campaign B paused between batches');
    const bOnPrimary = h.primary.acceptedCount;

    // The primary goes away; campaign A finds out, and the shared circuit opens.
    await h.primary.setMode('refuse');
    const a = await h.launch(idA, audience(100, 'a.example.com'), { batchSize: 20 });
    const ra = await a.result();
    assert.equal(ra.status, 'completed');
    assert.deepEqual(ra.acceptedByProvider, { 'smtp-secondary': 100 });
    assert.equal(ra.switches[0]?.from, 'smtp-primary');
    assert.doesNotMatch(ra.switches[0]?.reason ?? '', /^shared health/, 'A switched on its own failure');

    // B was told while paused, without sending anything.
    const told = await waitUntil(async () => {
      const p = await campaignProgress(h!.client, idB);
      return p.sharedDown['smtp-primary'] !== undefined ? p : undefined;
    }, 'campaign B told that smtp-primary is down');
    assert.match(told.sharedDown['smtp-primary'], new RegExp(`campaign ${idA}`));
    assert.equal(told.activeProvider, 'smtp-secondary');

    await resumeCampaign(h.client, idB);
    const rb = await b.result();
    assert.equal(rb.status, 'completed');
    assert.equal(rb.switches.length, 1);
    assert.equal(rb.switches[0].from, 'smtp-primary');
    assert.equal(rb.switches[0].to, 'smtp-secondary');
    assert.match(rb.switches[0].reason, /^shared health: a provider-level failure \(campaign /);
    assert.equal(rb.acceptedByProvider['smtp-primary'], bOnPrimary, 'B sent nothing more through the primary');
    assert.equal(rb.accepted, 300);
    assertDomainExactlyOnce(h, 'a.example.com', 100);
    assertDomainExactlyOnce(h, 'b.example.com', 300);

    const state = await providerHealth(h.client, h.taskQueue, 'smtp-primary');
    assert.equal(state?.circuit, 'open');
    assert.equal(state?.transitions[0]?.to, 'open');
    await waitUntil(async () => (await providerHealth(h!.client, h!.taskQueue, 'smtp-primary'))?.subscribers.length === 0, 'finished campaigns unsubscribed');
  });

  it('circuit: open, half-open probe fails (open again, longer cool-down), probe succeeds (closed); the campaign fails back to the primary at a batch boundary', async () => {
    h = await Harness.create({ env, health: health({ cooldownMs: 300, maxCooldownMs: 1_000, failback: 'auto' }) });
    await h.startWorker();
    const id = uniqueId('failback');
    await h.primary.setMode('refuse');
    h.secondary.setAcceptDelay(40);
    const handle = await h.launch(id, audience(400), { batchSize: 20 });
    await waitUntil(async () => (await campaignProgress(h!.client, id)).switches.length === 1, 'the switch to the secondary');
    await pauseCampaign(h.client, id, 'test: wait for the primary to recover');
    const healthId = providerHealthWorkflowId(h.taskQueue, 'smtp-primary');
    // While the primary still refuses, a probe fails and the circuit stays open.
    await waitUntil(async () => {
      const s = await providerHealth(h!.client, h!.taskQueue, 'smtp-primary');
      return s && s.probes.failed >= 1 ? s : undefined;
    }, 'a failed half-open probe');
    await h.primary.heal();
    h.secondary.setAcceptDelay(0);
    const closed = await waitUntil(
      async () => {
        const s = await providerHealth(h!.client, h!.taskQueue, 'smtp-primary');
        return s?.circuit === 'closed' ? s : undefined;
      },
      'the circuit closing after a good probe',
      30_000,
    );
    const path = closed.transitions.map((t) => t.to);
    const firstOpen = path.indexOf('open');
    assert.deepEqual(path.slice(firstOpen, firstOpen + 3), ['open', 'half-open', 'open'], `transitions: ${path.join(' → ')}`);
    assert.deepEqual(path.slice(-2), ['half-open', 'closed']);
    assert.match(closed.transitions.at(-1)!.reason, /^probe succeeded/);
    assert.match(closed.transitions[firstOpen + 2].reason, /^probe failed: smtp-primary: connection refused/);

    await waitUntil(async () => Object.keys((await campaignProgress(h!.client, id)).sharedDown).length === 0, 'the campaign told the primary is back');
    await resumeCampaign(h.client, id);
    const r = await handle.result();
    assert.equal(r.status, 'completed');
    assert.equal(r.switches.length, 2, JSON.stringify(r.switches));
    assert.deepEqual([r.switches[1].from, r.switches[1].to], ['smtp-secondary', 'smtp-primary']);
    assert.match(r.switches[1].reason, /^failback: smtp-primary is healthy again/);
    assert.ok((r.acceptedByProvider['smtp-primary'] ?? 0) > 0, 'the rest went through the primary');
    assertExactlyOnce(h, 400);
    await maybeRecordHistory('shared-health-failback', handle, env.address);
    await maybeRecordHistory('provider-health', h.client.workflow.getHandle(healthId), env.address);
  });

  /** Pause a campaign and wait until it stands between batches. */
  async function pauseBetweenBatches(id: string): Promise<void> {
    await pauseCampaign(h!.client, id, 'test: between steps');
    await waitUntil(async () => {
      const p = await campaignProgress(h!.client, id);
      return p.status === 'paused' && !p.batchInFlight;
    }, `campaign ${id} paused between batches`);
  }

  it('operators: `mailover provider down` moves a campaign off a provider, `provider status` shows it, `provider up` brings it back (failback: auto)', async () => {
    h = await Harness.create({ env });
    await h.startWorker();
    const configPath = join(h.dir, 'providers.yaml');
    const cliEnv = {
      ...writeProviderFile(configPath, h.providerDefs),
      TEMPORAL_ADDRESS: env.address,
      MAILOVER_TASK_QUEUE: h.taskQueue,
      MAILOVER_CONFIG: configPath,
    };
    const id = uniqueId('manual');
    h.primary.setAcceptDelay(5);
    h.secondary.setAcceptDelay(5);
    const handle = await h.launch(id, audience(300), { batchSize: 20 });
    await h.primary.waitFor((s) => s.acceptedCount >= 20, 30_000);
    await pauseBetweenBatches(id);

    const down = await cli(['provider', 'down', 'smtp-primary', '--reason', 'maintenance window'], cliEnv);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /smtp-primary is marked down \(maintenance window\); 1 running campaign\(s\) told to move on/);
    const status = await cli(['provider', 'status'], cliEnv);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /│ smtp-primary\s+│ open \(held down by an operator\)/);
    assert.match(status.stdout, /marked down by an operator: maintenance window/);
    assert.match(status.stdout, /│ smtp-secondary\s+│ closed/);
    await waitUntil(async () => (await campaignProgress(h!.client, id)).sharedDown['smtp-primary'], 'the campaign told');

    await resumeCampaign(h.client, id);
    const onPrimary = h.primary.acceptedCount;
    await h.secondary.waitFor((s) => s.acceptedCount >= 20, 30_000);
    await pauseBetweenBatches(id);
    assert.equal(h.primary.acceptedCount, onPrimary, 'nothing through the primary while it is down');
    const up = await cli(['provider', 'up', 'smtp-primary'], cliEnv);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /smtp-primary is marked up; circuit closed/);
    await waitUntil(async () => Object.keys((await campaignProgress(h!.client, id)).sharedDown).length === 0, 'the campaign told the primary is up');
    await resumeCampaign(h.client, id);
    const r = await handle.result();
    assert.equal(r.status, 'completed');
    assert.deepEqual(
      r.switches.map((s) => [s.from, s.to]),
      [
        ['smtp-primary', 'smtp-secondary'],
        ['smtp-secondary', 'smtp-primary'],
      ],
    );
    assert.match(r.switches[0].reason, /^shared health: marked down by an operator: maintenance window/);
    assert.match(r.switches[1].reason, /^failback/);
    assert.ok(h.primary.acceptedCount > onPrimary, 'back on the primary');
    assertExactlyOnce(h, 300);

    const unknown = await cli(['provider', 'down', 'smtp-nowhere'], cliEnv);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr.trim(), "mailover provider down: unknown provider 'smtp-nowhere' (configured: smtp-primary, smtp-secondary)");
  });

  it('failback manual: after the primary recovers the campaign stays on the secondary until the operator sets the order', async () => {
    h = await Harness.create({ env, health: health({ failback: 'manual' }) });
    await h.startWorker();
    const configPath = join(h.dir, 'providers.yaml');
    const cliEnv = {
      ...writeProviderFile(configPath, h.providerDefs),
      TEMPORAL_ADDRESS: env.address,
      MAILOVER_TASK_QUEUE: h.taskQueue,
      MAILOVER_CONFIG: configPath,
    };
    const id = uniqueId('manual-failback');
    h.primary.setAcceptDelay(5);
    h.secondary.setAcceptDelay(5);
    const handle = await h.launch(id, audience(300), { batchSize: 20 });
    await h.primary.waitFor((s) => s.acceptedCount >= 20, 30_000);
    await pauseBetweenBatches(id);
    assert.equal((await cli(['provider', 'down', 'smtp-primary'], cliEnv)).code, 0);
    await waitUntil(async () => (await campaignProgress(h!.client, id)).sharedDown['smtp-primary'], 'the campaign told');
    await resumeCampaign(h.client, id);
    await h.secondary.waitFor((s) => s.acceptedCount >= 20, 30_000);
    await pauseBetweenBatches(id);
    assert.equal((await cli(['provider', 'up', 'smtp-primary'], cliEnv)).code, 0);
    const stays = await waitUntil(async () => {
      const p = await campaignProgress(h!.client, id);
      return p.providersDown['smtp-primary'] !== undefined ? p : undefined;
    }, 'the campaign keeping the recovered primary out');
    assert.match(stays.providersDown['smtp-primary'], /failback is manual/);
    assert.equal(stays.activeProvider, 'smtp-secondary');

    const onPrimary = h.primary.acceptedCount;
    const onSecondary = h.secondary.acceptedCount;
    await resumeCampaign(h.client, id);
    await h.secondary.waitFor((s) => s.acceptedCount >= onSecondary + 40, 30_000);
    await pauseBetweenBatches(id);
    assert.equal(h.primary.acceptedCount, onPrimary, 'nothing through the primary until told');
    await setCampaignProviders(h.client, id, ['smtp-primary', 'smtp-secondary']);
    await resumeCampaign(h.client, id);
    const r = await handle.result();
    assert.equal(r.status, 'completed');
    assert.ok(h.primary.acceptedCount > onPrimary, 'back on the primary once told');
    assertExactlyOnce(h, 300);
  });

  it('rate limit: two workers (two task queues, one store) sending two campaigns together never exceed the provider plan of 20 messages per second', async () => {
    h = await Harness.create({ env, providerExtras: { 'smtp-primary': { rateLimit: { perSecond: 20 } } } });
    const grants: Array<{ at: number; n: number; worker: string }> = [];
    const logged =
      (worker: string) =>
      (store: Store): Store =>
        new Proxy(store, {
          get(target, prop) {
            const v = Reflect.get(target, prop, target);
            if (prop === 'reserveSends') {
              return async (...args: Parameters<Store['reserveSends']>) => {
                const r = await target.reserveSends(...args);
                if (r.granted) grants.push({ at: args[3], n: r.granted, worker });
                return r;
              };
            }
            return typeof v === 'function' ? v.bind(target) : v;
          },
        });
    await h.startWorker(logged('worker-1'));
    // A second worker, as another deployment would run it: its own store connection, its own
    // provider pools and its own task queue; only the store (and the ESP) is shared.
    const store2 = await openStore({ databaseUrl: '', sqlitePath: join(h.dir, 'mailover.db') });
    const registry2 = new ProviderRegistry(h.providerDefs);
    const taskQueue2 = `${h.taskQueue}-2`;
    const worker2: Worker = await createCampaignWorker({
      connection: env.nativeConnection,
      taskQueue: taskQueue2,
      store: logged('worker-2')(store2),
      providers: registry2,
      compliance: h.compliance,
      workflowBundle: await workflowBundle(),
    });
    const running2 = worker2.run();
    try {
      const one = await h.launch(uniqueId('rate-1'), audience(60, 'one.example.com'), { batchSize: 10 });
      const id2 = uniqueId('rate-2');
      await h.store.createCampaign({
        id: id2,
        from: 'News <news@mailover.test>',
        template: TEMPLATE,
        providers: ['smtp-primary', 'smtp-secondary'],
        batchSize: 10,
        postalAddress: POSTAL_ADDRESS,
      });
      await h.store.importAudience(id2, audience(60, 'two.example.com'));
      const two = await startCampaign(h.client, {
        campaignId: id2,
        providers: ['smtp-primary', 'smtp-secondary'],
        batchSize: 10,
        taskQueue: taskQueue2,
        options: FAST,
      });
      const [r1, r2] = await Promise.all([one.result(), two.result()]);
      assert.equal(r1.accepted + r2.accepted, 120);
      assertDomainExactlyOnce(h, 'one.example.com', 60);
      assertDomainExactlyOnce(h, 'two.example.com', 60);

      // The store's guarantee, checked on every grant both workers got: at most 20 in any second.
      grants.sort((x, y) => x.at - y.at);
      assert.equal(
        grants.reduce((n, g) => n + g.n, 0),
        120,
      );
      for (const g of grants) {
        const inWindow = grants.filter((o) => o.at > g.at - 1_000 && o.at <= g.at).reduce((n, o) => n + o.n, 0);
        assert.ok(inWindow <= 20, `${inWindow} sends granted in the second up to ${g.at}`);
      }
      assert.ok(new Set(grants.map((g) => g.worker)).size === 2, 'both workers sent');
      // What the ESP sees: 120 messages at 20 per second take at least 5 seconds.
      const times = h.primary.messages.map((m) => m.acceptedAt.getTime()).sort((x, y) => x - y);
      assert.ok(times.at(-1)! - times[0] >= 4_000, `120 messages arrived within ${times.at(-1)! - times[0]} ms`);
    } finally {
      worker2.shutdown();
      await running2;
      await registry2.closeAll();
      await store2.close();
    }
  });
});
