/**
 * The Amazon SES provider end to end: campaigns through AWS's SES v2 client against the SES v2
 * emulator on loopback (real HTTP, real Temporal dev server), failover to an SMTP sink and back,
 * each class of SES error, in-doubt sends under the inFlight policy (SES has no look-up), SNS
 * notifications through the compliance server (signed, forged, stale, replayed), and the
 * account-level suppression list.
 */
import { strict as assert } from 'assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, pauseCampaign, releaseHeldRows, resumeCampaign } from '../../src/client';
import { ComplianceServer } from '../../src/compliance/server';
import { DEFAULT_WEBHOOKS } from '../../src/compliance/settings';
import type { HealthConfig } from '../../src/config';
import { providerHealth } from '../../src/provider-health-client';
import { providerModule } from '../../src/providers/modules';
import type { SesServer } from '../../src/providers/ses/emulator';
import type { SesProviderConfig } from '../../src/providers/ses/provider';
import { pullSesSuppressions, pushSesSuppressions } from '../../src/providers/ses/suppressions';
import { snsWebhooks } from '../../src/providers/ses/webhooks';
import { DEFAULT_HEALTH_SETTINGS } from '../../workflows/provider-health-api';
import { assertExactlyOnce, audience, Harness, type HarnessOptions, uniqueId } from '../support/harness';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

const health = (over: Partial<HealthConfig>): HealthConfig => ({ ...DEFAULT_HEALTH_SETTINGS, ...over });

