/** Turns taxonomy errors into Temporal ApplicationFailures whose type the workflow decides on. */
import { ApplicationFailure } from '@temporalio/common';
import { InvalidCampaignError, InvalidMessageError, ProviderUnavailableError, TransientProviderError } from '../src/errors';

export function toApplicationFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ProviderUnavailableError) return ApplicationFailure.nonRetryable(err.message, 'ProviderUnavailableError');
  if (err instanceof InvalidCampaignError) return ApplicationFailure.create({ message: err.message, type: 'InvalidCampaignError', nonRetryable: true, details: [err.problems] });
  if (err instanceof InvalidMessageError) return ApplicationFailure.nonRetryable(err.message, 'InvalidMessageError');
  if (err instanceof TransientProviderError) {
    return ApplicationFailure.create({ message: err.message, type: 'TransientProviderError', nextRetryDelay: err.retryAfterMs });
  }
  return err;
}
