/**
 * The window's bookkeeping, pure: which recipients of the audience's first pass are settled,
 * and which range to send next. With several batches in flight they settle out of order, so
 * the progress cursor means "every seq up to it is settled", and the ranges settled above it
 * are kept beside it (sorted, disjoint, none touching the cursor) until the cursor reaches them.
 *
 * A range is inclusive: [fromSeq, toSeq]. No Temporal, no clock: unit-tested with tables.
 */

export type SeqRange = [fromSeq: number, toSeq: number];

export interface FirstPass {
  /** Every seq up to the cursor is settled. */
  cursor: number;
  /** Ranges settled above the cursor: sorted, disjoint, the first starting above cursor + 1. */
  settledAbove: SeqRange[];
}

/** The first pass with `[fromSeq, toSeq]` settled too: merged into the ranges, the cursor moved as far as they reach. */
export function settle(pass: FirstPass, fromSeq: number, toSeq: number): FirstPass {
  if (toSeq <= pass.cursor) return pass;
  const from = Math.max(fromSeq, pass.cursor + 1);
  const ranges = [...pass.settledAbove, [from, toSeq] as SeqRange].sort((a, b) => a[0] - b[0]);
  const merged: SeqRange[] = [];
  for (const [f, t] of ranges) {
    const last = merged[merged.length - 1];
    if (last && f <= last[1] + 1) last[1] = Math.max(last[1], t);
    else merged.push([f, t]);
  }
  let cursor = pass.cursor;
  while (merged.length && merged[0][0] <= cursor + 1) {
    cursor = Math.max(cursor, merged[0][1]);
    merged.shift();
  }
  return { cursor, settledAbove: merged };
}

/**
 * The next range to send: the first seq above the cursor that is neither settled nor in flight,
 * up to a batch (`batchSize`), stopping short of the next settled or in-flight seq and of `maxSeq`.
 * Undefined when every seq is settled or in flight.
 */
export function nextRange(pass: FirstPass, maxSeq: number, batchSize: number, inFlight: readonly SeqRange[]): SeqRange | undefined {
  const taken = [...pass.settledAbove, ...inFlight].filter(([, t]) => t > pass.cursor).sort((a, b) => a[0] - b[0]);
  let from = pass.cursor + 1;
  for (const [f, t] of taken) {
    if (f > from) break;
    from = Math.max(from, t + 1);
  }
  if (from > maxSeq) return undefined;
  const nextTaken = taken.find(([f]) => f > from);
  const to = Math.min(from + batchSize - 1, maxSeq, nextTaken ? nextTaken[0] - 1 : Infinity);
  return [from, to];
}

/** How many seqs the first pass has settled (the cursor and the ranges above it). */
export function settledCount(pass: FirstPass): number {
  return pass.cursor + pass.settledAbove.reduce((n, [f, t]) => n + t - f + 1, 0);
}
