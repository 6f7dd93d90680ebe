/**
 * The activity contracts: the ApplicationFailure types workflows decide on (ERROR_TYPES) are the
 * ones the activities throw. No Temporal server, no network.
 */
import { strict as assert } from 'assert';
import { ApplicationFailure } from '@temporalio/common';
import { ERROR_TYPES } from '../../activities/contracts';
import { toApplicationFailure } from '../../activities/failures';
import { InvalidCampaignError, InvalidMessageError, ProviderUnavailableError, TransientProviderError } from '../../src/errors';

describe('activity contracts', () => {
  const cases = [
    { key: 'transient', error: new TransientProviderError('421 try later', 2_000), nonRetryable: false },
    { key: 'providerUnavailable', error: new ProviderUnavailableError('535 authentication failed'), nonRetryable: true },
    { key: 'invalidCampaign', error: new InvalidCampaignError('missing merge field'), nonRetryable: true },
    { key: 'invalidMessage', error: new InvalidMessageError('400 bad from address'), nonRetryable: true },
  ] as const;

  for (const c of cases) {
    it(`contracts: a ${c.error.name} becomes an ApplicationFailure of type ERROR_TYPES.${c.key} (${c.nonRetryable ? 'non-retryable' : 'retryable'})`, () => {
      assert.equal(ERROR_TYPES[c.key], c.error.name, 'the type name is the taxonomy class name');
      const failure = toApplicationFailure(c.error);
      assert.ok(failure instanceof ApplicationFailure);
      assert.equal(failure.type, ERROR_TYPES[c.key]);
      assert.equal(failure.nonRetryable, c.nonRetryable);
    });
  }

  it('contracts: error type names are distinct', () => {
    const names = Object.values(ERROR_TYPES);
    assert.equal(new Set(names).size, names.length);
  });
});
