/**
 * The window: several batches of one campaign in flight at once (`batchesInFlight`), on a real
 * Temporal dev server with real SMTP sinks. Pause, cancel, failover and a worker SIGKILL with
 * batches in flight: every recipient exactly once (or, after a kill, only rows in flight repeat).
 */
import { strict as assert } from 'assert';
import { join } from 'path';
import type { temporal } from '@temporalio/proto';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, cancelCampaign, pauseCampaign, resumeCampaign } from '../../src/client';
import { DEFAULT_BATCHES_IN_FLIGHT } from '../../workflows/campaign-api';
import { providerHealthWorkflowId } from '../../workflows/provider-health-api';
import { assertExactlyOnce, audience, Harness, uniqueId } from '../support/harness';
import { maybeRecordHistory } from '../support/histories';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** Every event of every run of the workflow (continue-as-new runs followed). */
async function allEvents(h: Harness, handle: WorkflowHandle): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  let runId: string | undefined = (await h.client.workflow.getHandle(handle.workflowId).describe()).runId;
  // Walk back from the latest run to the first through each run's first event.
  const runs: string[] = [];
  while (runId) {
    runs.unshift(runId);
    const history: temporal.api.history.v1.IHistory = await h.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    const previous: string | null | undefined = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    runId = previous || undefined;
  }
  for (const id of runs) events.push(...((await h.client.workflow.getHandle(handle.workflowId, id).fetchHistory()).events ?? []));
  return events;
}

/** The most sendBatch activities scheduled and not yet closed at any point of the history. */
function mostInFlight(events: HistoryEvent[]): number {
  let open = 0;
  let most = 0;
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendBatch') most = Math.max(most, ++open);
    if (e.activityTaskCompletedEventAttributes || e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes) open = Math.max(0, open - 1);
  }
  return most;
}

const sendBatches = (events: HistoryEvent[]) => events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendBatch').length;

