/**
 * The reputation breaker's judgement (src/reputation.ts): rates, thresholds, the minimum of sends,
 * which breach to pause on, the reason's words, the `reputation:` config, and the hold it becomes
 * in the failover decision. Pure: no store, no Temporal, no clock.
 */
import { strict as assert } from 'assert';
import { ApplicationFailure } from '@temporalio/common';
import { ERROR_TYPES } from '../../activities/contracts';
import { reputationFailure } from '../../activities/reputation-check';
import { ConfigError, parseConfig } from '../../src/config';
import {
  breachReason,
  DEFAULT_REPUTATION,
  formatCount,
  formatPercent,
  judgeWindow,
  parseReputationSettings,
  ratePercent,
  worstBreach,
  type ReputationSettings,
  type SendWindow,
} from '../../src/reputation';
import { decide, type FailoverState } from '../../workflows/failover';

const S: ReputationSettings = { hardBouncePercent: 5, complaintPercent: 0.1, window: 5000, minSends: 1000 };
const win = (provider: string, sends: number, hardBounces: number, complaints: number): SendWindow => ({ provider, sends, hardBounces, complaints });

describe('reputation breaker (pure)', () => {
  it('routing: rates are the share of the window that hard-bounced or complained, in percent (0 for an empty window)', () => {
    assert.equal(ratePercent(win('m', 5000, 250, 21), 'hard-bounces'), 5);
    assert.equal(ratePercent(win('m', 5000, 250, 21), 'complaints'), 0.42);
    assert.equal(ratePercent(win('m', 0, 0, 0), 'complaints'), 0);
  });

  it('routing: the defaults are hard bounces 5 %, complaints 0.1 %, a window of 5,000 sends judged from 1,000', () => {
    assert.deepEqual(DEFAULT_REPUTATION, S);
  });

  it('routing: a threshold is crossed only above it, never at it', () => {
    assert.deepEqual(judgeWindow('c', win('m', 1000, 50, 1), S), [], '5 % and 0.1 % exactly are not over');
    const over = judgeWindow('c', win('m', 1000, 51, 2), S);
    assert.deepEqual(
      over.map((b) => [b.measure, b.count, b.sends]),
      [
        ['complaints', 2, 1000],
        ['hard-bounces', 51, 1000],
      ],
    );
    assert.equal(over[0].thresholdPercent, 0.1);
    assert.equal(over[1].thresholdPercent, 5);
  });

  it('routing: no judgement before the window holds minSends sends, however bad the first ones look', () => {
    assert.deepEqual(judgeWindow('c', win('m', 999, 999, 999), S), []);
    assert.equal(judgeWindow('c', win('m', 1000, 0, 2), S).length, 1);
    assert.deepEqual(judgeWindow('c', win('m', 5, 1, 1), { ...S, minSends: 10 }), []);
    assert.equal(judgeWindow('c', win('m', 10, 1, 1), { ...S, minSends: 10 }).length, 2);
  });

  it('routing: the window is what the store counted: the same complaints are a breach in a small window and none in a large one', () => {
    const small = { ...S, window: 1000, minSends: 500 };
    // 3 complaints in the last 1,000 sends: 0.3 %; the same 3 in the last 5,000: 0.06 %.
    assert.equal(worstBreach('c', [win('m', 1000, 0, 3)], small)?.ratePercent, 0.3);
    assert.equal(worstBreach('c', [win('m', 5000, 0, 3)], S), undefined);
  });

  it('routing: among providers and measures the breach to pause on is the one furthest over its threshold', () => {
    const b = worstBreach('spring', [win('ses', 2000, 120, 0), win('mailgun', 5000, 10, 21)], S);
    // ses: 6 % of 5 % (1.2x); mailgun: 0.42 % of 0.1 % (4.2x).
    assert.deepEqual(b, { campaignId: 'spring', provider: 'mailgun', measure: 'complaints', count: 21, sends: 5000, ratePercent: 0.42, thresholdPercent: 0.1 });
    assert.equal(worstBreach('spring', [win('ses', 2000, 100, 2), win('mailgun', 0, 0, 0)], S), undefined);
  });

  it('routing: the reason has the figures: measure, rate, count of sends, threshold, provider and campaign', () => {
    const b = worstBreach('spring-sale', [win('mailgun', 5000, 0, 21)], S)!;
    assert.equal(breachReason(b), 'reputation: complaints 0.42 % (21 of 5,000 sends, threshold 0.1 %) on mailgun for campaign spring-sale');
    const h = worstBreach('c', [win('smtp', 1200, 73, 0)], S)!;
    assert.equal(breachReason(h), 'reputation: hard bounces 6.08 % (73 of 1,200 sends, threshold 5 %) on smtp for campaign c');
    assert.equal(formatPercent(0.0031), '0.0031 %');
    assert.equal(formatPercent(33.3333), '33.33 %');
    assert.equal(formatCount(1234567), '1,234,567');
  });

  it('routing: config: reputation settings are read with defaults, and bad ones are refused naming the field and value', () => {
    const providers = [{ name: 'relay', kind: 'smtp', host: 'relay.example', port: 25 }];
    assert.deepEqual(parseConfig({ providers }, {}).reputation, DEFAULT_REPUTATION);
    assert.deepEqual(parseConfig({ providers, reputation: { complaintPercent: 0.3, window: 2000, minSends: 200 } }, {}).reputation, {
      ...S,
      complaintPercent: 0.3,
      window: 2000,
      minSends: 200,
    });
    const problems: string[] = [];
    parseReputationSettings({ hardBouncePercent: 0, complaintPercent: '0.1%', window: 1.5, minSends: -1, rate: 1 }, problems);
    assert.deepEqual(problems, [
      'reputation.rate: unknown setting (expected hardBouncePercent, complaintPercent, window, minSends)',
      'reputation.hardBouncePercent: expected a percentage above 0 and at most 100 (0.1 means 0.1 %), got 0',
      'reputation.complaintPercent: expected a percentage above 0 and at most 100 (0.1 means 0.1 %), got "0.1%"',
      'reputation.window: expected a whole number of sends (1 or more), got 1.5',
      'reputation.minSends: expected a whole number of sends (1 or more), got -1',
    ]);
    assert.throws(
      () => parseConfig({ providers, reputation: { window: 100, minSends: 500 } }, {}, 'mailover.yaml'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /^mailover\.yaml: reputation\.minSends: 500 is more than the window \(100 sends\): it would never judge$/.test(err.message),
    );
    assert.throws(() => parseConfig({ providers, reputation: 'strict' }, {}), /reputation: expected a mapping .*got "strict"/);
  });

  it('routing: a breach crosses to the workflow as a non-retryable ApplicationFailure of type ERROR_TYPES.reputationBreach, the reason as message, the breach as details', () => {
    const breach = worstBreach('c', [win('mailgun', 5000, 0, 21)], S)!;
    const f = reputationFailure(breach);
    assert.ok(f instanceof ApplicationFailure);
    assert.equal(f.type, ERROR_TYPES.reputationBreach);
    assert.equal(f.nonRetryable, true);
    assert.equal(f.message, breachReason(breach));
    assert.deepEqual(f.details, [breach]);
  });

  it('routing: a reputation failure holds the campaign (kind reputation) with the figures; no provider is marked down, nothing switches', () => {
    const given: FailoverState = { plan: { order: ['mailgun', 'ses'], down: {} }, sharedDown: {}, lastProvider: 'mailgun' };
    const reason = 'reputation: complaints 0.42 % (21 of 5,000 sends, threshold 0.1 %) on mailgun for campaign c';
    const at = '2026-12-02T10:00:00.000Z';
    const d = decide(given, { type: 'batch-failed', provider: 'mailgun', failure: 'reputation', reason, atSeq: 5001, at });
    assert.deepEqual(d.hold, { kind: 'reputation', reason, since: at });
    assert.equal(d.switch, undefined);
    assert.deepEqual(d.state.plan, given.plan);
    // Another batch in flight finding the breach too leaves the hold as it started.
    const again = decide(d.state, {
      type: 'batch-failed',
      provider: 'mailgun',
      failure: 'reputation',
      reason: 'reputation: later figures',
      atSeq: 5011,
      at: '2026-12-02T10:00:01.000Z',
    });
    assert.equal(again.hold, undefined);
    assert.equal(again.state, d.state);
    // Only an operator ends it: a recovered provider does not, resume does.
    const h = decide(d.state, { type: 'health-changed', provider: 'ses', circuit: 'closed', reason: 'probe', failback: 'auto' });
    assert.equal(h.state.hold?.kind, 'reputation');
    assert.equal(decide(h.state, { type: 'resume' }).state.hold, undefined);
  });
});
