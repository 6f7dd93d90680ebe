/**
 * Postmark's answers in mailover's failure taxonomy, table-driven: each per-message ErrorCode of
 * Postmark's published list (https://postmarkapp.com/developer/api/overview#error-codes) and each
 * whole-call answer (HTTP status and ErrorCode) to its class, worded without the token or the
 * recipient's address. No network.
 */
import { strict as assert } from 'assert';
import { InvalidMessageError, ProviderUnavailableError, TransientProviderError } from '../../src/errors';
import { callClass, POSTMARK_ERROR_CODES, postmarkCode, type PostmarkCodeClass } from '../../src/providers/postmark/errors';
import { messageResult, PostmarkProvider } from '../../src/providers/postmark/provider';

const TOKEN = 'pm-secret-token-0123456789';
const provider = new PostmarkProvider({ name: 'pm', serverToken: TOKEN });
const message = { messageId: '<spring.1@mailover>' };

type Expected =
  | { status: 'accepted' | 'rejected' | 'deferred'; hardBounce?: boolean; reason?: RegExp }
  | { error: typeof ProviderUnavailableError | typeof TransientProviderError | typeof InvalidMessageError; reason: RegExp };

/** One result of /email/batch per row: [ErrorCode, Message, what mailover makes of it]. */
const PER_MESSAGE: Array<[number, string, Expected]> = [
  [0, 'OK', { status: 'accepted' }],
  [
    406,
    'You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: bob@example.org.',
    { status: 'rejected', hardBounce: true, reason: /^pm: inactive recipient \(ErrorCode 406: .*\[address\]/ },
  ],
  [
    300,
    "Error parsing 'To': Illegal email address 'bob(at)example.org'.",
    { status: 'rejected', hardBounce: false, reason: /^pm: Invalid email request \(ErrorCode 300/ },
  ],
  [
    10,
    'Request does not contain a valid Server token.',
    { error: ProviderUnavailableError, reason: /^pm: bad or missing server token \(ErrorCode 10: .*\): check serverToken$/ },
  ],
  [400, 'Sender signature not found', { error: ProviderUnavailableError, reason: /^pm: Sender signature not found \(ErrorCode 400/ }],
  [401, 'Sender signature not confirmed', { error: ProviderUnavailableError, reason: /^pm: Sender signature not confirmed/ }],
  [405, 'Not allowed to send: you have run out of credits.', { error: ProviderUnavailableError, reason: /^pm: Not allowed to send \(ErrorCode 405/ }],
  [412, 'Account is pending approval', { error: ProviderUnavailableError, reason: /^pm: Account is pending \(ErrorCode 412/ }],
  [413, 'Account may not send', { error: ProviderUnavailableError, reason: /^pm: Account may not send/ }],
  [100, 'Maintenance', { error: TransientProviderError, reason: /^pm: Maintenance \(ErrorCode 100/ }],
  [429, 'Rate limit exceeded', { error: TransientProviderError, reason: /^pm: rate limited \(ErrorCode 429/ }],
  [402, 'Invalid JSON', { error: InvalidMessageError, reason: /^pm: Postmark rejected the message \(ErrorCode 402/ }],
  [409, 'JSON required', { error: InvalidMessageError, reason: /ErrorCode 409/ }],
  [411, 'Forbidden attachment type', { error: InvalidMessageError, reason: /ErrorCode 411/ }],
  [1234, 'Something new', { status: 'deferred', reason: /^pm: ErrorCode 1234 \(Something new\)$/ }],
];

/** A whole call refused: [HTTP status, ErrorCode, class]. */
const WHOLE_CALL: Array<[number, number | undefined, PostmarkCodeClass]> = [
  [401, 10, 'provider-unavailable'],
  [401, undefined, 'provider-unavailable'],
  [422, 405, 'provider-unavailable'],
  [422, 412, 'provider-unavailable'],
  [422, 410, 'split'],
  [413, undefined, 'split'],
  [422, 402, 'invalid-message'],
  [422, 300, 'recipient-rejected'],
  [429, 429, 'transient'],
  [429, undefined, 'transient'],
  [500, undefined, 'transient'],
  [500, 402, 'transient'],
  [503, undefined, 'transient'],
  [422, 100, 'transient'],
  [404, undefined, 'provider-unavailable'],
  [422, 9999, 'invalid-message'],
];

describe('postmark error classes', () => {
  for (const [code, text, expected] of PER_MESSAGE) {
    it(`postmark: per-message ErrorCode ${code} (${postmarkCode(code).name}) → ${'error' in expected ? expected.error.name : expected.status}`, () => {
      const r = messageResult('pm', message, { ErrorCode: code, Message: text, MessageID: code === 0 ? 'b7bc2f4a-e38e' : undefined });
      if ('error' in expected) {
        assert.ok('error' in r, `expected an error, got ${JSON.stringify(r)}`);
        assert.ok(r.error instanceof expected.error, `${r.error.name}: ${r.error.message}`);
        assert.match(r.error.message, expected.reason);
        return;
      }
      assert.ok(!('error' in r), JSON.stringify(r));
      assert.equal(r.status, expected.status);
      if (r.status === 'accepted') assert.equal(r.providerMessageId, 'b7bc2f4a-e38e');
      if (r.status === 'rejected') {
        assert.equal(r.hardBounce, expected.hardBounce);
        assert.equal(r.signature, `postmark ${code}`, 'refusals alike in one batch are recognised by their signature');
      }
      if (r.status !== 'accepted' && expected.reason) assert.match(r.reason, expected.reason);
      if (r.status !== 'accepted') assert.ok(!r.reason.includes('@'), `no address in the reason: ${r.reason}`);
    });
  }

  for (const [status, code, cls] of WHOLE_CALL) {
    it(`postmark: a whole call answered ${status}${code === undefined ? '' : ` ErrorCode ${code}`} → ${cls}`, () => {
      assert.equal(callClass(status, code), cls);
    });
  }

  it('postmark: every code of the table is one Postmark lists, classed (none left unknown)', () => {
    for (const [code, entry] of POSTMARK_ERROR_CODES) assert.notEqual(entry.class, 'unknown', `${code} ${entry.name}`);
    assert.equal(postmarkCode(31337).class, 'unknown');
  });

  it('postmark: classify turns the client’s errors into the taxonomy, never repeating the token', () => {
    const cases: Array<[object, typeof ProviderUnavailableError | typeof TransientProviderError | typeof InvalidMessageError, RegExp]> = [
      [
        { statusCode: 401, code: 10, message: `bad token ${TOKEN}` },
        ProviderUnavailableError,
        /^pm: bad or missing server token \(401 ErrorCode 10: bad token \*\*\*\): check serverToken$/,
      ],
      [{ statusCode: 422, code: 412, message: 'Account is pending' }, ProviderUnavailableError, /^pm: Account is pending \(422 ErrorCode 412/],
      [{ statusCode: 429, code: 429, message: 'slow down' }, TransientProviderError, /^pm: rate limited \(429 ErrorCode 429: slow down\)$/],
      [{ statusCode: 503, code: 0, message: 'Service Unavailable' }, TransientProviderError, /^pm: server error \(503 Service Unavailable\)$/],
      [{ statusCode: 422, code: 402, message: 'Invalid JSON' }, InvalidMessageError, /^pm: Postmark rejected the message \(422 ErrorCode 402: Invalid JSON\)$/],
      [{ statusCode: 0, code: 0, message: 'fetch failed' }, TransientProviderError, /^pm: fetch failed$/],
    ];
    for (const [err, type, reason] of cases) {
      const c = provider.classify(err);
      assert.ok(c instanceof type, `${JSON.stringify(err)} → ${c.name}`);
      assert.match(c.message, reason);
      assert.ok(!c.message.includes(TOKEN));
    }
  });
});
