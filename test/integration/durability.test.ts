/**
 * Crashes and restarts: the worker runs as a child process and is killed with SIGKILL
 * mid-campaign; the Temporal dev server is stopped and restarted from its database file.
 * Nothing is lost; nothing is sent twice outside the counted in-flight window.
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, releaseHeldRows } from '../../src/client';
import { audience, Harness, uniqueId } from '../support/harness';
import { freePort } from '../support/ports';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

/** Every recipient at the sinks at least once, the ledger settled and agreeing with the sinks. Returns the duplicates. */
async function checkNothingLost(h: Harness, id: string, n: number): Promise<{ duplicates: string[]; recovered: Set<string> }> {
  const got = h.deliveries();
  const rows = await h.store.listRecipients(id);
  assert.equal(rows.length, n);
  const notAccepted = rows.filter((r) => r.state !== 'accepted');
  assert.deepEqual(
    notAccepted.map((r) => `${r.email}:${r.state}`),
    [],
    'every ledger row ends accepted',
  );
  const lost = rows.filter((r) => !got.get(r.email));
  assert.deepEqual(
    lost.map((r) => r.email),
    [],
    'no recipient lost',
  );
  for (const r of rows) {
    const sink = r.provider === h.primary.name ? h.primary : h.secondary;
    assert.ok((sink.countByRecipient().get(r.email) ?? 0) >= 1, `ledger says ${r.email} went through ${r.provider}; that sink has it`);
  }
  const duplicates = [...got].filter(([, c]) => c > 1).map(([a]) => a);
  const recovered = new Set(rows.filter((r) => r.inFlightRecoveries > 0).map((r) => r.email));
  return { duplicates, recovered };
}