describe('the window: several batches in flight per campaign', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });

  describe('one worker in the test process', () => {
    beforeEach(async () => {
      h = await Harness.create({ env });
      await h.startWorker();
    });
    afterEach(async () => {
      await h?.close();
    });

    it('window: 2,000 recipients with the default 4 batches in flight are each accepted once; health hears of the batches in aggregate', async () => {
      const id = uniqueId('window');
      h.primary.setAcceptDelay(2);
      // No batchesInFlight: the client writes the default into the workflow input.
      const handle = await h.launch(id, audience(2000), { batchSize: 50 });
      const seen = await waitUntil(async () => {
        const p = await campaignProgress(h.client, id);
        return p.batchesInFlight > 1 ? p : undefined;
      }, 'more than one batch in flight');
      assert.equal(seen.window, DEFAULT_BATCHES_IN_FLIGHT);
      assert.equal(DEFAULT_BATCHES_IN_FLIGHT, 4);
      const description = await handle.describe();
      assert.match((await description.staticSummary()) ?? '', /up to 4 in flight/, 'the Web UI summary names the window');
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.equal(result.accepted, 2000);
      assert.equal(result.cursor, 2000);
      assert.deepEqual(result.settledAbove, []);
      assertExactlyOnce(h, 2000);
      const events = await allEvents(h, handle);
      assert.equal(sendBatches(events), 40, 'one sendBatch per 50 recipients, none repeated');
      assert.equal(mostInFlight(events), 4, 'up to 4 batches were in flight at once, never more');
      // Shared health: successes in aggregate (about one report per 10 batches), not one signal per batch.
      const told = events.filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName === 'reportOutcome').length;
      assert.ok(told >= 1 && told <= 8, `40 batches told health in ${told} reports`);
      const health = await h.client.workflow.getHandle(providerHealthWorkflowId(h.taskQueue, h.primary.name)).query<{ recent: { ok: number } }>('healthState');
      assert.ok(health.recent.ok >= 20, `the health window holds the campaign's successes (${health.recent.ok})`);
      await maybeRecordHistory('window', handle, env.address);
    });

    it('window: a pause with batches in flight lets them finish, starts none until resumed, then completes exactly once', async () => {
      const id = uniqueId('window-pause');
      h.primary.setAcceptDelay(10);
      const handle = await h.launch(id, audience(600), { batchSize: 20, options: { batchesInFlight: 4 } });
      await waitUntil(async () => ((await campaignProgress(h.client, id)).batchesInFlight >= 2 ? true : undefined), 'batches in flight');
      await pauseCampaign(h.client, id, 'checking the copy');
      const paused = await waitUntil(async () => {
        const p = await campaignProgress(h.client, id);
        return p.paused && !p.batchInFlight ? p : undefined;
      }, 'the batches in flight to finish');
      assert.equal(paused.status, 'paused');
      const sentAtPause = h.primary.acceptedCount;
      assert.ok(sentAtPause < 600, `paused mid-campaign (${sentAtPause} sent)`);
      // The batches in flight at the pause finished whole: what is sent is what the progress says is settled.
      assert.equal(sentAtPause, paused.accepted);
      const events = (await handle.fetchHistory()).events ?? [];
      const pauseAt = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'pause');
      assert.equal(sendBatches(events.slice(pauseAt)), 0, 'no batch is started after the pause');
      await resumeCampaign(h.client, id);
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assertExactlyOnce(h, 600);
    });

    it('window: cancel with batches in flight lets them finish and starts no other; the rest stays unsent', async () => {
      const id = uniqueId('window-cancel');
      h.primary.setAcceptDelay(10);
      const handle = await h.launch(id, audience(1000), { batchSize: 20, options: { batchesInFlight: 4 } });
      await waitUntil(async () => ((await campaignProgress(h.client, id)).batchesInFlight >= 2 ? true : undefined), 'batches in flight');
      await cancelCampaign(h.client, id);
      const result = await handle.result();
      assert.equal(result.status, 'cancelled');
      assert.ok(result.accepted < 1000, `cancelled mid-campaign (${result.accepted} accepted)`);
      const got = h.deliveries();
      assert.equal(got.size, result.accepted, 'the sink has what the campaign counts, no more');
      assert.ok(
        [...got.values()].every((n) => n === 1),
        'nobody twice',
      );
      const rows = await h.store.listRecipients(id);
      assert.equal(rows.filter((r) => r.state === 'accepted').length, result.accepted);
      assert.equal(rows.filter((r) => r.state === 'pending').length, 1000 - result.accepted, 'the rest stays pending, none left in flight');
    });

    it('window: the primary refusing connections with 4 batches in flight makes one switch; the failed and unstarted batches go to the secondary, each recipient once', async () => {
      const id = uniqueId('window-failover');
      h.primary.setAcceptDelay(2);
      h.primary.failAfter(230, 'refuse');
      const handle = await h.launch(id, audience(1000), { batchSize: 25, options: { batchesInFlight: 4 } });
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assertExactlyOnce(h, 1000);
      assert.equal(result.switches.length, 1, `one switch, not one per batch in flight: ${JSON.stringify(result.switches)}`);
      const sw = result.switches[0];
      assert.deepEqual([sw.from, sw.to], ['smtp-primary', 'smtp-secondary']);
      assert.match(sw.reason, /connection refused/i);
      assert.equal(h.primary.acceptedCount, 230);
      assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 230, 'smtp-secondary': 770 });
      await maybeRecordHistory('window-failover', handle, env.address);
    });

    it('window: continue-as-new waits for the window to drain and carries the cursor; every recipient once', async () => {
      const id = uniqueId('window-can');
      const handle = await h.launch(id, audience(500), { batchSize: 10, options: { batchesInFlight: 4, batchesPerRun: 12 } });
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.equal(result.accepted, 500);
      assert.ok(result.runs >= 3, `50 batches at about 12 per run span several runs (${result.runs})`);
      assertExactlyOnce(h, 500);
      const events = await allEvents(h, handle);
      assert.equal(sendBatches(events), 50, 'no batch is lost or sent again across the runs');
    });
  });

  describe('two worker processes on one task queue', () => {
    const workers: WorkerProcess[] = [];
    before(async () => {
      h = await Harness.create({ env });
    });
    after(async () => {
      await Promise.all(workers.map((w) => w.kill()));
      await h?.close();
    });

    it('window: batches spread over both workers; one killed with SIGKILL mid-campaign, the other finishes; nobody lost, only rows in flight at the kill may repeat', async () => {
      const id = uniqueId('window-kill');
      const n = 2000;
      h.primary.setAcceptDelay(2);
      const bundlePath = await writeWorkflowBundle(h.dir);
      const start = () =>
        WorkerProcess.start({
          address: env.address,
          taskQueue: h.taskQueue,
          dir: h.dir,
          providers: h.providerDefs,
          sqlitePath: join(h.dir, 'mailover.db'),
          bundlePath,
        });
      workers.push(await start(), await start());
      const handle = await h.launch(id, audience(n), { batchSize: 25, options: { batchesInFlight: 6, heartbeatTimeoutMs: 3000 } });
      await h.primary.waitForCount(n / 3, 120_000);
      await workers[0].kill();
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.equal(result.accepted, n);
      const got = h.deliveries();
      const rows = await h.store.listRecipients(id);
      assert.equal(rows.filter((r) => r.state === 'accepted').length, n, 'every ledger row ends accepted');
      assert.equal(got.size, n, 'nobody lost');
      const recovered = new Set(rows.filter((r) => r.inFlightRecoveries > 0).map((r) => r.email));
      const twice = [...got].filter(([, c]) => c > 1).map(([a]) => a);
      for (const a of twice) assert.ok(recovered.has(a), `${a} was delivered twice but was not in flight at the kill`);
      const events = await allEvents(h, handle);
      const byWorker = new Map<string, number>();
      for (const e of events) {
        const who = e.activityTaskStartedEventAttributes?.identity;
        if (who) byWorker.set(who, (byWorker.get(who) ?? 0) + 1);
      }
      assert.ok(byWorker.size >= 2, `batches ran on both workers: ${JSON.stringify([...byWorker])}`);
      console.log(`      batches by worker: ${[...byWorker.values()].join(' / ')}; in flight at the kill: ${recovered.size}; delivered twice: ${twice.length}`);
    });
  });
});
