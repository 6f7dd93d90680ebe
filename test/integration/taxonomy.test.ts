/**
 * The failure taxonomy of design.md, one class at a time, on real parts:
 * transient -> retried on the same provider; recipient permanent -> rejected + suppressed,
 * no switch; provider unavailable -> switch; none left -> hold; invalid campaign -> fails before any send.
 */
import { strict as assert } from 'assert';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { campaignProgress, resumeCampaign, setCampaignProviders, startCampaign } from '../../src/client';
import { audience, FAST, Harness, POSTAL_ADDRESS, TEMPLATE, uniqueId } from '../support/harness';
import { startDevServer } from '../support/temporal';
import { waitUntil } from '../support/wait';
import { CampaignStatusKey, HoldKindKey } from '../../workflows/search-attributes';

describe('failure taxonomy (each class on a real campaign)', function () {
  this.timeout(180_000);
  let env: TestWorkflowEnvironment;
  let h: Harness;
  const AUTH = { user: 'mailer', pass: 's3cret-pass' };

  before(async () => {
    env = await startDevServer();
  });
  after(async () => {
    await env?.teardown();
  });
  beforeEach(async () => {
    h = await Harness.create({ env, sinkAuth: AUTH });
    await h.startWorker();
  });
  afterEach(async () => {
    await h?.close();
  });

  it('transient: 451 for the next 6 messages is retried with backoff on the same provider; no switch, exactly once', async () => {
    const id = uniqueId('transient');
    h.primary.failNextMessages(6, 451);
    const result = await (await h.launch(id, audience(200))).result();
    assert.equal(result.switches.length, 0);
    assert.deepEqual(result.acceptedByProvider, { 'smtp-primary': 200 });
    assert.equal(h.secondary.acceptedCount, 0);
    for (const [addr, n] of h.deliveries()) assert.equal(n, 1, addr);
    assert.equal(h.deliveries().size, 200);
    const rows = await h.store.listRecipients(id);
    assert.ok(
      rows.some((r) => r.attempts > 1),
      'some rows needed a second attempt',
    );
  });

  it('recipient permanent: 550 for one address rejects it with the reason and suppresses it; no retry, no switch', async () => {
    const id = uniqueId('hardbounce');
    h.primary.rejectRecipients(['user5@example.com'], 550, '5.1.1 mailbox unavailable');
    const result = await (await h.launch(id, audience(100))).result();
    assert.equal(result.rejected, 1);
    assert.equal(result.accepted, 99);
    assert.equal(result.switches.length, 0);
    const row = (await h.store.listRecipients(id)).find((r) => r.email === 'user5@example.com');
    assert.equal(row?.state, 'rejected');
    assert.equal(row?.attempts, 1);
    assert.match(row?.lastError ?? '', /550/);
    assert.ok(await h.store.isSuppressed('user5@example.com'));
    // A later campaign, on another provider, skips the bounced address.
    await h.primary.heal();
    const second = uniqueId('after-bounce');
    const r2 = await (await h.launch(second, audience(10), { providers: ['smtp-secondary'] })).result();
    assert.equal(r2.suppressed, 1);
    assert.equal(h.secondary.countByRecipient().get('user5@example.com') ?? 0, 0);
  });

  it('provider unavailable: 535 authentication failure switches to the next provider at once and never leaks the password', async () => {
    const id = uniqueId('auth');
    await h.primary.setMode('auth-fail');
    const result = await (await h.launch(id, audience(120))).result();
    assert.equal(result.switches.length, 1);
    assert.match(result.switches[0].reason, /535/);
    assert.ok(!result.switches[0].reason.includes(AUTH.pass));
    assert.deepEqual(result.acceptedByProvider, { 'smtp-secondary': 120 });
    assert.equal(h.primary.acceptedCount, 0);
  });

  it('provider unavailable: transient errors that exhaust the retry budget switch provider with the reason', async () => {
    const id = uniqueId('budget');
    h.primary.failAll(421);
    const result = await (await h.launch(id, audience(80))).result();
    assert.equal(result.switches.length, 1);
    assert.match(result.switches[0].reason, /^retry budget exhausted: .*421/);
    assert.deepEqual(result.acceptedByProvider, { 'smtp-secondary': 80 });
  });

  it('no provider left: the campaign holds (paused with the reason) instead of failing, and completes on resume', async () => {
    const id = uniqueId('hold');
    h.primary.failAfter(30, 'refuse');
    await h.secondary.setMode('refuse');
    const handle = await h.launch(id, audience(100));
    const held = await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.status === 'holding' ? p : undefined;
    }, 'the campaign to hold');
    assert.equal(held.paused, true);
    assert.match(held.pauseReason ?? '', /^no provider left: smtp-primary: .*refused.*; smtp-secondary: .*refused/i);
    assert.equal(held.activeProvider, undefined);
    assert.equal(held.switches.length, 2);
    const desc = await handle.describe();
    assert.equal(desc.status.name, 'RUNNING', 'holding, not failed');
    await h.primary.heal();
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 100);
    for (const [addr, n] of h.deliveries()) assert.equal(n, 1, addr);
    assert.equal(h.deliveries().size, 100);
  });

  it('no provider left: a new provider order through the setProviders update ends the hold', async () => {
    const id = uniqueId('hold-update');
    await h.primary.setMode('refuse');
    await h.secondary.setMode('refuse');
    const handle = await h.launch(id, audience(40));
    await waitUntil(async () => (await campaignProgress(h.client, id)).status === 'holding', 'the campaign to hold');
    await h.secondary.heal();
    await setCampaignProviders(h.client, id, ['smtp-secondary']);
    const result = await handle.result();
    assert.deepEqual(result.acceptedByProvider, { 'smtp-secondary': 40 });
  });

  it('store failure: when the ledger cannot be written the campaign holds with the reason instead of failing, and resumes', async () => {
    await h.stopWorker();
    let ledgerDown = false;
    await h.startWorker(
      (store) =>
        new Proxy(store, {
          get(target, prop, receiver) {
            const v = Reflect.get(target, prop, receiver);
            if (prop === 'claimRange' && typeof v === 'function') {
              return (...args: unknown[]) => (ledgerDown ? Promise.reject(new Error('ledger unavailable: connection terminated')) : v.apply(target, args));
            }
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }),
    );
    const id = uniqueId('store-down');
    h.primary.setAcceptDelay(2);
    const handle = await h.launch(id, audience(200), { batchSize: 20 });
    await h.primary.waitForCount(40, 30_000);
    ledgerDown = true;
    const held = await waitUntil(async () => {
      const p = await campaignProgress(h.client, id);
      return p.paused && !p.batchInFlight ? p : undefined;
    }, 'the campaign to hold on the ledger failure');
    assert.match(held.pauseReason ?? '', /^batch from recipient #\d+ failed: ledger unavailable: connection terminated$/);
    assert.equal(held.status, 'holding');
    assert.equal(held.hold?.kind, 'store-or-bug');
    assert.equal(held.switches.length, 0, "a store failure is not the provider's fault");
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    ledgerDown = false;
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.accepted, 200);
    assert.equal(h.deliveries().size, 200);
    assert.ok([...h.deliveries().values()].every((n) => n === 1));
  });

  it('store failure while checking the campaign: it holds (status holding, HoldKind store-or-bug) instead of failing, and starts when resumed', async () => {
    await h.stopWorker();
    let ledgerDown = true;
    await h.startWorker(
      (store) =>
        new Proxy(store, {
          get(target, prop, receiver) {
            const v = Reflect.get(target, prop, receiver);
            if (prop === 'countAudience' && typeof v === 'function') {
              return (...args: unknown[]) => (ledgerDown ? Promise.reject(new Error('ledger unavailable: connection refused')) : v.apply(target, args));
            }
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }),
    );
    const id = uniqueId('prepare-down');
    const handle = await h.launch(id, audience(50));
    const held = await waitUntil(
      async () => {
        const p = await campaignProgress(h.client, id);
        return p.status === 'holding' ? p : undefined;
      },
      'the campaign to hold while it cannot be checked',
      90_000,
    );
    assert.equal(held.hold?.kind, 'store-or-bug');
    assert.match(held.pauseReason ?? '', /^checking the campaign failed: ledger unavailable: connection refused$/);
    const desc = await handle.describe();
    assert.equal(desc.status.name, 'RUNNING', 'holding, not failed');
    assert.equal(desc.typedSearchAttributes.get(HoldKindKey), 'store-or-bug');
    assert.equal(desc.typedSearchAttributes.get(CampaignStatusKey), 'holding');
    assert.equal(h.primary.acceptedCount + h.secondary.acceptedCount, 0, 'nothing sent');
    ledgerDown = false;
    await resumeCampaign(h.client, id);
    const result = await handle.result();
    assert.equal(result.status, 'completed');
    assert.equal(result.accepted, 50);
    const after = await handle.describe();
    assert.equal(after.typedSearchAttributes.get(HoldKindKey), 'none');
  });

  it('invalid campaign: a missing merge field fails the campaign before any send, naming the field and recipient', async () => {
    const id = uniqueId('invalid');
    const rows = audience(30);
    rows[11].fields = {};
    await h.store.createCampaign({
      id,
      from: 'news@mailover.test',
      template: TEMPLATE,
      postalAddress: POSTAL_ADDRESS,
      providers: ['smtp-primary'],
      batchSize: 10,
    });
    await h.store.importAudience(id, rows);
    const handle = await startCampaign(h.client, { campaignId: id, providers: ['smtp-primary'], batchSize: 10, taskQueue: h.taskQueue, options: FAST });
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      const cause = err.cause?.cause;
      assert.ok(cause instanceof ApplicationFailure);
      assert.equal(cause.type, 'InvalidCampaignError');
      assert.match(cause.message, /recipient #12 has no value for merge field 'first_name'/);
      return true;
    });
    assert.equal(h.primary.acceptedCount + h.secondary.acceptedCount, 0, 'nothing sent');
  });

  it('invalid campaign: a provider the worker does not know fails the campaign before any send', async () => {
    const id = uniqueId('unknown-provider');
    await h.store.createCampaign({
      id,
      from: 'news@mailover.test',
      template: TEMPLATE,
      postalAddress: POSTAL_ADDRESS,
      providers: ['smtp-primary', 'ses-eu'],
      batchSize: 10,
    });
    await h.store.importAudience(id, audience(5));
    const handle = await startCampaign(h.client, {
      campaignId: id,
      providers: ['smtp-primary', 'ses-eu'],
      batchSize: 10,
      taskQueue: h.taskQueue,
      options: FAST,
    });
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String((err.cause?.cause as Error | undefined)?.message), /unknown provider 'ses-eu'/);
      return true;
    });
    assert.equal(h.primary.acceptedCount, 0, 'nothing sent');
  });
});
