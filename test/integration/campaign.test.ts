/**
 * Campaign behaviour end to end on a real Temporal dev server, real SMTP sinks over TCP
 * and a real SQLite store: exactly-once delivery, failover, pause/resume, suppression.
 */
import { strict as assert } from 'assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  cancelCampaign,
  campaignProgress,
  pauseCampaign,
  resumeCampaign,
  setCampaignProviders,
  startCampaign,
  CampaignAlreadyStartedError,
} from '../../src/client';
import { ActiveProviderKey, AcceptedCountKey, CampaignStatusKey } from '../../workflows/search-attributes';
import { assertExactlyOnce, audience, Harness, uniqueId } from '../support/harness';
import { maybeRecordHistory } from '../support/histories';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';

describe('campaign engine (Temporal dev server, SMTP sinks, SQLite ledger)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });
  beforeEach(async () => {
    h = await Harness.create({ env });
    await h.startWorker();
  });
  afterEach(async () => {
    await h?.close();
  });

  it('campaign: 500 recipients are each accepted exactly once and the ledger agrees', async () => {
    const id = uniqueId('basic');
    const handle = await h.launch(id, audience(500));
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 500);
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 500 });
    assertExactlyOnce(h, 500);
    const rows = await h.store.listRecipients(id);
    assert.ok(rows.every((r) => r.state === 'accepted' && r.provider === 'smtp-primary' && r.providerMessageId));
    const sample = h.primary.messages.find((m) => m.to.includes('user7@example.com'));
    assert.equal(sample?.subject, 'Hello User7');
    assert.match(sample?.html ?? '', /<p>Hi User7<\/p>/);
  });

  it('failover: primary refuses connections mid-campaign; the rest goes through the secondary, each recipient exactly once', async () => {
    const id = uniqueId('failover');
    h.primary.failAfter(180, 'refuse');
    const handle = await h.launch(id, audience(600));
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assertExactlyOnce(h, 600);
    const onPrimary = h.primary.acceptedCount;
    assert.equal(onPrimary, 180);
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 180, 'smtp-secondary': 420 });
    assert.equal(result.switches.length, 1);
    const sw = result.switches[0];
    assert.equal(sw.from, 'smtp-primary');
    assert.equal(sw.to, 'smtp-secondary');
    assert.match(sw.reason, /connection refused/i);
    // With several batches in flight the switch is recorded at the first one that failed: a batch start.
    assert.equal((sw.atSeq - 1) % 50, 0, `the switch is recorded at the start of the batch that failed (${sw.atSeq})`);
    // The switch shows in the progress query and the ActiveProvider search attribute.
    const progress = await campaignProgress(h.client, id);
    assert.equal(progress.activeProvider, 'smtp-secondary');
    assert.equal(progress.switches.length, 1);
    const desc = await handle.describe();
    assert.equal(desc.typedSearchAttributes.get(ActiveProviderKey), 'smtp-secondary');
    assert.equal(desc.typedSearchAttributes.get(CampaignStatusKey), 'completed');
    assert.equal(desc.typedSearchAttributes.get(AcceptedCountKey), 600);
    const ledger = await h.store.listRecipients(id);
    assert.equal(ledger.filter((r) => r.provider === 'smtp-secondary' && r.state === 'accepted').length, 420);
    await maybeRecordHistory('failover', handle, env.address);
  });

  it('pause and resume: nothing is sent while paused; the campaign resumes and completes exactly once', async () => {
    const id = uniqueId('pause');
    h.primary.setAcceptDelay(10); // 400 messages take ~1 s on 5 connections: the signal lands mid-campaign
    const handle = await h.launch(id, audience(400), { batchSize: 20 });
    await h.primary.waitForCount(60, 30_000);
    await pauseCampaign(h.client, id, 'checking the copy');
    const paused = await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.paused && !p.batchInFlight ? p : undefined;
    }, 'the campaign to be paused between batches');
    assert.equal(paused.status, 'paused');
    assert.equal(paused.pauseReason, 'checking the copy');
    const sentAtPause = h.primary.acceptedCount;
    assert.ok(sentAtPause < 400);
    // Give a running campaign every chance to send: 10 progress round trips over ~0.5 s.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 50));
      assert.equal((await campaignProgress(h.client, id)).status, 'paused');
    }
    assert.equal(h.primary.acceptedCount, sentAtPause, 'no message may be sent while paused');
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const pauseIdx = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'pause');
    assert.ok(pauseIdx > 0);
    const pendingBatchAtPause =
      events.slice(0, pauseIdx).filter((e) => e.activityTaskScheduledEventAttributes).length -
      events.slice(0, pauseIdx).filter((e) => e.activityTaskCompletedEventAttributes || e.activityTaskFailedEventAttributes).length;
    const scheduledAfterPause = events.slice(pauseIdx).filter((e) => e.activityTaskScheduledEventAttributes).length;
    assert.equal(scheduledAfterPause, 0, `no batch may be scheduled after the pause (batch in flight at pause: ${pendingBatchAtPause})`);
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assertExactlyOnce(h, 400);
    await maybeRecordHistory('pause-resume', handle, env.address);
  });

  it('continue-as-new: a campaign spanning several runs keeps its counters and delivers exactly once', async () => {
    const id = uniqueId('can');
    const handle = await h.launch(id, audience(250), { batchSize: 25, options: { batchesPerRun: 3 } });
    const firstRunId = handle.firstExecutionRunId;
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 250);
    assert.equal(result.runs, 4, '10 batches at 3 per run = 4 runs');
    assertExactlyOnce(h, 250);
    await maybeRecordHistory('continue-as-new', handle, env.address, firstRunId);
  });

  it('suppression: a suppressed address is never sent, on the primary or after a failover to the secondary', async () => {
    const id = uniqueId('suppress');
    await h.store.addSuppression('user3@example.com', 'unsubscribed', 'test');
    await h.store.addSuppression('user250@example.com', 'complaint', 'test');
    h.primary.failAfter(100, 'refuse');
    const handle = await h.launch(id, audience(300));
    const result = await handle.result();
    assert.equal(result.suppressed, 2);
    assert.equal(result.accepted, 298);
    assert.equal(result.switches.length, 1);
    assertExactlyOnce(h, 300, ['user3@example.com', 'user250@example.com']);
    const rows = await h.store.listRecipients(id);
    assert.deepEqual(
      rows
        .filter((r) => r.state === 'suppressed')
        .map((r) => r.email)
        .sort(),
      ['user250@example.com', 'user3@example.com'],
    );
  });

  it('cancel: a cancelled campaign stops after the batch in flight; nothing is sent afterwards and unsent rows stay pending', async () => {
    const id = uniqueId('cancel');
    h.primary.setAcceptDelay(10); // 400 messages take ~1 s on 5 connections: the signal lands mid-campaign
    const handle = await h.launch(id, audience(400), { batchSize: 20 });
    await h.primary.waitForCount(40, 30_000);
    await cancelCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.status, 'cancelled');
    assert.ok(result.accepted < 400);
    assert.equal(h.primary.acceptedCount, result.accepted, 'the sink has exactly what the campaign counted');
    const rows = await h.store.listRecipients(id);
    assert.equal(rows.filter((r) => r.state === 'accepted').length, result.accepted);
    assert.equal(rows.filter((r) => r.state === 'pending').length, 400 - result.accepted);
    assert.equal((await handle.describe()).typedSearchAttributes.get(CampaignStatusKey), 'cancelled');
  });

  it('starting the same campaign twice is refused with a clear message', async () => {
    const id = uniqueId('twice');
    const handle = await h.launch(id, audience(10));
    await handle.result();
    await assert.rejects(
      startCampaign(h.client, { campaignId: id, providers: ['smtp-primary'], batchSize: 10, taskQueue: h.taskQueue }),
      (err: Error) => err instanceof CampaignAlreadyStartedError && err.message.includes(`campaign '${id}' was already started`),
    );
    assertExactlyOnce(h, 10);
  });

  it('setProviders: an unknown provider name is rejected; a valid order takes effect at the next batch', async () => {
    const id = uniqueId('update');
    h.primary.setAcceptDelay(5);
    const handle = await h.launch(id, audience(300), { batchSize: 20 });
    await h.primary.waitForCount(20, 30_000);
    await assert.rejects(setCampaignProviders(h.client, id, ['smtp-primary', 'mailgun-nowhere']), /unknown provider 'mailgun-nowhere'/);
    await assert.rejects(setCampaignProviders(h.client, id, []), /non-empty list/);
    assert.deepEqual(await setCampaignProviders(h.client, id, ['smtp-secondary', 'smtp-primary']), ['smtp-secondary', 'smtp-primary']);
    const result = await handle.result();
    assert.equal(result.activeProvider, 'smtp-secondary');
    assert.ok((result.acceptedByProvider['smtp-secondary'] ?? 0) > 0);
    assert.equal(result.switches.length, 0, 'an operator order change is not a failure switch');
    assertExactlyOnce(h, 300);
  });
});
