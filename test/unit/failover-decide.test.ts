/**
 * The failover decision (workflows/failover.ts) on its own: every event, table by table, and a
 * few sequences as a campaign sees them. Pure: no Temporal, no network, no clock.
 */
import { strict as assert } from 'assert';
import { decide, type Decision, type FailoverEvent, type FailoverState, type Hold } from '../../workflows/failover';

const AT = '2026-12-01T10:00:00.000Z';
const SINCE = '2026-12-01T09:00:00.000Z';

function state(over: Partial<FailoverState> = {}): FailoverState {
  return { plan: { order: ['a', 'b', 'c'], down: {} }, sharedDown: {}, ...over };
}

const hold = (kind: Hold['kind'], reason = `held: ${kind}`): Hold => ({ kind, reason, since: SINCE }) as Hold;

/** Frozen all the way down: decide must not change what it is given. */
function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function run(s: FailoverState, e: FailoverEvent): Decision {
  return decide(deepFreeze(structuredClone(s)), deepFreeze(structuredClone(e)));
}

interface Case {
  title: string;
  given: FailoverState;
  event: FailoverEvent;
  /** Expected parts of the decision (state compared whole when given). */
  expect: Partial<Decision>;
}

/** As the workflow keeps it (JSON): a key set to undefined is no key. */
const plain = (v: unknown) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

function check(c: Case) {
  const d = run(c.given, c.event);
  if (c.expect.state) assert.deepEqual(plain(d.state), plain(c.expect.state), 'state');
  assert.deepEqual(plain(d.switch), plain(c.expect.switch), 'switch');
  assert.deepEqual(d.announce, c.expect.announce, 'announce');
  assert.deepEqual(d.hold, c.expect.hold, 'hold');
  assert.equal(d.provider, c.expect.provider, 'provider');
}

