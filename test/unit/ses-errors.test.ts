/**
 * Amazon SES v2 errors in mailover's failure taxonomy: one row per error of AWS's published SES v2
 * error lists (SendEmail's errors and the common errors; see src/providers/ses/errors.ts), built
 * as the AWS SDK builds them, plus the network failures of a call.
 */
import { strict as assert } from 'assert';
import {
  AccountSuspendedException,
  BadRequestException,
  LimitExceededException,
  MailFromDomainNotVerifiedException,
  MessageRejected,
  NotFoundException,
  SendingPausedException,
  SESv2ServiceException,
  TooManyRequestsException,
} from '@aws-sdk/client-sesv2';
import { InvalidMessageError, ProviderUnavailableError, RecipientPermanentError, TransientProviderError } from '../../src/errors';
import { classifySesError, THROTTLE_WAIT_MS } from '../../src/providers/ses/errors';
import { SesProvider } from '../../src/providers/ses/provider';

const meta = (status: number) => ({ $metadata: { httpStatusCode: status, requestId: 'req-1', attempts: 1, totalRetryDelay: 0 } });

/** An error as the SDK throws it for a service error it has no class for (common errors). */
function serviceError(name: string, status: number, message: string): SESv2ServiceException {
  return new SESv2ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', message, ...meta(status) });
}

function networkError(code: string, message = code): Error {
  return Object.assign(new Error(message), { code, $metadata: { attempts: 1, totalRetryDelay: 0 } });
}

type Expect = 'transient' | 'transient-in-doubt' | 'provider' | 'invalid-message' | 'recipient-permanent' | 'recipient-hard-bounce';

