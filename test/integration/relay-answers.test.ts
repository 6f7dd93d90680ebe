/**
 * What real relays and ESPs answer, on real campaigns (a Temporal dev server, real SMTP servers
 * answering as Postfix, Exim or Exchange do, a Mailgun-compatible API over HTTP): a policy refusal
 * is the relay refusing us (switch, nobody rejected or suppressed), a full mailbox is one
 * recipient's problem (deferred, the campaign goes on), a lost reply is in doubt (held or resent
 * and counted), and a slow or failing Mailgun answer never mails anyone twice. No address reaches
 * a switch reason, provider health or the workflow history.
 */
import { strict as assert } from 'assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, releaseHeldRows } from '../../src/client';
import { providerHealth } from '../../src/provider-health-client';
import type { CampaignProgress, CampaignResult } from '../../workflows/campaign-api';
import { assertExactlyOnce, audience, Harness, type HarnessOptions, uniqueId } from '../support/harness';
import { addressInHistory, ANY_ADDRESS } from '../support/pii';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

/** Short SMTP timeouts: a lost reply's socket timeout and its in-doubt window are seconds, not a minute. */
const QUICK_SMTP = { timeouts: { connectionMs: 2_000, greetingMs: 2_000, socketMs: 1_000 } };

/** The one message the relay kept without answering (`loseRepliesAfterData(1, how)`): its recipient and seq. */
function lostReply(t: Harness, how: string): { email: string; seq: number } {
  const kept = t.primary.messages.filter((m) => m.replyLost === how);
  assert.equal(kept.length, 1, `the relay kept one message without answering (${how})`);
  const email = kept[0]!.to[0]!;
  return { email, seq: Number(/^user(\d+)@/.exec(email)![1]) };
}

