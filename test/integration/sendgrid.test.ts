/**
 * The SendGrid module end to end against its emulator (a SendGrid-compatible API on loopback)
 * with a real Temporal dev server: Mail Send calls of up to 1,000 personalizations, failover to
 * SMTP and failback, each class of SendGrid's answers, calls whose answer was lost (looked up in
 * Email Activity, or the inFlight policy without it), the Signed Event Webhook through the real
 * compliance server, and the suppression lists.
 */
import { strict as assert } from 'assert';
import { generateKeyPairSync, sign } from 'crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, pauseCampaign, releaseHeldRows, resumeCampaign } from '../../src/client';
import { ComplianceServer } from '../../src/compliance/server';
import { unsubscribeUrl } from '../../src/compliance/unsubscribe';
import { providerHealth } from '../../src/provider-health-client';
import { sendgridModule } from '../../src/providers/sendgrid';
import type { SendGridServer } from '../../src/providers/sendgrid/emulator';
import { SendGridProvider, type SendGridProviderConfig } from '../../src/providers/sendgrid/provider';
import type { OutgoingMessage } from '../../src/providers/provider';
import { sendGridRequest } from '../../src/providers/sendgrid/api';
import { pullSendGridSuppressions, pushSendGridSuppressions } from '../../src/providers/sendgrid/suppressions';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../src/providers/sendgrid/webhooks';
import { ProviderUnavailableError, TransientProviderError } from '../../src/errors';
import { DEFAULT_HEALTH_SETTINGS } from '../../workflows/provider-health-api';
import { assertExactlyOnce, audience, Harness, type HarnessOptions, POSTAL_ADDRESS, ONE_AT_A_TIME, uniqueId } from '../support/harness';
import { DEFAULT_BATCHES_IN_FLIGHT } from '../../workflows/campaign-api';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

