import { strict as assert } from 'assert';
import { LedgerWriter, type LedgerWrites } from '../../activities/ledger-writer';
import { sendWritesStatement } from '../../src/store/ledger-sends-pg';

/** A write the test completes by hand: each call waits until `finish` is called for it. */
function heldWrites() {
  const calls: Array<{ writes: LedgerWrites; finish: (marked?: number[]) => void; fail: (err: Error) => void }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const write = (writes: LedgerWrites) =>
    new Promise<number[]>((res, rej) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const end = () => inFlight--;
      calls.push({ writes, finish: (marked) => (end(), res(marked ?? writes.dispatch)), fail: (err) => (end(), rej(err)) });
    });
  return { calls, write, maxInFlight: () => maxInFlight };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('LedgerWriter', () => {
  it('writes one at a time: what is asked for while a write is in flight goes, all together, into the next write', async () => {
    const w = heldWrites();
    const writer = new LedgerWriter(w.write);
    let firstDone = false;
    const first = writer.markDispatched([1]).then((m) => ((firstDone = true), m));
    await turn();
    assert.equal(w.calls.length, 1);
    // Three later turns, as SMTP replies from parallel sessions arrive.
    const accepted = writer.settleAccepted(1, '<m1>');
    await turn();
    const second = writer.markDispatched([2]);
    await turn();
    const third = writer.markDispatched([3]);
    await turn();
    assert.equal(w.calls.length, 1, 'nothing else is written while the first write is in flight');
    assert.equal(firstDone, false);
    w.calls[0]!.finish();
    assert.deepEqual([...(await first)], [1]);
    await turn();
    assert.equal(w.calls.length, 2);
    assert.deepEqual(w.calls[1]!.writes, { accepted: [{ seq: 1, providerMessageId: '<m1>' }], dispatch: [2, 3] });
    w.calls[1]!.finish([3]);
    await accepted;
    assert.deepEqual([...(await second)], [], 'row 2 was not marked: that caller may not send it');
    assert.deepEqual([...(await third)], [3]);
    assert.equal(w.maxInFlight(), 1);
  });

  it('a failed write fails its own callers only; the next write still goes', async () => {
    const w = heldWrites();
    const writer = new LedgerWriter(w.write);
    const first = writer.settleAccepted(1, '<m1>');
    await turn();
    const second = writer.settleAccepted(2, '<m2>');
    await turn();
    w.calls[0]!.fail(new Error('connection reset'));
    await assert.rejects(first, /connection reset/);
    await turn();
    assert.equal(w.calls.length, 2);
    w.calls[1]!.finish();
    await second;
  });
});

describe('PostgreSQL send writes (one statement)', () => {
  it('acceptances and dispatch marks go in one statement; a row both accepted and dispatched is left to the transaction', () => {
    const both = sendWritesStatement('c1', 'a', 'tok', 'ts', { accepted: [{ seq: 1, providerMessageId: '<m1>' }], dispatch: [2, 3] });
    assert.match(both!.sql, /^with accepted as \(update recipients .* from unnest\(\$4::integer\[\], \$5::text\[\]\).*\) update recipients .* returning seq$/);
    assert.deepEqual(both!.parameters, ['a', 'ts', 'c1', [1], ['<m1>'], [2, 3], 'tok']);
    const accepts = sendWritesStatement('c1', 'a', 'tok', 'ts', {
      accepted: [
        { seq: 4, providerMessageId: 'x' },
        { seq: 4, providerMessageId: 'y' },
        { seq: 5, providerMessageId: 'x' },
      ],
      dispatch: [],
    });
    assert.deepEqual(accepts!.parameters, ['a', 'ts', 'c1', [4, 5], ['x', 'x']], 'a row accepted twice keeps its first id');
    assert.doesNotMatch(accepts!.sql, /returning/);
    assert.equal(sendWritesStatement('c1', 'a', 'tok', 'ts', { accepted: [{ seq: 2, providerMessageId: 'x' }], dispatch: [2] }), undefined);
  });
});