describe('durability: worker crashes and Temporal server restarts', function () {
  this.timeout(300_000);

  describe('worker killed with SIGKILL', () => {
    let env: TestWorkflowEnvironment;
    let h: Harness;
    const workers: WorkerProcess[] = [];

    before(async () => {
      env = await startDevServer();
      h = await Harness.create({ env });
    });
    after(async () => {
      await Promise.all(workers.map((w) => w.kill()));
      await h?.close();
      await env?.teardown();
    });

    it('crash: kill -9 the worker 3 times during a 2,000-recipient campaign; nobody is lost and only rows in flight at a kill may repeat', async () => {
      const id = uniqueId('crash');
      const n = 2000;
      h.primary.setAcceptDelay(1);
      const bundlePath = await writeWorkflowBundle(h.dir);
      const startWorker = async () => {
        const w = await WorkerProcess.start({
          address: env.address,
          taskQueue: h.taskQueue,
          dir: h.dir,
          providers: h.providerDefs,
          sqlitePath: join(h.dir, 'mailover.db'),
          bundlePath,
        });
        workers.push(w);
        return w;
      };
      let worker = await startWorker();
      const handle = await h.launch(id, audience(n), { batchSize: 50 });
      // Kill at random points spread over the campaign.
      const killAt = [0.15, 0.45, 0.75].map((f) => Math.floor(n * (f + Math.random() * 0.1)));
      const kills: Array<{ atCount: number; pid: number }> = [];
      for (const at of killAt) {
        await h.primary.waitForCount(at, 120_000);
        await new Promise((r) => setTimeout(r, Math.random() * 30)); // a random moment, not just after an acceptance
        kills.push({ atCount: h.primary.acceptedCount, pid: worker.pid });
        await worker.kill();
        worker = await startWorker();
      }
      const result = await handle.result();
      await worker.stop();
      assert.equal(kills.length, 3);
      assert.equal(result.status, 'completed');
      assert.equal(result.accepted, n);
      const { duplicates, recovered } = await checkNothingLost(h, id, n);
      // SMTP cannot be asked what it accepted: a message accepted in the instant between the
      // relay's 250 and the ledger write is resent (policy `resend`). Those rows are counted.
      for (const d of duplicates) assert.ok(recovered.has(d), `${d} was delivered twice but was not in flight at a crash`);
      assert.ok(recovered.size <= 3 * 4, `at most the sends in flight on the pool (4) per kill are in doubt, got ${recovered.size}`);
      assert.equal(result.inFlightRecovered, recovered.size);
      console.log(
        `      kills at ${kills.map((k) => k.atCount).join(', ')} accepted; in flight at kills: ${recovered.size}; delivered twice: ${duplicates.length}`,
      );
    });
  });

  describe('SMTP sends in flight when the worker dies (in-flight policy)', () => {
    let env: TestWorkflowEnvironment;
    let h: Harness | undefined;
    let workers: WorkerProcess[] = [];

    before(async () => {
      env = await startDevServer();
    });
    afterEach(async () => {
      await Promise.all(workers.map((w) => w.kill()));
      workers = [];
      await h?.close();
      h = undefined;
    });
    after(async () => {
      await env?.teardown();
    });

    /** Kill the worker while 4 messages are handed to the relay and waiting for its 250; restart it. */
    async function killWhileInFlight(policy: 'resend' | 'hold') {
      h = await Harness.create({ env, inFlightPolicy: policy });
      const harness = h;
      const bundlePath = await writeWorkflowBundle(harness.dir);
      const start = async () => {
        const w = await WorkerProcess.start({
          address: env.address,
          taskQueue: harness.taskQueue,
          dir: harness.dir,
          providers: harness.providerDefs,
          sqlitePath: join(harness.dir, 'mailover.db'),
          bundlePath,
          inFlight: policy,
        });
        workers.push(w);
        return w;
      };
      const id = uniqueId(`inflight-${policy}`);
      harness.primary.setAcceptDelay(5_000); // the relay sits on the DATA reply
      const first = await start();
      const handle = await harness.launch(id, audience(40), { batchSize: 20 });
      const inDoubt = await waitUntil(async () => {
        const rows = (await harness.store.listRecipients(id)).filter((r) => r.state === 'sending' && r.dispatchedAt);
        return rows.length >= 4 ? rows.map((r) => r.email) : undefined;
      }, '4 messages handed to the relay');
      await first.kill();
      harness.primary.setAcceptDelay(0);
      await start();
      return { harness, id, handle, inDoubt };
    }

    it('in-flight policy resend: messages handed to the relay when the worker died are sent again; nobody is lost, and they are counted', async () => {
      const { harness, id, handle, inDoubt } = await killWhileInFlight('resend');
      const result = await handle.result();
      assert.equal(inDoubt.length, 4, 'the pool has 4 connections');
      assert.equal(result.accepted, 40);
      assert.equal(result.inFlightRecovered, 4);
      assert.equal(result.heldForReview, 0);
      for (const [addr, n] of harness.deliveries()) assert.equal(n, 1, `${addr} once (the relay never answered the killed worker, so it kept nothing)`);
      assert.equal(harness.deliveries().size, 40);
      const rows = await harness.store.listRecipients(id);
      assert.deepEqual(
        rows
          .filter((r) => r.inFlightRecoveries > 0)
          .map((r) => r.email)
          .sort(),
        [...inDoubt].sort(),
      );
    });

    it('in-flight policy hold: messages handed to the relay when the worker died are held for review, never sent twice; the campaign holds until they are released, then sends them once', async () => {
      const { harness, id, handle, inDoubt } = await killWhileInFlight('hold');
      const holding = await waitUntil(async () => {
        const p = await campaignProgress(harness.client, id);
        return p.status === 'holding' && p.hold?.kind === 'review' ? p : undefined;
      }, 'the campaign to hold for review');
      assert.equal(holding.heldForReview, 4);
      assert.equal(holding.accepted, 36);
      assert.equal(holding.remaining, 0);
      const got = harness.deliveries();
      for (const addr of inDoubt) assert.equal(got.get(addr) ?? 0, 0, `${addr} is held, not resent`);
      assert.equal(got.size, 36);
      assert.ok([...got.values()].every((n) => n === 1));
      const held = await harness.store.listHeld(id);
      assert.deepEqual(held.map((r) => r.email).sort(), [...inDoubt].sort());
      assert.ok(held.every((r) => r.provider === 'smtp-primary' && /in-flight policy is hold/.test(r.reason)));
      // The relay's log shows it never took them: resend.
      const released = await releaseHeldRows(harness.client, id, { action: 'resend', by: 'ops@test' });
      assert.equal(released.released, 4);
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.equal(result.accepted, 40);
      assert.equal(result.heldForReview, 0);
      assert.ok([...harness.deliveries().values()].every((n) => n === 1));
      assert.equal(harness.deliveries().size, 40);
    });
  });

  describe('Temporal dev server stopped and restarted', () => {
    let env: TestWorkflowEnvironment | undefined;
    let h: Harness;
    let worker: WorkerProcess | undefined;
    let temporalDir: string | undefined;

    after(async () => {
      await worker?.kill();
      await h?.close();
      await env?.teardown();
      if (temporalDir) rmSync(temporalDir, { recursive: true, force: true });
    });

    it('server restart: stop the dev server mid-campaign and start it again from its database; the campaign completes with nothing lost', async () => {
      const port = await freePort();
      temporalDir = mkdtempSync(join(tmpdir(), 'mailover-temporal-'));
      const dbFilename = join(temporalDir, 'temporal.db');
      const first = await startDevServer({ port, dbFilename });
      env = first;
      h = await Harness.create({ env: first });
      const bundlePath = await writeWorkflowBundle(h.dir);
      worker = await WorkerProcess.start({
        address: first.address,
        taskQueue: h.taskQueue,
        dir: h.dir,
        providers: h.providerDefs,
        sqlitePath: join(h.dir, 'mailover.db'),
        bundlePath,
      });
      const id = uniqueId('restart');
      const n = 1000;
      h.primary.setAcceptDelay(2);
      await h.launch(id, audience(n), { batchSize: 50 });
      await h.primary.waitForCount(300, 120_000);
      await first.teardown();
      env = undefined;
      const atStop = h.primary.acceptedCount;
      env = await startDevServer({ port, dbFilename });
      const result = await env.client.workflow.getHandle(id).result();
      assert.equal(result.status, 'completed');
      assert.equal(result.accepted, n);
      assert.ok(atStop < n, 'the server was stopped mid-campaign');
      const { duplicates } = await checkNothingLost(h, id, n);
      assert.deepEqual(duplicates, [], 'a server restart alone never causes a resend');
      const p = await campaignProgress(env.client, id);
      assert.equal(p.status, 'completed');
    });
  });
});
