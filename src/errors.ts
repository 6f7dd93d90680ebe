/**
 * The failure taxonomy of design.md, one named error type per class.
 *
 * Activities convert these into Temporal ApplicationFailures whose `type` is the
 * class name below, so workflow code can decide on them without importing Node code
 * (the names, as `ERROR_TYPES`, are in activities/contracts.ts).
 */

export type FailureClass = 'transient' | 'recipient-deferred' | 'recipient-permanent' | 'provider-unavailable' | 'invalid-campaign' | 'invalid-message';

/** SMTP 421/451/452, connection reset, timeout, HTTP 429/5xx: retry on the same provider. */
export class TransientProviderError extends Error {
  override readonly name = 'TransientProviderError';
  readonly failureClass = 'transient' as const;
  constructor(
    message: string,
    /** Provider-requested delay before the next attempt (Retry-After), if any. */
    readonly retryAfterMs?: number,
    /** Seqs whose outcome is unknown (the provider may have accepted them): looked up, not resent blindly. */
    readonly inDoubt: number[] = [],
  ) {
    super(message);
  }
}

/** SMTP 550/551/553 for one address, or the provider says the address is invalid. */
export class RecipientPermanentError extends Error {
  override readonly name = 'RecipientPermanentError';
  readonly failureClass = 'recipient-permanent' as const;
  constructor(
    message: string,
    /** True when the failure is a hard bounce that must go to the suppression list. */
    readonly hardBounce: boolean,
  ) {
    super(message);
  }
}

/** 4xx for one recipient (mailbox full, greylisting, a temporary routing problem): only that recipient waits and is tried again later. */
export class RecipientDeferredError extends Error {
  override readonly name = 'RecipientDeferredError';
  readonly failureClass = 'recipient-deferred' as const;
}

/** Auth failure, connection refused, retry budget exhausted, provider marked down: switch provider. */
export class ProviderUnavailableError extends Error {
  override readonly name = 'ProviderUnavailableError';
  readonly failureClass = 'provider-unavailable' as const;
}

/** Template error, missing merge field, bad config, bad audience: fail before any send. */
export class InvalidCampaignError extends Error {
  override readonly name = 'InvalidCampaignError';
  readonly failureClass = 'invalid-campaign' as const;
  constructor(
    message: string,
    readonly problems: string[] = [message],
  ) {
    super(message);
  }
}

/** The provider refused the message itself (HTTP 400): not the provider's fault, not transient. The campaign holds with this error. */
export class InvalidMessageError extends Error {
  override readonly name = 'InvalidMessageError';
  readonly failureClass = 'invalid-message' as const;
}

export type ClassifiedError = TransientProviderError | RecipientDeferredError | RecipientPermanentError | ProviderUnavailableError | InvalidMessageError;
