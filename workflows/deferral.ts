/**
 * How a recipient the provider answered "later" (4xx for that recipient: mailbox full,
 * greylisting) is retried: on its own, while the campaign goes on. Shared by the workflow (its
 * options) and the send activity (its default).
 */
import type { DeferralPolicy } from '../src/store/types';

export const DEFAULT_DEFERRAL: DeferralPolicy = {
  /** First retry 5 minutes after the first "later" (greylisting usually clears within it). */
  firstRetryMs: 5 * 60_000,
  /** Then doubling, at most an hour apart. */
  maxRetryMs: 60 * 60_000,
  /** Given up after 4 hours: rejected as a soft bounce with the last answer (never suppressed). */
  windowMs: 4 * 60 * 60_000,
};
