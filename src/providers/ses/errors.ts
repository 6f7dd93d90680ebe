/**
 * What Amazon SES v2 answers mean in mailover's failure taxonomy (src/errors.ts).
 *
 * Built from AWS's published error lists for the operations mailover calls (Amazon SES API v2
 * Reference): SendEmail "Errors" (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html#API_SendEmail_Errors),
 * GetAccount, ListSuppressedDestinations and PutSuppressedDestination, and the errors common to
 * all AWS APIs (https://docs.aws.amazon.com/ses/latest/APIReference-V2/CommonErrors.html):
 *
 *   error (HTTP status)                          meaning for mailover
 *   TooManyRequestsException (429)               transient: rate exceeded; back off and retry on SES
 *   ThrottlingException (400)                    transient: request throttled (common error)
 *   LimitExceededException (400)                 provider: the account's sending quota is used up; send elsewhere
 *   SendingPausedException (400)                 provider: sending is paused for the account or configuration set
 *   AccountSuspendedException (400)              provider: the account may no longer send
 *   MailFromDomainNotVerifiedException (400)     provider: the MAIL FROM domain's MX record is not verified
 *   NotFoundException (404)                      provider: the configuration set (or identity) does not exist
 *   AccessDeniedException, NotAuthorized,
 *   UnrecognizedClientException, InvalidClientTokenId,
 *   SignatureDoesNotMatch, IncompleteSignature,
 *   MissingAuthenticationToken, ExpiredTokenException,
 *   OptInRequired, any 401 / 403                 provider: credentials or permissions
 *   RequestExpired (400)                         transient: the request's time is off; signed again on retry
 *   MessageRejected (400)                        by its text (SES words it per case):
 *     "Email address is not verified", "... identities failed the check"
 *                                                provider: the sandbox or an unverified identity (configuration)
 *     an address SES will not take ("Illegal address", "Missing final '@domain'",
 *     "Domain contains illegal character", "Local address contains control or whitespace",
 *     "Domain ends with dot", "Domain starts with dot", "Invalid address")
 *                                                recipient permanent for that recipient only (no hard bounce)
 *     "... on the suppression list", "Address blacklisted"
 *                                                recipient permanent, hard bounce (SES will never deliver)
 *     anything else ("Message length is more than 10 megabytes", "Transaction failed"...)
 *                                                invalid message: the campaign holds with SES's words
 *   BadRequestException (400)                    invalid message (a field of the request is wrong)
 *   InternalServiceErrorException, InternalFailure,
 *   ServiceUnavailable, any 5xx                  transient; for SendEmail in doubt (SES may have taken it)
 *   reset / timeout / aborted mid-call           transient, in doubt (the request may have reached SES)
 *   connection refused / unknown host            provider: SES cannot be reached (nothing was sent)
 *   any other 4xx                                transient, with SES's words
 */
import { InvalidMessageError, ProviderUnavailableError, TransientProviderError, type ClassifiedError } from '../../errors';
import { scrubAddresses } from '../refusals';

/** What one SES error means: an error of the taxonomy, or a refusal of one recipient. */
export type SesVerdict =
  | { kind: 'error'; error: ClassifiedError; /** the request may have reached SES: its messages are in doubt */ inDoubt: boolean }
  | { kind: 'rejected'; reason: string; hardBounce: boolean; signature: string };

/** After a TooManyRequestsException: SES's rate is per second, so a second is the first wait. */
export const THROTTLE_WAIT_MS = 1_000;

const PROVIDER_ERRORS: Record<string, string> = {
  LimitExceededException: 'sending quota exceeded',
  SendingPausedException: 'sending is paused',
  AccountSuspendedException: 'the account is suspended',
  MailFromDomainNotVerifiedException: 'the MAIL FROM domain is not verified',
  NotFoundException: 'not found (configuration set or identity)',
  AccessDeniedException: 'access denied',
  NotAuthorized: 'not authorized',
  UnrecognizedClientException: 'credentials not recognised',
  InvalidClientTokenId: 'credentials not recognised',
  SignatureDoesNotMatch: 'request signature does not match (check the secret access key)',
  IncompleteSignature: 'request signature incomplete',
  MissingAuthenticationToken: 'no credentials',
  ExpiredTokenException: 'credentials expired',
  OptInRequired: 'the account is not subscribed to SES',
};