describe('ses provider (SES v2 emulator on loopback, real Temporal dev server)', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let h: Harness | undefined;

  const create = async (settings: Record<string, unknown> = {}, opts: Partial<HarnessOptions> = {}) => {
    h = await Harness.create({ env, esps: [{ kind: 'ses', name: 'ses', settings }], ...opts });
    return { h, ses: h.esp('ses') as SesServer, config: h.providerDefs.find((d) => d.name === 'ses') as unknown as SesProviderConfig };
  };

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

  it("ses: a campaign goes out one SendEmail per recipient with Raw MIME, configuration set and tags, paced by the account's MaxSendRate", async () => {
    const { h, ses } = await create({ configurationSet: 'mailover-news', concurrency: 10 });
    ses.setMaxSendRate(5);
    await h.startWorker();
    const id = uniqueId('ses-send');
    const started = Date.now();
    const result = await (await h.launch(id, audience(30), { providers: ['ses', 'smtp-secondary'], batchSize: 10 })).result();
    const took = Date.now() - started;
    assert.deepEqual(result.acceptedByProvider, { ses: 30 });
    assertExactlyOnce(h, 30);
    assert.ok(ses.peakConcurrentSends <= 5, `at most MaxSendRate (5) calls open at once, saw ${ses.peakConcurrentSends}`);
    assert.ok(took >= 4_500, `30 sends at 5 per second take at least ~5 s (took ${took} ms)`);
    const m7 = ses.messages.find((m) => m.to === 'user7@example.com')!;
    assert.deepEqual(m7.tags, { 'mailover-campaign': id.replace(/[^A-Za-z0-9_.@-]/g, '_'), 'mailover-seq': '7' });
    assert.equal(m7.configurationSet, 'mailover-news');
    assert.equal(m7.headers.subject, 'Hello User7');
    assert.match(m7.headers['list-unsubscribe'] ?? '', /^<http:\/\/unsubscribe\.mailover\.test\/u\//);
    const ledger = await h.store.listRecipients(id);
    assert.ok(ledger.every((r) => r.state === 'accepted' && r.provider === 'ses' && ses.messages.some((m) => m.id === r.providerMessageId)));
  });

  it('ses: failover SES → SMTP when SES starts answering SendingPaused, then failback to SES once GetAccount says sending is enabled again', async () => {
    const { h, ses } = await create({}, { health: health({ cooldownMs: 300, maxCooldownMs: 1_000, failback: 'auto' }) });
    await h.startWorker();
    const id = uniqueId('ses-paused');
    ses.goDownAfter(40);
    h.secondary.setAcceptDelay(30);
    const handle = await h.launch(id, audience(300), { providers: ['ses', 'smtp-secondary'], batchSize: 20 });
    const switched = await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.switches.length === 1 ? p : undefined;
    }, 'the switch to smtp-secondary');
    assert.match(switched.switches[0].reason, /^ses: sending is paused \(400 SendingPausedException/);
    assert.equal(switched.switches[0].to, 'smtp-secondary');
    await pauseCampaign(h.client, id, 'test: wait for SES to come back');
    ses.heal();
    h.secondary.setAcceptDelay(0);
    await waitUntil(
      async () => (await providerHealth(h.client, h.taskQueue, 'ses'))?.circuit === 'closed',
      'the SES circuit closing after a good probe (GetAccount)',
      30_000,
    );
    await waitUntil(async () => Object.keys((await campaignProgress(h.client, id)).sharedDown).length === 0, 'the campaign told SES is back');
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.deepEqual(
      result.switches.map((s) => [s.from, s.to]),
      [
        ['ses', 'smtp-secondary'],
        ['smtp-secondary', 'ses'],
      ],
    );
    assert.match(result.switches[1].reason, /^failback: ses is healthy again/);
    assert.ok((result.acceptedByProvider.ses ?? 0) > 40, JSON.stringify(result.acceptedByProvider));
    assertExactlyOnce(h, 300);
  });

  it('ses: credentials refused (403) from the start: switches provider at once, naming the failure, no retry', async () => {
    const { h, ses } = await create();
    await h.startWorker();
    ses.setAuthFailure(true);
    const id = uniqueId('ses-403');
    const result = await (await h.launch(id, audience(50), { providers: ['ses', 'smtp-primary'], batchSize: 25 })).result();
    assert.equal(result.switches.length, 1);
    assert.match(
      result.switches[0].reason,
      /^ses: credentials not recognised \(403 UnrecognizedClientException: The security token included in the request is invalid\.\)$/,
    );
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 50 });
    assertExactlyOnce(h, 50);
  });

  it('ses: the sandbox answer (MessageRejected "Email address is not verified") is a provider problem: switches provider', async () => {
    const { h, ses } = await create();
    await h.startWorker();
    ses.failAll('not-verified');
    const id = uniqueId('ses-sandbox');
    const result = await (await h.launch(id, audience(40), { providers: ['ses', 'smtp-primary'], batchSize: 20 })).result();
    assert.equal(result.switches.length, 1);
    assert.match(result.switches[0].reason, /^ses: SES refuses to send: Email address is not verified.*\[address\] \(sandbox or unverified identity\)$/);
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 40 });
    assertExactlyOnce(h, 40);
  });

  it('ses: TooManyRequestsException (429) backs off and the campaign completes on SES', async () => {
    const { h, ses } = await create({ concurrency: 1 });
    await h.startWorker();
    ses.failNext(2, 'throttle');
    const id = uniqueId('ses-429');
    const result = await (await h.launch(id, audience(40), { providers: ['ses', 'smtp-primary'], batchSize: 20 })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { ses: 40 });
    const throttled = ses.calls.findIndex((c) => c.status === 429);
    const retry = ses.calls.slice(throttled + 1).find((c) => c.status !== 429)!;
    const waited = retry.at.getTime() - ses.calls[throttled].at.getTime();
    assert.ok(waited >= 900, `the retry came ${waited} ms after the 429 (a second asked; the retry policy alone waits 100 ms)`);
    assertExactlyOnce(h, 40);
  });

  it('ses: MessageRejected for an address (Address blacklisted.) refuses that recipient only, as a hard bounce', async () => {
    const { h, ses } = await create();
    await h.startWorker();
    ses.rejectRecipients(['user3@example.com']);
    const id = uniqueId('ses-rejected');
    const result = await (await h.launch(id, audience(20), { providers: ['ses', 'smtp-primary'], batchSize: 10 })).result();
    assert.equal(result.switches.length, 0);
    assert.equal(result.rejected, 1);
    assert.deepEqual(result.acceptedByProvider, { ses: 19 });
    const [row] = await h.store.getRecipients(id, [3]);
    assert.equal(row.state, 'rejected');
    assert.match(row.lastError ?? '', /ses: SES will not deliver to this address \(Address blacklisted\.\)/);
    assert.ok(await h.store.isSuppressed('user3@example.com'), 'a hard bounce is suppressed');
    assertExactlyOnce(h, 20, ['user3@example.com']);
  });

  it('ses: BadRequestException (the message itself refused) holds the campaign with SES’s words, no switch; it completes on resume', async () => {
    const { h, ses } = await create({ concurrency: 1 });
    await h.startWorker();
    ses.failNext(1, 'bad-request');
    const id = uniqueId('ses-400');
    const handle = await h.launch(id, audience(20), { providers: ['ses', 'smtp-primary'], batchSize: 10 });
    const held = await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.paused ? p : undefined;
    }, 'the campaign to hold on the refused request');
    assert.match(held.pauseReason ?? '', /ses: SES refused the request \(400 Invalid message content\.\)/);
    assert.equal(held.switches.length, 0);
    assert.equal(h.primary.acceptedCount, 0, 'no switch to SMTP');
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.deepEqual(result.acceptedByProvider, { ses: 20 });
    assertExactlyOnce(h, 20);
  });

  it('ses: 5xx answers and calls that time out leave their messages in doubt; inFlight resend sends them again, each recipient once', async () => {
    const { h, ses } = await create({ concurrency: 2, timeoutMs: 500 }, { inFlightPolicy: 'resend' });
    await h.startWorker();
    ses.failNext(1, 'server');
    ses.hangNext(1);
    const id = uniqueId('ses-5xx');
    const result = await (await h.launch(id, audience(40), { providers: ['ses', 'smtp-primary'], batchSize: 20 })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { ses: 40 });
    assert.ok(result.inFlightRecovered >= 1, `the in-doubt sends were resent under the policy (${result.inFlightRecovered})`);
    assert.ok(ses.calls.some((c) => c.status === 500));
    assertExactlyOnce(h, 40);
  });

  it('ses: a send SES took but whose answer was lost is held under inFlight hold (never sent twice) until an operator marks it sent', async () => {
    const { h, ses } = await create({ concurrency: 1 }, { inFlightPolicy: 'hold' });
    await h.startWorker();
    ses.dropNext(1);
    const id = uniqueId('ses-lost');
    const handle = await h.launch(id, audience(30), { providers: ['ses', 'smtp-primary'], batchSize: 10 });
    const holding = await waitUntil(
      async () => {
        const p = await campaignProgress(h.client, id);
        return p.status === 'holding' && p.hold?.kind === 'review' ? p : undefined;
      },
      'the campaign to hold the in-doubt send for review',
      60_000,
    );
    assert.equal(holding.heldForReview, 1);
    const held = await h.store.listHeld(id);
    assert.deepEqual(
      held.map((r) => r.seq),
      [1],
    );
    assert.equal(ses.countByRecipient().get('user1@example.com'), 1, 'SES had taken it');
    await releaseHeldRows(h.client, id, { action: 'mark-sent', by: 'ops@test' });
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.acceptedByProvider, { ses: 30 });
    assertExactlyOnce(h, 30);
  });

  it('ses: worker killed while SES calls are open, under inFlight hold: nobody sent twice, the sends SES may have taken held; released by what SES holds, nobody lost', async () => {
    const { h, ses } = await create({ concurrency: 4 }, { inFlightPolicy: 'hold' });
    const bundlePath = await writeWorkflowBundle(h.dir);
    const workers: WorkerProcess[] = [];
    const start = async () => {
      const w = await WorkerProcess.start({
        address: env.address,
        taskQueue: h.taskQueue,
        dir: h.dir,
        providers: h.providerDefs,
        inFlight: 'hold',
        sqlitePath: `${h.dir}/mailover.db`,
        bundlePath,
      });
      workers.push(w);
      return w;
    };
    try {
      const first = await start();
      let accepted = 0;
      ses.on('message', () => {
        if (++accepted === 51) process.kill(first.pid, 'SIGKILL');
      });
      const id = uniqueId('ses-kill');
      const handle = await h.launch(id, audience(200), { providers: ['ses', 'smtp-primary'], batchSize: 20 });
      await waitUntil(() => first.child.exitCode !== null || first.child.signalCode !== null, 'the worker to die');
      await start();
      const holding = await waitUntil(
        async () => {
          const p = await campaignProgress(h.client, id);
          return p.status === 'holding' && p.hold?.kind === 'review' ? p : undefined;
        },
        'the campaign to hold the sends in doubt for review',
        90_000,
      );
      // SES cannot be asked: every row dispatched but not settled at the kill is held, never resent.
      assert.ok(holding.heldForReview >= 1 && holding.heldForReview <= 4, `held ${holding.heldForReview} (at most the 4 calls open)`);
      const byRecipient = ses.countByRecipient();
      assert.ok(
        [...byRecipient.values()].every((n) => n === 1),
        'nobody sent twice',
      );
      // The operator checks SES's own records: what it has is marked sent, the rest resent.
      for (const row of await h.store.listHeld(id)) {
        const action = byRecipient.get(row.email) ? 'mark-sent' : 'resend';
        await releaseHeldRows(h.client, id, { action, fromSeq: row.seq, toSeq: row.seq, by: 'ops@test' });
      }
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.deepEqual(result.acceptedByProvider, { ses: 200 });
      assertExactlyOnce(h, 200);
    } finally {
      await Promise.all(workers.map((w) => w.kill()));
    }
  });

  it('ses: SNS bounce and complaint notifications suppress their addresses; forged, stale and replayed ones are refused; a subscription is confirmed', async () => {
    const { h, ses, config } = await create();
    await h.startWorker();
    const id = uniqueId('ses-sns');
    await (await h.launch(id, audience(5), { providers: ['ses'], batchSize: 5 })).result();
    const topicArn = `arn:aws:sns:${ses.region}:123456789012:mailover-ses-events`;
    const server = await ComplianceServer.start({
      store: h.store,
      webhooks: { ...DEFAULT_WEBHOOKS, port: 0, maxAgeSeconds: 300 },
      providerWebhooks: new Map([
        ['ses', { signingKey: topicArn, webhooks: snsWebhooks({ fetchCertificate: ses.fetchCertificate, confirmSubscription: ses.confirmSubscriptionUrl }) }],
      ]),
      port: 0,
    });
    try {
      ses.setWebhook(`${server.url}/webhooks/ses`, topicArn);
      assert.equal(
        providerModule('ses').webhooks?.signingKey({ ...config, kind: 'ses', sns: { topicArn } } as never),
        topicArn,
        'the module takes the topic ARN as its key',
      );

      const confirmed = await ses.confirmSubscription();
      assert.equal(confirmed.status, 200, confirmed.body);
      assert.ok(ses.subscriptionConfirmed);

      const bounce = await ses.notify('user2@example.com', 'Bounce');
      assert.deepEqual([bounce.status, bounce.body], [200, 'recorded failed-permanent; suppressed']);
      const complaint = await ses.notify('user3@example.com', 'Complaint', { signatureVersion: '1' });
      assert.deepEqual([complaint.status, complaint.body], [200, 'recorded complained; suppressed']);
      const delivery = await ses.notify('user4@example.com', 'Delivery');
      assert.deepEqual([delivery.status, delivery.body], [200, 'recorded delivered']);
      assert.ok(await h.store.isSuppressed('user2@example.com'));
      assert.ok(await h.store.isSuppressed('user3@example.com'));
      assert.ok(!(await h.store.isSuppressed('user4@example.com')));
      const events = await h.store.listEvents({ campaignId: id });
      assert.deepEqual(events.map((e) => [e.type, e.seq]).sort(), [
        ['complained', 3],
        ['delivered', 4],
        ['failed-permanent', 2],
      ]);

      const replayed = await ses.post(bounce.message);
      assert.equal(replayed.status, 409, replayed.body);
      const forged = await ses.post({ ...bounce.message, MessageId: 'forged-1', Message: bounce.message.Message.replace('user2@', 'user5@') });
      assert.deepEqual([forged.status, forged.body], [401, 'signature does not match']);
      const stale = await ses.notify('user5@example.com', 'Bounce', { timestamp: new Date(Date.now() - 3_600_000) });
      assert.equal(stale.status, 400);
      assert.match(stale.body, /^stale request/);
      assert.ok(!(await h.store.isSuppressed('user5@example.com')), 'nothing refused was recorded');
    } finally {
      await server.stop();
    }
  });

  it('ses: the account-level suppression list is pulled page by page into mailover and mailover’s list is pushed to it', async () => {
    const { h, ses, config } = await create();
    ses.addSuppression('gone@example.org', 'BOUNCE');
    ses.addSuppression('angry@example.org', 'COMPLAINT');
    ses.addSuppression('old@example.org', 'BOUNCE');
    const pulled = await pullSesSuppressions(h.store, config, { pageSize: 2 });
    assert.deepEqual(pulled, { read: { bounces: 2, complaints: 1 }, added: 3, pages: 2 });
    assert.ok(await h.store.isSuppressed('gone@example.org'));
    const again = await providerModule('ses').suppressions!.pull(h.store, config as never);
    assert.match(again.summary, /^read 2 bounces, 1 complaints from ses \(1 pages\); 0 addresses newly suppressed$/);

    await h.store.addSuppression('bounced@example.com', 'hard bounce (smtp-primary): 550 5.1.1', 'test');
    await h.store.addSuppression('left@example.com', 'unsubscribed (link)', 'test');
    const pushed = await pushSesSuppressions(h.store, config);
    assert.equal(pushed.calls, 5);
    const list = new Map(ses.suppressions().map((s) => [s.email, s.reason]));
    assert.equal(list.get('bounced@example.com'), 'BOUNCE');
    assert.equal(list.get('left@example.com'), 'COMPLAINT');
    ses.setAuthFailure(true);
    await assert.rejects(pullSesSuppressions(h.store, config), /^Error: reading the suppression list of ses: ses: credentials not recognised \(403/);
  });
});
