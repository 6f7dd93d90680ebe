/**
 * The window's bookkeeping (workflows/batch-window.ts): batches settle out of order, the cursor
 * moves only over what is settled below it, and the next range never overlaps one settled or in flight.
 */
import { strict as assert } from 'assert';
import { nextRange, settle, settledCount, type FirstPass, type SeqRange } from '../../workflows/batch-window';

const start: FirstPass = { cursor: 0, settledAbove: [] };

describe('the window of batches (pure)', () => {
  it('window: batches settling out of order keep the cursor at the highest seq below which everything is settled', () => {
    let pass = settle(start, 201, 300);
    assert.deepEqual(pass, { cursor: 0, settledAbove: [[201, 300]] });
    pass = settle(pass, 101, 200);
    assert.deepEqual(pass, { cursor: 0, settledAbove: [[101, 300]] });
    pass = settle(pass, 1, 100);
    assert.deepEqual(pass, { cursor: 300, settledAbove: [] });
    pass = settle(pass, 401, 500);
    assert.deepEqual(pass, { cursor: 300, settledAbove: [[401, 500]] });
    assert.equal(settledCount(pass), 400);
  });

  it('window: settling a range twice, or one already behind the cursor, changes nothing', () => {
    const pass = settle(settle(start, 1, 100), 201, 300);
    assert.deepEqual(settle(pass, 201, 300), pass);
    assert.deepEqual(settle(pass, 1, 50), pass);
    assert.deepEqual(settle(pass, 51, 150), { cursor: 150, settledAbove: [[201, 300]] });
  });

  it('window: the next range follows the cursor, skips what is in flight or settled, and stops short of the next taken seq', () => {
    const inFlight: SeqRange[] = [
      [1, 100],
      [101, 200],
    ];
    assert.deepEqual(nextRange(start, 1000, 100, inFlight), [201, 300]);
    // A failed batch's range (not settled, no longer in flight) is sent again first, as one batch.
    const pass = settle(start, 101, 200);
    assert.deepEqual(nextRange(pass, 1000, 100, [[201, 300]]), [1, 100]);
    // A gap smaller than a batch is sent alone, not overlapping the range after it.
    assert.deepEqual(nextRange({ cursor: 0, settledAbove: [[51, 300]] }, 1000, 100, []), [1, 50]);
    // The audience's end.
    assert.deepEqual(nextRange({ cursor: 950, settledAbove: [] }, 1000, 100, []), [951, 1000]);
    assert.equal(nextRange({ cursor: 900, settledAbove: [] }, 1000, 100, [[901, 1000]]), undefined);
    assert.equal(nextRange({ cursor: 1000, settledAbove: [] }, 1000, 100, []), undefined);
  });

  it('window: dispatching and settling in any order covers every seq exactly once', () => {
    // A deterministic shuffle of completions: every recipient is sent in exactly one range.
    const maxSeq = 1037;
    const batch = 25;
    const window = 5;
    let pass = start;
    let inFlight: SeqRange[] = [];
    const sent = new Array<number>(maxSeq + 1).fill(0);
    let turn = 0;
    while (pass.cursor < maxSeq) {
      for (let r = nextRange(pass, maxSeq, batch, inFlight); r && inFlight.length < window; r = nextRange(pass, maxSeq, batch, inFlight)) {
        inFlight.push(r);
        for (let s = r[0]; s <= r[1]; s++) sent[s]++;
      }
      const done = inFlight[(turn * 7) % inFlight.length];
      turn++;
      inFlight = inFlight.filter((r) => r !== done);
      pass = settle(pass, done[0], done[1]);
    }
    assert.deepEqual(pass, { cursor: maxSeq, settledAbove: [] });
    assert.ok(
      sent.slice(1).every((n) => n === 1),
      'every seq sent once',
    );
  });
});
