/**
 * A failover drill on two weighted providers: the synthetic campaign splits its batches between
 * primary and secondary by weight, the primary is forced down at one of its own batches from about
 * half-way, and from there everything goes to the secondary. Pure: the drill workflow plans with
 * it, the ledger check (activities/drill.ts) repeats it per recipient.
 */
import { batchIndexOf, weightedPick, type ProviderWeights } from './weighted-routing';

export interface WeightedDrill {
  primary: string;
  secondary: string;
  weights: ProviderWeights;
  batchSize: number;
}

/** The provider batch `index` goes to while both share the campaign. */
const sharedPick = (d: WeightedDrill, index: number) => weightedPick(index, [d.primary, d.secondary], d.weights);

/**
 * Where the primary is forced down: the first seq of the first batch at or after `fromSeq` (the
 * half-way batch) that the weights give the primary; failing that, the last such batch before it
 * (not the first batch, so some rows go out before the switch). Undefined when the weights give
 * the primary no batch to fail (then no switch can be seen).
 */
export function weightedSwitchSeq(d: WeightedDrill, fromSeq: number, total: number): number | undefined {
  const batches = Math.ceil(total / d.batchSize);
  const half = batchIndexOf(fromSeq, d.batchSize);
  for (let b = half; b < batches; b++) if (sharedPick(d, b) === d.primary) return b * d.batchSize + 1;
  for (let b = half - 1; b >= 1; b--) if (sharedPick(d, b) === d.primary) return b * d.batchSize + 1;
  return undefined;
}

/** The provider recipient `seq` is accepted on: split by weight before the switch, the secondary from it. */
export function weightedDrillProvider(d: WeightedDrill, switchSeq: number, seq: number): string | undefined {
  return seq >= switchSeq ? d.secondary : sharedPick(d, batchIndexOf(seq, d.batchSize));
}