describe('relay answers: real replies on real campaigns', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness | undefined;
  const workers: WorkerProcess[] = [];

  before(async () => {
    env = await startDevServer();
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
    await h?.close();
    h = undefined;
  });
  after(async () => {
    await env?.teardown();
  });

  async function harness(opts: Omit<HarnessOptions, 'env'> = {}): Promise<Harness> {
    h = await Harness.create({ env, ...opts });
    await h.startWorker();
    return h;
  }

  /** Nothing anywhere a user reads about the campaign names an address. */
  async function assertNoAddress(harness: Harness, id: string, result: CampaignResult | CampaignProgress): Promise<void> {
    for (const s of result.switches) assert.doesNotMatch(s.reason, ANY_ADDRESS, `switch reason: ${s.reason}`);
    for (const [p, why] of Object.entries({ ...result.providersDown, ...result.sharedDown })) assert.doesNotMatch(why, ANY_ADDRESS, `${p} down: ${why}`);
    for (const name of harness.registry.names()) {
      const state = await providerHealth(harness.client, harness.taskQueue, name);
      for (const text of [state?.reason ?? '', ...(state?.transitions ?? []).map((t) => t.reason)])
        assert.doesNotMatch(text, ANY_ADDRESS, `${name} health: ${text}`);
    }
    assert.equal(await addressInHistory(harness.client.workflow.getHandle(id)), undefined, 'no address in the workflow history');
  }

  it('relay answers: every RCPT TO refused with "550 5.7.1 <addr>: Relay access denied" switches to the second relay; nobody is rejected or suppressed, everyone gets it once', async () => {
    const t = await harness();
    t.primary.failAllRecipients(550, '5.7.1 <{address}>: Relay access denied');
    const id = uniqueId('relay-denied');
    const result = await (await t.launch(id, audience(400), { batchSize: 50 })).result();
    assert.equal(result.status, 'completed');
    assert.deepEqual(result.acceptedByProvider, { 'smtp-secondary': 400 });
    assert.equal(result.rejected, 0, 'nobody rejected');
    assert.equal(result.suppressed, 0);
    assert.deepEqual(await t.store.listSuppressions(), [], 'nobody added to the suppression list');
    assert.equal(result.switches.length, 1);
    assert.match(
      result.switches[0]!.reason,
      /^smtp-primary: relay access denied: the relay refuses us \(550 5\.7\.1\) at RCPT TO: "\[address\]: Relay access denied"$/,
    );
    assert.equal((await providerHealth(t.client, t.taskQueue, 'smtp-primary'))?.circuit, 'open', 'the refusing relay is down for every campaign');
    assertExactlyOnce(t, 400);
    await assertNoAddress(t, id, result);
  });

  it('relay answers: the sender refused at MAIL FROM with "553 5.7.1 Sender address rejected: not owned by user" switches to the second relay; nobody is rejected', async () => {
    const t = await harness();
    t.primary.failAll(553, '5.7.1 <news@mailover.test>: Sender address rejected: not owned by user');
    const id = uniqueId('sender-refused');
    const result = await (await t.launch(id, audience(400), { batchSize: 50 })).result();
    assert.deepEqual(result.acceptedByProvider, { 'smtp-secondary': 400 });
    assert.equal(result.rejected, 0);
    assert.equal(result.switches.length, 1);
    assert.match(result.switches[0]!.reason, /^smtp-primary: .*\(553 5\.7\.1\) at MAIL FROM: "\[address\]: Sender address rejected: not owned by user"$/);
    assertExactlyOnce(t, 400);
    await assertNoAddress(t, id, result);
  });

  it('relay answers: a relay that answers every RCPT TO with "550 5.1.1 User unknown" (it only knows its own users) is the relay refusing us: nobody is suppressed, the campaign switches', async () => {
    const t = await harness();
    t.primary.failAllRecipients(550, '5.1.1 <{address}>: Recipient address rejected: User unknown in local recipient table');
    const id = uniqueId('all-unknown');
    const result = await (await t.launch(id, audience(200), { batchSize: 50 })).result();
    assert.deepEqual(result.acceptedByProvider, { 'smtp-secondary': 200 });
    assert.equal(result.rejected, 0);
    assert.deepEqual(await t.store.listSuppressions(), []);
    assert.match(
      result.switches[0]!.reason,
      /^smtp-primary: \d+ of \d+ recipients of the batch were refused alike \(550 5\.1\.1\), so it is the provider refusing us/,
    );
    assertExactlyOnce(t, 200);
    await assertNoAddress(t, id, result);
  });

  it('relay answers: three full mailboxes ("452 4.2.2 Mailbox full" on every relay) are deferred one by one while the campaign goes on; two emptied later get it, the third is a soft bounce after the window; no provider is marked down', async () => {
    const t = await harness();
    const full = ['user7@example.com', 'user150@example.com', 'user333@example.com'];
    for (const relay of [t.primary, t.secondary]) relay.rejectRecipients(full, 452, '4.2.2 <{address}>: Mailbox full');
    const id = uniqueId('mailbox-full');
    const handle = await t.launch(id, audience(400), {
      batchSize: 50,
      options: { deferralFirstRetryMs: 300, deferralMaxRetryMs: 1_000, deferralWindowMs: 8_000 },
    });
    const firstPass = await waitUntil(async () => {
      const p = await campaignProgress(t.client, id);
      return p.cursor === 400 ? p : undefined;
    }, 'the first pass through the audience');
    assert.equal(firstPass.accepted, 397, 'everyone else got it in the first pass: one full mailbox does not stall the batch');
    assert.equal(firstPass.deferred, 3);
    assert.equal(firstPass.status, 'running', 'waiting for the deferred retries, not holding');
    t.primary.acceptRecipients(full.slice(0, 2));
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 399);
    assert.equal(result.rejected, 1);
    assert.equal(result.deferred, 0);
    assert.equal(result.switches.length, 0, 'no switch: a full mailbox is not the provider failing');
    const health = await providerHealth(t.client, t.taskQueue, 'smtp-primary');
    assert.equal(health?.circuit ?? 'closed', 'closed');
    const rows = await t.store.listRecipients(id);
    const third = rows.find((r) => r.email === full[2])!;
    assert.equal(third.state, 'rejected');
    assert.match(third.lastError ?? '', /^soft bounce: deferred \d+ times over .* \(deferral window 8 s\); last answer: smtp-primary: .*4\.2\.2/);
    assert.ok(rows.filter((r) => full.slice(0, 2).includes(r.email)).every((r) => r.state === 'accepted' && r.deferrals >= 1));
    assert.deepEqual(await t.store.listSuppressions(), [], 'a full mailbox is never suppressed');
    assertExactlyOnce(t, 400, [full[2]!]);
    await assertNoAddress(t, id, result);
  });

  it('relay answers: the connection closed right after the DATA dot (the relay has it, we never hear) under inFlight: resend sends it again and counts it', async () => {
    const t = await harness({ inFlightPolicy: 'resend', providerExtras: { 'smtp-primary': QUICK_SMTP } });
    t.primary.loseRepliesAfterData(1, 'close');
    const id = uniqueId('lost-close');
    const result = await (await t.launch(id, audience(40), { batchSize: 10 })).result();
    assert.equal(result.accepted, 40);
    assert.equal(result.inFlightRecovered, 1, 'the one in doubt is counted');
    assert.equal(result.switches.length, 0);
    // Which message lost its reply depends on which batch reached the relay first (several are in flight).
    const lost = lostReply(t, 'close');
    const twice = [...t.deliveries()].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [[lost.email, 2]], 'only the recipient in doubt got it twice: the cost of resend, counted');
    assert.equal((await t.store.getRecipients(id, [lost.seq]))[0]?.inFlightRecoveries, 1);
  });

  for (const how of ['reset', 'silence'] as const) {
    it(`relay answers: the reply lost after the DATA dot (connection ${how === 'reset' ? 'reset' : 'silent until our socket timeout'}) under inFlight: hold is held for review, never resent; released as sent, the campaign completes with everyone once`, async () => {
      const t = await harness({ inFlightPolicy: 'hold', providerExtras: { 'smtp-primary': QUICK_SMTP } });
      t.primary.loseRepliesAfterData(1, how);
      const id = uniqueId(`lost-${how}`);
      const handle = await t.launch(id, audience(40), { batchSize: 10 });
      const holding = await waitUntil(async () => {
        const p = await campaignProgress(t.client, id);
        return p.hold?.kind === 'review' ? p : undefined;
      }, 'the campaign to hold for review');
      assert.equal(holding.status, 'holding');
      assert.equal(holding.heldForReview, 1);
      assert.equal(holding.accepted, 39);
      const held = await t.store.listHeld(id);
      const lost = lostReply(t, how);
      assert.deepEqual(
        held.map((r) => [r.seq, r.provider]),
        [[lost.seq, 'smtp-primary']],
        'the one held is the one whose reply the relay lost (the relay kept it)',
      );
      assert.match(held[0]!.reason, /^in doubt: handed to smtp-primary and no answer came/);
      await releaseHeldRows(t.client, id, { action: 'mark-sent', by: 'ops@test' });
      const result = await handle.result();
      assert.equal(result.status, 'completed');
      assert.equal(result.accepted, 40);
      assertExactlyOnce(t, 40);
      await assertNoAddress(t, id, result);
    });
  }

  it('relay answers: a Mailgun call slower than the heartbeat timeout is waited for (heartbeats go on), not sent again', async () => {
    const t = await harness({ mailgun: { timeoutMs: 10_000, lookupSettleMs: 1_000 } });
    const mg = t.mailgun!;
    mg.acceptSlowlyNext(1, 4_000); // the heartbeat timeout is 2 s (FAST)
    const id = uniqueId('mg-slow');
    const result = await (await t.launch(id, audience(150), { providers: ['mailgun'], batchSize: 50 })).result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 150 });
    assert.deepEqual(
      mg.calls.map((c) => [c.recipients, c.status]),
      [
        [50, 200],
        [50, 200],
        [50, 200],
      ],
      'three calls, none sent again',
    );
    assert.equal(result.inFlightRecovered, 0, 'the attempt with the slow call lived on: no later attempt found its rows in flight');
    assertExactlyOnce(t, 150);
  });

  it('relay answers: a Mailgun call accepted only after our client gave up is looked up once its call window is over, not sent again', async () => {
    const t = await harness({ mailgun: { timeoutMs: 1_500, lookupSettleMs: 1_500 } });
    const mg = t.mailgun!;
    mg.acceptSlowlyNext(1, 2_500); // after our 1.5 s timeout, within timeout + event lag
    const id = uniqueId('mg-late');
    const result = await (await t.launch(id, audience(100), { providers: ['mailgun'], batchSize: 50 })).result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 100 });
    assert.deepEqual(
      mg.calls.map((c) => [c.recipients, c.status]),
      [
        [50, 0],
        [50, 200],
      ],
      'the late call was looked up, not repeated',
    );
    assert.equal(result.inFlightRecovered, 50);
    assertExactlyOnce(t, 100);
  });

  it('relay answers: Mailgun took the call but answered 502: its recipients are looked up, found, and not sent again', async () => {
    const t = await harness({ mailgun: true });
    const mg = t.mailgun!;
    mg.acceptThenFailNext(1, 502, { message: 'Bad Gateway' });
    const id = uniqueId('mg-502');
    const result = await (await t.launch(id, audience(100), { providers: ['mailgun', 'smtp-primary'], batchSize: 50 })).result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 100 });
    assert.equal(result.switches.length, 0);
    assert.deepEqual(
      mg.calls.map((c) => c.status),
      [502, 200],
      'the 502 call was not repeated',
    );
    assertExactlyOnce(t, 100);
  });

  it('relay answers: the worker SIGKILLed while a slow Mailgun call is open: the next worker waits out the call window, looks it up and sends nobody twice', async () => {
    h = await Harness.create({ env, mailgun: { timeoutMs: 6_000, lookupSettleMs: 1_000 } });
    const t = h;
    const bundlePath = await writeWorkflowBundle(t.dir);
    const start = async () => {
      const w = await WorkerProcess.start({
        address: env.address,
        taskQueue: t.taskQueue,
        dir: t.dir,
        providers: t.providerDefs,
        sqlitePath: `${t.dir}/mailover.db`,
        bundlePath,
      });
      workers.push(w);
      return w;
    };
    const mg = t.mailgun!;
    const first = await start();
    mg.acceptSlowlyNext(1, 3_000);
    mg.once('pending', () => process.kill(first.pid, 'SIGKILL'));
    const id = uniqueId('mg-kill-slow');
    const handle = await t.launch(id, audience(100), { providers: ['mailgun'], batchSize: 50 });
    await waitUntil(() => first.child.exitCode !== null || first.child.signalCode !== null, 'the worker to die');
    await start();
    const result = await handle.result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 100 });
    assert.deepEqual(
      mg.calls.map((c) => [c.recipients, c.status]),
      [
        [50, 0],
        [50, 200],
      ],
      'the slow call was accepted by Mailgun after the worker died, and not repeated',
    );
    assertExactlyOnce(t, 100);
  });
});