describe('sendgrid provider (SendGrid-compatible API on loopback, real Temporal dev server)', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let h: Harness | undefined;

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  async function harness(settings: Partial<SendGridProviderConfig> = {}, over: Partial<HarnessOptions> = {}): Promise<{ h: Harness; sg: SendGridServer }> {
    h = await Harness.create({ env, esps: [{ kind: 'sendgrid', name: 'sendgrid', settings: { timeoutMs: 2_000, ...settings } }], ...over });
    return { h, sg: h.esp('sendgrid') as SendGridServer };
  }

  it('sendgrid: 2,500 recipients go out in Mail Send calls of at most 1,000 personalizations, each with its own content (HTML escaped)', async () => {
    const { h, sg } = await harness();
    await h.startWorker();
    const id = uniqueId('sg-2500');
    const rows = audience(2500);
    rows[41].fields.first_name = 'Ann & <Bob>';
    const result = await (await h.launch(id, rows, { providers: ['sendgrid'], batchSize: 1000 })).result();
    assert.equal(result.accepted, 2500);
    // The three batches are in flight at once: their calls arrive in any order.
    assert.deepEqual(sg.calls.map((c) => `${c.personalizations}:${c.status}`).sort(), ['1000:202', '1000:202', '500:202']);
    assertExactlyOnce(h, 2500);
    const byTo = new Map(sg.messages.map((m) => [m.to, m]));
    const m7 = byTo.get('user7@example.com')!;
    const unsubscribe = unsubscribeUrl(h.compliance.unsubscribe, id, 'user7@example.com');
    assert.equal(m7.subject, 'Hello User7');
    assert.equal(m7.text, `Hi User7, our news.\n\nUnsubscribe: ${unsubscribe}\n${POSTAL_ADDRESS}`);
    assert.equal(m7.html, `<p>Hi User7</p><p><a href="${unsubscribe}">Unsubscribe</a> | ${POSTAL_ADDRESS}</p>`);
    assert.deepEqual(m7.customArgs, { mailover_campaign: id, mailover_seq: '7' });
    assert.equal(m7.headers['x-mailover-recipient'], '7');
    assert.equal(m7.headers['list-unsubscribe-post'], 'List-Unsubscribe=One-Click');
    assert.equal(m7.from, 'news@mailover.test');
    assert.match(byTo.get('user42@example.com')!.html ?? '', /^<p>Hi Ann &amp; &lt;Bob&gt;<\/p>/);
    const ledger = await h.store.listRecipients(id);
    assert.ok(ledger.every((r) => r.state === 'accepted' && r.provider === 'sendgrid' && (r.providerMessageId ?? '') !== ''));
  });

  it('sendgrid: failover SendGrid → SMTP when the key is refused (401), and failback to SendGrid once it is healthy again; every recipient once', async () => {
    const { h, sg } = await harness({}, { health: { ...DEFAULT_HEALTH_SETTINGS, cooldownMs: 300, maxCooldownMs: 1_000, failback: 'auto' } });
    await h.startWorker();
    const id = uniqueId('sg-failback');
    sg.setLatency(20);
    h.primary.setAcceptDelay(20);
    const handle = await h.launch(id, audience(600), { providers: ['sendgrid', 'smtp-primary'], batchSize: 50 });
    await sg.waitForCount(100, 30_000);
    sg.setAuthFailure(true);
    await waitUntil(async () => (await campaignProgress(h.client, id)).switches.length === 1, 'the switch to SMTP');
    await pauseCampaign(h.client, id, 'test: wait for SendGrid to recover');
    sg.heal();
    await waitUntil(
      async () => (await providerHealth(h.client, h.taskQueue, 'sendgrid'))?.circuit === 'closed',
      'the SendGrid circuit closing after a good probe',
      30_000,
    );
    await waitUntil(async () => Object.keys((await campaignProgress(h.client, id)).sharedDown).length === 0, 'the campaign told SendGrid is back');
    await resumeCampaign(h.client, id);
    const r = await handle.result();
    assert.equal(r.status, 'completed');
    assert.deepEqual(
      r.switches.map((s) => [s.from, s.to]),
      [
        ['sendgrid', 'smtp-primary'],
        ['smtp-primary', 'sendgrid'],
      ],
    );
    assert.match(r.switches[0].reason, /^sendgrid: authentication failed \(401 The provided authorization grant is invalid, expired, or revoked\)/);
    assert.match(r.switches[1].reason, /^failback: sendgrid is healthy again/);
    assert.ok((r.acceptedByProvider['smtp-primary'] ?? 0) > 0 && (r.acceptedByProvider.sendgrid ?? 0) > 100, JSON.stringify(r.acceptedByProvider));
    assertExactlyOnce(h, 600);
  });

  it('sendgrid: 429 with X-RateLimit-Reset waits until the reset and completes on SendGrid', async () => {
    const { h, sg } = await harness();
    await h.startWorker();
    sg.failNext(1, 429, { resetSeconds: 2 });
    // One call at a time: the call after the 429 is its retry.
    const result = await (
      await h.launch(uniqueId('sg-429'), audience(300), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100, options: ONE_AT_A_TIME })
    ).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { sendgrid: 300 });
    const limited = sg.calls.findIndex((c) => c.status === 429);
    const waited = sg.calls[limited + 1].at.getTime() - sg.calls[limited].at.getTime();
    // The reset is 2 s from the 429 in whole epoch seconds: at least 1 s away (the retry policy alone waits 100 ms).
    assert.ok(waited >= 950, `the retry came ${waited} ms after the 429`);
    assertExactlyOnce(h, 300);
  });

  it('sendgrid: 401 from the start switches provider at once, naming the failure', async () => {
    const { h, sg } = await harness();
    await h.startWorker();
    sg.setAuthFailure(true);
    // One call at a time: a second 401 call would be a retry.
    const r1 = await (
      await h.launch(uniqueId('sg-401'), audience(150), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100, options: ONE_AT_A_TIME })
    ).result();
    assert.equal(r1.switches.length, 1);
    assert.match(r1.switches[0].reason, /^sendgrid: authentication failed \(401 .*\): check the API key$/);
    assert.deepEqual(r1.acceptedByProvider, { 'smtp-primary': 150 });
    assert.equal(sg.calls.filter((c) => c.status === 401).length, 1, 'no retry on 401');
    assertExactlyOnce(h, 150);
  });

  it('sendgrid: 403 (sender identity not verified) switches provider, with SendGrid’s words', async () => {
    const { h, sg } = await harness();
    await h.startWorker();
    sg.failNext(1, 403, { errors: [{ field: 'from', message: 'The from address does not match a verified Sender Identity.' }] });
    const r = await (await h.launch(uniqueId('sg-403'), audience(120), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100 })).result();
    assert.equal(r.switches.length, 1);
    assert.match(r.switches[0].reason, /403 from: The from address does not match a verified Sender Identity\./);
    assertExactlyOnce(h, 120);
  });

  it('sendgrid: 400 holds the campaign with SendGrid’s field errors and no switch; it completes on resume', async () => {
    const { h, sg } = await harness();
    await h.startWorker();
    const id = uniqueId('sg-400');
    sg.failNext(1, 400, { errors: [{ field: 'personalizations.0.headers', message: 'Invalid type. Expected: object, given: string.' }] });
    const handle = await h.launch(id, audience(200), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100 });
    const held = await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.paused ? p : undefined;
    }, 'the campaign to hold on the 400');
    assert.match(
      held.pauseReason ?? '',
      /sendgrid: SendGrid rejected the message \(400 personalizations\.0\.headers: Invalid type\. Expected: object, given: string\.\)/,
    );
    assert.equal(held.switches.length, 0);
    assert.equal(h.primary.acceptedCount, 0);
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.deepEqual(result.acceptedByProvider, { sendgrid: 200 });
    assertExactlyOnce(h, 200);
  });

  it('sendgrid: 413 over the size limit splits the call in halves until it fits; every recipient once, no switch', async () => {
    const { h, sg } = await harness();
    await h.startWorker();
    const LIMIT = 200_000;
    sg.maxBodyBytes(LIMIT);
    const result = await (await h.launch(uniqueId('sg-413'), audience(1000), { providers: ['sendgrid', 'smtp-primary'], batchSize: 1000 })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { sendgrid: 1000 });
    assert.equal(sg.calls[0].status, 413);
    assert.ok(sg.calls.every((c) => (c.status === 413 ? c.bytes > LIMIT : c.status === 202 && c.bytes <= LIMIT)));
    assert.equal(
      sg.calls.filter((c) => c.status === 202).reduce((n, c) => n + c.personalizations, 0),
      1000,
    );
    assertExactlyOnce(h, 1000);
  });

  it('sendgrid: a 5xx after SendGrid took the call leaves it in doubt; Email Activity finds it and nobody is sent twice', async () => {
    const { h, sg } = await harness({ emailActivity: true });
    await h.startWorker();
    sg.acceptThenFailNext(1, 500);
    const result = await (await h.launch(uniqueId('sg-500'), audience(300), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { sendgrid: 300 });
    assert.equal(result.inFlightRecovered, 100, 'the 5xx call’s recipients were in doubt and looked up');
    assert.deepEqual(
      sg.calls.map((c) => c.status),
      [500, 202, 202],
      'the call SendGrid took was not sent again',
    );
    assertExactlyOnce(h, 300);
  });

  it('sendgrid: a lost answer (socket dropped after acceptance) is looked up in Email Activity, not resent', async () => {
    const { h, sg } = await harness({ emailActivity: true });
    await h.startWorker();
    sg.acceptThenDropNext(1);
    const dropped = await (await h.launch(uniqueId('sg-drop'), audience(200), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(dropped.acceptedByProvider, { sendgrid: 200 });
    assert.equal(dropped.inFlightRecovered, 100);
    assertExactlyOnce(h, 200);
  });

  it('sendgrid: a call that hung past the timeout and that SendGrid never took is found missing in Email Activity and sent once', async () => {
    const { h, sg } = await harness({ emailActivity: true, timeoutMs: 500 });
    await h.startWorker();
    sg.hangNext(1);
    const result = await (await h.launch(uniqueId('sg-hang'), audience(100), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { sendgrid: 100 });
    assert.equal(result.inFlightRecovered, 100);
    assert.deepEqual(
      sg.calls.map((c) => c.status),
      [0, 202],
    );
    assertExactlyOnce(h, 100);
  });

  it('sendgrid: without Email Activity a lost answer is not looked up: inFlight hold holds the call for review, never sends it twice', async () => {
    const { h, sg } = await harness({ emailActivity: false }, { inFlightPolicy: 'hold' });
    await h.startWorker();
    const id = uniqueId('sg-noactivity');
    sg.acceptThenDropNext(1);
    const handle = await h.launch(id, audience(200), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100 });
    const holding = await waitUntil(
      async () => {
        const p = await campaignProgress(h.client, id);
        return p.status === 'holding' && p.hold?.kind === 'review' ? p : undefined;
      },
      'the campaign to hold for review',
      60_000,
    );
    assert.equal(holding.heldForReview, 100);
    assert.deepEqual(
      sg.calls.map((c) => c.status),
      [0, 202],
      'the dropped call (never answered) was not sent again',
    );
    const released = await releaseHeldRows(h.client, id, { action: 'mark-sent', by: 'ops@test' });
    assert.equal(released.released, 100);
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assertExactlyOnce(h, 200);
  });

  it('sendgrid reconciliation: worker killed right after SendGrid accepted a call; after restart nobody in that call is sent twice and nobody is lost', async () => {
    const { h, sg } = await harness({ emailActivity: true });
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
      // The worker dies the moment SendGrid accepts the 3rd call: before it can read the answer and settle the ledger.
      let accepted = 0;
      sg.on('message', () => {
        if (++accepted === 201) process.kill(first.pid, 'SIGKILL');
      });
      const id = uniqueId('sg-kill');
      const handle = await h.launch(id, audience(1000), { providers: ['sendgrid', 'smtp-primary'], batchSize: 100 });
      await waitUntil(() => first.child.exitCode !== null || first.child.signalCode !== null, 'the worker to die');
      await start();
      const result = await handle.result();
      assert.deepEqual(result.acceptedByProvider, { sendgrid: 1000 });
      assertExactlyOnce(h, 1000);
      assert.ok(
        // The calls in flight at the kill: up to one per batch of the window.
        result.inFlightRecovered >= 1 && result.inFlightRecovered <= 100 * DEFAULT_BATCHES_IN_FLIGHT,
        `the killed calls' unsettled recipients were looked up (${result.inFlightRecovered})`,
      );
      assert.equal(sg.calls.filter((c) => c.status === 202).length, 10, 'ten calls of 100, none sent again');
    } finally {
      await Promise.all(workers.map((w) => w.kill()));
    }
  });
});

