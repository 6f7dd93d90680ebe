/**
 * The same engine with the ledger in PostgreSQL (DATABASE_URL): a failover, and a worker
 * killed with SIGKILL, end to end.
 */
import { strict as assert } from 'assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { audience, Harness, uniqueId } from '../support/harness';
import { createScratchDatabase, type ScratchDatabase } from '../support/postgres';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { WorkerProcess } from '../support/worker-process';

describe('campaign engine with the ledger in PostgreSQL', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let db: ScratchDatabase;
  let h: Harness;
  const workers: WorkerProcess[] = [];

  before(async () => {
    env = await startDevServer();
    db = await createScratchDatabase();
  });
  after(async () => {
    await env?.teardown();
    await db?.drop();
  });
  beforeEach(async () => {
    h = await Harness.create({ env, database: db.url });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await h?.close();
  });

  it('postgres: failover mid-campaign delivers each recipient exactly once and the ledger records both providers', async () => {
    await h.startWorker();
    const id = uniqueId('pg-failover');
    h.primary.failAfter(130, 'refuse');
    const result = await (await h.launch(id, audience(400))).result();
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 130, 'smtp-secondary': 270 });
    assert.equal(result.switches.length, 1);
    const got = h.deliveries();
    assert.equal(got.size, 400);
    assert.ok([...got.values()].every((n) => n === 1));
    const rows = await h.store.listRecipients(id);
    assert.equal(rows.filter((r) => r.state === 'accepted' && r.provider === 'smtp-secondary').length, 270);
  });

  it('postgres: a worker killed with SIGKILL mid-campaign is replaced; nobody is lost and only counted in-flight rows may repeat', async () => {
    const bundlePath = await writeWorkflowBundle(h.dir);
    const start = async () => {
      const w = await WorkerProcess.start({
        address: env.address,
        taskQueue: h.taskQueue,
        dir: h.dir,
        providers: h.providerDefs,
        databaseUrl: db.url,
        bundlePath,
      });
      workers.push(w);
      return w;
    };
    const n = 1000;
    h.primary.setAcceptDelay(1);
    const first = await start();
    const id = uniqueId('pg-crash');
    const handle = await h.launch(id, audience(n));
    await h.primary.waitForCount(Math.floor(n * (0.3 + Math.random() * 0.3)), 120_000);
    await first.kill();
    await start();
    const result = await handle.result();
    assert.equal(result.accepted, n);
    const rows = await h.store.listRecipients(id);
    const got = h.deliveries();
    assert.deepEqual(
      rows.filter((r) => r.state !== 'accepted' || !got.get(r.email)).map((r) => r.email),
      [],
      'nobody lost',
    );
    const recovered = new Set(rows.filter((r) => r.inFlightRecoveries > 0).map((r) => r.email));
    const dupes = [...got].filter(([, c]) => c > 1).map(([a]) => a);
    for (const d of dupes) assert.ok(recovered.has(d), `${d} repeated without being in flight at the kill`);
    assert.ok(recovered.size <= 4, `at most the pool's 4 sends are in doubt, got ${recovered.size}`);
  });
});