const SERVER_ERRORS = new Set(['InternalServiceErrorException', 'InternalFailure', 'ServiceUnavailable', 'InternalServerError']);

/** MessageRejected texts that are about the account's configuration, not the message. */
const NOT_VERIFIED = /email address is not verified|identities failed the check|not verified/i;
/** MessageRejected texts about the recipient's address itself. */
const BAD_ADDRESS =
  /illegal address|missing final '@domain'|domain contains illegal character|local address contains control or whitespace|domain (?:ends|starts) with dot|invalid (?:email )?address/i;
/** MessageRejected texts saying SES will never deliver to the address. */
const SUPPRESSED = /suppression list|address blacklisted/i;

/** Errors whose code means nothing was sent: the connection never opened. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $response?: { statusCode?: unknown };
  cause?: unknown;
}

function statusOf(e: SdkErrorShape): number | undefined {
  const s = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** A Node network error code anywhere in the chain (the SDK wraps some). */
function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as SdkErrorShape).code;
    if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) return code;
    const name = (e as SdkErrorShape).name;
    if (name === 'TimeoutError' || name === 'RequestTimeout') return 'ETIMEDOUT';
    if (name === 'AbortError') return 'ABORTED';
    e = (e as SdkErrorShape).cause;
  }
  return undefined;
}

/**
 * The verdict for one error of an SES call. `provider` names the provider in messages; `sending`
 * says the call was a SendEmail (a 5xx or a lost answer leaves its message in doubt).
 */
export function classifySesError(err: unknown, provider: string, sending: boolean): SesVerdict {
  const e = (err ?? {}) as SdkErrorShape;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  // SES echoes addresses ("identities failed the check: bob@example.org"): never shown or stored.
  const said = (typeof e.message === 'string' && e.message ? e.message : name).replace(/\s+/g, ' ');
  const text = scrubAddresses(said).slice(0, 300);
  const status = statusOf(e);
  const error = (error: ClassifiedError, inDoubt = false): SesVerdict => ({ kind: 'error', error, inDoubt });

  if (status === undefined) {
    const code = networkCode(err);
    if (code && UNREACHABLE.has(code)) return error(new ProviderUnavailableError(`${provider}: cannot reach SES (${code})`));
    const what = code === 'ETIMEDOUT' ? 'no answer in time' : code === 'ABORTED' ? 'call aborted' : `connection lost (${code ?? text})`;
    return error(new TransientProviderError(`${provider}: ${what}${sending ? '; SES may have taken the message, so it is in doubt' : ''}`), sending);
  }
  if (name === 'TooManyRequestsException' || name === 'ThrottlingException' || status === 429) {
    return error(new TransientProviderError(`${provider}: rate limited by SES (${status} ${name}: ${text})`, THROTTLE_WAIT_MS));
  }
  if (PROVIDER_ERRORS[name]) return error(new ProviderUnavailableError(`${provider}: ${PROVIDER_ERRORS[name]} (${status} ${name}: ${text})`));
  if (status === 401 || status === 403) return error(new ProviderUnavailableError(`${provider}: authentication failed (${status} ${name}: ${text})`));
  if (name === 'MessageRejected') {
    if (NOT_VERIFIED.test(said)) return error(new ProviderUnavailableError(`${provider}: SES refuses to send: ${text} (sandbox or unverified identity)`));
    if (SUPPRESSED.test(said))
      return {
        kind: 'rejected',
        reason: `${provider}: SES will not deliver to this address (${text})`,
        hardBounce: true,
        signature: 'MessageRejected suppressed',
      };
    if (BAD_ADDRESS.test(said))
      return { kind: 'rejected', reason: `${provider}: SES refuses the address (${text})`, hardBounce: false, signature: 'MessageRejected address' };
    return error(new InvalidMessageError(`${provider}: SES rejected the message (${text})`));
  }
  if (name === 'BadRequestException') return error(new InvalidMessageError(`${provider}: SES refused the request (${status} ${text})`));
  if (name === 'RequestExpired') return error(new TransientProviderError(`${provider}: request expired (${text}); check the clock`));
  if (status >= 500 || SERVER_ERRORS.has(name)) {
    return error(
      new TransientProviderError(`${provider}: SES server error (${status} ${name}: ${text})${sending ? '; the message is in doubt' : ''}`),
      sending,
    );
  }
  return error(new TransientProviderError(`${provider}: unexpected answer from SES (${status} ${name}: ${text})`));
}
