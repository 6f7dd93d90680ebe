/**
 * The one error a batch throws when its calls (or SMTP sessions) ran in parallel and more than
 * one failed. The send activity releases every unreported row that the error does not name as in
 * doubt, to be sent again; so the error must carry the recipients in doubt of every failed call,
 * not only of the first, or a second call the ESP may have taken would be sent twice.
 *
 * - the first failure, when no other call left anyone in doubt;
 * - the first transient failure, widened to every call's recipients in doubt;
 * - a provider-level refusal beside a call in doubt becomes a transient error naming both: the
 *   next attempt looks those recipients up first, then meets the refusal again and fails over.
 */
import { ProviderUnavailableError, TransientProviderError } from '../errors';
import type { OutgoingMessage } from './provider';

export function combineFailures(failures: readonly unknown[]): unknown {
  const first = failures[0];
  const inDoubt = [...new Set(failures.flatMap((f) => (f instanceof TransientProviderError ? f.inDoubt : [])))];
  if (first instanceof TransientProviderError && inDoubt.length > first.inDoubt.length) {
    return new TransientProviderError(`${first.message}; ${inDoubt.length} recipient(s) in doubt in all`, first.retryAfterMs, inDoubt);
  }
  if (first instanceof ProviderUnavailableError && inDoubt.length) {
    return new TransientProviderError(`${first.message}; ${inDoubt.length} recipient(s) of a call in parallel in doubt`, undefined, inDoubt);
  }
  return first;
}

/** A batch cut into calls of at most `size` messages, in order. */
export function callsOf(messages: OutgoingMessage[], size: number): OutgoingMessage[][] {
  const calls: OutgoingMessage[][] = [];
  for (let i = 0; i < messages.length; i += size) calls.push(messages.slice(i, i + size));
  return calls;
}

/**
 * Sends a batch's calls at most `concurrency` at a time, for ESPs whose API takes many messages a
 * call. Each call is first offered to `dispatching` (which marks its rows dispatched and may
 * withdraw some); no call starts once one has failed; the failures are thrown as one
 * (combineFailures), naming every recipient in doubt.
 */
export async function sendCallsInParallel(
  calls: OutgoingMessage[][],
  concurrency: number,
  dispatching: ((messages: OutgoingMessage[]) => Promise<OutgoingMessage[]>) | undefined,
  send: (call: OutgoingMessage[]) => Promise<void>,
): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (failures.length === 0 && next < calls.length) {
      const call = calls[next++];
      try {
        const mine = dispatching ? await dispatching(call) : call;
        if (mine.length) await send(mine);
      } catch (err) {
        failures.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, calls.length) }, worker));
  if (failures.length) throw combineFailures(failures);
}