describe('sendgrid provider against its emulator (no Temporal)', () => {
  let sg: SendGridServer;
  before(async () => {
    sg = await sendgridModule.emulator!.start({ name: 'sendgrid' });
  });
  after(async () => {
    await sg?.stop();
  });
  afterEach(() => sg.heal());

  const message = (seq: number): OutgoingMessage => ({
    campaignId: 'c1',
    seq,
    to: `u${seq}@example.com`,
    from: 'a@mailover.test',
    subject: 's',
    text: 't',
    messageId: `<c1.${seq}@mailover>`,
  });

  it('sendgrid: a call cancelled while SendGrid has not answered (the attempt was cancelled) fails at once with its recipients in doubt', async () => {
    const p = new SendGridProvider({ ...sendgridModule.emulator!.config(sg), timeoutMs: 30_000 });
    sg.hangNext(1);
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 200);
    const err = await p
      .sendBatch([message(1), message(2)], async () => undefined, undefined, ac.signal)
      .then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof TransientProviderError, String(err));
    assert.deepEqual(err.inDoubt, [1, 2]);
    assert.ok(Date.now() - t0 < 5_000, 'cancelled, not timed out');
  });

  it('sendgrid: two calls in parallel both answered 500 after SendGrid took them: the batch error names every recipient of both as in doubt', async () => {
    const p = new SendGridProvider({ ...sendgridModule.emulator!.config(sg), callSize: 2, concurrency: 2 });
    sg.acceptThenFailNext(2, 500);
    const err = await p
      .sendBatch([1, 2, 3, 4].map(message), async () => undefined)
      .then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof TransientProviderError, String(err));
    assert.deepEqual([...err.inDoubt].sort(), [1, 2, 3, 4]);
  });

  it('sendgrid: when Email Activity fills its 1,000-message page, a few recipients are looked up one by one and the rest held, never guessed', async () => {
    const p = new SendGridProvider({ ...sendgridModule.emulator!.config(sg), callSize: 1000, concurrency: 1 });
    const all = Array.from({ length: 1010 }, (_, i) => ({ ...message(i + 1), campaignId: 'c-page' }));
    await p.sendBatch(all, async () => undefined);
    // The newest 1,000 fill the page: seqs 1-10 are not in it.
    const dispatchedAt = new Date(Date.now() - 5_000);
    const asked = [1, 2, 3, 4, 5, 6, 7, 500].map((seq) => ({ message: all[seq - 1], dispatchedAt }));
    const found = await p.lookup!(asked);
    assert.deepEqual(
      [...found].map(([seq, r]) => [seq, r.status]),
      [
        [1, 'accepted'],
        [2, 'accepted'],
        [3, 'accepted'],
        [4, 'accepted'],
        [5, 'accepted'],
        [6, 'failed'],
        [7, 'failed'],
        [500, 'accepted'],
      ],
    );
    const held = found.get(6);
    assert.ok(held?.status === 'failed' && /more than 5 recipients are left to look up one by one/.test(held.reason));
    assert.equal(
      (await p.lookup!([{ message: { ...message(2000), campaignId: 'c-page' }, dispatchedAt: new Date(0) }])).get(2000)?.status,
      'not-found',
      'a message SendGrid never took, past its window',
    );
  });

  it("sendgrid: the emulator checks the Bearer key and the request as SendGrid does, naming fields, and applies each personalization's substitutions", async () => {
    const config = sendgridModule.emulator!.config(sg);
    const send = (body: unknown, apiKey = config.apiKey) =>
      sendGridRequest({ ...config, apiKey }, { method: 'POST', url: '/v3/mail/send', body }, { timeoutMs: 2_000 });
    const valid = {
      from: { email: 'a@mailover.test' },
      content: [{ type: 'text/plain', value: 'Hi -name-' }],
      custom_args: { mailover_campaign: 'emu' },
      personalizations: [
        { to: [{ email: 'x@example.com' }], subject: 'S -name-', substitutions: { '-name-': 'Xena' }, custom_args: { mailover_seq: '1' } },
        { to: [{ email: 'y@example.com' }], subject: 'S -name-', substitutions: { '-name-': 'Yan' }, custom_args: { mailover_seq: '2' } },
      ],
    };
    const denied = await send(valid, 'SG.wrong');
    assert.equal(denied.status, 401);
    assert.deepEqual(denied.body, { errors: [{ field: null, message: 'The provided authorization grant is invalid, expired, or revoked', help: null }] });
    const bad = await send({ from: { email: 'nope' }, content: [{ type: 'text/plain', value: '' }], personalizations: [] });
    assert.equal(bad.status, 400);
    assert.deepEqual(
      (bad.body as { errors: Array<{ field: string }> }).errors.map((e) => e.field),
      ['from.email', 'personalizations', 'content'],
    );
    const before = sg.acceptedCount;
    const ok = await send(valid);
    assert.equal(ok.status, 202);
    assert.match(String(ok.headers['x-message-id']), /^[A-Za-z0-9_-]{10,}$/);
    const [x, y] = sg.messages.slice(before);
    assert.deepEqual([x.to, x.subject, x.text, x.customArgs], ['x@example.com', 'S Xena', 'Hi Xena', { mailover_campaign: 'emu', mailover_seq: '1' }]);
    assert.deepEqual([y.to, y.subject, y.text], ['y@example.com', 'S Yan', 'Hi Yan']);
    const query = await sendGridRequest(config, { method: 'GET', url: '/v3/messages', qs: { query: 'subject="S Yan"', limit: 10 } }, { timeoutMs: 2_000 });
    assert.equal(query.status, 400, 'a query clause the emulator does not implement is refused, not ignored');
  });

  it('sendgrid: verify reads the key’s scopes: passes with the key, names the failure without it, and a closed port refuses', async () => {
    await new SendGridProvider(sendgridModule.emulator!.config(sg)).verify();
    const bad = new SendGridProvider({ ...sendgridModule.emulator!.config(sg), apiKey: 'SG.wrong' });
    await assert.rejects(
      bad.verify(),
      (e: Error) => e instanceof ProviderUnavailableError && /authentication failed \(401/.test(e.message) && !e.message.includes('SG.wrong'),
    );
    const closed = new SendGridProvider({ ...sendgridModule.emulator!.config(sg), url: 'http://127.0.0.1:1' });
    await assert.rejects(
      closed.verify(),
      (e: Error) => e instanceof ProviderUnavailableError && /cannot reach http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/.test(e.message),
    );
  });
});