const TABLE: Array<[string, unknown, Expect, RegExp?]> = [
  ['TooManyRequestsException 429', new TooManyRequestsException({ message: 'Maximum sending rate exceeded.', ...meta(429) }), 'transient', /rate limited/],
  ['ThrottlingException 400 (common)', serviceError('ThrottlingException', 400, 'Rate exceeded'), 'transient', /rate limited/],
  ['any 429', serviceError('UnknownError', 429, 'slow down'), 'transient', /rate limited/],
  ['SendingPausedException', new SendingPausedException({ message: 'Sending is paused for this account.', ...meta(400) }), 'provider', /sending is paused/],
  ['AccountSuspendedException', new AccountSuspendedException({ message: 'Account suspended.', ...meta(400) }), 'provider', /suspended/],
  [
    'MailFromDomainNotVerifiedException',
    new MailFromDomainNotVerifiedException({ message: 'MAIL FROM domain not verified', ...meta(400) }),
    'provider',
    /MAIL FROM/,
  ],
  ['LimitExceededException (quota)', new LimitExceededException({ message: 'Daily message quota exceeded.', ...meta(400) }), 'provider', /quota/],
  [
    'NotFoundException (configuration set)',
    new NotFoundException({ message: 'Configuration set <news> does not exist.', ...meta(404) }),
    'provider',
    /not found/,
  ],
  [
    'AccessDeniedException 403 (common)',
    serviceError('AccessDeniedException', 403, 'User is not authorized to perform ses:SendEmail'),
    'provider',
    /access denied/,
  ],
  [
    'UnrecognizedClientException 403',
    serviceError('UnrecognizedClientException', 403, 'The security token included in the request is invalid.'),
    'provider',
    /credentials not recognised/,
  ],
  [
    'InvalidClientTokenId 403 (common)',
    serviceError('InvalidClientTokenId', 403, 'The X.509 certificate or AWS access key ID provided does not exist'),
    'provider',
  ],
  [
    'SignatureDoesNotMatch 403',
    serviceError('SignatureDoesNotMatch', 403, 'The request signature we calculated does not match'),
    'provider',
    /secret access key/,
  ],
  ['ExpiredTokenException 403', serviceError('ExpiredTokenException', 403, 'The security token included in the request is expired'), 'provider', /expired/],
  ['MissingAuthenticationToken 403', serviceError('MissingAuthenticationToken', 403, 'Missing Authentication Token'), 'provider'],
  ['NotAuthorized 400 (common)', serviceError('NotAuthorized', 400, 'You do not have permission'), 'provider'],
  ['OptInRequired 403 (common)', serviceError('OptInRequired', 403, 'The AWS access key ID needs a subscription for the service.'), 'provider'],
  ['unknown 401', serviceError('UnknownError', 401, 'Unauthorized'), 'provider', /authentication failed \(401/],
  ['unknown 403', serviceError('UnknownError', 403, 'Forbidden'), 'provider', /authentication failed \(403/],
  [
    'MessageRejected: sandbox, recipient not verified',
    new MessageRejected({
      message: 'Email address is not verified. The following identities failed the check in region US-EAST-1: bob@example.org',
      ...meta(400),
    }),
    'provider',
    /not verified.*sandbox/,
  ],
  ['MessageRejected: Illegal address', new MessageRejected({ message: 'Illegal address', ...meta(400) }), 'recipient-permanent', /refuses the address/],
  ["MessageRejected: Missing final '@domain'", new MessageRejected({ message: "Missing final '@domain'", ...meta(400) }), 'recipient-permanent'],
  [
    'MessageRejected: Domain contains illegal character',
    new MessageRejected({ message: 'Domain contains illegal character', ...meta(400) }),
    'recipient-permanent',
  ],
  [
    'MessageRejected: Local address contains control or whitespace',
    new MessageRejected({ message: 'Local address contains control or whitespace', ...meta(400) }),
    'recipient-permanent',
  ],
  ['MessageRejected: Domain ends with dot', new MessageRejected({ message: 'Domain ends with dot', ...meta(400) }), 'recipient-permanent'],
  ['MessageRejected: Address blacklisted', new MessageRejected({ message: 'Address blacklisted.', ...meta(400) }), 'recipient-hard-bounce', /will not deliver/],
  [
    'MessageRejected: on the suppression list',
    new MessageRejected({ message: 'The address is on the account-level suppression list.', ...meta(400) }),
    'recipient-hard-bounce',
  ],
  [
    'MessageRejected: message too long',
    new MessageRejected({ message: 'Message length is more than 10 megabytes', ...meta(400) }),
    'invalid-message',
    /rejected the message/,
  ],
  ['MessageRejected: other text', new MessageRejected({ message: 'Transaction failed: unknown reason', ...meta(400) }), 'invalid-message'],
  ['BadRequestException', new BadRequestException({ message: 'Invalid tag value', ...meta(400) }), 'invalid-message', /refused the request/],
  ['RequestExpired 400 (common)', serviceError('RequestExpired', 400, 'Request has expired.'), 'transient', /clock/],
  ['InternalFailure 500 (common)', serviceError('InternalFailure', 500, 'unknown error'), 'transient-in-doubt', /server error \(500/],
  ['InternalServiceErrorException 500', serviceError('InternalServiceErrorException', 500, 'internal'), 'transient-in-doubt'],
  ['ServiceUnavailable 503 (common)', serviceError('ServiceUnavailable', 503, 'temporary failure'), 'transient-in-doubt', /server error \(503/],
  ['unknown 502', serviceError('UnknownError', 502, 'Bad Gateway'), 'transient-in-doubt'],
  ['unknown 418', serviceError('UnknownError', 418, 'odd'), 'transient', /unexpected answer/],
  ['ECONNRESET (answer lost)', networkError('ECONNRESET', 'socket hang up'), 'transient-in-doubt', /connection lost \(ECONNRESET\).*in doubt/],
  ['EPIPE', networkError('EPIPE'), 'transient-in-doubt'],
  ['request timeout', Object.assign(new Error('Connection timed out after 2000 ms'), { name: 'TimeoutError' }), 'transient-in-doubt', /no answer in time/],
  ['aborted', Object.assign(new Error('Request aborted'), { name: 'AbortError' }), 'transient-in-doubt', /aborted/],
  ['ECONNREFUSED (nothing sent)', networkError('ECONNREFUSED'), 'provider', /cannot reach SES \(ECONNREFUSED\)/],
  ['ENOTFOUND (nothing sent)', networkError('ENOTFOUND'), 'provider', /cannot reach SES/],
];

describe('ses: errors in the failure taxonomy (AWS SES v2 error list)', () => {
  for (const [title, err, expected, text] of TABLE) {
    it(`ses: ${title} → ${expected}`, () => {
      const v = classifySesError(err, 'ses-eu', true);
      if (expected === 'recipient-permanent' || expected === 'recipient-hard-bounce') {
        assert.equal(v.kind, 'rejected', JSON.stringify(v));
        if (v.kind !== 'rejected') return;
        assert.equal(v.hardBounce, expected === 'recipient-hard-bounce');
        if (text) assert.match(v.reason, text);
        assert.match(v.reason, /^ses-eu: /);
        return;
      }
      assert.equal(v.kind, 'error', JSON.stringify(v));
      if (v.kind !== 'error') return;
      const types = {
        transient: TransientProviderError,
        'transient-in-doubt': TransientProviderError,
        provider: ProviderUnavailableError,
        'invalid-message': InvalidMessageError,
      } as const;
      assert.ok(v.error instanceof types[expected], `${v.error.name}: ${v.error.message}`);
      assert.equal(v.inDoubt, expected === 'transient-in-doubt', 'in doubt only when SES may have taken the message');
      assert.match(v.error.message, /^ses-eu: /);
      if (text) assert.match(v.error.message, text);
    });
  }

  it('ses: throttling asks for a wait of a second (SES rates are per second)', () => {
    const v = classifySesError(new TooManyRequestsException({ message: 'Maximum sending rate exceeded.', ...meta(429) }), 'ses', true);
    assert.ok(v.kind === 'error' && v.error instanceof TransientProviderError && v.error.retryAfterMs === THROTTLE_WAIT_MS);
  });

  it('ses: outside SendEmail (GetAccount, suppression calls) a 5xx or a lost answer leaves nothing in doubt', () => {
    for (const err of [serviceError('InternalFailure', 500, 'x'), networkError('ECONNRESET')]) {
      const v = classifySesError(err, 'ses', false);
      assert.ok(v.kind === 'error' && v.error instanceof TransientProviderError && !v.inDoubt && !/in doubt/.test(v.error.message), JSON.stringify(v));
    }
  });

  it('ses: the addresses SES echoes never reach the error text', () => {
    const v = classifySesError(
      new MessageRejected({
        message: 'Email address is not verified. The following identities failed the check in region EU-WEST-1: bob@example.org, News <news@shop.example>',
        ...meta(400),
      }),
      'ses',
      true,
    );
    assert.ok(v.kind === 'error');
    if (v.kind !== 'error') return;
    assert.ok(!/@/.test(v.error.message), v.error.message);
  });

  it('ses: the provider classify() maps the refusal of one address to a recipient error', () => {
    const p = new SesProvider({ name: 'ses', region: 'us-east-1' });
    const err = p.classify(new MessageRejected({ message: 'Address blacklisted.', ...meta(400) }));
    assert.ok(err instanceof RecipientPermanentError && err.hardBounce);
    assert.ok(p.classify(new SendingPausedException({ message: 'paused', ...meta(400) })) instanceof ProviderUnavailableError);
  });
});
