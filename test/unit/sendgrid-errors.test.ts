/**
 * SendGrid's Mail Send answers in the failure taxonomy: one row per documented status (v3 Mail
 * Send reference, Responses; v3 API errors page; rate limits page, cited in
 * src/providers/sendgrid/errors.ts), plus the answers a call can get without an HTTP status.
 * Bodies are SendGrid's documented error shape `{ errors: [{ field, message, help }] }`.
 */
import { strict as assert } from 'assert';
import { InvalidMessageError, ProviderUnavailableError, TransientProviderError } from '../../src/errors';
import { mailSendOutcome, noAnswerError, rateLimitWaitMs, sendGridErrorText } from '../../src/providers/sendgrid/errors';

const NOW = Date.parse('2026-12-02T02:00:00Z');
const SEQS = [7, 8, 9];
const errors = (...e: Array<[string | null, string]>) => ({ errors: e.map(([field, message]) => ({ field, message, help: null })) });

interface Row {
  status: number;
  headers?: Record<string, unknown>;
  body?: unknown;
  outcome: 'accepted' | 'split' | typeof TransientProviderError | typeof ProviderUnavailableError | typeof InvalidMessageError;
  message?: RegExp;
  retryAfterMs?: number;
  inDoubt?: number[];
}

const TABLE: Row[] = [
  { status: 202, headers: { 'x-message-id': 'W6A8Fk0JQ7eX' }, body: '', outcome: 'accepted' },
  {
    status: 400,
    body: errors(['from.email', 'The from email does not contain a valid address.'], ['personalizations.0.to', 'Does not contain a valid address.']),
    outcome: InvalidMessageError,
    message:
      /^sg: SendGrid rejected the message \(400 from\.email: The from email does not contain a valid address\.; personalizations\.0\.to: Does not contain a valid address\.\)$/,
  },
  {
    status: 401,
    body: errors([null, 'The provided authorization grant is invalid, expired, or revoked']),
    outcome: ProviderUnavailableError,
    message: /authentication failed \(401 The provided authorization grant is invalid, expired, or revoked\): check the API key/,
  },
  {
    status: 403,
    body: errors(['from', 'The from address does not match a verified Sender Identity.']),
    outcome: ProviderUnavailableError,
    message: /403 from: The from address does not match a verified Sender Identity\..*sender identity/,
  },
  { status: 404, body: errors([null, 'resource not found']), outcome: ProviderUnavailableError, message: /not SendGrid's Mail Send API at this URL \(404/ },
  { status: 405, body: '', outcome: ProviderUnavailableError, message: /\(405 Method Not Allowed\)/ },
  { status: 415, body: errors([null, 'Content-Type should be application/json.']), outcome: ProviderUnavailableError, message: /415/ },
  { status: 451, body: errors([null, 'data residency']), outcome: ProviderUnavailableError, message: /check region/ },
  { status: 413, body: '<html><head><title>413 Request Entity Too Large</title></head></html>', outcome: 'split' },
  {
    status: 429,
    headers: { 'x-ratelimit-limit': '600', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(NOW / 1000 + 7) },
    body: errors([null, 'too many requests']),
    outcome: TransientProviderError,
    message: /rate limited \(429 too many requests\); retry after 7 s/,
    retryAfterMs: 7000,
    inDoubt: [],
  },
  { status: 429, headers: { 'retry-after': '3' }, body: '', outcome: TransientProviderError, retryAfterMs: 3000, inDoubt: [] },
  {
    status: 500,
    body: errors([null, 'Internal server error']),
    outcome: TransientProviderError,
    message: /server error \(500 Internal server error\); 3 recipient\(s\) in doubt/,
    inDoubt: SEQS,
  },
  { status: 503, body: '', outcome: TransientProviderError, message: /503 Service Unavailable/, inDoubt: SEQS },
  { status: 502, body: '<html><body><h1>502 Bad Gateway</h1></body></html>', outcome: TransientProviderError, message: /502 502 Bad Gateway/, inDoubt: SEQS },
  { status: 418, body: '', outcome: TransientProviderError, message: /unexpected answer \(418/, inDoubt: [] },
];

describe('sendgrid Mail Send answers → failure taxonomy', () => {
  for (const row of TABLE) {
    const name = typeof row.outcome === 'string' ? row.outcome : row.outcome.name;
    it(`sendgrid: ${row.status} → ${name}${row.retryAfterMs !== undefined ? ` (wait ${row.retryAfterMs} ms)` : ''}${row.inDoubt?.length ? ', recipients in doubt' : ''}`, () => {
      const out = mailSendOutcome(
        { status: row.status, headers: row.headers ?? {}, body: row.body },
        { provider: 'sg', inDoubt: SEQS, secret: 'SG.secret', now: NOW },
      );
      if (row.outcome === 'accepted') return assert.deepEqual(out, { kind: 'accepted', messageId: 'W6A8Fk0JQ7eX' });
      if (row.outcome === 'split') return assert.deepEqual(out, { kind: 'split' });
      assert.equal(out.kind, 'error');
      if (out.kind !== 'error') return;
      assert.ok(out.error instanceof row.outcome, `${out.error.name}: ${out.error.message}`);
      if (row.message) assert.match(out.error.message, row.message);
      if (out.error instanceof TransientProviderError) {
        if (row.retryAfterMs !== undefined) assert.equal(out.error.retryAfterMs, row.retryAfterMs);
        assert.deepEqual(out.error.inDoubt, row.inDoubt ?? []);
      }
    });
  }

  it('sendgrid: the API key never appears in a message', () => {
    const out = mailSendOutcome({ status: 401, headers: {}, body: errors([null, 'bad key SG.secret']) }, { provider: 'sg', inDoubt: [], secret: 'SG.secret' });
    assert.ok(out.kind === 'error' && !out.error.message.includes('SG.secret') && out.error.message.includes('***'));
  });

  it('sendgrid: X-RateLimit-Reset in the past waits nothing; no header, no wait', () => {
    assert.equal(rateLimitWaitMs({ 'x-ratelimit-reset': String(NOW / 1000 - 5) }, NOW), 0);
    assert.equal(rateLimitWaitMs({}, NOW), undefined);
    assert.equal(rateLimitWaitMs({ 'x-ratelimit-reset': 'soon' }, NOW), undefined);
  });

  it('sendgrid: error bodies read as field: message; non-JSON bodies lose their tags', () => {
    assert.equal(sendGridErrorText(JSON.stringify(errors(['subject', 'The subject is required.']))), 'subject: The subject is required.');
    assert.equal(sendGridErrorText('<html><h1>413 Request Entity Too Large</h1></html>'), '413 Request Entity Too Large');
  });

  const NO_ANSWER: Array<[string, typeof TransientProviderError | typeof ProviderUnavailableError, boolean]> = [
    ['ECONNREFUSED', ProviderUnavailableError, false],
    ['ENOTFOUND', ProviderUnavailableError, false],
    ['ECONNRESET', TransientProviderError, true],
    ['ECONNABORTED', TransientProviderError, true],
    ['ERR_CANCELED', TransientProviderError, true],
  ];
  for (const [code, cls, inDoubt] of NO_ANSWER) {
    it(`sendgrid: no answer (${code}) → ${cls.name}${inDoubt ? ', recipients in doubt' : ''}`, () => {
      const err = noAnswerError(Object.assign(new Error(code), { code }), {
        provider: 'sg',
        baseUrl: 'https://api.sendgrid.com',
        inDoubt: SEQS,
        timeoutMs: 500,
      });
      assert.ok(err instanceof cls, err.message);
      if (err instanceof TransientProviderError) assert.deepEqual(err.inDoubt, SEQS);
    });
  }
});
