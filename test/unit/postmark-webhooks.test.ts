/**
 * Postmark's webhooks read from its documented payload examples (test/fixtures/postmark-webhooks.json):
 * the basic auth check, the event each record type becomes, the replay token and the event's time;
 * and the Postmark definition's config checks. No network.
 */
import { strict as assert } from 'assert';
import { readFileSync } from 'fs';
import path from 'path';
import { ConfigError, parseConfig } from '../../src/config';
import { WebhookBodyError } from '../../src/providers/provider-module';
import { postmarkModule } from '../../src/providers/postmark';
import { basicAuthHeader, basicAuthValid, parsePostmarkWebhookRequest } from '../../src/providers/postmark/webhooks';

const ROOT = path.join(__dirname, '..', '..', '..');
const FIXTURES = JSON.parse(readFileSync(path.join(ROOT, 'test', 'fixtures', 'postmark-webhooks.json'), 'utf8')) as Record<string, Record<string, unknown>>;
const KEY = 'hooks:correct-horse-battery';
const AUTH = { authorization: basicAuthHeader(KEY) };
const body = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('postmark webhooks', () => {
  it('postmark: basic auth is checked exactly (user, password, scheme), and a missing header is not valid', () => {
    assert.equal(basicAuthValid(basicAuthHeader(KEY), KEY), true);
    assert.equal(basicAuthValid(basicAuthHeader('hooks:correct-horse-batterY'), KEY), false);
    assert.equal(basicAuthValid(basicAuthHeader('other:correct-horse-battery'), KEY), false);
    assert.equal(basicAuthValid(`Bearer ${Buffer.from(KEY).toString('base64')}`, KEY), false);
    assert.equal(basicAuthValid(undefined, KEY), false);
    const forged = parsePostmarkWebhookRequest(body(FIXTURES.bounce), KEY, { authorization: basicAuthHeader('hooks:guess') });
    assert.equal(forged.signatureValid, false);
    assert.equal(parsePostmarkWebhookRequest(body(FIXTURES.bounce), KEY, {}).signatureValid, false);
  });

  const cases: Array<[string, string, string, number | undefined]> = [
    ['bounce', 'failed-permanent', 'john@example.com', 41],
    ['spamComplaint', 'complained', 'john@example.com', 7],
    ['delivery', 'delivered', 'john@example.com', 3],
    ['subscriptionChange', 'unsubscribed', 'bounced-address@wildbit.com', 9],
  ];
  for (const [fixture, type, email, seq] of cases) {
    it(`postmark: the documented ${fixture} example becomes a '${type}' event linked to its campaign and seq`, () => {
      const parsed = parsePostmarkWebhookRequest(body(FIXTURES[fixture]), KEY, AUTH);
      assert.equal(parsed.signatureValid, true);
      assert.equal(parsed.eventName, FIXTURES[fixture].RecordType);
      const event = parsed.event('pm')!;
      assert.equal(event.type, type);
      assert.equal(event.email, email);
      assert.equal(event.campaignId, 'spring-sale');
      assert.equal(event.seq, seq);
      assert.equal(event.provider, 'pm');
      // The event's own time: the documented examples are from 2019-2020, so the server refuses them as stale.
      assert.ok(parsed.signedAtSeconds < Date.parse('2020-03-01T00:00:00Z') / 1000);
      assert.equal(event.occurredAt.getTime(), parsed.signedAtSeconds * 1000);
    });
  }

  it('postmark: the replay token is the event’s identity: the same event posted again has the same token, another event another one', () => {
    const a = parsePostmarkWebhookRequest(body(FIXTURES.bounce), KEY, AUTH);
    const again = parsePostmarkWebhookRequest(body({ ...FIXTURES.bounce, Details: 'retried' }), KEY, AUTH);
    // Another bounce whose ID a JSON number cannot tell from the first one's (Postmark's example ID is 2^63-1).
    const other = parsePostmarkWebhookRequest(
      body({ ...FIXTURES.bounce, MessageID: '11111111-6105-42a2-a16a-77a8eac79483', BouncedAt: '2019-11-05T16:40:00Z' }),
      KEY,
      AUTH,
    );
    const otherId = parsePostmarkWebhookRequest(body({ ...FIXTURES.bounce, ID: 43 }), KEY, AUTH);
    const delivery = parsePostmarkWebhookRequest(body(FIXTURES.delivery), KEY, AUTH);
    const delivery2 = parsePostmarkWebhookRequest(body({ ...FIXTURES.delivery, Recipient: 'jane@example.com' }), KEY, AUTH);
    assert.equal(a.token, again.token);
    assert.notEqual(a.token, other.token);
    assert.notEqual(a.token, otherId.token);
    assert.notEqual(delivery.token, delivery2.token);
    assert.equal(a.event('pm')!.providerEventId, a.token);
  });

  it('postmark: bounce types map to permanent, temporary or untracked; opens and reactivations are not tracked', () => {
    const typeOf = (over: Record<string, unknown>, base = FIXTURES.bounce) =>
      parsePostmarkWebhookRequest(body({ ...base, ...over }), KEY, AUTH).event('pm')?.type ?? null;
    assert.equal(typeOf({ Type: 'SoftBounce', TypeCode: 4096 }), 'failed-temporary');
    assert.equal(typeOf({ Type: 'BadEmailAddress', TypeCode: 100000 }), 'failed-permanent');
    assert.equal(typeOf({ Type: 'AutoResponder', TypeCode: 64 }), null);
    assert.equal(typeOf({}, FIXTURES.open), null);
    assert.equal(typeOf({ SuppressSending: false }, FIXTURES.subscriptionChange), null);
    assert.equal(typeOf({ SuppressionReason: 'HardBounce' }, FIXTURES.subscriptionChange), 'failed-permanent');
  });

  it('postmark: a body that is not a Postmark record is refused naming what is wrong', () => {
    assert.throws(
      () => parsePostmarkWebhookRequest(Buffer.from('not json'), KEY, AUTH),
      (e: Error) => e instanceof WebhookBodyError && /expected a JSON body/.test(e.message),
    );
    assert.throws(() => parsePostmarkWebhookRequest(body([1]), KEY, AUTH), /expected a JSON object/);
    assert.throws(() => parsePostmarkWebhookRequest(body({ Email: 'a@b.c' }), KEY, AUTH), /RecordType: missing/);
    assert.throws(() => parsePostmarkWebhookRequest(body({ ...FIXTURES.bounce, BouncedAt: 'yesterday' }), KEY, AUTH), /BouncedAt: expected the event's time/);
    const noEmail = parsePostmarkWebhookRequest(body({ ...FIXTURES.bounce, Email: 'nobody' }), KEY, AUTH);
    assert.throws(() => noEmail.event('pm'), /Email: expected an address/);
  });
});

describe('postmark config', () => {
  const def = (over: Record<string, unknown>) => ({ providers: [{ name: 'pm', kind: 'postmark', serverToken: '${PM_TOKEN}', ...over }] });
  const problemsOf = (source: unknown, env: NodeJS.ProcessEnv = { PM_TOKEN: 'tok', PM_USER: 'hooks', PM_PASS: 'long-enough-pass' }) => {
    try {
      parseConfig(source, env);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.message;
    }
    return '';
  };

  it('postmark: a definition with references, streams and webhook credentials is taken', () => {
    const config = parseConfig(
      def({ broadcastStream: 'news', transactionalStream: 'outbound', callSize: 500, webhookAuth: { user: '${PM_USER}', pass: '${PM_PASS}' } }),
      { PM_TOKEN: 'tok', PM_USER: 'hooks', PM_PASS: 'long-enough-pass' },
    );
    const pm = config.providers[0] as { serverToken: string; broadcastStream: string };
    assert.equal(pm.serverToken, 'tok');
    assert.equal(pm.broadcastStream, 'news');
    assert.equal(postmarkModule.webhooks!.signingKey(config.providers[0] as never), 'hooks:long-enough-pass');
  });

  it('postmark: a token or webhook password written into the file, and bad settings, are refused naming their field', () => {
    assert.match(problemsOf(def({ serverToken: 'literal-token' })), /providers\[0\]\.serverToken/);
    assert.match(problemsOf(def({ webhookAuth: { user: '${PM_USER}', pass: 'literal-password' } })), /providers\[0\]\.webhookAuth\.pass/);
    assert.match(problemsOf(def({ callSize: 501 })), /providers\[0\]\.callSize: expected a whole number from 1 to 500, got 501/);
    assert.match(problemsOf(def({ broadcastStream: 'Bad Stream' })), /providers\[0\]\.broadcastStream: expected a message stream ID .*got "Bad Stream"/);
    assert.match(problemsOf(def({ requestHost: 'http://api.postmarkapp.com' })), /providers\[0\]\.requestHost: expected a host name/);
    assert.match(problemsOf(def({}), {}), /PM_TOKEN/);
  });
});
