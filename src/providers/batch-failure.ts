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
