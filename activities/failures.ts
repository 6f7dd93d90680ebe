/**
 * Turns taxonomy errors into Temporal ApplicationFailures whose type the workflow decides on.
 * Every message is scrubbed of e-mail addresses on the way: failure messages enter workflow
 * history, switch reasons, provider health, alerts and logs (relays echo the recipient in their
 * replies: `550 5.7.1 <bob@example.org>: Relay access denied`).
 */
import { ApplicationFailure } from '@temporalio/common';
import { InvalidCampaignError, InvalidMessageError, ProviderUnavailableError, TransientProviderError } from '../src/errors';
import { scrubAddresses } from '../src/providers/refusals';
import { ERROR_TYPES } from './contracts';

export function toApplicationFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ProviderUnavailableError) return ApplicationFailure.nonRetryable(scrubAddresses(err.message), ERROR_TYPES.providerUnavailable);
  if (err instanceof InvalidCampaignError) {
    return ApplicationFailure.create({
      message: scrubAddresses(err.message),
      type: ERROR_TYPES.invalidCampaign,
      nonRetryable: true,
      details: [err.problems.map(scrubAddresses)],
    });
  }
  if (err instanceof InvalidMessageError) return ApplicationFailure.nonRetryable(scrubAddresses(err.message), ERROR_TYPES.invalidMessage);
  if (err instanceof TransientProviderError) {
    return ApplicationFailure.create({ message: scrubAddresses(err.message), type: ERROR_TYPES.transient, nextRetryDelay: err.retryAfterMs });
  }
  if (err instanceof Error && err.name !== 'CancelledFailure' && err.name !== 'AbortError') {
    // Anything else (the store, a bug): retried as before, with its type, but without addresses.
    return ApplicationFailure.create({ message: scrubAddresses(err.message), type: err.name, cause: undefined });
  }
  return err;
}