describe('failover decision (decide)', () => {
  describe('batch-starting: which provider the next batch goes through', () => {
    const cases: Case[] = [
      {
        title: 'the first batch goes to the first provider in order, and nothing is recorded',
        given: state(),
        event: { type: 'batch-starting', atSeq: 1, at: AT, recordMoves: true },
        expect: { state: state({ lastProvider: 'a' }), provider: 'a' },
      },
      {
        title: 'a provider found down here or with its shared circuit open is skipped',
        given: state({ plan: { order: ['a', 'b', 'c'], down: { a: 'auth' } }, sharedDown: { b: 'circuit open' }, lastProvider: 'c' }),
        event: { type: 'batch-starting', atSeq: 11, at: AT, recordMoves: true },
        expect: { provider: 'c' },
      },
      {
        title: 'moved because another campaign opened the circuit of the last provider: a "shared health" switch, raised, not a failback',
        given: state({ sharedDown: { a: 'a: 535 authentication failed' }, lastProvider: 'a' }),
        event: { type: 'batch-starting', atSeq: 21, at: AT, recordMoves: true },
        expect: {
          state: state({ sharedDown: { a: 'a: 535 authentication failed' }, lastProvider: 'b' }),
          provider: 'b',
          switch: { from: 'a', to: 'b', reason: 'shared health: a: 535 authentication failed', at: AT, atSeq: 21 },
          announce: { failback: false, cause: 'shared-health' },
        },
      },
      {
        title: 'back on a recovered higher-priority provider: a "failback" switch, raised as a failback',
        given: state({ lastProvider: 'b' }),
        event: { type: 'batch-starting', atSeq: 31, at: AT, recordMoves: true },
        expect: {
          provider: 'a',
          switch: { from: 'b', to: 'a', reason: 'failback: a is healthy again', at: AT, atSeq: 31 },
          announce: { failback: true, cause: 'failback' },
        },
      },
      {
        title: 'the last provider is no longer in the order: counted as a failback to the new one',
        given: state({ plan: { order: ['b', 'c'], down: {} }, lastProvider: 'a' }),
        event: { type: 'batch-starting', atSeq: 5, at: AT, recordMoves: true },
        expect: {
          provider: 'b',
          switch: { from: 'a', to: 'b', reason: 'failback: b is healthy again', at: AT, atSeq: 5 },
          announce: { failback: true, cause: 'failback' },
        },
      },
      {
        title: 'moved down the order for another reason (the last one kept out here): "moved to"',
        given: state({ plan: { order: ['a', 'b'], down: { a: 'recovered; failback is manual' } }, lastProvider: 'a' }),
        event: { type: 'batch-starting', atSeq: 7, at: AT, recordMoves: true },
        expect: {
          provider: 'b',
          switch: { from: 'a', to: 'b', reason: 'moved to b', at: AT, atSeq: 7 },
          announce: { failback: false, cause: 'shared-health' },
        },
      },
      {
        title: 'runs recorded before shared health record no move (the provider is still remembered)',
        given: state({ lastProvider: 'b' }),
        event: { type: 'batch-starting', atSeq: 31, at: AT, recordMoves: false },
        expect: { state: state({ lastProvider: 'a' }), provider: 'a' },
      },
      {
        title: 'after an operator order (no last provider) nothing is recorded',
        given: state({ plan: { order: ['c', 'a'], down: {} } }),
        event: { type: 'batch-starting', atSeq: 9, at: AT, recordMoves: true },
        expect: { provider: 'c' },
      },
      {
        title: 'every provider down, here or by shared health: a no-provider hold naming each with why, and no provider',
        given: state({ plan: { order: ['a', 'b', 'c'], down: { a: 'auth failed', c: 'refused' } }, sharedDown: { b: 'circuit open' }, lastProvider: 'a' }),
        event: { type: 'batch-starting', atSeq: 41, at: AT, recordMoves: true },
        expect: {
          state: state({
            plan: { order: ['a', 'b', 'c'], down: { a: 'auth failed', c: 'refused' } },
            sharedDown: { b: 'circuit open' },
            lastProvider: 'a',
            hold: { kind: 'no-provider', reason: 'no provider left: b: circuit open; a: auth failed; c: refused', since: AT },
          }),
          hold: { kind: 'no-provider', reason: 'no provider left: b: circuit open; a: auth failed; c: refused', since: AT },
        },
      },
    ];
    for (const c of cases) it(`batch-starting: ${c.title}`, () => check(c));
  });

  describe('batch-succeeded and batch-failed', () => {
    const cases: Case[] = [
      {
        title: 'succeeded: nothing changes, no switch, no hold',
        given: state({ lastProvider: 'a', hold: hold('operator') }),
        event: { type: 'batch-succeeded', provider: 'a' },
        expect: { state: state({ lastProvider: 'a', hold: hold('operator') }) },
      },
      {
        title: 'succeeded after an operator set a new order during the batch: the last provider stays unknown, so the next batch records no switch',
        given: state({ plan: { order: ['c', 'a'], down: {} } }),
        event: { type: 'batch-succeeded', provider: 'a' },
        expect: { state: state({ plan: { order: ['c', 'a'], down: {} } }) },
      },
      {
        title: 'failed at the provider level: marked down with the reason, switch to the next from the same batch, raised (not a failback)',
        given: state({ lastProvider: 'a' }),
        event: { type: 'batch-failed', provider: 'a', failure: 'provider', reason: 'a: 535 authentication failed', atSeq: 11, at: AT },
        expect: {
          state: state({ plan: { order: ['a', 'b', 'c'], down: { a: 'a: 535 authentication failed' } }, lastProvider: 'b' }),
          switch: { from: 'a', to: 'b', reason: 'a: 535 authentication failed', at: AT, atSeq: 11 },
          announce: { failback: false, cause: 'provider-refused' },
        },
      },
      {
        title: 'failed at the provider level with the next one down by shared health: the switch skips it',
        given: state({ sharedDown: { b: 'circuit open' }, lastProvider: 'a' }),
        event: { type: 'batch-failed', provider: 'a', failure: 'provider', reason: 'refused', atSeq: 11, at: AT },
        expect: { switch: { from: 'a', to: 'c', reason: 'refused', at: AT, atSeq: 11 }, announce: { failback: false, cause: 'provider-refused' } },
      },
      {
        title: 'failed at the provider level with none left: a switch to none (not raised) and a no-provider hold with every reason',
        given: state({ plan: { order: ['a', 'b'], down: { a: 'auth failed' } }, lastProvider: 'b' }),
        event: { type: 'batch-failed', provider: 'b', failure: 'provider', reason: 'retry budget exhausted: 421', atSeq: 16, at: AT },
        expect: {
          state: {
            plan: { order: ['a', 'b'], down: { a: 'auth failed', b: 'retry budget exhausted: 421' } },
            sharedDown: {},
            lastProvider: undefined,
            hold: { kind: 'no-provider', reason: 'no provider left: a: auth failed; b: retry budget exhausted: 421', since: AT },
          },
          switch: { from: 'b', to: undefined, reason: 'retry budget exhausted: 421', at: AT, atSeq: 16 },
          hold: { kind: 'no-provider', reason: 'no provider left: a: auth failed; b: retry budget exhausted: 421', since: AT },
        },
      },
      {
        title: 'window: another batch in flight on a provider already found down fails too: no second switch, the campaign stays on the next provider',
        given: state({ plan: { order: ['a', 'b', 'c'], down: { a: 'a: 535 authentication failed' } }, lastProvider: 'b' }),
        event: { type: 'batch-failed', provider: 'a', failure: 'provider', reason: 'a: 535 authentication failed', atSeq: 21, at: AT },
        expect: { state: state({ plan: { order: ['a', 'b', 'c'], down: { a: 'a: 535 authentication failed' } }, lastProvider: 'b' }) },
      },
      {
        title: 'the provider refused the message itself: a message-refused hold with its words; no provider is marked down',
        given: state({ lastProvider: 'a' }),
        event: { type: 'batch-failed', provider: 'a', failure: 'message-refused', reason: "400 'from' parameter is not a valid address", atSeq: 11, at: AT },
        expect: {
          state: state({
            lastProvider: 'a',
            hold: { kind: 'message-refused', reason: "batch from recipient #11: 400 'from' parameter is not a valid address", since: AT },
          }),
          hold: { kind: 'message-refused', reason: "batch from recipient #11: 400 'from' parameter is not a valid address", since: AT },
        },
      },
      {
        title: 'the store or a bug failed the batch: a store-or-bug hold naming the batch; no provider is marked down',
        given: state({ lastProvider: 'a' }),
        event: { type: 'batch-failed', provider: 'a', failure: 'store-or-bug', reason: 'SQLITE_BUSY: database is locked', atSeq: 6, at: AT },
        expect: {
          state: state({
            lastProvider: 'a',
            hold: { kind: 'store-or-bug', reason: 'batch from recipient #6 failed: SQLITE_BUSY: database is locked', since: AT },
          }),
          hold: { kind: 'store-or-bug', reason: 'batch from recipient #6 failed: SQLITE_BUSY: database is locked', since: AT },
        },
      },
      {
        title: "a worker timeout is not the provider's fault: nothing changes, the same batch goes again on the same provider",
        given: state({ lastProvider: 'a' }),
        event: { type: 'batch-failed', provider: 'a', failure: 'worker-timeout', reason: 'heartbeat timeout', atSeq: 6, at: AT },
        expect: { state: state({ lastProvider: 'a' }) },
      },
    ];
    for (const c of cases) it(`batch: ${c.title}`, () => check(c));
  });

  describe("drill-forced: a drill's failure takes the path a real one does", () => {
    const reason = 'failover drill: primary forced down';
    const cases: Case[] = [
      {
        title: 'the forced provider is marked down and the campaign switches to the next at the forced recipient; the switch is not raised',
        given: state({ plan: { order: ['a', 'b'], down: {} }, lastProvider: 'a' }),
        event: { type: 'drill-forced', provider: 'a', reason, atSeq: 11, at: AT },
        expect: {
          state: { plan: { order: ['a', 'b'], down: { a: reason } }, sharedDown: {}, lastProvider: 'b' },
          switch: { from: 'a', to: 'b', reason, at: AT, atSeq: 11 },
        },
      },
      {
        title: 'with the secondary already down too, the campaign holds with no provider left, as a real failure would',
        given: state({ plan: { order: ['a', 'b'], down: { b: 'b: 535 authentication failed' } }, lastProvider: 'a' }),
        event: { type: 'drill-forced', provider: 'a', reason, atSeq: 11, at: AT },
        expect: {
          switch: { from: 'a', to: undefined, reason, at: AT, atSeq: 11 },
          hold: { kind: 'no-provider', reason: `no provider left: b: b: 535 authentication failed; a: ${reason}`, since: AT },
        },
      },
    ];
    for (const c of cases) it(`drill-forced: ${c.title}`, () => check(c));

    it('drill-forced: records the same plan, switch and hold as a provider-level batch failure with the same reason', () => {
      const given = state({ plan: { order: ['a', 'b'], down: {} }, lastProvider: 'a' });
      const forced = run(given, { type: 'drill-forced', provider: 'a', reason, atSeq: 11, at: AT });
      const real = run(given, { type: 'batch-failed', provider: 'a', failure: 'provider', reason, atSeq: 11, at: AT });
      assert.deepEqual(forced.state, real.state);
      assert.deepEqual(forced.switch, real.switch);
      assert.deepEqual(forced.hold, real.hold);
      assert.deepEqual(real.announce, { failback: false, cause: 'provider-refused' }, 'a real failure is raised');
      assert.equal(forced.announce, undefined, 'a forced one is not');
    });
  });

  describe('health-changed and health-known: shared provider health', () => {
    const cases: Case[] = [
      {
        title: 'a circuit opens: the provider is avoided by shared health; nothing recorded until the next batch',
        given: state({ lastProvider: 'a' }),
        event: { type: 'health-changed', provider: 'a', circuit: 'open', reason: '1 provider-level failure', failback: 'auto' },
        expect: { state: state({ sharedDown: { a: '1 provider-level failure' }, lastProvider: 'a' }) },
      },
      {
        title: 'a circuit closes with failback auto: the provider is back, also if this campaign had found it down',
        given: state({ plan: { order: ['a', 'b', 'c'], down: { a: 'auth failed' } }, sharedDown: { a: 'opened' }, lastProvider: 'b' }),
        event: { type: 'health-changed', provider: 'a', circuit: 'closed', reason: 'probe succeeded', failback: 'auto' },
        expect: { state: state({ lastProvider: 'b' }) },
      },
      {
        title: 'a higher-priority circuit closes with failback manual: kept out here until an operator sets the order',
        given: state({ sharedDown: { a: 'opened' }, lastProvider: 'b' }),
        event: { type: 'health-changed', provider: 'a', circuit: 'closed', reason: 'probe succeeded', failback: 'manual' },
        expect: {
          state: state({
            plan: { order: ['a', 'b', 'c'], down: { a: 'recovered (probe succeeded); failback is manual: set the provider order to go back' } },
            lastProvider: 'b',
          }),
        },
      },
      {
        title: 'a lower-priority circuit closes with failback manual: it is simply back (no failback involved)',
        given: state({ sharedDown: { c: 'opened' }, lastProvider: 'a' }),
        event: { type: 'health-changed', provider: 'c', circuit: 'closed', reason: 'marked up by an operator', failback: 'manual' },
        expect: { state: state({ lastProvider: 'a' }) },
      },
      {
        title: 'a circuit closes while no provider is active: it ends the no-provider hold, whatever the failback policy',
        given: state({ plan: { order: ['a', 'b'], down: { b: 'auth failed' } }, sharedDown: { a: 'opened' }, hold: hold('no-provider') }),
        event: { type: 'health-changed', provider: 'a', circuit: 'closed', reason: 'probe succeeded', failback: 'manual' },
        expect: { state: state({ plan: { order: ['a', 'b'], down: { b: 'auth failed' } } }) },
      },
      {
        title: 'a circuit opens during a no-provider hold: still holding',
        given: state({ plan: { order: ['a'], down: { a: 'auth failed' } }, hold: hold('no-provider') }),
        event: { type: 'health-changed', provider: 'a', circuit: 'open', reason: 'opened', failback: 'auto' },
        expect: { state: state({ plan: { order: ['a'], down: { a: 'auth failed' } }, sharedDown: { a: 'opened' }, hold: hold('no-provider') }) },
      },
      {
        title: 'a circuit closes for a provider that is not the one missing: the no-provider hold stays',
        given: state({ plan: { order: ['a'], down: { a: 'auth failed' } }, sharedDown: { z: 'opened' }, hold: hold('no-provider') }),
        event: { type: 'health-changed', provider: 'z', circuit: 'closed', reason: 'probe succeeded', failback: 'auto' },
        expect: { state: state({ plan: { order: ['a'], down: { a: 'auth failed' } }, hold: hold('no-provider') }) },
      },
      {
        title: 'health-known (after subscribing) replaces the shared circuits as found and ends no hold',
        given: state({ sharedDown: { a: 'old reason' }, hold: hold('no-provider') }),
        event: { type: 'health-known', down: { b: 'circuit half-open' } },
        expect: { state: state({ sharedDown: { b: 'circuit half-open' }, hold: hold('no-provider') }) },
      },
    ];
    for (const c of cases) it(`health: ${c.title}`, () => check(c));

    for (const kind of ['operator', 'message-refused', 'store-or-bug', 'review'] as const) {
      it(`health: a recovered provider does not end a ${kind} hold`, () => {
        const given = state({ sharedDown: { a: 'opened' }, hold: hold(kind) });
        const d = run(given, { type: 'health-changed', provider: 'a', circuit: 'closed', reason: 'probe succeeded', failback: 'auto' });
        assert.deepEqual(d.state.hold, hold(kind));
        assert.deepEqual(d.state.sharedDown, {});
      });
    }
  });

  describe('operator events: order, pause, resume; other holds', () => {
    const cases: Case[] = [
      {
        title: 'operator order: a fresh plan (everything gets a chance), no last provider, no switch, and the no-provider hold ends',
        given: state({ plan: { order: ['a', 'b'], down: { a: 'x', b: 'y' } }, sharedDown: { c: 'opened' }, lastProvider: 'b', hold: hold('no-provider') }),
        event: { type: 'operator-order', providers: ['c', 'a'] },
        expect: { state: { plan: { order: ['c', 'a'], down: {} }, sharedDown: { c: 'opened' }, lastProvider: undefined, hold: undefined } },
      },
      {
        title: 'pause: an operator hold with the reason given',
        given: state({ lastProvider: 'a' }),
        event: { type: 'pause', reason: 'waiting for legal', at: AT },
        expect: {
          state: state({ lastProvider: 'a', hold: { kind: 'operator', reason: 'waiting for legal', since: AT } }),
          hold: { kind: 'operator', reason: 'waiting for legal', since: AT },
        },
      },
      {
        title: 'pause without a reason: "paused by operator"',
        given: state(),
        event: { type: 'pause', at: AT },
        expect: { hold: { kind: 'operator', reason: 'paused by operator', since: AT } },
      },
      {
        title: 'resume from a no-provider hold: every provider is retried from the top (found down here forgotten), the hold ends',
        given: state({ plan: { order: ['a', 'b'], down: { a: 'x', b: 'y' } }, hold: hold('no-provider') }),
        event: { type: 'resume' },
        expect: { state: state({ plan: { order: ['a', 'b'], down: {} } }) },
      },
      {
        title: 'resume with a provider still active: the plan is kept as it is',
        given: state({ plan: { order: ['a', 'b'], down: { a: 'x' } }, lastProvider: 'b', hold: hold('operator') }),
        event: { type: 'resume' },
        expect: { state: state({ plan: { order: ['a', 'b'], down: { a: 'x' } }, lastProvider: 'b' }) },
      },
      {
        title: 'resume while every provider is down by shared health only: the plan starts over, shared circuits stay open',
        given: state({ plan: { order: ['a'], down: {} }, sharedDown: { a: 'opened' }, hold: hold('no-provider') }),
        event: { type: 'resume' },
        expect: { state: state({ plan: { order: ['a'], down: {} }, sharedDown: { a: 'opened' } }) },
      },
      {
        title: 'hold: rows held for review hold the campaign with the reason given',
        given: state({ lastProvider: 'a' }),
        event: { type: 'hold', kind: 'review', reason: '2 recipient(s) held for review', at: AT },
        expect: { hold: { kind: 'review', reason: '2 recipient(s) held for review', since: AT } },
      },
      {
        title: 'hold: a failed campaign check holds it as store-or-bug with the reason given',
        given: state(),
        event: { type: 'hold', kind: 'store-or-bug', reason: 'checking the campaign failed: disk I/O error', at: AT },
        expect: { hold: { kind: 'store-or-bug', reason: 'checking the campaign failed: disk I/O error', since: AT } },
      },
      {
        title: 'rows released end a review hold',
        given: state({ hold: hold('review') }),
        event: { type: 'rows-released' },
        expect: { state: state() },
      },
    ];
    for (const c of cases) it(`operator: ${c.title}`, () => check(c));

    for (const kind of ['operator', 'message-refused', 'store-or-bug', 'review'] as const) {
      it(`operator: resume ends a ${kind} hold`, () => assert.equal(run(state({ hold: hold(kind) }), { type: 'resume' }).state.hold, undefined));
      it(`operator: a new provider order does not end a ${kind} hold`, () =>
        assert.deepEqual(run(state({ hold: hold(kind) }), { type: 'operator-order', providers: ['b'] }).state.hold, hold(kind)));
    }
    for (const kind of ['operator', 'no-provider', 'message-refused', 'store-or-bug'] as const) {
      it(`operator: released rows do not end a ${kind} hold`, () =>
        assert.deepEqual(run(state({ hold: hold(kind) }), { type: 'rows-released' }).state.hold, hold(kind)));
    }
  });

  describe('sequences, as a campaign feeds them', () => {
    /** Feeds events in order; returns the switch log and the holds started, as the campaign records them. */
    function feed(s: FailoverState, events: FailoverEvent[]) {
      const switches: unknown[] = [];
      const holds: unknown[] = [];
      for (const e of events) {
        const d = run(s, e);
        s = d.state;
        if (d.switch) switches.push(plain({ ...d.switch, announced: d.announce }));
        if (d.hold) holds.push(d.hold);
      }
      return { state: s, switches, holds };
    }
    const start = (atSeq: number): FailoverEvent => ({ type: 'batch-starting', atSeq, at: AT, recordMoves: true });

    it('sequence: shared health moves the campaign off a failed provider and failback brings it back, one switch each, at the batch that moved', () => {
      const r = feed(state({ plan: { order: ['a', 'b'], down: {} } }), [
        start(1),
        { type: 'batch-succeeded', provider: 'a' },
        { type: 'health-changed', provider: 'a', circuit: 'open', reason: 'opened by another campaign', failback: 'auto' },
        start(6),
        { type: 'batch-succeeded', provider: 'b' },
        start(11),
        { type: 'health-changed', provider: 'a', circuit: 'closed', reason: 'probe succeeded', failback: 'auto' },
        start(16),
        start(21),
      ]);
      assert.deepEqual(r.switches, [
        { from: 'a', to: 'b', reason: 'shared health: opened by another campaign', at: AT, atSeq: 6, announced: { failback: false, cause: 'shared-health' } },
        { from: 'b', to: 'a', reason: 'failback: a is healthy again', at: AT, atSeq: 16, announced: { failback: true, cause: 'failback' } },
      ]);
      assert.deepEqual(r.holds, []);
    });

    it('sequence: a drill forced down at #11 switches once and the next batch on the secondary records nothing more', () => {
      const reason = 'failover drill: primary forced down';
      const r = feed(state({ plan: { order: ['a', 'b'], down: {} } }), [
        start(1),
        start(6),
        start(11),
        { type: 'drill-forced', provider: 'a', reason, atSeq: 11, at: AT },
        start(11),
        start(16),
      ]);
      assert.deepEqual(r.switches, [{ from: 'a', to: 'b', reason, at: AT, atSeq: 11 }], 'not announced');
      assert.equal(r.state.lastProvider, 'b');
    });

    it('sequence: none left holds; resume retries from the top, and the next batch goes to the first provider without a switch', () => {
      const r = feed(state({ plan: { order: ['a', 'b'], down: {} } }), [
        start(1),
        { type: 'batch-failed', provider: 'a', failure: 'provider', reason: 'ra', atSeq: 1, at: AT },
        start(1),
        { type: 'batch-failed', provider: 'b', failure: 'provider', reason: 'rb', atSeq: 1, at: AT },
        { type: 'resume' },
        start(1),
      ]);
      assert.deepEqual(r.switches, [
        { from: 'a', to: 'b', reason: 'ra', at: AT, atSeq: 1, announced: { failback: false, cause: 'provider-refused' } },
        { from: 'b', reason: 'rb', at: AT, atSeq: 1 },
      ]);
      assert.deepEqual(r.holds, [{ kind: 'no-provider', reason: 'no provider left: a: ra; b: rb', since: AT }]);
      assert.equal(r.state.hold, undefined);
      assert.equal(r.state.lastProvider, 'a');
    });
  });

  describe('switch causes: from what happened, never from the reason text', () => {
    const opened = (by: 'failures' | 'operator' | 'probe' | undefined, reason: string): FailoverEvent => ({
      type: 'health-changed',
      provider: 'a',
      circuit: 'open',
      reason,
      failback: 'auto',
      ...(by ? { by } : {}),
    });
    const start = (atSeq: number): FailoverEvent => ({ type: 'batch-starting', atSeq, at: AT, recordMoves: true });
    const causeAfter = (given: FailoverState, events: FailoverEvent[]) => {
      let s = given;
      const causes: unknown[] = [];
      for (const e of events) {
        const d = run(s, e);
        s = d.state;
        if (d.announce) causes.push(d.announce.cause);
      }
      return causes;
    };
    const onA = state({ plan: { order: ['a', 'b'], down: {} }, lastProvider: 'a' });

    it('monitoring: its own batch refused by the provider is provider-refused; transient errors until the retries were spent is retries-exhausted', () => {
      const failed = (cause?: 'provider-refused' | 'retries-exhausted'): FailoverEvent => ({
        type: 'batch-failed',
        provider: 'a',
        failure: 'provider',
        reason: 'drill',
        atSeq: 6,
        at: AT,
        ...(cause ? { cause } : {}),
      });
      assert.deepEqual(causeAfter(onA, [failed('retries-exhausted')]), ['retries-exhausted']);
      assert.deepEqual(causeAfter(onA, [failed('provider-refused')]), ['provider-refused']);
      assert.deepEqual(causeAfter(onA, [failed()]), ['provider-refused'], 'recorded before causes: a provider-level failure is a refusal');
    });

    it('monitoring: an operator marking the provider down is operator, whatever words they gave ("fire drill in the datacenter" is not a drill)', () => {
      assert.deepEqual(causeAfter(onA, [opened('operator', 'marked down by an operator: fire drill in the datacenter'), start(6)]), ['operator']);
      // Manual failback: the move comes after the circuit closed again; it is still the operator's.
      const manual: FailoverEvent = { type: 'health-changed', provider: 'a', circuit: 'closed', reason: 'marked up', failback: 'manual', by: 'operator' };
      assert.deepEqual(causeAfter(onA, [opened('operator', 'maintenance'), manual, start(6)]), ['operator']);
      // Learned on (re)subscribing: the health workflow says who holds it down.
      assert.deepEqual(causeAfter(onA, [{ type: 'health-known', down: { a: 'maintenance' }, operatorDown: ['a'] }, start(6)]), ['operator']);
    });

    it("monitoring: a circuit opened by other campaigns' failures or a probe is shared-health, even when its reason names a drill or an operator", () => {
      assert.deepEqual(causeAfter(onA, [opened('failures', 'failover drill d-7; marked down by an operator'), start(6)]), ['shared-health']);
      assert.deepEqual(causeAfter(onA, [opened('probe', 'probe failed'), start(6)]), ['shared-health']);
      assert.deepEqual(causeAfter(onA, [opened(undefined, 'opened'), start(6)]), ['shared-health'], 'a notice from before `by`');
      assert.deepEqual(causeAfter(onA, [{ type: 'health-known', down: { a: 'operator drill' } }, start(6)]), ['shared-health']);
      // Held down by an operator once, reopened later by failures: the failures' switch.
      const closed: FailoverEvent = { type: 'health-changed', provider: 'a', circuit: 'closed', reason: 'up', failback: 'auto', by: 'operator' };
      assert.deepEqual(causeAfter(onA, [opened('operator', 'x'), start(6), closed, start(11), opened('failures', 'y'), start(16)]), [
        'operator',
        'failback',
        'shared-health',
      ]);
    });

    it('monitoring: back on a recovered higher-priority provider is failback', () => {
      assert.deepEqual(causeAfter(state({ plan: { order: ['a', 'b'], down: {} }, lastProvider: 'b' }), [start(6)]), ['failback']);
    });
  });

  it('decide is pure: it never changes its input (frozen), and the same state and event give the same decision', () => {
    const given = state({ plan: { order: ['a', 'b'], down: { b: 'y' } }, sharedDown: { c: 'z' }, lastProvider: 'a', hold: hold('operator') });
    // One of each event type (and each batch failure).
    const events: FailoverEvent[] = [
      { type: 'batch-starting', atSeq: 3, at: AT, recordMoves: true },
      { type: 'batch-succeeded', provider: 'a' },
      ...(['provider', 'message-refused', 'store-or-bug', 'worker-timeout'] as const).map((failure): FailoverEvent => ({
        type: 'batch-failed',
        provider: 'a',
        failure,
        reason: 'x',
        atSeq: 3,
        at: AT,
      })),
      { type: 'drill-forced', provider: 'a', reason: 'forced', atSeq: 3, at: AT },
      { type: 'health-changed', provider: 'b', circuit: 'closed', reason: 'ok', failback: 'manual' },
      { type: 'health-changed', provider: 'c', circuit: 'closed', reason: 'ok', failback: 'auto' },
      { type: 'health-changed', provider: 'a', circuit: 'open', reason: 'opened', failback: 'auto' },
      { type: 'health-known', down: { a: 'opened' } },
      { type: 'operator-order', providers: ['b'] },
      { type: 'pause', at: AT },
      { type: 'resume' },
      { type: 'hold', kind: 'review', reason: 'r', at: AT },
      { type: 'rows-released' },
    ];
    for (const e of events) assert.deepEqual(plain(run(given, e)), plain(run(given, e)), e.type);
    const frozen = deepFreeze(structuredClone(given));
    for (const e of events) decide(frozen, e); // throws in strict mode if anything is written
  });

  it('decide keeps the identity of what it does not change (the workflow writes back only what changed)', () => {
    const given = state({ lastProvider: 'a', hold: hold('review') });
    const d = decide(given, { type: 'health-changed', provider: 'z', circuit: 'open', reason: 'opened', failback: 'auto' });
    assert.equal(d.state.plan, given.plan);
    assert.equal(d.state.hold, given.hold);
    assert.notEqual(d.state.sharedDown, given.sharedDown);
    assert.equal(decide(given, { type: 'batch-starting', atSeq: 1, at: AT, recordMoves: true }).state, given, 'nothing changed: the same state');
  });
});
