/**
 * The operators' read views (src/store/views.ts, src/ledger-views.ts, src/campaign-report.ts) over
 * a real store: a campaign whose rows reach every outcome through the ledger's own operations
 * (claims, settles, deferrals, holds) and the ESPs' events. Run on SQLite (unit) and PostgreSQL
 * (integration) by the same suite.
 */
import { strict as assert } from 'assert';
import { buildCampaignReport, reportHtml, reportText } from '../../src/campaign-report';
import { addressHistoryJson, addressHistoryLines, outcomeCsvHeader, outcomeCsvLine, streamOutcomes } from '../../src/ledger-views';
import type { DeliveryEventInput, Store } from '../../src/store/types';

const POLICY = { firstRetryMs: 60_000, maxRetryMs: 60_000, windowMs: 3_600_000 };

let n = 0;
const uid = (p: string) => `${p}-${process.pid}-${Date.now().toString(36)}-${++n}`;

/** Addresses of the scenario, by what happens to them. */
export const WHO = {
  accepted: 'accepted@example.com',
  bouncedLater: 'bounced-later@example.com',
  hardBounce: 'hard-bounce@example.com',
  softRejected: 'soft@example.com',
  suppressedSince: 'suppressed-since@example.com',
  deferredThenDelivered: 'deferred-delivered@example.com',
  deferredThenAccepted: 'deferred-accepted@example.com',
  held: 'held@example.com',
  deferred: 'deferred@example.com',
  invalidMessage: 'invalid@example.com',
  pending: 'pending@example.com',
  bouncedElsewhere: 'bounced-elsewhere@example.com',
  'comma,"quoted"': '"comma,quoted"@example.com',
} as const;

export interface Scenario {
  campaignId: string;
  other: string;
  seq: Record<keyof typeof WHO, number>;
}

function event(e: Partial<DeliveryEventInput> & Pick<DeliveryEventInput, 'type' | 'email' | 'occurredAt'>): DeliveryEventInput {
  return { providerEventId: uid('ev'), provider: 'esp-a', reason: '', ...e };
}

