/**
 * combineFailures (no Temporal, no network): when calls of one batch ran in parallel and several
 * failed, the error the batch throws names every recipient in doubt, so the send activity never
 * releases one of them to be sent again.
 */
import { strict as assert } from 'assert';
import { ProviderUnavailableError, TransientProviderError } from '../../src/errors';
import { combineFailures } from '../../src/providers/parallel-calls';

describe('batch failures from calls in parallel', () => {
  it('one failure is thrown as it is', () => {
    const only = new TransientProviderError('esp: 502 after the call was sent', undefined, [1, 2]);
    assert.equal(combineFailures([only]), only);
  });

  it('two calls in doubt: the first error, widened to every recipient of both, keeping its Retry-After', () => {
    const err = combineFailures([new TransientProviderError('esp: 502', 2_000, [1, 2]), new TransientProviderError('esp: 500', undefined, [3, 4])]);
    assert.ok(err instanceof TransientProviderError);
    assert.deepEqual([...err.inDoubt].sort(), [1, 2, 3, 4]);
    assert.equal(err.retryAfterMs, 2_000);
    assert.equal(err.message, 'esp: 502; 4 recipient(s) in doubt in all');
  });

  it('a provider-level refusal beside a call in doubt becomes transient with those recipients in doubt (looked up before failing over)', () => {
    const err = combineFailures([new ProviderUnavailableError('esp: 401 forbidden'), new TransientProviderError('esp: answer lost', undefined, [7])]);
    assert.ok(err instanceof TransientProviderError, String(err));
    assert.deepEqual(err.inDoubt, [7]);
    assert.match(err.message, /^esp: 401 forbidden; 1 recipient\(s\) of a call in parallel in doubt$/);
  });

  it('a refusal beside another refusal, or a ledger error first, is thrown as it is', () => {
    const refusal = new ProviderUnavailableError('esp: 401');
    assert.equal(combineFailures([refusal, new ProviderUnavailableError('esp: 401 again')]), refusal);
    const ledger = new Error('ledger unavailable');
    assert.equal(combineFailures([ledger, new TransientProviderError('x', undefined, [1])]), ledger);
  });
});
