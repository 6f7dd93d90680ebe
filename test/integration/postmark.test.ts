/**
 * The Postmark provider end to end: campaigns through the postmark client against the
 * Postmark-compatible emulator on loopback (real Temporal dev server, real SMTP sinks, SQLite):
 * streams and batch splitting, failover to SMTP and failback, the error classes, calls whose
 * answer was lost settled from the outbound message search (also across a killed worker), its
 * webhooks behind basic auth through the compliance server, and suppression pull and push.
 * Every recipient exactly once at the sinks.
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, pauseCampaign, resumeCampaign, startCampaign } from '../../src/client';
import { startComplianceServices, type ComplianceServices } from '../../src/compliance/services';
import type { HealthConfig } from '../../src/config';
import { providerHealth } from '../../src/provider-health-client';
import { postmarkModule, type PostmarkProviderDefinition } from '../../src/providers/postmark';
import type { PostmarkServer } from '../../src/providers/postmark/emulator';
import { basicAuthHeader } from '../../src/providers/postmark/webhooks';
import { openStore } from '../../src/store/open-store';
import { DEFAULT_HEALTH_SETTINGS } from '../../workflows/provider-health-api';
import { assertExactlyOnce, audience, FAST, Harness, ONE_AT_A_TIME, uniqueId } from '../support/harness';
import { DEFAULT_BATCHES_IN_FLIGHT } from '../../workflows/campaign-api';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

const POSTMARK = { kind: 'postmark', name: 'postmark', settings: { timeoutMs: 2_000 } };
const WEBHOOK_KEY = 'postmark-hooks:correct-horse-battery';

describe('postmark provider (Postmark-compatible API on loopback, real Temporal dev server)', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let pm: PostmarkServer;

  const create = async (over: { health?: HealthConfig; settings?: Record<string, unknown> } = {}) => {
    h = await Harness.create({
      env,
      esps: [{ ...POSTMARK, settings: { ...POSTMARK.settings, ...over.settings } }],
      ...(over.health ? { health: over.health } : {}),
    });
    pm = h.esp('postmark') as PostmarkServer;
  };

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });
  afterEach(async () => {
    await h?.close();
  });

  it('postmark: a marketing campaign goes on the broadcast stream in calls of at most 500, with campaign and seq as Metadata; a transactional one on the transactional stream', async () => {
    await create();
    await h.startWorker();
    const id = uniqueId('pm-1200');
    const result = await (await h.launch(id, audience(1200), { providers: ['postmark'], batchSize: 1000 })).result();
    assert.deepEqual(result.acceptedByProvider, { postmark: 1200 });
    const sends = pm.calls.filter((c) => c.path === '/email/batch');
    // The two batches are in flight at once: their calls arrive in any order.
    assert.deepEqual(
      sends.map((c) => c.messages).sort((a, b) => b - a),
      [500, 500, 200],
      'a batch of 1,000 is split into two calls of 500',
    );
    assert.ok(sends.every((c) => c.status === 200));
    assertExactlyOnce(h, 1200);
    const m7 = pm.messages.find((m) => m.to === 'user7@example.com')!;
    assert.equal(m7.stream, 'broadcast');
    assert.deepEqual(m7.metadata, { campaign: id, seq: '7' });
    assert.equal(m7.subject, 'Hello User7');
    assert.equal(m7.headers['X-Mailover-Recipient'], '7');
    assert.equal(m7.headers['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
    const ledger = await h.store.listRecipients(id);
    const ids = new Map(pm.messages.map((m) => [m.to, m.id]));
    assert.ok(ledger.every((r) => r.state === 'accepted' && r.provider === 'postmark' && r.providerMessageId === ids.get(r.email)));

    const tx = uniqueId('pm-tx');
    await h.store.createCampaign({
      id: tx,
      from: 'Shop <shop@mailover.test>',
      template: { subject: 'Receipt {{first_name}}', text: 'Thanks {{first_name}}' },
      providers: ['postmark'],
      batchSize: 50,
      transactional: true,
    });
    await h.store.importAudience(tx, audience(20, 'receipts.example.com'));
    const txResult = await (
      await startCampaign(h.client, { campaignId: tx, providers: ['postmark'], batchSize: 50, total: 20, taskQueue: h.taskQueue, options: FAST })
    ).result();
    assert.deepEqual(txResult.acceptedByProvider, { postmark: 20 });
    const receipts = pm.messages.filter((m) => m.to.endsWith('@receipts.example.com'));
    assert.equal(receipts.length, 20);
    assert.ok(receipts.every((m) => m.stream === 'outbound'));
  });

  it('postmark: the token revoked mid-campaign (401 ErrorCode 10) fails over to SMTP; once Postmark takes the token again the campaign fails back; every recipient once', async () => {
    await create({ health: { ...DEFAULT_HEALTH_SETTINGS, cooldownMs: 300, maxCooldownMs: 1_000, failback: 'auto' } });
    await h.startWorker();
    const id = uniqueId('pm-failback');
    pm.setLatency(20);
    h.secondary.setAcceptDelay(40);
    const handle = await h.launch(id, audience(600), { providers: ['postmark', 'smtp-secondary'], batchSize: 50 });
    await pm.waitForCount(100, 30_000);
    pm.setBadToken(true);
    await waitUntil(async () => (await campaignProgress(h.client, id)).switches.length === 1, 'the switch to SMTP');
    await pauseCampaign(h.client, id, 'test: wait for Postmark to take the token again');
    // While the token is refused, the half-open probe (verify: GET /server) fails.
    await waitUntil(async () => {
      const s = await providerHealth(h.client, h.taskQueue, 'postmark');
      return s && s.probes.failed >= 1 ? s : undefined;
    }, 'a failed half-open probe');
    pm.heal();
    h.secondary.setAcceptDelay(0);
    await waitUntil(
      async () => (await providerHealth(h.client, h.taskQueue, 'postmark'))?.circuit === 'closed',
      'the circuit closing after a good probe',
      30_000,
    );
    await waitUntil(async () => Object.keys((await campaignProgress(h.client, id)).sharedDown).length === 0, 'the campaign told Postmark is back');
    await resumeCampaign(h.client, id);
    const r = await handle.result();
    assert.equal(r.status, 'completed');
    assert.equal(r.switches.length, 2, JSON.stringify(r.switches));
    assert.match(
      r.switches[0].reason,
      /^postmark: bad or missing server token \(401 ErrorCode 10: Request does not contain a valid Server token\.\): check serverToken$/,
    );
    assert.deepEqual([r.switches[0].to, r.switches[1].from, r.switches[1].to], ['smtp-secondary', 'smtp-secondary', 'postmark']);
    assert.match(r.switches[1].reason, /^failback: postmark is healthy again/);
    assert.ok((r.acceptedByProvider['smtp-secondary'] ?? 0) > 0);
    assert.ok((r.acceptedByProvider.postmark ?? 0) > 100, 'the rest went through Postmark again');
    assertExactlyOnce(h, 600);
  });

  it('postmark: an account that may not send (422 ErrorCode 412) switches provider at once, without retrying Postmark', async () => {
    await create();
    await h.startWorker();
    const id = uniqueId('pm-412');
    pm.failNext(1, 422, { errorCode: 412, message: 'Your account is pending approval.' });
    // One call at a time: the fault is the first call's, and a second call would be a retry.
    const result = await (await h.launch(id, audience(150), { providers: ['postmark', 'smtp-primary'], batchSize: 100, options: ONE_AT_A_TIME })).result();
    assert.equal(result.switches.length, 1);
    assert.match(result.switches[0].reason, /^postmark: Account is pending \(422 ErrorCode 412: Your account is pending approval\.\)$/);
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 150 });
    assert.equal(pm.calls.filter((c) => c.path === '/email/batch').length, 1, 'no retry');
    assertExactlyOnce(h, 150);
  });

  it('postmark: 429 with Retry-After backs off for the time asked and completes on Postmark', async () => {
    await create();
    await h.startWorker();
    const id = uniqueId('pm-429');
    pm.failNext(1, 429, { errorCode: 429, message: 'Rate limit exceeded', retryAfterSeconds: 2 });
    // One call at a time: the call after the 429 is its retry.
    const result = await (await h.launch(id, audience(300), { providers: ['postmark', 'smtp-secondary'], batchSize: 100, options: ONE_AT_A_TIME })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { postmark: 300 });
    const sends = pm.calls.filter((c) => c.path === '/email/batch');
    const limited = sends.findIndex((c) => c.status === 429);
    assert.ok(limited >= 0);
    const waited = sends[limited + 1].at.getTime() - sends[limited].at.getTime();
    assert.ok(waited >= 1900, `the retry came ${waited} ms after the 429 (Retry-After: 2 s)`);
    assertExactlyOnce(h, 300);
  });

  it('postmark: an inactive recipient (ErrorCode 406) is rejected as a hard bounce and suppressed; the rest of its call goes out', async () => {
    await create();
    await h.startWorker();
    const id = uniqueId('pm-406');
    pm.bounceRecipients(['user5@example.com']);
    const result = await (await h.launch(id, audience(60), { providers: ['postmark', 'smtp-primary'], batchSize: 60 })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { postmark: 59 });
    const row = (await h.store.listRecipients(id)).find((r) => r.email === 'user5@example.com')!;
    assert.equal(row.state, 'rejected');
    assert.match(row.lastError ?? '', /^postmark: inactive recipient \(ErrorCode 406: .*\[address\]/);
    assert.equal(await h.store.isSuppressed('user5@example.com'), true);
    assertExactlyOnce(h, 60, ['user5@example.com']);
  });

  it('postmark: a 500 after the call was sent leaves its messages in doubt; the outbound search does not have them, so they are sent once more, no switch', async () => {
    await create();
    await h.startWorker();
    const id = uniqueId('pm-500');
    pm.failNext(1, 500, { message: 'Internal Server Error' });
    const result = await (await h.launch(id, audience(200), { providers: ['postmark', 'smtp-primary'], batchSize: 100 })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { postmark: 200 });
    assert.equal(result.inFlightRecovered, 100, 'the 500 call’s 100 messages were looked up');
    assert.ok(
      pm.calls.some((c) => c.path === '/messages/outbound'),
      'looked up in the outbound message search',
    );
    assertExactlyOnce(h, 200);
  });

  it('postmark: a call accepted but answered with a dropped connection is settled from the outbound search, not sent again', async () => {
    await create();
    await h.startWorker();
    const id = uniqueId('pm-drop');
    pm.acceptThenDropNext(1);
    const result = await (await h.launch(id, audience(300), { providers: ['postmark', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { postmark: 300 });
    assert.equal(result.inFlightRecovered, 100);
    assert.deepEqual(
      pm.calls.filter((c) => c.path === '/email/batch').map((c) => c.messages),
      [100, 100, 100],
      'three calls, none sent again',
    );
    const ledger = await h.store.listRecipients(id);
    const ids = new Map(pm.messages.map((m) => [m.to, m.id]));
    assert.ok(
      ledger.every((r) => r.providerMessageId === ids.get(r.email)),
      'the looked-up rows carry Postmark’s MessageID',
    );
    assertExactlyOnce(h, 300);
  });

  it('postmark: a call that hangs past the timeout is looked up; Postmark never took it, so it is sent again, once', async () => {
    await create({ settings: { timeoutMs: 500 } });
    await h.startWorker();
    const id = uniqueId('pm-hang');
    pm.hangNext(1);
    const result = await (await h.launch(id, audience(200), { providers: ['postmark', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { postmark: 200 });
    assert.equal(result.inFlightRecovered, 100);
    assertExactlyOnce(h, 200);
  });

  it('postmark reconciliation: worker killed right after Postmark accepted a call; after restart nobody in that call is sent twice and nobody is lost', async () => {
    await create();
    const bundlePath = await writeWorkflowBundle(h.dir);
    const workers: WorkerProcess[] = [];
    const start = async () => {
      const w = await WorkerProcess.start({
        address: env.address,
        taskQueue: h.taskQueue,
        dir: h.dir,
        providers: h.providerDefs,
        sqlitePath: `${h.dir}/mailover.db`,
        bundlePath,
      });
      workers.push(w);
      return w;
    };
    try {
      const first = await start();
      let accepted = 0;
      pm.on('message', () => {
        if (++accepted === 201) process.kill(first.pid, 'SIGKILL');
      });
      const id = uniqueId('pm-kill');
      const handle = await h.launch(id, audience(1000), { providers: ['postmark', 'smtp-primary'], batchSize: 100 });
      await waitUntil(() => first.child.exitCode !== null || first.child.signalCode !== null, 'the worker to die');
      await start();
      const result = await handle.result();
      assert.deepEqual(result.acceptedByProvider, { postmark: 1000 });
      assertExactlyOnce(h, 1000);
      assert.ok(
        // The calls in flight at the kill: up to one per batch of the window.
        result.inFlightRecovered >= 1 && result.inFlightRecovered <= 100 * DEFAULT_BATCHES_IN_FLIGHT,
        `the killed calls' unsettled messages were looked up (${result.inFlightRecovered})`,
      );
      assert.deepEqual(
        pm.calls.filter((c) => c.path === '/email/batch').map((c) => c.status),
        Array(10).fill(200),
        'ten calls of 100, none sent again',
      );
    } finally {
      await Promise.all(workers.map((w) => w.kill()));
    }
  });

  describe('postmark webhooks through the compliance server', () => {
    let services: ComplianceServices;
    afterEach(async () => {
      await services?.stop();
    });

    it('postmark: a real-shaped bounce and spam complaint suppress their addresses; a forged (bad basic auth), stale or replayed webhook is refused', async () => {
      await create();
      const [user, pass] = WEBHOOK_KEY.split(':');
      const providers = h.providerDefs.map((d) => (d.kind === 'postmark' ? { ...d, webhookAuth: { user, pass } } : d));
      services = await startComplianceServices(
        { providers, compliance: { webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 300, maxBodyBytes: 64 * 1024 } } },
        h.store,
      );
      pm.setWebhook(`${services.http.url}/webhooks/postmark`, WEBHOOK_KEY);
      await h.startWorker();
      const id = uniqueId('pm-hooks');
      await (await h.launch(id, audience(10), { providers: ['postmark'], batchSize: 10 })).result();

      const bounce = await pm.reportBounce('user3@example.com');
      assert.equal(bounce.webhookStatus, 200, bounce.webhookBody);
      assert.match(bounce.webhookBody ?? '', /recorded failed-permanent; suppressed/);
      assert.equal((await pm.reportComplaint('user4@example.com')).webhookStatus, 200);
      assert.equal(await h.store.isSuppressed('user3@example.com'), true);
      assert.equal(await h.store.isSuppressed('user4@example.com'), true);
      const events = await h.store.listEvents({ campaignId: id });
      assert.deepEqual(events.map((e) => [e.type, e.email, e.seq]).sort(), [
        ['complained', 'user4@example.com', 4],
        ['failed-permanent', 'user3@example.com', 3],
      ]);

      // The same bounce posted again: refused as a replay, nothing stored twice.
      const record = pm.bounceRecord('user5@example.com', 'HardBounce');
      assert.equal((await pm.postWebhook(record)).status, 200);
      const replay = await pm.postWebhook(record);
      assert.equal(replay.status, 409, replay.body);
      // Without the credentials, or with wrong ones: forged.
      const forged = await pm.postWebhook(pm.bounceRecord('user6@example.com', 'HardBounce'), basicAuthHeader('postmark-hooks:guessed-password'));
      assert.equal(forged.status, 401);
      const anonymous = await fetch(`${services.http.url}/webhooks/postmark`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(pm.bounceRecord('user7@example.com', 'HardBounce')),
      });
      assert.equal(anonymous.status, 401);
      // An event from an hour ago (outside webhooks.maxAgeSeconds): stale.
      const stale = await pm.postWebhook(pm.bounceRecord('user8@example.com', 'HardBounce', new Date(Date.now() - 3_600_000)));
      assert.equal(stale.status, 400);
      assert.match(stale.body, /^stale request/);
      for (const n of [6, 7, 8]) assert.equal(await h.store.isSuppressed(`user${n}@example.com`), false, `user${n} was not suppressed by a refused webhook`);
      const metrics = await (await fetch(`${services.http.url}/metrics`)).text();
      assert.match(metrics, /mailover_webhook_refused_forged_total 2/);
      assert.match(metrics, /mailover_webhook_refused_replayed_total 1/);
      assert.match(metrics, /mailover_webhook_refused_stale_total 1/);
    });
  });
});

describe('postmark suppressions (emulator on loopback)', () => {
  let server: PostmarkServer | undefined;
  afterEach(async () => {
    await server?.stop();
  });

  it('postmark: suppression pull reads every stream’s list into mailover’s; push puts mailover’s list on every stream, 50 a call', async () => {
    server = await postmarkModule.emulator!.start({ name: 'postmark' });
    const config: PostmarkProviderDefinition = postmarkModule.emulator!.config(server);
    const dir = mkdtempSync(join(tmpdir(), 'mailover-pm-supp-'));
    const store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') });
    try {
      server.addSuppression('broadcast', 'Bounced@Example.com', 'HardBounce', 'Recipient');
      server.addSuppression('broadcast', 'unsub@example.com', 'ManualSuppression', 'Recipient');
      server.addSuppression('outbound', 'complainer@example.com', 'SpamComplaint', 'Recipient');
      await store.addSuppression('unsub@example.com', 'unsubscribed (earlier)', 'test');
      const pulled = await postmarkModule.suppressions!.pull(store, config);
      assert.equal(pulled.summary, 'read 2 from stream broadcast, 1 from stream outbound of postmark; 2 addresses newly suppressed');
      const rows = new Map((await store.listSuppressions()).map((r) => [r.email, r.reason]));
      assert.match(rows.get('bounced@example.com') ?? '', /^hard bounce \(postmark, stream broadcast, by Recipient\)$/);
      assert.match(rows.get('complainer@example.com') ?? '', /^complaint \(postmark, stream outbound/);
      assert.equal(rows.get('unsub@example.com'), 'unsubscribed (earlier)', 'already suppressed: left as it was');

      await store.addSuppressions(
        Array.from({ length: 60 }, (_, i) => `gone${i}@example.org`),
        'hard bounce (smtp-primary): 550 5.1.1',
        'test',
      );
      const pushed = await postmarkModule.suppressions!.push(store, config);
      assert.equal(pushed.summary, 'pushed 63 to stream broadcast, 63 to stream outbound of postmark (4 calls)');
      for (const stream of ['broadcast', 'outbound']) {
        const emails = new Set(server.suppressions(stream).map((s) => s.email));
        assert.ok(emails.has('gone59@example.org') && emails.has('gone0@example.org'), stream);
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
