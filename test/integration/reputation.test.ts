/**
 * The reputation breaker end to end: real Temporal dev server, the Mailgun-compatible API posting
 * signed complaint webhooks to the real webhooks server (HTTP), an SMTP sink answering hard bounces,
 * an alert receiver and the worker's metrics. A campaign whose complaint or hard-bounce rate
 * crosses its threshold pauses (holding, kind reputation) with the figures, never fails over, and
 * after an operator's resume completes with every recipient exactly once.
 */
import { strict as assert } from 'assert';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, cancelCampaign, resumeCampaign } from '../../src/client';
import { startComplianceServices, type ComplianceServices } from '../../src/compliance/services';
import type { AlertTarget } from '../../src/config';
import { MailoverMetrics } from '../../src/metrics/metrics';
import { OPS_EVENT_KINDS } from '../../src/ops-events';
import type { CampaignProgress } from '../../workflows/campaign-api';
import { AlertReceiver } from '../support/alert-receiver';
import { assertExactlyOnce, audience, Harness, TEST_WEBHOOK_KEY, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';

describe('routing: reputation breaker end to end (Temporal, Mailgun API with webhooks, webhooks server, SMTP sink)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  let services: ComplianceServices;
  let receiver: AlertReceiver;
  let metrics: MailoverMetrics;

  before(async () => {
    env = await startDevServer();
    receiver = await AlertReceiver.start();
    const alerts: AlertTarget[] = [{ name: 'ops', kind: 'webhook', url: receiver.url(), events: [...OPS_EVENT_KINDS], timeoutMs: 2_000 }];
    metrics = new MailoverMetrics({ providers: ['smtp-primary', 'smtp-secondary', 'mailgun'], alertTargets: ['ops'], defaultMetrics: false });
    // Small numbers so a test campaign reaches them: judged from 20 sends over the last 100, complaints over 1 %.
    h = await Harness.create({
      env,
      mailgun: true,
      alerts,
      metrics,
      reputation: { hardBouncePercent: 5, complaintPercent: 1, window: 100, minSends: 20 },
    });
    const providers = h.providerDefs.map((d) => (d.kind === 'mailgun' ? { ...d, webhookSigningKey: TEST_WEBHOOK_KEY } : d));
    services = await startComplianceServices(
      { providers, compliance: { webhooks: { host: '127.0.0.1', port: 0, maxAgeSeconds: 300, maxBodyBytes: 64 * 1024 } } },
      h.store,
    );
    h.mailgun!.setWebhook(`${services.http.url}/webhooks/mailgun`, TEST_WEBHOOK_KEY);
    await h.startWorker();
  });
  after(async () => {
    await services?.stop();
    await h?.close();
    await receiver?.stop();
    await env?.teardown();
  });

  const holding = (id: string) =>
    waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.status === 'holding' && p.hold?.kind === 'reputation' ? p : undefined;
    }, `campaign ${id} holding on reputation`);

  it('routing: a complaint surge posted to the webhooks server while the campaign sends pauses it (holding, kind reputation) with the rates in the reason, raises an alert, counts it; resumed, it completes with every recipient exactly once', async () => {
    const id = uniqueId('complaints');
    const n = 500;
    // A slow provider: 50 batches of 10, four in flight at 200 ms a call, take seconds, so the complaints land long before the end.
    h.mailgun!.setLatency(200);
    const handle = await h.launch(id, audience(n), { batchSize: 10, providers: ['mailgun', 'smtp-primary'] });
    await h.mailgun!.waitForCount(40, 30_000);
    // Five recipients already sent report the message as spam: signed Mailgun webhooks, a real HTTP POST each.
    for (let i = 1; i <= 5; i++) {
      const r = await h.mailgun!.simulateEvent(`user${i}@example.com`, 'complained');
      assert.equal(r.webhookStatus, 200, r.webhookBody);
    }
    const p: CampaignProgress = await holding(id);
    h.mailgun!.setLatency(0);

    // The next batch's check pauses it, on as many of the five as were stored by then (one is already 1 % or more).
    const reason = new RegExp(`^reputation: complaints (\\d+(?:\\.\\d+)?) % \\(([1-5]) of (\\d+) sends, threshold 1 %\\) on mailgun for campaign ${id}$`);
    const m = reason.exec(p.hold!.reason);
    assert.ok(m, p.hold!.reason);
    const [complaints, sends] = [Number(m[2]), Number(m[3])];
    assert.ok(sends >= 40 && sends < n, `judged on ${sends} sends`);
    assert.equal(Number(m[1]), Number(((complaints / sends) * 100).toFixed(2)), 'the rate is complaints / sends');
    const linked = (await h.store.listEvents({ campaignId: id })).filter((e) => e.type === 'complained');
    assert.equal(linked.length, 5, 'every complaint stored and linked to its ledger row');
    assert.equal(p.pauseReason, p.hold!.reason);
    assert.ok(p.remaining > 0, 'paused before the end');
    // Paused, not failed over: moving a bad list to another ESP would burn that one too.
    assert.deepEqual(p.switches, []);
    assert.equal(p.activeProvider, 'mailgun');
    assert.equal(h.primary.received().length, 0);

    // The alert (an alarm with the figures) and the metrics.
    const alert = await waitUntil(
      () => receiver.received.find((a) => a.body?.event?.kind === 'reputation-paused' && a.body.event.campaignId === id),
      'the alert',
    );
    assert.deepEqual(
      { provider: alert.body.event.provider, measure: alert.body.event.measure, severity: alert.body.severity, reason: alert.body.event.reason },
      { provider: 'mailgun', measure: 'complaints', severity: 'alarm', reason: p.hold!.reason },
    );
    assert.ok(!receiver.received.some((a) => a.body?.event?.kind === 'campaign-holding' && a.body.event.campaignId === id), 'one alert, not two');
    const text = await metrics.text();
    assert.match(text, /^mailover_reputation_pauses_total\{provider="mailgun",measure="complaints"\} 1$/m);
    const gauge = /^mailover_reputation_rate\{provider="mailgun",measure="complaints"\} ([\d.e-]+)$/m.exec(text);
    assert.ok(gauge && Number(gauge[1]) > 0.01, text);

    // Nothing more goes out while it holds.
    const sentWhileHolding = h.mailgun!.received().length;
    assert.equal((await campaignProgress(h.client, id)).status, 'holding');

    // The operator resumes: a fresh window from now on (no new complaints), so it sends the rest.
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, n);
    assert.deepEqual(result.acceptedByProvider, { mailgun: n });
    assert.ok(h.mailgun!.received().length > sentWhileHolding);
    assertExactlyOnce(h, n);
  });

  it('routing: hard bounces answered at RCPT TO (550 5.1.1) over the threshold pause the campaign once the minimum of sends is in, on the provider that answered them', async () => {
    const id = uniqueId('bounces');
    const rows = audience(100, 'bounces.example');
    // Every fifth address does not exist: 20 % hard bounces, far over 5 % (and never most of a batch alike).
    h.primary.rejectRecipients(rows.filter((_, i) => i % 5 === 4).map((r) => r.email));
    // One batch at a time, so the check before each batch sees every earlier batch settled.
    const handle = await h.launch(id, rows, { batchSize: 10, providers: ['smtp-primary', 'smtp-secondary'], options: { batchesInFlight: 1 } });
    const p = await holding(id);
    assert.match(p.hold!.reason, new RegExp(`^reputation: hard bounces 20 % \\(\\d+ of \\d+ sends, threshold 5 %\\) on smtp-primary for campaign ${id}$`));
    // Judged once the window held 20 sends: after the second batch, before the rest.
    assert.equal(p.cursor, 20);
    assert.equal(p.remaining, 80);
    assert.deepEqual(p.switches, []);
    assert.deepEqual(
      [...h.secondary.countByRecipient().keys()].filter((a) => a.endsWith('@bounces.example')),
      [],
    );
    // The addresses that hard-bounced are suppressed everywhere; the campaign is cancelled (nothing else is sent).
    assert.ok(await h.store.isSuppressed(rows[4].email));
    await cancelCampaign(h.client, id);
    assert.equal((await handle.result()).status, 'cancelled');
    await h.primary.heal();
  });
});
