/**
 * Routing by weight, pure parts: the failover decision (workflows/failover.ts) on a weighted plan,
 * the schedule (workflows/weighted-routing.ts), the provider list parser with its errors, the
 * weighted drill's plan, and what the progress query and Web UI show. No Temporal, no network.
 */
import { strict as assert } from 'assert';
import { parseCampaignDefinition } from '../../src/campaign-definition';
import { parseProvidersArg, statusTable } from '../../src/cli/campaign-commands';
import { parseDrillSettings } from '../../src/drill-settings';
import type { CampaignProgress } from '../../workflows/campaign-api';
import { decide, initialPlan, type Decision, type FailoverEvent, type FailoverState } from '../../workflows/failover';
import { routingDetails, routingProgress, validateProviderChoices } from '../../workflows/routing-view';
import { weightedDrillProvider, weightedSwitchSeq } from '../../workflows/weighted-drill';
import { batchIndexOf, intendedShare, parseProviderList, splitText, weightedPick } from '../../workflows/weighted-routing';

const AT = '2026-12-01T10:00:00.000Z';
const W70 = { ses: 70, postmark: 30 };

const weighted = (weights: Record<string, number> = W70, over: Partial<FailoverState> = {}): FailoverState => ({
  plan: initialPlan(Object.keys(weights), weights),
  sharedDown: {},
  ...over,
});

/** decide, with the state handed over as the workflow keeps it (JSON: what continue-as-new carries). */
const step = (s: FailoverState, e: FailoverEvent): Decision => decide(JSON.parse(JSON.stringify(s)) as FailoverState, e);

interface Run {
  state: FailoverState;
  /** recipients per provider */
  sent: Record<string, number>;
  decisions: Decision[];
}

/**
 * A campaign's first pass as the workflow drives it: batch-starting for each batch from `fromSeq`,
 * `before(seq, state)` may feed other events first (a failure, a health notice).
 */
function drive(
  state: FailoverState,
  opts: { total: number; batchSize: number; fromSeq?: number; before?: (seq: number, s: FailoverState) => FailoverEvent | undefined },
): Run {
  const run: Run = { state, sent: {}, decisions: [] };
  for (let seq = opts.fromSeq ?? 1; seq <= opts.total; seq += opts.batchSize) {
    const extra = opts.before?.(seq, run.state);
    if (extra) {
      const d = step(run.state, extra);
      run.decisions.push(d);
      run.state = d.state;
    }
    const d = step(run.state, { type: 'batch-starting', atSeq: seq, at: AT, recordMoves: true, batchSize: opts.batchSize });
    run.decisions.push(d);
    run.state = d.state;
    assert.ok(d.provider, `batch at #${seq} has a provider`);
    run.sent[d.provider] = (run.sent[d.provider] ?? 0) + Math.min(opts.batchSize, opts.total - seq + 1);
  }
  return run;
}

function assertSplit(sent: Record<string, number>, weights: Record<string, number>, label: string) {
  const total = Object.values(sent).reduce((a, b) => a + b, 0);
  const wsum = Object.values(weights).reduce((a, b) => a + b, 0);
  for (const [p, w] of Object.entries(weights)) {
    const got = ((sent[p] ?? 0) * 100) / total;
    const want = (w * 100) / wsum;
    assert.ok(Math.abs(got - want) <= 5, `${label}: ${p} got ${got.toFixed(1)} % of ${total}, want ${want.toFixed(1)} % ± 5`);
  }
}

const switchesOf = (r: Run) => r.decisions.flatMap((d) => (d.switch ? [d.switch] : []));

