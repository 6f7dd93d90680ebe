/**
 * Postmark's answers in mailover's failure taxonomy (src/errors.ts).
 *
 * Postmark answers a refused API call with an HTTP status (401 bad token, 422 a request it will
 * not take, 429, 500, 503) and a JSON body { ErrorCode, Message }; a batch call (/email/batch)
 * answers 200 with one { ErrorCode, Message, MessageID, To } per message, each with its own
 * ErrorCode. The ErrorCode table below follows Postmark's published list of API error codes:
 *   https://postmarkapp.com/developer/api/overview#error-codes
 * Only the codes a send, a search or a suppression call can answer are listed; the rest of that
 * list (templates, servers, domains, sender signatures' management...) is about calls mailover
 * never makes, and any code not in the table is taken for a temporary problem with that one
 * message (deferred: tried again later, never dropped on a guess).
 */

/** What one ErrorCode means for mailover. */
export type PostmarkCodeClass =
  /** 0: accepted. */
  | 'ok'
  /** This recipient will never get it through Postmark: a hard bounce (suppressed). */
  | 'recipient-suppressed'
  /** This recipient's address (or this message for it) was refused; not a bounce. */
  | 'recipient-rejected'
  /** Our account or token: no message goes out through this provider until someone fixes it. */
  | 'provider-unavailable'
  /** Postmark is busy or in maintenance: try the same provider again later. */
  | 'transient'
  /** The request itself is wrong (mailover's doing): the campaign holds with the reason. */
  | 'invalid-message'
  /** Too many messages in one call: split it. */
  | 'split'
  /** Not in the table: this message only, tried again later. */
  | 'unknown';

export interface PostmarkCode {
  /** Postmark's name for it, as its error codes list gives it. */
  name: string;
  class: PostmarkCodeClass;
}

/** Postmark's API error codes (https://postmarkapp.com/developer/api/overview#error-codes). */
export const POSTMARK_ERROR_CODES: ReadonlyMap<number, PostmarkCode> = new Map<number, PostmarkCode>([
  [0, { name: 'OK', class: 'ok' }],
  [10, { name: 'Bad or missing API token', class: 'provider-unavailable' }],
  [100, { name: 'Maintenance', class: 'transient' }],
  [300, { name: 'Invalid email request', class: 'recipient-rejected' }],
  [400, { name: 'Sender signature not found', class: 'provider-unavailable' }],
  [401, { name: 'Sender signature not confirmed', class: 'provider-unavailable' }],
  [402, { name: 'Invalid JSON', class: 'invalid-message' }],
  [403, { name: 'Incompatible JSON', class: 'invalid-message' }],
  [405, { name: 'Not allowed to send', class: 'provider-unavailable' }],
  [406, { name: 'Inactive recipient', class: 'recipient-suppressed' }],
  [409, { name: 'JSON required', class: 'invalid-message' }],
  [410, { name: 'Too many batch messages', class: 'split' }],
  [411, { name: 'Forbidden attachment type', class: 'invalid-message' }],
  [412, { name: 'Account is pending', class: 'provider-unavailable' }],
  [413, { name: 'Account may not send', class: 'provider-unavailable' }],
  [429, { name: 'Rate limit exceeded', class: 'transient' }],
]);

/** The entry of a code; an unlisted one is 'unknown' (named by its number). */
export function postmarkCode(code: number): PostmarkCode {
  return POSTMARK_ERROR_CODES.get(code) ?? { name: `ErrorCode ${code}`, class: 'unknown' };
}

/**
 * What an HTTP answer to a whole call means when its body does not say more (no ErrorCode, or
 * ErrorCode 0). A 5xx is 'transient' here; whether the call's messages are in doubt is the
 * caller's to say (it knows whether the request was sent).
 */
export function httpStatusClass(status: number): PostmarkCodeClass {
  if (status === 401 || status === 403) return 'provider-unavailable';
  if (status === 404) return 'provider-unavailable';
  if (status === 413) return 'split';
  if (status === 429 || status === 408 || status >= 500) return 'transient';
  if (status === 400 || status === 415 || status === 422) return 'invalid-message';
  return 'transient';
}

/** A whole call's class: its body's ErrorCode when it names one, else its HTTP status. */
export function callClass(status: number, errorCode: number | undefined): PostmarkCodeClass {
  // A 5xx is Postmark's trouble whatever the body says; a 401 is the token whatever the code.
  if (status >= 500) return 'transient';
  if (status === 401) return 'provider-unavailable';
  if (errorCode !== undefined && errorCode !== 0) {
    const c = postmarkCode(errorCode).class;
    // A code about one recipient, answered for the whole call (a single /email call), is that recipient's.
    return c === 'unknown' ? httpStatusClass(status) : c;
  }
  return httpStatusClass(status);
}