/** Builds the campaign row by row through the ledger (rows 1..13 in WHO's order). */
export async function buildScenario(store: Store): Promise<Scenario> {
  const campaignId = uid('views');
  const other = uid('other');
  await store.createCampaign({
    id: campaignId,
    name: 'Autumn <news>',
    from: 'news@example.com',
    template: { subject: 'Hi', text: 'Hello' },
    providers: ['esp-a', 'esp-b'],
    batchSize: 10,
  });
  const keys = Object.keys(WHO) as Array<keyof typeof WHO>;
  await store.importAudience(
    campaignId,
    keys.map((k, i) => ({ email: WHO[k], fields: { first_name: `N${i + 1}`, note: k } })),
  );
  const seq = Object.fromEntries(keys.map((k, i) => [k, i + 1])) as Scenario['seq'];
  const t0 = new Date();
  // Everything but the pending row is claimed by esp-a, then settled its own way.
  const claim = await store.claimRange(campaignId, 1, keys.length, 'esp-a', 'claim-1');
  assert.equal(claim.claimed.length, keys.length);
  await store.release(campaignId, [seq.pending], 'not sent yet', 'claim-1');
  await store.settleAccepted(campaignId, seq.accepted, 'esp-a', 'msg-accepted');
  await store.settleAccepted(campaignId, seq.bouncedLater, 'esp-a', 'msg-bounced');
  await store.settleRejected(campaignId, seq.hardBounce, 'esp-a', '550 5.1.1 no such user', true);
  await store.settleRejected(campaignId, seq.softRejected, 'esp-a', '552 5.2.2 mailbox full', false);
  await store.settleRejected(campaignId, seq.bouncedElsewhere, 'esp-a', '552 5.2.2 mailbox full', false);
  await store.settleRejected(campaignId, seq['comma,"quoted"'], 'esp-a', 'refused, "try later"\nsecond line', false);
  await store.settleRejected(campaignId, seq.invalidMessage, 'esp-a', 'invalid message: missing first_name', false);
  for (const k of ['suppressedSince', 'deferredThenDelivered', 'deferredThenAccepted', 'deferred'] as const) {
    const r = await store.settleDeferred(campaignId, seq[k], 'esp-a', '452 4.2.2 mailbox full, try later', POLICY, t0);
    assert.equal(r.state, 'deferred');
  }
  await store.markDispatched(campaignId, [seq.held], 'esp-a', 'claim-1');
  await store.holdRows(campaignId, [seq.held], 'reply lost after DATA');
  // The deferred rows up to the deferred-then-accepted one are swept again (their time has come): it is
  // accepted through esp-b, the others are deferred again.
  const sweep = await store.claimSweep(campaignId, 'esp-b', 'claim-2', {
    upToSeq: seq.deferredThenAccepted,
    limit: 10,
    now: new Date(t0.getTime() + 3_600_000),
  });
  assert.deepEqual(
    sweep.claimed.map((r) => r.seq),
    [seq.suppressedSince, seq.deferredThenDelivered, seq.deferredThenAccepted],
  );
  for (const r of sweep.claimed) {
    if (r.seq === seq.deferredThenAccepted) await store.settleAccepted(campaignId, r.seq, 'esp-b', 'msg-later');
    else await store.settleDeferred(campaignId, r.seq, 'esp-b', '452 4.2.2 mailbox full, try later', POLICY, t0);
  }
  // What the ESPs reported afterwards.
  const at = (s: number) => new Date(t0.getTime() + s * 1000);
  await store.recordEvent(event({ type: 'delivered', email: WHO.accepted, campaignId, seq: seq.accepted, occurredAt: at(10) }));
  await store.recordEvent(event({ type: 'delivered', email: WHO.bouncedLater, campaignId, seq: seq.bouncedLater, occurredAt: at(11) }));
  await store.recordEvent(
    event({ type: 'failed-permanent', email: WHO.bouncedLater, campaignId, seq: seq.bouncedLater, occurredAt: at(20), reason: '550 5.1.1 gone' }),
    { reason: 'hard bounce: 550 5.1.1 gone', source: 'esp-a' },
  );
  await store.recordEvent(event({ type: 'delivered', email: WHO.deferredThenDelivered, campaignId, seq: seq.deferredThenDelivered, occurredAt: at(30) }));
  await store.recordEvent(
    event({
      type: 'complained',
      provider: 'esp-b',
      email: WHO.deferredThenAccepted,
      campaignId,
      seq: seq.deferredThenAccepted,
      occurredAt: at(40),
      reason: 'abuse',
    }),
  );
  // An address that bounced hard in another campaign (its ESP's event suppressed nobody).
  await store.createCampaign({ id: other, from: 'news@example.com', template: { subject: 'Hi', text: 'Hello' }, providers: ['esp-a'], batchSize: 10 });
  await store.importAudience(other, [{ email: WHO.bouncedElsewhere, fields: {} }]);
  await store.recordEvent(event({ type: 'failed-permanent', email: WHO.bouncedElsewhere, campaignId: other, seq: 1, occurredAt: at(5), reason: '550 5.1.1' }));
  // Suppressed after the campaign.
  await store.addSuppression(WHO.suppressedSince, 'unsubscribed by phone', 'operator');
  return { campaignId, other, seq };
}

