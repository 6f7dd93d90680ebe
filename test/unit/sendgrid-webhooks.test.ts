/**
 * SendGrid's Signed Event Webhook as the module reads it: the ECDSA signature (checked with
 * @sendgrid/eventwebhook) over timestamp + body with a P-256 key pair the test makes itself, the
 * replay token, and SendGrid's documented event examples (test/fixtures/sendgrid-events.json)
 * mapped to delivery events. The server's refusals (forged, stale, replayed) are in
 * test/integration/sendgrid.test.ts.
 */
import { strict as assert } from 'assert';
import { generateKeyPairSync, sign, type KeyObject } from 'crypto';
import { readFileSync } from 'fs';
import path from 'path';
import { WebhookBodyError } from '../../src/providers/provider-module';
import { sendgridModule } from '../../src/providers/sendgrid';
import { parseSendGridWebhookRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../src/providers/sendgrid/webhooks';

const EVENTS = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'sendgrid-events.json');
const documented = (JSON.parse(readFileSync(EVENTS, 'utf8')) as { events: Array<Record<string, unknown>> }).events;

function keyPair(): { publicKey: string; privateKey: KeyObject } {
  const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { publicKey: pair.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), privateKey: pair.privateKey };
}

function signedHeaders(privateKey: KeyObject, body: string, timestamp: string): Record<string, string> {
  return {
    [SIGNATURE_HEADER.toLowerCase()]: sign('sha256', Buffer.from(timestamp + body), privateKey).toString('base64'),
    [TIMESTAMP_HEADER.toLowerCase()]: timestamp,
  };
}