describe('sendgrid Event Webhook and lists (compliance server on real HTTP, emulator, SQLite store)', function () {
  this.timeout(60_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let sg: SendGridServer;
  let server: ComplianceServer;
  const WINDOW = 300;

  before(async () => {
    env = await startDevServer();
    h = await Harness.create({ env, esps: [{ kind: 'sendgrid', name: 'sendgrid', settings: { timeoutMs: 2_000 } }] });
    sg = h.esp('sendgrid') as SendGridServer;
    server = await ComplianceServer.start({
      store: h.store,
      webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: WINDOW, maxBodyBytes: 64 * 1024 },
      providerWebhooks: new Map([['sendgrid', { signingKey: sg.publicKey, webhooks: sendgridModule.webhooks! }]]),
    });
    sg.setWebhook(`${server.url}/webhooks/sendgrid`, sg.publicKey);
    await h.startWorker();
  });
  after(async () => {
    await server?.stop();
    await h?.close();
    await env?.teardown();
  });

  const post = (body: string, headers: Record<string, string>) =>
    fetch(`${server.url}/webhooks/sendgrid`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  it('sendgrid: a real-shaped bounce and spam report suppress the address and link to the ledger; forged, stale and replayed requests are refused', async () => {
    const id = uniqueId('sg-events');
    await (await h.launch(id, audience(5), { providers: ['sendgrid'], batchSize: 5 })).result();
    const bounced = await sg.simulateEvent('user2@example.com', 'bounce');
    const complained = await sg.reportComplaint('user3@example.com');
    assert.deepEqual([bounced.webhookStatus, complained.webhookStatus], [200, 200]);
    assert.equal(await h.store.isSuppressed('user2@example.com'), true);
    assert.equal(await h.store.isSuppressed('user3@example.com'), true);
    assert.equal(await h.store.isSuppressed('user4@example.com'), false);
    const events = await h.store.listEvents({ campaignId: id });
    assert.deepEqual(events.map((e) => [e.type, e.email, e.seq]).sort(), [
      ['complained', 'user3@example.com', 3],
      ['failed-permanent', 'user2@example.com', 2],
    ]);

    const body = JSON.stringify([sg.eventFor('user4@example.com', 'spamreport')]);
    // Forged: signed with a key that is not the configured one.
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const now = String(Math.floor(Date.now() / 1000));
    const forged = { [SIGNATURE_HEADER]: sign('sha256', Buffer.from(now + body), other.privateKey).toString('base64'), [TIMESTAMP_HEADER]: now };
    assert.equal((await post(body, forged)).status, 401);
    // Stale: signed by SendGrid's key, but an hour ago.
    assert.equal((await post(body, sg.signatureHeaders(body, Math.floor(Date.now() / 1000) - 3600))).status, 400);
    // Replayed: the same signed request twice (also with a fresh signature of the same timestamp and body).
    const headers = sg.signatureHeaders(body);
    assert.equal((await post(body, headers)).status, 200);
    assert.equal((await post(body, headers)).status, 409);
    assert.equal((await post(body, sg.signatureHeaders(body, Number(headers[TIMESTAMP_HEADER])))).status, 409);
    // Missing signature headers: refused as malformed.
    assert.equal((await post(body, {})).status, 400);
    assert.equal(await h.store.isSuppressed('user4@example.com'), true, 'only the genuine request counted');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /mailover_webhook_refused_forged_total 1\n/);
    assert.match(metrics, /mailover_webhook_refused_stale_total 1\n/);
    assert.match(metrics, /mailover_webhook_refused_replayed_total 2\n/);
  });

  it('sendgrid: a batch of events in one request is recorded event by event; delivered and opens suppress nobody', async () => {
    const id = uniqueId('sg-batch');
    await (await h.launch(id, audience(3, 'batch.example'), { providers: ['sendgrid'], batchSize: 3 })).result();
    const events = [
      sg.eventFor('user1@batch.example', 'delivered', { response: '250 OK' }),
      sg.eventFor('user1@batch.example', 'open'),
      sg.eventFor('user2@batch.example', 'unsubscribe'),
    ];
    const res = await sg.postEvents(events);
    assert.equal(res.webhookStatus, 200);
    assert.equal(res.body, 'recorded delivered\nrecorded unsubscribed; suppressed');
    assert.equal(await h.store.isSuppressed('user1@batch.example'), false);
    assert.equal(await h.store.isSuppressed('user2@batch.example'), true);
  });

  it('sendgrid: pull reads every page of bounces, spam reports and global unsubscribes (blocks counted, not suppressed); push posts global unsubscribes', async () => {
    sg.addSuppressions(
      'bounces',
      Array.from({ length: 1200 }, (_, i) => ({ email: `bounced${i}@pull.example`, reason: '550 5.1.1 no such user', status: '5.1.1' })),
    );
    sg.addSuppressions('blocks', [{ email: 'blocked@pull.example', reason: 'IP on a blocklist' }]);
    sg.addSuppressions('spam_reports', [{ email: 'spam@pull.example' }]);
    sg.addSuppressions('unsubscribes', [{ email: 'unsub@pull.example' }]);
    const config = { ...sendgridModule.emulator!.config(sg), timeoutMs: 2_000 };
    const report = await pullSendGridSuppressions(h.store, config);
    // The lists also hold what earlier tests' events put there (a bounce, a spam report).
    const held = (list: 'bounces' | 'blocks' | 'spam_reports' | 'unsubscribes') => sg.suppressions(list).length;
    assert.ok(held('bounces') > 1000 && held('bounces') < 1500);
    assert.deepEqual(report.read, { bounces: held('bounces'), blocks: 1, spam_reports: held('spam_reports'), unsubscribes: held('unsubscribes') });
    assert.equal(report.pages, 3 + 1 + 1 + 1, 'bounces in pages of 500: 500, 500, the rest');
    assert.equal(await h.store.isSuppressed('bounced1199@pull.example'), true);
    assert.equal(await h.store.isSuppressed('spam@pull.example'), true);
    assert.equal(await h.store.isSuppressed('unsub@pull.example'), true);
    assert.equal(await h.store.isSuppressed('blocked@pull.example'), false);
    const again = await pullSendGridSuppressions(h.store, config);
    assert.equal(again.added, 0, 'a second pull adds nothing');

    await h.store.addSuppression('pushed@push.example', 'unsubscribed (link)', 'test');
    const pushed = await pushSendGridSuppressions(h.store, config);
    const all = (await h.store.listSuppressions()).length;
    assert.equal(pushed.pushed, all);
    assert.equal(pushed.calls, Math.ceil(all / 1000));
    assert.ok(sg.suppressions('unsubscribes').some((s) => s.email === 'pushed@push.example'));
  });
});
