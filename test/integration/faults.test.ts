/**
 * The fault suite: real campaigns under crashes, restarts, database and network faults and
 * misbehaving providers. Each scenario ends in a row of the results table: recipients,
 * accepted, rejected, suppressed, duplicates, lost, SMTP sends found in flight after a crash
 * (shown apart: the one window SMTP cannot close), time. Every scenario must show 0 lost and
 * 0 duplicates outside that window.
 *
 * `npm test` runs a representative subset; `npm run test:faults` runs them all at full size
 * (MAILOVER_FAULTS=full): 10 SIGKILLs during 10,000 recipients, two server restarts, ...
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Client } from 'pg';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, resumeCampaign } from '../../src/client';
import { table } from '../../src/progress';
import type { CampaignOptions } from '../../workflows/campaign-api';
import { audience, Harness, ONE_AT_A_TIME, uniqueId, type HarnessOptions } from '../support/harness';
import { freePort } from '../support/ports';
import { createScratchDatabase } from '../support/postgres';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

const FULL = process.env.MAILOVER_FAULTS === 'full';
/** Scenarios that run in `npm test`; the rest only in `npm run test:faults`. */
const quick = (title: string) => title;
const fullOnly = FULL ? it : it.skip;

interface Row {
  scenario: string;
  recipients: number;
  accepted: number;
  rejected: number;
  suppressed: number;
  duplicates: number;
  lost: number;
  inFlight: string;
  seconds: string;
}

const rows: Row[] = [];

/** Count outcomes from the ledger and the sinks; assert 0 lost and 0 duplicates outside the SMTP in-flight window. */
async function outcome(h: Harness, id: string, scenario: string, started: number): Promise<Row> {
  const ledger = await h.store.listRecipients(id);
  const got = h.deliveries();
  const recovered = new Set(ledger.filter((r) => r.inFlightRecoveries > 0).map((r) => r.email));
  const lost = ledger.filter((r) => !['accepted', 'rejected', 'suppressed'].includes(r.state) || (r.state === 'accepted' && !got.get(r.email)));
  const repeated = [...got].filter(([, n]) => n > 1).map(([a]) => a);
  const duplicates = repeated.filter((a) => !recovered.has(a));
  const row: Row = {
    scenario,
    recipients: ledger.length,
    accepted: ledger.filter((r) => r.state === 'accepted').length,
    rejected: ledger.filter((r) => r.state === 'rejected').length,
    suppressed: ledger.filter((r) => r.state === 'suppressed').length,
    duplicates: duplicates.length,
    lost: lost.length,
    inFlight: recovered.size ? `${recovered.size} (${repeated.length - duplicates.length} resent)` : '0',
    seconds: ((Date.now() - started) / 1000).toFixed(1),
  };
  rows.push(row);
  assert.deepEqual(
    lost.slice(0, 5).map((r) => `${r.email}:${r.state}`),
    [],
    `${scenario}: nobody lost`,
  );
  assert.deepEqual(duplicates.slice(0, 5), [], `${scenario}: no duplicates outside the SMTP in-flight window`);
  return row;
}