describe('sendgrid Event Webhook (unit)', () => {
  const { publicKey, privateKey } = keyPair();
  const body = JSON.stringify(documented);
  const ts = '1764640800';

  it('sendgrid: a request signed with the private half of the configured key verifies; another key, a changed body or timestamp do not', () => {
    const headers = signedHeaders(privateKey, body, ts);
    assert.equal(parseSendGridWebhookRequest(Buffer.from(body), publicKey, headers).signatureValid, true);
    const other = keyPair();
    assert.equal(
      parseSendGridWebhookRequest(Buffer.from(body), publicKey, signedHeaders(other.privateKey, body, ts)).signatureValid,
      false,
      'signed with another key',
    );
    const altered = body.replace('"bounce"', '"delivered"');
    assert.equal(parseSendGridWebhookRequest(Buffer.from(altered), publicKey, headers).signatureValid, false, 'body altered');
    assert.equal(
      parseSendGridWebhookRequest(Buffer.from(body), publicKey, { ...headers, [TIMESTAMP_HEADER.toLowerCase()]: String(Number(ts) + 1) }).signatureValid,
      false,
      'timestamp altered',
    );
    assert.equal(
      parseSendGridWebhookRequest(Buffer.from(body), publicKey, { ...headers, [SIGNATURE_HEADER.toLowerCase()]: 'AAAA' }).signatureValid,
      false,
      'garbage signature',
    );
  });

  it('sendgrid: the replay token is the same for the same timestamp and body whatever the signature, and differs otherwise', () => {
    const a = parseSendGridWebhookRequest(Buffer.from(body), publicKey, signedHeaders(privateKey, body, ts));
    // ECDSA signatures are randomised: a second signature of the same request is another string.
    const b = parseSendGridWebhookRequest(Buffer.from(body), publicKey, signedHeaders(privateKey, body, ts));
    assert.equal(a.token, b.token);
    assert.notEqual(a.token, parseSendGridWebhookRequest(Buffer.from(body), publicKey, signedHeaders(privateKey, body, String(Number(ts) + 1))).token);
    assert.equal(a.signedAtSeconds, Number(ts));
  });

  it("sendgrid: SendGrid's documented events map to delivery events (processed, deferred and open ignored)", () => {
    const parsed = parseSendGridWebhookRequest(Buffer.from(body), publicKey, signedHeaders(privateKey, body, ts));
    const events = parsed.events!('sg');
    assert.deepEqual(
      events.map((e) => e.type),
      ['delivered', 'failed-permanent', 'failed-temporary', 'failed-permanent', 'complained', 'unsubscribed', 'unsubscribed'],
    );
    const bounce = events[1];
    assert.deepEqual(
      { ...bounce, occurredAt: bounce.occurredAt.toISOString() },
      {
        provider: 'sg',
        providerEventId: '6g4ZI7SA-xmRDv57GoPIPw==',
        type: 'failed-permanent',
        occurredAt: '2017-12-15T00:59:29.000Z',
        email: 'example@test.com',
        campaignId: 'spring',
        seq: 41,
        reason: '500 unknown recipient; status 5.0.0; type bounce; classification Invalid Address',
      },
    );
    assert.match(events[2].reason, /type blocked/);
    assert.match(events[6].reason, /group 10/);
    assert.deepEqual(parsed.event('sg'), events[0]);
  });

  it('sendgrid: dropped events follow their reason (own lists, bad address, or nothing about the address)', () => {
    const dropped = (reason: string) => JSON.stringify([{ ...documented[6], reason }]);
    const typeOf = (b: string) => parseSendGridWebhookRequest(Buffer.from(b), publicKey, signedHeaders(privateKey, b, ts)).events!('sg')[0]?.type;
    assert.equal(typeOf(dropped('Bounced Address')), 'failed-permanent');
    assert.equal(typeOf(dropped('Invalid')), 'failed-permanent');
    assert.equal(typeOf(dropped('Spam Reporting Address')), 'complained');
    assert.equal(typeOf(dropped('Unsubscribed Address')), 'unsubscribed');
    assert.equal(typeOf(dropped('Invalid SMTPAPI header')), 'failed-temporary');
  });

  it('sendgrid: missing signature headers, a body that is not a JSON array, or an event without an address are body errors naming what is wrong', () => {
    const headers = signedHeaders(privateKey, body, ts);
    assert.throws(
      () => parseSendGridWebhookRequest(Buffer.from(body), publicKey, {}),
      (e: Error) => e instanceof WebhookBodyError && /X-Twilio-Email-Event-Webhook-Signature: missing/.test(e.message),
    );
    assert.throws(
      () => parseSendGridWebhookRequest(Buffer.from(body), publicKey, { [SIGNATURE_HEADER.toLowerCase()]: 'x' }),
      /Timestamp: expected epoch seconds/,
    );
    assert.throws(() => parseSendGridWebhookRequest(Buffer.from('{"event":"bounce"}'), publicKey, headers), /expected a JSON array of events/);
    const noEmail = JSON.stringify([{ event: 'bounce', sg_event_id: 'x' }]);
    const parsed = parseSendGridWebhookRequest(Buffer.from(noEmail), publicKey, signedHeaders(privateKey, noEmail, ts));
    assert.throws(() => parsed.events!('sg'), /\[0\]\.email: expected an address/);
  });

  it('sendgrid: the config check takes a base64 P-256 key and names a bad one', () => {
    const problems: string[] = [];
    sendgridModule.parseConfig({ name: 'sg', kind: 'sendgrid', apiKey: 'SG.x', webhookPublicKey: publicKey, emailActivity: true }, 'providers[0]', problems);
    assert.deepEqual(problems, []);
    sendgridModule.parseConfig(
      { name: 'sg', kind: 'sendgrid', apiKey: 'SG.x', webhookPublicKey: 'not-a-key', emailActivity: 'yes', callSize: 5000 },
      'providers[0]',
      problems,
    );
    assert.deepEqual(problems, [
      'providers[0].callSize: expected a whole number from 1 to 1000, got 5000',
      'providers[0].emailActivity: expected true or false, got "yes"',
      `providers[0].webhookPublicKey: expected the Signed Event Webhook's verification key (base64, from Mail Settings), got "not-a-key"`,
    ]);
  });
});
