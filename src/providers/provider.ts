/**
 * The one small interface every ESP adapter implements (like a nodemailer transport): the
 * `create` of its kind's ProviderModule (./provider-module.ts) makes one per configured provider.
 */
import type { ClassifiedError } from '../errors';

/** A fully rendered message for one recipient. Never leaves the activity (never enters workflow history). */
export interface OutgoingMessage {
  campaignId: string;
  /** Ledger key of the recipient within its campaign. */
  seq: number;
  to: string;
  from: string;
  subject: string;
  text: string;
  html?: string;
  /** Deterministic identity built from campaign and recipient: `<campaignId.seq@mailover>` style. */
  messageId: string;
  headers?: Record<string, string>;
  /**
   * Envelope sender (SMTP MAIL FROM, which becomes the Return-Path) when it differs from `from`:
   * a per-recipient bounce address (VERP). Providers with their own bounce handling may ignore it.
   */
  envelopeFrom?: string;
  /**
   * The campaign's mailing list, when it has one. Mailgun tags the message with it (`o:tag`), so
   * an unsubscribe Mailgun records for that tag is this list's, and comes back as such on sync.
   */
  list?: string;
  /**
   * A transactional campaign's message (`transactional: true`), not marketing. ESPs that keep
   * the two apart (Postmark's message streams) send it on their transactional side.
   */
  transactional?: boolean;
}

/**
 * What the provider answered for one recipient. `signature` (the reply code and enhanced code,
 * e.g. '550 5.1.1') lets the engine see when most of a batch was refused alike: then it is the
 * provider refusing us, not each recipient (see alikeRefusal in ./refusals).
 */
export type SendResult =
  | { status: 'accepted'; providerMessageId: string }
  | { status: 'rejected'; reason: string; hardBounce: boolean; signature?: string }
  | { status: 'deferred'; reason: string; signature?: string; retryAfterMs?: number };

/**
 * What the provider says about a message found in flight after a crash: accepted; never seen
 * (safe to send again); or too early to tell (its event log may lag behind its API).
 */
export type LookupResult =
  | { status: 'accepted'; providerMessageId: string }
  | { status: 'not-found' }
  | { status: 'unknown'; retryAfterMs: number }
  /** This message could not be looked up (the look-up failed): it is held, never resent blindly. */
  | { status: 'failed'; reason: string };

export interface InFlightMessage {
  message: OutgoingMessage;
  /** When it was handed to the provider. */
  dispatchedAt: Date | null;
}

export interface Provider {
  readonly name: string;
  readonly kind: string;
  /**
   * Send a batch. `report` is called once per message as soon as its outcome is known
   * (accepted or rejected for that recipient), so the ledger can be settled right away.
   *
   * Provider-level trouble (transient or unavailable) makes sendBatch stop starting new
   * messages, wait for those in flight, and throw a TransientProviderError or
   * ProviderUnavailableError. Contract: when it throws, every message that was not
   * reported was NOT accepted by the provider, except the seqs listed in the error's
   * `inDoubt` (a call whose answer was lost: reset or timed out after it was sent); those
   * stay in flight and are looked up on the next attempt.
   *
   * `dispatching`, when given, is awaited right before messages are handed to the provider
   * (SMTP: after the relay said 354 to DATA, right before the message data; an HTTP ESP: right
   * before one API call with its recipients) and returns the ones that
   * may go: the ledger marks them then (after a crash only dispatched-but-unsettled rows are in
   * doubt), and leaves out rows another send attempt has taken over. Messages it leaves out are
   * neither sent nor reported.
   */
  sendBatch(
    messages: OutgoingMessage[],
    report: (message: OutgoingMessage, result: SendResult) => Promise<void>,
    dispatching?: (messages: OutgoingMessage[]) => Promise<OutgoingMessage[]>,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Map any error from this provider into the failure taxonomy. */
  classify(err: unknown): ClassifiedError;
  /**
   * Optional: look messages up by their identity (rows left in flight by a crash or by a call
   * whose answer was lost), keyed by seq; a message whose own look-up failed gets status
   * 'failed'. `signal` aborts the look-ups (the activity was cancelled). Providers without a
   * look-up (SMTP) leave it undefined and the in-flight policy applies.
   */
  lookup?(messages: InFlightMessage[], signal?: AbortSignal): Promise<Map<number, LookupResult>>;
  /**
   * How long after a message was dispatched its call may still be open, plus how long the
   * provider's records may lag behind its answer: a row in flight for less than this may still be
   * settled by the attempt that sent it (or not show up in a look-up yet), so it is neither
   * resent nor looked up before then.
   */
  readonly inDoubtWindowMs: number;
  /**
   * A cheap check that the provider is reachable and takes our credentials, without sending
   * (SMTP: connect, EHLO, AUTH; HTTP ESPs: an authenticated read). Throws a classified error.
   */
  verify(): Promise<void>;
  close(): Promise<void>;
}