export function recipientsViewsSuite(open: () => Promise<Store>, cleanup: () => Promise<void> = async () => undefined): void {
  let store: Store;
  let s: Scenario;

  before(async () => {
    store = await open();
    s = await buildScenario(store);
  });
  after(async () => {
    await store?.close();
    await cleanup();
  });

  it('recipients: every row with its status, provider, message id, last answer and last ESP event, paged by seq', async () => {
    const all = await store.pageOutcomes(s.campaignId, { limit: 100 });
    assert.equal(all.length, Object.keys(WHO).length);
    assert.deepEqual(
      all.map((r) => r.seq),
      all.map((_, i) => i + 1),
    );
    const row = (k: keyof typeof WHO) => all[s.seq[k] - 1];
    assert.deepEqual(
      { state: row('accepted').state, provider: row('accepted').provider, id: row('accepted').providerMessageId, event: row('accepted').lastEvent?.type },
      { state: 'accepted', provider: 'esp-a', id: 'msg-accepted', event: 'delivered' },
    );
    // Its last event by occurrence: the bounce after the delivery.
    assert.equal(row('bouncedLater').lastEvent?.type, 'failed-permanent');
    assert.equal(row('bouncedLater').lastEvent?.reason, '550 5.1.1 gone');
    assert.equal(row('hardBounce').state, 'rejected');
    assert.equal(row('hardBounce').answer, '550 5.1.1 no such user');
    assert.equal(row('deferred').state, 'deferred');
    assert.equal(row('deferred').answer, '452 4.2.2 mailbox full, try later');
    assert.equal(row('held').state, 'held');
    assert.equal(row('held').answer, 'reply lost after DATA');
    assert.equal(row('pending').state, 'pending');
    assert.equal(row('deferredThenAccepted').provider, 'esp-b');
    assert.equal(row('deferredThenAccepted').lastEvent?.type, 'complained');
    assert.equal(row('deferredThenAccepted').lastEvent?.provider, 'esp-b');
    // Filters: state(s) and provider; pages of 3 give the same rows as one page.
    const rejected = await store.pageOutcomes(s.campaignId, { states: ['rejected'], limit: 100 });
    assert.deepEqual(
      rejected.map((r) => r.email),
      [WHO.hardBounce, WHO.softRejected, WHO.invalidMessage, WHO.bouncedElsewhere, WHO['comma,"quoted"']],
    );
    const viaB = await store.pageOutcomes(s.campaignId, { provider: 'esp-b', limit: 100 });
    assert.ok(viaB.length >= 1 && viaB.every((r) => r.provider === 'esp-b'));
    assert.ok(viaB.some((r) => r.email === WHO.deferredThenAccepted));
    const paged: number[] = [];
    for await (const r of streamOutcomes(store, s.campaignId, {}, 3)) paged.push(r.seq);
    assert.deepEqual(
      paged,
      all.map((r) => r.seq),
    );
    const heldOrPending: string[] = [];
    for await (const r of streamOutcomes(store, s.campaignId, { states: ['held', 'pending'] }, 1)) heldOrPending.push(r.email);
    assert.deepEqual(heldOrPending, [WHO.held, WHO.pending]);
    // CSV: a header, then one line per row; commas, quotes and line breaks quoted.
    assert.equal(outcomeCsvHeader(), 'seq,email,status,provider,provider_message_id,answer,updated_at,last_event,last_event_at,last_event_reason');
    const quoted = outcomeCsvLine(row('comma,"quoted"'));
    assert.ok(quoted.startsWith(`${s.seq['comma,"quoted"']},"""comma,quoted""@example.com",rejected,esp-a,,"refused, ""try later""\nsecond line",`), quoted);
    assert.match(outcomeCsvLine(row('bouncedLater')), /,bounced,\d{4}-\d\d-\d\dT[\d:.]+Z,550 5\.1\.1 gone$/);
  });

  it('recipients: an address across campaigns: each row, its events, and whether, why and since when it is suppressed', async () => {
    const h = await store.addressHistory('  Bounced-Later@Example.com ');
    assert.equal(h.rows.length, 1);
    assert.equal(h.rows[0].campaignId, s.campaignId);
    assert.deepEqual(
      h.events.map((e) => e.type),
      ['delivered', 'failed-permanent'],
    );
    assert.equal(h.suppression?.reason, 'hard bounce: 550 5.1.1 gone');
    const lines = addressHistoryLines(h);
    assert.match(
      lines[0],
      /^bounced-later@example\.com: suppressed on every provider since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(hard bounce: 550 5\.1\.1 gone; source esp-a\)$/,
    );
    const row = new RegExp(
      `^campaign ${s.campaignId} #${s.seq.bouncedLater}: accepted via esp-a \\(message id msg-bounced\\), last change \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC$`,
    );
    assert.ok(
      lines.some((l) => row.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => / bounced \(esp-a\): 550 5\.1\.1 gone$/.test(l)),
      lines.join('\n'),
    );

    const both = await store.addressHistory(WHO.bouncedElsewhere);
    assert.deepEqual(
      both.rows.map((r) => [r.campaignId, r.state]),
      [
        [s.campaignId, 'rejected'],
        [s.other, 'pending'],
      ],
    );
    const json = addressHistoryJson(both) as { suppressed: unknown; campaigns: Array<{ campaignId: string; events: Array<{ type: string }> }> };
    assert.equal(json.suppressed, null);
    assert.deepEqual(
      json.campaigns.map((c) => [c.campaignId, c.events.map((e) => e.type)]),
      [
        [s.campaignId, []],
        [s.other, ['bounced']],
      ],
    );
    const nobody = await store.addressHistory('nobody@example.com');
    assert.deepEqual(addressHistoryLines(nobody), ['nobody@example.com: not suppressed', 'no campaign has this address']);
  });

  it('recipients: a retry takes deferred, soft-rejected and held rows, never one accepted, suppressed since, hard-bounced or delivered after a deferral', async () => {
    const take = async (kinds: Parameters<Store['pageRetryRows']>[1], limit = 100) => {
      const got: string[] = [];
      for (let after = 0; ;) {
        const page = await store.pageRetryRows(s.campaignId, kinds, after, limit);
        got.push(...page.map((r) => `${r.kind}:${r.email}`));
        if (page.length < limit) return got;
        after = page[page.length - 1].seq;
      }
    };
    assert.deepEqual(await take(['deferred']), [`deferred:${WHO.deferred}`]);
    assert.deepEqual(await take(['held']), [`held:${WHO.held}`]);
    assert.deepEqual(await take(['rejected-soft']), [`rejected-soft:${WHO.softRejected}`, `rejected-soft:${WHO['comma,"quoted"']}`]);
    const all = await take(['deferred', 'rejected-soft', 'held'], 1);
    assert.deepEqual(all, [`rejected-soft:${WHO.softRejected}`, `held:${WHO.held}`, `deferred:${WHO.deferred}`, `rejected-soft:${WHO['comma,"quoted"']}`]);
    for (const never of [
      WHO.accepted,
      WHO.bouncedLater,
      WHO.hardBounce,
      WHO.suppressedSince,
      WHO.deferredThenDelivered,
      WHO.deferredThenAccepted,
      WHO.bouncedElsewhere,
      WHO.invalidMessage,
      WHO.pending,
    ]) {
      assert.ok(!all.some((x) => x.endsWith(`:${never}`)), never);
    }
    const page = await store.pageRetryRows(s.campaignId, ['held'], 0, 10);
    assert.deepEqual(page[0].fields, { first_name: `N${s.seq.held}`, note: 'held' });
    assert.deepEqual(await store.countRetryKinds(s.campaignId, ['deferred', 'rejected-soft', 'held']), { deferred: 3, 'rejected-soft': 4, held: 1 });
    assert.deepEqual(await store.countRetryKinds(s.campaignId, ['held']), { deferred: 0, 'rejected-soft': 0, held: 1 });
    // An address an earlier retry took is that retry's.
    const earlier = uid('earlier');
    await store.createCampaign({
      id: earlier,
      retryOf: s.campaignId,
      from: 'news@example.com',
      template: { subject: 'Hi', text: 'Hello' },
      providers: ['esp-a'],
      batchSize: 10,
    });
    await store.importAudience(earlier, [{ email: WHO.softRejected, fields: {} }]);
    assert.deepEqual(await take(['rejected-soft']), [`rejected-soft:${WHO['comma,"quoted"']}`]);
  });

  it('recipients: the report counts outcomes per provider, bounce and complaint rates, sends per minute, and links retries', async () => {
    const retryId = uid('retry');
    await store.createCampaign({
      id: retryId,
      retryOf: s.campaignId,
      from: 'news@example.com',
      template: { subject: 'Hi', text: 'Hello' },
      providers: ['esp-a'],
      batchSize: 10,
    });
    assert.equal((await store.retriesOf(s.campaignId)).at(-1), retryId);
    assert.equal((await store.getCampaign(retryId))?.retryOf, s.campaignId);
    const [acceptedLast] = await store.pageOutcomes(s.campaignId, { states: ['accepted'], provider: 'esp-b', limit: 1 });
    const switchAt = acceptedLast.updatedAt.toISOString();
    const r = await buildCampaignReport(store, s.campaignId, { switches: [{ from: 'esp-a', to: 'esp-b', reason: '535 auth failed', at: switchAt, atSeq: 7 }] });
    assert.equal(r.total, Object.keys(WHO).length);
    assert.deepEqual(
      { accepted: r.states.accepted, rejected: r.states.rejected, deferred: r.states.deferred, held: r.states.held, pending: r.states.pending },
      { accepted: 3, rejected: 5, deferred: 3, held: 1, pending: 1 },
    );
    const a = r.perProvider.find((p) => p.provider === 'esp-a')!;
    const b = r.perProvider.find((p) => p.provider === 'esp-b')!;
    assert.deepEqual([a.accepted, a.rejected, a.held, a.events.delivered, a.events['failed-permanent']], [2, 5, 1, 3, 1]);
    assert.deepEqual([b.accepted, b.events.complained], [1, 1]);
    assert.equal(r.rates.bounce, 1 / 3);
    assert.equal(r.rates.complaint, 1 / 3);
    assert.equal(r.rates.rejection, 5 / 8);
    assert.equal(r.retries.at(-1), retryId);
    const sent = r.minutes.reduce((x, m) => x + m.sent, 0);
    assert.equal(sent, 3);
    assert.ok(r.minutes.every((m) => /^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(m.minute)));
    const text = reportText(r);
    assert.match(text, /│ esp-a\s+│\s+2 │\s+5 │/);
    assert.match(text, /│ bounced after acceptance │ 33\.33% │ 1 of 3 accepted\s+│/);
    assert.match(text, new RegExp(`retried as .*${retryId}$`, 'm'));
    const html = reportHtml(r);
    assert.ok(html.includes('Autumn &lt;news&gt;') && !html.includes('Autumn <news>'));
    assert.equal((html.match(/<polyline data-provider=/g) ?? []).length, 2);
    assert.ok(html.includes('data-switch="esp-a"'));
  });
}