describe('routing by weight (pure)', () => {
  describe('the split', () => {
    for (const batchSize of [1, 10, 100]) {
      it(`routing: 70/30 over 2,000 recipients in batches of ${batchSize} is within ±5 % of the weights, with no switch recorded`, () => {
        const r = drive(weighted(), { total: 2000, batchSize });
        assertSplit(r.sent, W70, `batches of ${batchSize}`);
        assert.deepEqual(switchesOf(r), []);
      });
    }

    it('routing: three providers 50/30/20 over 2,000 recipients in batches of 1, 10 and 100 are within ±5 %', () => {
      const weights = { ses: 50, postmark: 30, mailgun: 20 };
      for (const batchSize of [1, 10, 100]) assertSplit(drive(weighted(weights), { total: 2000, batchSize }).sent, weights, `batches of ${batchSize}`);
    });

    it('routing: every prefix of the schedule keeps each provider within two batches of its share (smooth, not in blocks)', () => {
      const providers = ['a', 'b', 'c'];
      const weights: Record<string, number> = { a: 5, b: 3, c: 2 };
      const count: Record<string, number> = { a: 0, b: 0, c: 0 };
      for (let k = 0; k < 1000; k++) {
        count[weightedPick(k, providers, weights)!]++;
        for (const p of providers) assert.ok(Math.abs(count[p] - ((k + 1) * weights[p]) / 10) <= 2, `${p} after ${k + 1} batches: ${count[p]}`);
      }
    });

    it('routing: the provider of a batch depends only on its index and the healthy providers: the same under replay, after continue-as-new and when a batch is retried', () => {
      const a = drive(weighted(), { total: 500, batchSize: 7 });
      const b = drive(weighted(), { total: 500, batchSize: 7 });
      assert.deepEqual(
        a.decisions.map((d) => d.provider),
        b.decisions.map((d) => d.provider),
      );
      // A run that starts half-way (continue-as-new carries the plan as JSON) picks as the first run would have.
      const half = drive(JSON.parse(JSON.stringify(a.state)) as FailoverState, { total: 500, batchSize: 7, fromSeq: 1 + 7 * 30 });
      assert.deepEqual(
        half.decisions.map((d) => d.provider),
        a.decisions.slice(30).map((d) => d.provider),
      );
      // The same batch asked twice (a retried batch, a replayed task) gets the same provider and changes nothing.
      const s = a.state;
      const d1 = step(s, { type: 'batch-starting', atSeq: 71, at: AT, recordMoves: true, batchSize: 7 });
      const d2 = step(s, { type: 'batch-starting', atSeq: 71, at: AT, recordMoves: true, batchSize: 7 });
      assert.equal(d1.provider, d2.provider);
      assert.equal(d1.switch, undefined);
      assert.equal(batchIndexOf(71, 7), 10);
    });

    it('routing: a plain list of names is still priority order: the first healthy provider takes every batch', () => {
      const r = drive({ plan: initialPlan(['ses', 'postmark']), sharedDown: {} }, { total: 200, batchSize: 10 });
      assert.deepEqual(r.sent, { ses: 200 });
      assert.equal(r.state.plan.weights, undefined);
      assert.equal(r.state.plan.sharing, undefined);
    });

    it('routing: a weighted plan needs the batch size to pick by batch', () => {
      assert.throws(() => step(weighted(), { type: 'batch-starting', atSeq: 1, at: AT, recordMoves: true }), /needs the batch size/);
    });
  });

  describe('when a weighted provider is down', () => {
    it('routing: ses fails a batch half-way: one switch ses → postmark at that batch, the rest all goes to postmark, later failures of batches in flight record nothing more', () => {
      const r = drive(weighted(), {
        total: 2000,
        batchSize: 10,
        before: (seq, s) =>
          seq === 1001 || (seq === 1011 && s.plan.down.ses)
            ? {
                type: 'batch-failed',
                provider: 'ses',
                failure: 'provider',
                reason: 'ses: 550 5.7.1 policy refusal',
                atSeq: seq,
                at: AT,
                cause: 'provider-refused',
              }
            : undefined,
      });
      const sws = switchesOf(r);
      assert.equal(sws.length, 1, JSON.stringify(sws));
      assert.deepEqual({ ...sws[0], reason: undefined }, { from: 'ses', to: 'postmark', at: AT, atSeq: 1001, reason: undefined });
      assert.match(sws[0].reason, /^ses: 550 5\.7\.1 policy refusal; split now postmark 100 %$/);
      const failed = r.decisions.find((d) => d.switch)!;
      assert.deepEqual(failed.announce, { failback: false, cause: 'provider-refused' });
      // Before: 70/30 of 1,000; after: 1,000 on postmark.
      assert.equal(r.sent.ses, 700);
      assert.equal(r.sent.postmark, 1300);
      assert.deepEqual(intendedShare(r.state.plan, r.state.sharedDown), { ses: 0, postmark: 100 });
    });

    it("routing: with three providers the down one's share goes to the others in proportion (50/30/20 without ses: 60/40)", () => {
      const weights = { ses: 50, postmark: 30, mailgun: 20 };
      const s = step(weighted(weights), { type: 'health-changed', provider: 'ses', circuit: 'open', reason: 'ses: circuit open', failback: 'auto' }).state;
      const r = drive(s, { total: 2000, batchSize: 10 });
      assertSplit(r.sent, { postmark: 30, mailgun: 20 }, 'without ses');
      assert.equal(r.sent.ses, undefined);
    });

    it('routing: a provider down by shared health leaves the split at the next batch (one switch, cause shared-health) and comes back on recovery (one failback switch), the split returning to the weights', () => {
      let s = drive(weighted(), { total: 100, batchSize: 10 }).state;
      s = step(s, { type: 'health-changed', provider: 'ses', circuit: 'open', reason: 'ses: 421 too many failures', failback: 'auto', by: 'failures' }).state;
      const down = drive(s, { total: 600, batchSize: 10, fromSeq: 101 });
      assert.deepEqual(down.sent, { postmark: 500 });
      const [left] = switchesOf(down);
      assert.equal(switchesOf(down).length, 1);
      assert.deepEqual({ from: left.from, to: left.to, atSeq: left.atSeq }, { from: 'ses', to: 'postmark', atSeq: 101 });
      assert.match(left.reason, /^shared health: ses: 421 too many failures; split now postmark 100 %$/);
      assert.deepEqual(down.decisions.find((d) => d.switch)?.announce, { failback: false, cause: 'shared-health' });

      s = step(down.state, { type: 'health-changed', provider: 'ses', circuit: 'closed', reason: 'probe ok', failback: 'auto', by: 'probe' }).state;
      const back = drive(s, { total: 2600, batchSize: 10, fromSeq: 601 });
      assertSplit(back.sent, W70, 'after recovery');
      const [fb] = switchesOf(back);
      assert.equal(switchesOf(back).length, 1);
      assert.deepEqual({ from: fb.from, to: fb.to, atSeq: fb.atSeq }, { from: 'postmark', to: 'ses', atSeq: 601 });
      assert.match(fb.reason, /^failback: ses healthy again; split now ses 70 %, postmark 30 %$/);
      assert.deepEqual(back.decisions.find((d) => d.switch)?.announce, { failback: true, cause: 'failback' });
    });

    it('routing: a provider an operator marks down moves its share with cause operator', () => {
      let s = drive(weighted(), { total: 20, batchSize: 10 }).state;
      s = step(s, {
        type: 'health-changed',
        provider: 'postmark',
        circuit: 'open',
        reason: 'postmark: marked down by an operator',
        failback: 'auto',
        by: 'operator',
      }).state;
      const d = step(s, { type: 'batch-starting', atSeq: 21, at: AT, recordMoves: true, batchSize: 10 });
      assert.equal(d.provider, 'ses');
      assert.deepEqual({ from: d.switch?.from, to: d.switch?.to }, { from: 'postmark', to: 'ses' });
      assert.deepEqual(d.announce, { failback: false, cause: 'operator' });
    });

    it('routing: with failback manual a recovered provider stays out of the split until an operator sets the providers again', () => {
      let s = drive(weighted(), { total: 100, batchSize: 10 }).state;
      s = step(s, {
        type: 'batch-failed',
        provider: 'ses',
        failure: 'provider',
        reason: 'ses: auth failed',
        atSeq: 101,
        at: AT,
        cause: 'provider-refused',
      }).state;
      s = step(s, { type: 'health-changed', provider: 'ses', circuit: 'open', reason: 'ses: circuit open', failback: 'manual' }).state;
      s = step(s, { type: 'health-changed', provider: 'ses', circuit: 'closed', reason: 'probe ok', failback: 'manual', by: 'probe' }).state;
      assert.match(s.plan.down.ses, /failback is manual/);
      const still = drive(s, { total: 300, batchSize: 10, fromSeq: 101 });
      assert.deepEqual(still.sent, { postmark: 200 });
      assert.deepEqual(switchesOf(still), []);
      s = step(still.state, { type: 'operator-order', providers: ['ses', 'postmark'], weights: W70 }).state;
      assert.deepEqual(s.plan, { order: ['ses', 'postmark'], down: {}, weights: W70 });
      assertSplit(drive(s, { total: 2300, batchSize: 10, fromSeq: 301 }).sent, W70, 'after the operator');
    });

    it('routing: with every weighted provider down the campaign holds; one recovering ends the hold and takes every batch', () => {
      let s = weighted();
      let d = step(s, { type: 'batch-failed', provider: 'ses', failure: 'provider', reason: 'ses down', atSeq: 1, at: AT, cause: 'provider-refused' });
      d = step(d.state, {
        type: 'batch-failed',
        provider: 'postmark',
        failure: 'provider',
        reason: 'postmark down',
        atSeq: 1,
        at: AT,
        cause: 'provider-refused',
      });
      assert.deepEqual(d.switch, { from: 'postmark', reason: 'postmark down', at: AT, atSeq: 1 });
      assert.equal(d.hold?.kind, 'no-provider');
      assert.match(d.hold!.reason, /no provider left: ses: ses down; postmark: postmark down/);
      s = step(d.state, { type: 'health-changed', provider: 'postmark', circuit: 'closed', reason: 'probe ok', failback: 'manual' }).state;
      assert.equal(s.hold, undefined, 'recovery ends a no-provider hold (even with failback manual)');
      const r = drive(s, { total: 50, batchSize: 10 });
      assert.deepEqual(r.sent, { postmark: 50 });
      assert.deepEqual(switchesOf(r), [], 'going on after a hold is not a switch');
    });

    it('routing: resuming after every provider was down tries all of them again, by weight', () => {
      let s = weighted();
      s = step(s, { type: 'batch-failed', provider: 'ses', failure: 'provider', reason: 'x', atSeq: 1, at: AT, cause: 'provider-refused' }).state;
      s = step(s, { type: 'batch-failed', provider: 'postmark', failure: 'provider', reason: 'y', atSeq: 1, at: AT, cause: 'provider-refused' }).state;
      s = step(s, { type: 'resume' }).state;
      assert.deepEqual(s.plan.weights, W70);
      assertSplit(drive(s, { total: 2000, batchSize: 10 }).sent, W70, 'after resume');
    });

    it('routing: a plain order from the operator turns a weighted campaign into a priority one', () => {
      const s = step(weighted(), { type: 'operator-order', providers: ['postmark', 'ses'] }).state;
      assert.deepEqual(drive(s, { total: 100, batchSize: 10 }).sent, { postmark: 100 });
    });
  });

  describe('provider lists and their errors', () => {
    it('routing: a weighted list gives names in order and weights; a plain list gives no weights', () => {
      assert.deepEqual(
        parseProviderList([
          { name: 'ses', weight: 70 },
          { name: 'postmark', weight: 30 },
        ]),
        {
          order: ['ses', 'postmark'],
          weights: W70,
          problems: [],
        },
      );
      assert.deepEqual(parseProviderList(['ses', 'postmark']), { order: ['ses', 'postmark'], problems: [] });
    });

    it('routing: bad weights, mixed forms, missing names, unknown fields and providers are errors naming the field and value', () => {
      const { problems } = parseProviderList(
        [
          { name: 'ses', weight: 70 },
          { name: 'postmark', weight: -3 },
          { name: 'mailgun', weight: 2.5 },
          { weight: 10 },
          'smtp',
          { name: 'ses', weight: 1 },
          { name: 'x', weight: 5, priority: 1 },
          { name: 'relay' },
          { name: 'big', weight: 2_000_000 },
        ],
        { known: ['ses', 'postmark', 'mailgun', 'smtp', 'relay', 'big'] },
      );
      assert.deepEqual(problems, [
        'providers[1].weight: expected a whole number above 0, got -3',
        'providers[2].weight: expected a whole number above 0, got 2.5',
        'providers[3].name: expected a provider name, got nothing',
        "providers[4]: expected { name, weight } like providers[0] (a list is all names in priority order, or all weighted), got 'smtp'",
        "providers[5].name: 'ses' is listed twice",
        'providers[6].priority: unknown field (expected name, weight)',
        "providers[6].name: unknown provider 'x' (configured: ses, postmark, mailgun, smtp, relay, big)",
        'providers[7].weight: expected a whole number above 0, got nothing',
        'providers[8].weight: expected at most 1000000, got 2000000',
      ]);
      assert.deepEqual(parseProviderList(['ses', { name: 'postmark', weight: 30 }]).problems, [
        'providers[1]: expected a provider name like providers[0] (a list is all names in priority order, or all { name, weight }), got {"name":"postmark","weight":30}',
      ]);
    });

    it('routing: a campaign file with weighted providers parses to names and weights; a bad weight names its field', () => {
      const base = {
        id: 'spring',
        from: 'News <news@example.com>',
        template: { subject: 'Hi', text: 'Hi' },
        transactional: true,
      };
      const def = parseCampaignDefinition(
        {
          ...base,
          providers: [
            { name: 'ses', weight: 70 },
            { name: 'postmark', weight: 30 },
          ],
        },
        ['ses', 'postmark'],
      );
      assert.deepEqual([def.providers, def.weights], [['ses', 'postmark'], W70]);
      assert.equal(parseCampaignDefinition({ ...base, providers: ['ses', 'postmark'] }).weights, undefined);
      assert.throws(
        () =>
          parseCampaignDefinition(
            {
              ...base,
              providers: [
                { name: 'ses', weight: 70 },
                { name: 'postmark', weight: -3 },
              ],
            },
            ['ses', 'postmark'],
          ),
        (err: Error) => err.message.includes('providers[1].weight: expected a whole number above 0, got -3'),
      );
      assert.throws(
        () => parseCampaignDefinition({ ...base, providers: [{ name: 'ses', weight: 70 }, 'postmark'] }),
        (err: Error) => err.message.includes('providers[1]: expected { name, weight } like providers[0]'),
      );
    });

    it('routing: setProviders takes names (checked as before weights) or weighted entries (checked by the weighted parser)', () => {
      const orderProblems = (order: unknown) => (Array.isArray(order) && order.length ? [] : ['providers: expected a non-empty list of provider names']);
      assert.doesNotThrow(() => validateProviderChoices(['a', 'b'], ['a', 'b'], orderProblems));
      assert.doesNotThrow(() => validateProviderChoices([{ name: 'a', weight: 1 }], ['a', 'b'], orderProblems));
      assert.throws(
        () => validateProviderChoices([{ name: 'a', weight: 0 }], ['a', 'b'], orderProblems),
        /providers\[0\]\.weight: expected a whole number above 0, got 0/,
      );
      assert.throws(() => validateProviderChoices([{ name: 'c', weight: 1 }], ['a', 'b'], orderProblems), /providers\[0\]\.name: unknown provider 'c'/);
    });
  });

  describe('the weighted drill', () => {
    const drill = { primary: 'p', secondary: 's', weights: { p: 70, s: 30 }, batchSize: 5 };

    it('routing: drills.providers may be weighted; its errors name drills.providers[i]', () => {
      const problems: string[] = [];
      const raw = {
        from: 'd@example.com',
        seeds: ['ops@example.com'],
        providers: [
          { name: 'p', weight: 70 },
          { name: 's', weight: 30 },
        ],
      };
      const settings = parseDrillSettings(raw, ['p', 's'], problems);
      assert.deepEqual(problems, []);
      assert.deepEqual([settings?.providers, settings?.weights], [['p', 's'], { p: 70, s: 30 }]);
      parseDrillSettings(
        {
          ...raw,
          providers: [
            { name: 'p', weight: 0 },
            { name: 's', weight: 30 },
          ],
        },
        ['p', 's'],
        problems,
      );
      assert.deepEqual(problems, ['drills.providers[0].weight: expected a whole number above 0, got 0']);
    });

    it('routing: the weighted drill forces the primary down at its own first batch from half-way; before it the rows are split by weight, from it all go to the secondary', () => {
      const at = weightedSwitchSeq(drill, 21, 40)!;
      assert.equal((at - 1) % 5, 0);
      assert.ok(at >= 21);
      assert.equal(weightedPick(batchIndexOf(at, 5), ['p', 's'], drill.weights), 'p');
      const expected = Array.from({ length: 40 }, (_, i) => weightedDrillProvider(drill, at, i + 1));
      assert.ok(expected.slice(0, at - 1).includes('p') && expected.slice(0, at - 1).includes('s'), 'both providers send before the switch');
      assert.ok(expected.slice(at - 1).every((p) => p === 's'));
      // A weight that leaves the primary no batch: no switch to force.
      assert.equal(weightedSwitchSeq({ ...drill, weights: { p: 1, s: 1000 } }, 11, 20), undefined);
    });
  });

  describe('what the progress query and the Web UI show', () => {
    it('routing: progress carries the weights, the intended share now and the healthy providers as the active ones; a priority plan adds nothing', () => {
      const plan = { ...initialPlan(['ses', 'postmark'], W70), down: { ses: 'auth failed' } };
      assert.deepEqual(routingProgress(plan, {}), { activeProvider: 'postmark', weights: W70, intendedShare: { ses: 0, postmark: 100 } });
      assert.deepEqual(routingProgress(initialPlan(['ses', 'postmark'], W70), {}), {
        activeProvider: 'ses+postmark',
        weights: W70,
        intendedShare: { ses: 70, postmark: 30 },
      });
      assert.deepEqual(routingProgress(initialPlan(['ses', 'postmark']), {}), {});
      assert.equal(splitText({ a: 66.7, b: 33.3, c: 0 }), 'a 66.7 %, b 33.3 %');
    });

    it('routing: the Web UI details show the split by weight and each provider accepted, with its share so far and intended', () => {
      const p = {
        accepted: 1000,
        acceptedByProvider: { ses: 700, postmark: 300 },
        providers: ['ses', 'postmark'],
        weights: W70,
        intendedShare: { ses: 70, postmark: 30 },
        providersDown: {},
        sharedDown: {},
      } as unknown as CampaignProgress;
      assert.deepEqual(routingDetails(p), [
        '',
        'Split by weight: ses 70 %, postmark 30 % (weights ses 70, postmark 30)',
        '',
        '- accepted via ses: 700 (70.0 %; intended 70 %)',
        '- accepted via postmark: 300 (30.0 %; intended 30 %)',
      ]);
      assert.deepEqual(routingDetails({ ...p, weights: undefined }), ['- accepted via ses: 700', '- accepted via postmark: 300']);
    });

    it('routing: `mailover campaign status` shows the weights, the intended split now and each provider accepted with its share so far', () => {
      const p = {
        campaignId: 'spring',
        status: 'running',
        total: 2000,
        accepted: 1000,
        acceptedByProvider: { ses: 700, postmark: 300 },
        rejected: 0,
        suppressed: 0,
        remaining: 1000,
        activeProvider: 'ses+postmark',
        providers: ['ses', 'postmark'],
        weights: W70,
        intendedShare: { ses: 70, postmark: 30 },
        providersDown: {},
        sharedDown: {},
        switches: [],
      } as unknown as CampaignProgress;
      const text = statusTable(p);
      assert.match(text, /active provider[\s│]+ses\+postmark/);
      assert.match(text, /providers by weight[\s│]+ses 70, postmark 30/);
      assert.match(text, /intended split now[\s│]+ses 70 %, postmark 30 %/);
      assert.match(text, /via ses[\s│]+700 \(70\.0 %\)/);
      assert.match(text, /via postmark[\s│]+300 \(30\.0 %\)/);
      assert.doesNotMatch(text, /provider order/);
      assert.match(statusTable({ ...p, weights: undefined, intendedShare: undefined }), /provider order[\s│]+ses → postmark/);
    });

    it('routing: `mailover campaign providers` takes names or name=weight entries', () => {
      const cmd = { name: 'campaign providers', summary: '', usage: '', run: async () => undefined };
      assert.deepEqual(parseProvidersArg('ses, postmark', cmd), ['ses', 'postmark']);
      assert.deepEqual(parseProvidersArg('ses=70,postmark=30', cmd), [
        { name: 'ses', weight: 70 },
        { name: 'postmark', weight: 30 },
      ]);
      assert.throws(() => parseProvidersArg('ses=70,postmark=lots', cmd), /providers\[1\]\.weight: expected a whole number above 0, got 'lots'/);
    });
  });
});