describe(`fault suite (${FULL ? 'full' : 'representative subset; npm run test:faults for all'})`, function () {
  this.timeout(FULL ? 1_800_000 : 300_000);
  let env: TestWorkflowEnvironment;
  const env_ = () => env;

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
    if (rows.length) {
      console.log(
        `\n${table([['scenario', 'recipients', 'accepted', 'rejected', 'suppressed', 'duplicates', 'lost', 'SMTP in flight at a crash', 'time (s)'], ...rows.map((r) => [r.scenario, String(r.recipients), String(r.accepted), String(r.rejected), String(r.suppressed), String(r.duplicates), String(r.lost), r.inFlight, r.seconds])])}\n`,
      );
    }
  });

  async function withHarness<T>(opts: Omit<HarnessOptions, 'env'>, fn: (h: Harness) => Promise<T>): Promise<T> {
    const h = await Harness.create({ env, ...opts });
    try {
      return await fn(h);
    } finally {
      await h.close();
    }
  }

  /** Runs a campaign on an in-process worker; `during` applies faults while it runs. */
  async function campaign(
    h: Harness,
    scenario: string,
    n: number,
    opts: { providers?: string[]; batchSize?: number; options?: CampaignOptions },
    during: (id: string) => Promise<void> = async () => undefined,
  ) {
    const started = Date.now();
    const id = uniqueId('fault');
    const handle = await h.launch(id, audience(n), opts);
    await during(id);
    const result = await handle.result();
    return { result, row: await outcome(h, id, scenario, started) };
  }

  it(quick('faults: mixed 4xx/5xx from both providers: rejections counted, everything else delivered once'), async () => {
    await withHarness({ mailgun: true }, async (h) => {
      await h.startWorker();
      const mg = h.mailgun!;
      mg.failNext(3, 503);
      mg.on('message', () => {
        if (mg.acceptedCount === 300) mg.setAuthFailure(true); // 401 from here: the rest moves to SMTP
      });
      h.primary.rejectRecipients(['user450@example.com', 'user451@example.com'], 550);
      h.primary.rejectRecipients(['user520@example.com'], 554, '5.7.1 message refused');
      h.primary.failNextMessages(5, 451);
      const { result, row } = await campaign(h, 'mixed 4xx/5xx (HTTP 503, 401; SMTP 451, 550, 554)', 600, {
        providers: ['mailgun', 'smtp-primary'],
        batchSize: 100,
        // One batch at a time: the 503s are the first batch's retries, answered before the 401 starts. With
        // several batches in flight they are three batches' in-doubt calls, whose look-ups then meet the 401:
        // those recipients are held for review (never sent twice), a scenario of its own.
        options: ONE_AT_A_TIME,
      });
      assert.equal(row.rejected, 3);
      assert.equal(result.switches.length, 1);
      assert.deepEqual(result.acceptedByProvider, { mailgun: 300, 'smtp-primary': 297 });
    });
  });

  it(quick('faults: a 429 storm with Retry-After is ridden out on the same provider'), async () => {
    await withHarness({ mailgun: true }, async (h) => {
      await h.startWorker();
      h.mailgun!.failNext(6, 429, { retryAfterSeconds: 1 });
      const { result } = await campaign(h, '429 storm (6 × Retry-After: 1)', 500, {
        providers: ['mailgun', 'smtp-primary'],
        batchSize: 100,
        options: { sendMaxAttempts: 10 },
      });
      assert.equal(result.switches.length, 0);
      assert.deepEqual(result.acceptedByProvider, { mailgun: 500 });
    });
  });

  it(quick('faults: a flapping primary (down, up, down) and a secondary that goes down too: holds, resumes, completes once'), async () => {
    await withHarness({}, async (h) => {
      await h.startWorker();
      h.primary.setAcceptDelay(2);
      h.secondary.setAcceptDelay(2);
      const { result } = await campaign(h, 'flapping provider (down, up, down)', 800, { batchSize: 50 }, async (id) => {
        await h.primary.waitForCount(150, 60_000);
        await h.primary.setMode('refuse'); // down: the campaign moves to the secondary
        await h.secondary.waitForCount(150, 60_000);
        await h.primary.heal(); // up again
        await h.secondary.setMode('refuse'); // now the secondary goes: nothing left for this campaign → hold
        await waitUntil(async () => (await campaignProgress(h.client, id)).status === 'holding', 'the campaign to hold');
        await resumeCampaign(h.client, id); // retry the order from the top: the primary is back
        await h.primary.waitForCount(300, 60_000);
        await h.primary.setMode('refuse'); // down again
        await h.secondary.heal();
      });
      assert.ok(result.switches.length >= 3, `switches: ${result.switches.map((s) => `${s.from}→${s.to ?? 'none'}`).join(', ')}`);
    });
  });

  it(quick('faults: both providers down, then one recovers: the campaign holds and completes when resumed'), async () => {
    await withHarness({}, async (h) => {
      await h.startWorker();
      await h.primary.setMode('refuse');
      await h.secondary.setMode('refuse');
      const { result } = await campaign(h, 'both providers down, then one recovers', 300, { batchSize: 50 }, async (id) => {
        await waitUntil(async () => (await campaignProgress(h.client, id)).status === 'holding', 'the campaign to hold');
        await h.secondary.heal();
        await resumeCampaign(h.client, id);
      });
      assert.equal(result.accepted, 300);
    });
  });

  for (const [name, fault] of [
    ['added latency (10 ms each way)', { kind: 'latency', ms: 10 }],
    ['connection resets mid-message', { kind: 'reset', afterBytes: 2_000 }],
    ['slow reads (2 KB/s from the ESP)', { kind: 'slow', bytesPerSecond: 2_048 }],
    ['half-open connections (never answered)', { kind: 'half-open' }],
  ] as const) {
    it(quick(`faults: network between the worker and the SMTP relay: ${name}; nothing lost, nothing twice`), async () => {
      await withHarness({ proxyPrimary: true }, async (h) => {
        await h.startWorker();
        h.proxy!.setFault(fault);
        const { result } = await campaign(h, `network: ${name}`, 120, { batchSize: 40 });
        assert.equal(result.accepted, 120);
        if (fault.kind === 'half-open')
          assert.equal(result.switches[0]?.to, 'smtp-secondary', 'an ESP that never answers counts as down after its retry budget');
      });
    });
  }

  it(quick('faults: PostgreSQL connections dropped mid-campaign (pg_terminate_backend): the pool reconnects; nothing lost, nothing twice'), async () => {
    const db = await createScratchDatabase();
    try {
      await withHarness({ database: db.url }, async (h) => {
        await h.startWorker();
        h.primary.setAcceptDelay(2);
        await campaign(h, 'PostgreSQL connections dropped mid-campaign', 600, { batchSize: 50 }, async () => {
          for (const at of [100, 220, 340, 460]) {
            await h.primary.waitForCount(at, 60_000);
            const admin = new Client({ connectionString: db.url });
            await admin.connect();
            const r = await admin.query(
              'select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
            );
            await admin.end();
            assert.ok(r.rowCount && r.rowCount > 0, 'the worker’s connections were terminated');
          }
        });
      });
    } finally {
      await db.drop();
    }
  });

  for (const dialect of ['sqlite', 'postgres'] as const) {
    it(quick(`faults: a worker killed inside a ledger transaction (${dialect}): the transaction rolls back; nothing lost, nothing twice`), async () => {
      const db = dialect === 'postgres' ? await createScratchDatabase() : undefined;
      try {
        await withHarness({ database: db?.url ?? 'sqlite' }, async (h) => {
          const bundlePath = await writeWorkflowBundle(h.dir);
          const where = db ? { databaseUrl: db.url } : { sqlitePath: join(h.dir, 'mailover.db') };
          const start = (env?: NodeJS.ProcessEnv) =>
            WorkerProcess.start({ address: env_().address, taskQueue: h.taskQueue, dir: h.dir, providers: h.providerDefs, bundlePath, env, ...where });
          // It dies inside its 4th ledger transaction (a batch claim, or a grouped settle of acceptances).
          const doomed = await start({ MAILOVER_FAULT_KILL_IN_TRANSACTION: '4' });
          const started = Date.now();
          const id = uniqueId(`fault-tx-${dialect}`);
          const handle = await h.launch(id, audience(400), { batchSize: 50 });
          const code = await doomed.exited();
          assert.equal(code, null, 'killed by its own SIGKILL inside the transaction');
          const healthy = await start();
          try {
            await handle.result();
            await outcome(h, id, `worker killed inside a ledger transaction (${dialect})`, started);
          } finally {
            await healthy.kill();
          }
        });
      } finally {
        await db?.drop();
      }
    });
  }

  fullOnly('faults: worker killed with SIGKILL at 10 random moments during a 10,000-recipient campaign', async () => {
    await withHarness({}, async (h) => {
      const bundlePath = await writeWorkflowBundle(h.dir);
      const workers: WorkerProcess[] = [];
      const start = async () => {
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
      try {
        const n = 10_000;
        let worker = await start();
        const kills = Array.from({ length: 10 }, () => Math.floor(n * (0.05 + Math.random() * 0.9))).sort((a, b) => a - b);
        await campaign(h, 'worker SIGKILL × 10 at random moments', n, { batchSize: 100 }, async () => {
          for (const at of kills) {
            await h.primary.waitForCount(at, 300_000);
            await new Promise((r) => setTimeout(r, Math.random() * 50));
            await worker.kill();
            worker = await start();
          }
        });
      } finally {
        await Promise.all(workers.map((w) => w.kill()));
      }
    });
  });

  fullOnly('faults: the Temporal dev server killed and restarted twice mid-campaign', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'mailover-faults-'));
    let server = await startDevServer({ port, dbFilename: join(dir, 'temporal.db') });
    const h = await Harness.create({ env: server });
    const bundlePath = await writeWorkflowBundle(h.dir);
    const worker = await WorkerProcess.start({
      address: server.address,
      taskQueue: h.taskQueue,
      dir: h.dir,
      providers: h.providerDefs,
      sqlitePath: join(h.dir, 'mailover.db'),
      bundlePath,
    });
    try {
      const n = 3_000;
      h.primary.setAcceptDelay(2);
      const started = Date.now();
      const id = uniqueId('fault-restart');
      await h.launch(id, audience(n), { batchSize: 100 });
      for (const at of [800, 1_800]) {
        await h.primary.waitForCount(at, 300_000);
        await server.teardown();
        server = await startDevServer({ port, dbFilename: join(dir, 'temporal.db') });
      }
      await server.client.workflow.getHandle(id).result();
      await outcome(h, id, 'Temporal dev server killed and restarted × 2', started);
    } finally {
      await worker.kill();
      await h.close();
      await server.teardown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
