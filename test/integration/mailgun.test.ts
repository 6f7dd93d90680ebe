/**
 * The Mailgun provider end to end: batch calls with recipient-variables against a
 * Mailgun-compatible API on loopback, failover in both directions with SMTP, the HTTP
 * failure classes, and reconciliation of calls whose answer was lost.
 */
import { strict as assert } from 'assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, releaseHeldRows, resumeCampaign } from '../../src/client';
import { MailgunProvider, multipartBody, parseRetryAfter } from '../../src/providers/mailgun/provider';
import { unsubscribeUrl } from '../../src/compliance/unsubscribe';
import { assertExactlyOnce, audience, Harness, POSTAL_ADDRESS, ONE_AT_A_TIME, uniqueId } from '../support/harness';
import { DEFAULT_BATCHES_IN_FLIGHT } from '../../workflows/campaign-api';
import { maybeRecordHistory } from '../support/histories';
import { startDevServer, writeWorkflowBundle } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { WorkerProcess } from '../support/worker-process';

describe('mailgun provider (Mailgun-compatible API on loopback, real Temporal dev server)', function () {
  this.timeout(240_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });
  beforeEach(async () => {
    h = await Harness.create({ env, mailgun: true });
  });
  afterEach(async () => {
    await h?.close();
  });

  it('mailgun: 10,000 recipients go out in at most 10 API calls with per-recipient merge fields right (HTML escaped)', async () => {
    await h.startWorker();
    const id = uniqueId('mg-10k');
    const rows = audience(10_000);
    rows[41].fields.first_name = 'Ann & <Bob>';
    const result = await (await h.launch(id, rows, { providers: ['mailgun'], batchSize: 1000 })).result();
    assert.equal(result.accepted, 10_000);
    const mg = h.mailgun!;
    assert.ok(mg.callCount <= 10, `${mg.callCount} API calls`);
    assert.equal(mg.calls.filter((c) => c.status === 200).length, mg.callCount);
    assertExactlyOnce(h, 10_000);
    const byTo = new Map(mg.messages.map((m) => [m.to, m]));
    const m7 = byTo.get('user7@example.com')!;
    assert.equal(m7.subject, 'Hello User7');
    const unsubscribe = unsubscribeUrl(h.compliance.unsubscribe, id, 'user7@example.com');
    assert.equal(m7.text, `Hi User7, our news.\n\nUnsubscribe: ${unsubscribe}\n${POSTAL_ADDRESS}`);
    assert.equal(m7.html, `<p>Hi User7</p><p><a href="${unsubscribe}">Unsubscribe</a> | ${POSTAL_ADDRESS}</p>`);
    assert.equal(m7.headers['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click', 'per-recipient headers travel as recipient variables');
    assert.match(m7.headers['List-Unsubscribe'], new RegExp(`^<${unsubscribe.replace(/[.]/g, '\\.')}>, <mailto:`));
    assert.equal(m7.variables['mailover-campaign'], id);
    assert.equal(m7.variables['mailover-seq'], '7');
    assert.equal(m7.headers['X-Mailover-Recipient'], '7');
    const ann = byTo.get('user42@example.com')!;
    assert.equal(ann.subject, 'Hello Ann & <Bob>');
    assert.match(ann.html ?? '', /^<p>Hi Ann &amp; &lt;Bob&gt;<\/p>/);
    const ledger = await h.store.listRecipients(id);
    assert.ok(ledger.every((r) => r.state === 'accepted' && r.provider === 'mailgun' && /^<.+@.+>$/.test(r.providerMessageId ?? '')));
  });

  it('mailgun: failover SMTP → Mailgun mid-campaign accepts each recipient exactly once across the providers', async () => {
    await h.startWorker();
    const id = uniqueId('smtp-to-mg');
    h.primary.failAfter(230, 'refuse');
    const result = await (await h.launch(id, audience(600), { providers: ['smtp-primary', 'mailgun'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 230, mailgun: 370 });
    assert.equal(result.switches.length, 1);
    assert.equal(result.switches[0].to, 'mailgun');
    assertExactlyOnce(h, 600);
  });

  it('mailgun: failover Mailgun → SMTP when the API starts refusing the key (401) accepts each recipient exactly once', async () => {
    await h.startWorker();
    const id = uniqueId('mg-to-smtp');
    const mg = h.mailgun!;
    mg.setLatency(20);
    const handle = await h.launch(id, audience(800), { providers: ['mailgun', 'smtp-secondary'], batchSize: 100 });
    await mg.waitForCount(300, 30_000);
    mg.setAuthFailure(true);
    const result = await handle.result();
    assert.equal(result.switches.length, 1);
    assert.match(result.switches[0].reason, /mailgun: authentication failed \(401/);
    assert.equal(result.switches[0].to, 'smtp-secondary');
    assert.equal((result.acceptedByProvider.mailgun ?? 0) + (result.acceptedByProvider['smtp-secondary'] ?? 0), 800);
    assert.ok((result.acceptedByProvider.mailgun ?? 0) >= 300);
    assertExactlyOnce(h, 800);
    await maybeRecordHistory('mailgun-failover', handle, env.address);
  });

  it('mailgun: 429 with Retry-After backs off for the time asked and completes on the same provider', async () => {
    await h.startWorker();
    const id = uniqueId('mg-429');
    const mg = h.mailgun!;
    mg.failNext(1, 429, { retryAfterSeconds: 2, message: 'Too many requests' });
    // One call at a time: the call after the 429 is its retry.
    const result = await (await h.launch(id, audience(300), { providers: ['mailgun', 'smtp-secondary'], batchSize: 100, options: ONE_AT_A_TIME })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { mailgun: 300 });
    const limited = mg.calls.findIndex((c) => c.status === 429);
    assert.ok(limited >= 0);
    const retry = mg.calls[limited + 1];
    const waited = retry.at.getTime() - mg.calls[limited].at.getTime();
    assert.ok(waited >= 1900, `the retry came ${waited} ms after the 429 (Retry-After: 2 s; the retry policy alone would wait 100 ms)`);
    assertExactlyOnce(h, 300);
  });

  it('mailgun: 401 from the start switches provider at once, naming the failure', async () => {
    await h.startWorker();
    const id = uniqueId('mg-401');
    h.mailgun!.setAuthFailure(true);
    // One call at a time: a second 401 call would be a retry.
    const result = await (await h.launch(id, audience(150), { providers: ['mailgun', 'smtp-primary'], batchSize: 100, options: ONE_AT_A_TIME })).result();
    assert.equal(result.switches.length, 1);
    assert.match(result.switches[0].reason, /^mailgun: authentication failed \(401 Forbidden\): check the API key for mg\.mailover\.test$/);
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 150 });
    assert.equal(h.mailgun!.calls.filter((c) => c.status === 401).length, 1, 'no retry on 401');
  });

  it('mailgun: 400 gives a clear error and no switch; the campaign holds with it and completes on resume', async () => {
    await h.startWorker();
    const id = uniqueId('mg-400');
    h.mailgun!.failNext(1, 400, { message: "'from' parameter is not a valid address" });
    const handle = await h.launch(id, audience(200), { providers: ['mailgun', 'smtp-primary'], batchSize: 100 });
    const held = await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.paused ? p : undefined;
    }, 'the campaign to hold on the 400');
    assert.match(held.pauseReason ?? '', /mailgun: Mailgun rejected the message \(400 'from' parameter is not a valid address\)/);
    assert.equal(held.switches.length, 0);
    assert.equal(held.activeProvider, 'mailgun');
    assert.equal(h.primary.acceptedCount, 0, 'no switch to SMTP');
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 200 });
    assertExactlyOnce(h, 200);
  });

  it('mailgun: 413 splits the call in halves until it fits; every recipient once, no switch', async () => {
    await h.startWorker();
    const id = uniqueId('mg-413');
    const mg = h.mailgun!;
    mg.maxRecipientsPerCall(300);
    const result = await (await h.launch(id, audience(1000), { providers: ['mailgun', 'smtp-primary'], batchSize: 1000 })).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { mailgun: 1000 });
    // 1000 → 413; 500 → 413; 250 ok; 250 ok; 500 → 413; 250 ok; 250 ok
    assert.deepEqual(
      mg.calls.map((c) => `${c.recipients}:${c.status}`),
      ['1000:413', '500:413', '250:200', '250:200', '500:413', '250:200', '250:200'],
    );
    assertExactlyOnce(h, 1000);
  });

  it('mailgun: a call accepted but answered with a dropped connection is looked up in the Logs API, not sent again', async () => {
    await h.startWorker();
    const id = uniqueId('mg-drop');
    const mg = h.mailgun!;
    mg.acceptThenDropNext(1);
    const result = await (await h.launch(id, audience(300), { providers: ['mailgun', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 300 });
    assert.equal(result.inFlightRecovered, 100, 'the dropped call’s 100 recipients were in doubt and looked up');
    assertExactlyOnce(h, 300);
  });

  it('mailgun: a call that hangs past the timeout is looked up; Mailgun never saw it, so it is sent again, once', async () => {
    await h.startWorker();
    const id = uniqueId('mg-hang');
    h.mailgun!.hangNext(1);
    const result = await (await h.launch(id, audience(200), { providers: ['mailgun', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 200 });
    assert.equal(result.inFlightRecovered, 100);
    assertExactlyOnce(h, 200);
  });

  it('mailgun: while its event log may still lag (lookupSettleMs), a call that got no answer is looked up again later instead of resent', async () => {
    await h.close();
    h = await Harness.create({ env, mailgun: { lookupSettleMs: 2_500, timeoutMs: 500 } });
    await h.startWorker();
    const id = uniqueId('mg-lag');
    const mg = h.mailgun!;
    mg.hangNext(1);
    const result = await (await h.launch(id, audience(100), { providers: ['mailgun', 'smtp-primary'], batchSize: 100 })).result();
    assert.deepEqual(result.acceptedByProvider, { mailgun: 100 });
    assert.equal(result.switches.length, 0);
    const [hung, resent] = mg.calls;
    assert.equal(hung.status, 0, 'the first call never got an answer');
    assert.equal(resent.status, 200);
    const gap = resent.at.getTime() - hung.at.getTime();
    assert.ok(gap >= 2_400, `resent only once the settle window had passed (${gap} ms after the hung call)`);
    assertExactlyOnce(h, 100);
  });

  it('mailgun: a call whose answer was lost while the API then refuses the key: only its recipients are held for review (never sent twice), the rest fails over, and the campaign holds until an operator releases them', async () => {
    await h.startWorker();
    const id = uniqueId('mg-held');
    const mg = h.mailgun!;
    mg.acceptThenDropNext(1);
    mg.on('message', () => {
      if (mg.acceptedCount === 100) mg.setAuthFailure(true);
    });
    // One call at a time: the lost answer is the first call's (recipients 1-100), the 401 comes after it.
    const handle = await h.launch(id, audience(300), { providers: ['mailgun', 'smtp-primary'], batchSize: 100, options: ONE_AT_A_TIME });
    const holding = await waitUntil(
      async () => {
        const p = await campaignProgress(h.client, id);
        return p.status === 'holding' && p.hold?.kind === 'review' ? p : undefined;
      },
      'the campaign to hold for review',
      60_000,
    );
    assert.equal(holding.heldForReview, 100, 'the in-doubt call could not be looked up');
    assert.deepEqual(holding.acceptedByProvider, { 'smtp-primary': 200 });
    assert.equal(holding.switches.length, 1);
    assert.match(holding.hold?.reason ?? '', /100 recipient\(s\) held for review.*mailover campaign held/);
    const held = await h.store.listHeld(id);
    assert.equal(held.length, 100);
    assert.ok(held.every((r) => r.provider === 'mailgun' && r.seq <= 100));
    assert.match(held[0]!.reason, /^in doubt: handed to mailgun, no answer, and look-up failed: mailgun: authentication failed \(401/);
    // Mailgun did take them (the operator checks its dashboard): mark them sent.
    const released = await releaseHeldRows(h.client, id, { action: 'mark-sent', by: 'ops@test' });
    assert.deepEqual(released, { released: 100, ranges: [[1, 100]] });
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.heldForReview, 0);
    assert.deepEqual(result.acceptedByProvider, { mailgun: 100, 'smtp-primary': 200 });
    assertExactlyOnce(h, 300); // holding them kept them from a second send
    const rows = await h.store.getRecipients(id, [1, 100]);
    assert.ok(rows.every((r) => r.state === 'accepted' && r.releasedBy === 'ops@test'));
  });

  it('mailgun reconciliation: worker killed right after the API accepted a call; after restart nobody in that call is sent twice and nobody is lost', async () => {
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
      const mg = h.mailgun!;
      const first = await start();
      // The worker dies the moment the API accepts the 3rd call: before it can read the answer and settle the ledger.
      let accepted = 0;
      mg.on('message', () => {
        if (++accepted === 201) process.kill(first.pid, 'SIGKILL');
      });
      const id = uniqueId('mg-kill');
      const handle = await h.launch(id, audience(1000), { providers: ['mailgun', 'smtp-primary'], batchSize: 100 });
      await waitUntil(() => first.child.exitCode !== null || first.child.signalCode !== null, 'the worker to die');
      await start();
      const result = await handle.result();
      assert.deepEqual(result.acceptedByProvider, { mailgun: 1000 });
      assertExactlyOnce(h, 1000);
      const rows = await h.store.listRecipients(id);
      assert.ok(rows.every((r) => r.state === 'accepted'));
      assert.ok(
        // The calls in flight at the kill: up to one per batch of the window.
        result.inFlightRecovered >= 1 && result.inFlightRecovered <= 100 * DEFAULT_BATCHES_IN_FLIGHT,
        `the killed calls' unsettled recipients were looked up (${result.inFlightRecovered})`,
      );
      assert.deepEqual(
        mg.calls.map((c) => c.status),
        Array(10).fill(200),
        'ten calls of 100, none sent again',
      );
    } finally {
      await Promise.all(workers.map((w) => w.kill()));
    }
  });
});

describe('mailgun provider units', () => {
  it('mailgun: Retry-After is read as seconds or as an HTTP date', () => {
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(parseRetryAfter('1.5'), 1500);
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 22:00:10 GMT', Date.parse('Fri, 27 Nov 2026 22:00:00 GMT')), 10_000);
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
  });

  it('mailgun: the form body reads back as the same fields (repeated names, CR/LF, quotes, dashes, non-ASCII) with a standard parser', async () => {
    const fields: Array<[string, string]> = [
      ['from', 'Zoë <news@shop.example>'],
      ['to', 'a@example.com'],
      ['to', 'b@example.com'],
      ['recipient-variables', JSON.stringify({ 'a@example.com': { text: 'Line 1\r\n--\r\n"quoted" €\n' } })],
      ['text', '%recipient.text%'],
    ];
    const { boundary, body } = multipartBody(fields);
    const form = await new Response(body, { headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } }).formData();
    assert.deepEqual(form.getAll('to'), ['a@example.com', 'b@example.com']);
    assert.equal(form.get('from'), 'Zoë <news@shop.example>');
    assert.equal(form.get('recipient-variables'), fields[3]![1]);
    assert.equal(form.get('text'), '%recipient.text%');
    assert.ok(!fields.some(([, v]) => v.includes(boundary)));
  });

  it('mailgun: error messages never contain the API key', () => {
    const p = new MailgunProvider({ name: 'mg', domain: 'mg.example.org', apiKey: 'key-secret-42' });
    const err = p.classify({ kind: 'http', status: 401, message: 'bad key key-secret-42' });
    assert.ok(!err.message.includes('key-secret-42'), err.message);
  });
});
