/**
 * SES events through SNS, without a network: SNS messages signed here with a key and certificate
 * made for the test (node:crypto), read by the SES module's webhook reader with the certificate
 * fetch and the subscription confirmation injected. Signature versions 1 and 2, forged ones, a
 * certificate or SubscribeURL off the SNS host, another topic, and AWS's documented example
 * notifications (https://docs.aws.amazon.com/ses/latest/dg/notification-examples.html).
 */
import { strict as assert } from 'assert';
import { createSign } from 'crypto';
import { WebhookBodyError } from '../../src/providers/provider-module';
import { selfSignedCertificate } from '../../src/providers/ses/certificate';
import { snsStringToSign, topicRegion, urlOnHosts, type SnsMessage } from '../../src/providers/ses/sns';
import { snsWebhooks } from '../../src/providers/ses/webhooks';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:mailover-ses-events';
const CERT_URL = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem';
const cert = selfSignedCertificate('sns.amazonaws.com');

/** AWS's example "Bounce notification with a DSN" (notification-examples.html), headers left out. */
const AWS_BOUNCE_EXAMPLE = {
  notificationType: 'Bounce',
  bounce: {
    bounceType: 'Permanent',
    reportingMTA: 'dns; email.example.com',
    bouncedRecipients: [{ emailAddress: 'jane@example.com', status: '5.1.1', action: 'failed', diagnosticCode: 'smtp; 550 5.1.1 <jane@example.com>... User' }],
    bounceSubType: 'General',
    timestamp: '2016-01-27T14:59:38.237Z',
    feedbackId: '00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000',
    remoteMtaIp: '127.0.2.0',
  },
  mail: {
    timestamp: '2016-01-27T14:59:38.237Z',
    source: 'john@example.com',
    sourceArn: 'arn:aws:ses:us-east-1:888888888888:identity/example.com',
    sourceIp: '127.0.3.0',
    sendingAccountId: '123456789012',
    callerIdentity: 'IAM_user_or_role_name',
    messageId: '00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000',
    destination: ['jane@example.com', 'mary@example.com', 'richard@example.com'],
  },
};

/** AWS's example "Complaint notification with a feedback report" (notification-examples.html), headers left out. */
const AWS_COMPLAINT_EXAMPLE = {
  notificationType: 'Complaint',
  complaint: {
    userAgent: 'AnyCompany Feedback Loop (V0.01)',
    complainedRecipients: [{ emailAddress: 'richard@example.com' }],
    complaintFeedbackType: 'abuse',
    arrivalDate: '2016-01-27T14:59:38.237Z',
    timestamp: '2016-01-27T14:59:38.237Z',
    feedbackId: '000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000',
  },
  mail: {
    timestamp: '2016-01-27T14:59:38.237Z',
    messageId: '000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000',
    source: 'john@example.com',
    sourceArn: 'arn:aws:ses:us-east-1:888888888888:identity/example.com',
    sourceIp: '127.0.3.0',
    sendingAccountId: '123456789012',
    callerIdentity: 'IAM_user_or_role_name',
    destination: ['jane@example.com', 'mary@example.com', 'richard@example.com'],
  },
};

function sign(fields: Omit<SnsMessage, 'Signature' | 'SigningCertURL' | 'SignatureVersion'>, version: '1' | '2' = '2', certUrl = CERT_URL): SnsMessage {
  const m = { ...fields, SignatureVersion: version, SigningCertURL: certUrl, Signature: '' } as SnsMessage;
  return {
    ...m,
    Signature: createSign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256')
      .update(snsStringToSign(m))
      .sign(cert.privateKey, 'base64'),
  };
}

function notification(message: unknown, over: Partial<SnsMessage> = {}, version: '1' | '2' = '2', certUrl = CERT_URL): SnsMessage {
  return sign(
    {
      Type: 'Notification',
      MessageId: 'b5a3c7a1-0000-4000-8000-000000000001',
      TopicArn: TOPIC,
      Message: JSON.stringify(message),
      Timestamp: new Date().toISOString(),
      ...over,
    },
    version,
    certUrl,
  );
}

function reader() {
  const fetched: string[] = [];
  const confirmed: string[] = [];
  const hooks = snsWebhooks({
    fetchCertificate: async (url) => {
      fetched.push(url);
      if (url !== CERT_URL) throw new Error('404');
      return cert.certificatePem;
    },
    confirmSubscription: async (url) => {
      confirmed.push(url);
    },
  });
  const parse = (m: unknown) => Promise.resolve(hooks.parse(Buffer.from(JSON.stringify(m)), TOPIC, {}));
  return { hooks, parse, fetched, confirmed };
}

describe('ses: SNS notifications (signatures, subscriptions, SES events)', () => {
  it('ses: the string to sign is as AWS documents it (Subject only when present; confirmations with SubscribeURL and Token)', () => {
    const base = {
      MessageId: 'id-1',
      TopicArn: TOPIC,
      Message: 'hello',
      Timestamp: '2026-12-02T01:00:00.000Z',
      SignatureVersion: '2',
      Signature: 'x',
      SigningCertURL: CERT_URL,
    } as const;
    assert.equal(
      snsStringToSign({ ...base, Type: 'Notification' }),
      `Message\nhello\nMessageId\nid-1\nTimestamp\n2026-12-02T01:00:00.000Z\nTopicArn\n${TOPIC}\nType\nNotification\n`,
    );
    assert.equal(
      snsStringToSign({ ...base, Type: 'Notification', Subject: 'Hi' }),
      `Message\nhello\nMessageId\nid-1\nSubject\nHi\nTimestamp\n2026-12-02T01:00:00.000Z\nTopicArn\n${TOPIC}\nType\nNotification\n`,
    );
    assert.equal(
      snsStringToSign({ ...base, Type: 'SubscriptionConfirmation', SubscribeURL: 'https://s/x', Token: 'tok' }),
      `Message\nhello\nMessageId\nid-1\nSubscribeURL\nhttps://s/x\nTimestamp\n2026-12-02T01:00:00.000Z\nToken\ntok\nTopicArn\n${TOPIC}\nType\nSubscriptionConfirmation\n`,
    );
  });

  for (const version of ['1', '2'] as const) {
    it(`ses: SignatureVersion ${version} (${version === '1' ? 'SHA1' : 'SHA256'}withRSA) verifies; the same message altered does not`, async () => {
      const { parse } = reader();
      const m = notification(AWS_BOUNCE_EXAMPLE, {}, version);
      assert.equal((await parse(m)).signatureValid, true);
      const altered = { ...m, Message: m.Message.replace('jane@example.com', 'eve@example.com') };
      assert.equal((await parse(altered)).signatureValid, false);
      assert.equal((await parse({ ...m, Timestamp: new Date(Date.now() + 1000).toISOString() })).signatureValid, false, 'the timestamp is signed');
      assert.equal((await parse({ ...m, SignatureVersion: version === '1' ? '2' : '1' })).signatureValid, false, 'the version decides the hash');
    });
  }

  it('ses: a forger signing with its own key is refused; so is its certificate on any host but the topic region’s SNS host (never fetched)', async () => {
    const { parse, fetched } = reader();
    const forger = selfSignedCertificate('sns.amazonaws.com');
    const m = notification(AWS_BOUNCE_EXAMPLE);
    const forged = { ...m, Signature: createSign('RSA-SHA256').update(snsStringToSign(m)).sign(forger.privateKey, 'base64') };
    assert.equal((await parse(forged)).signatureValid, false);
    for (const url of [
      'https://evil.example/SimpleNotificationService-1.pem',
      'http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem',
      'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem',
      'https://sns.eu-west-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem',
      'https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-1.pem',
      'https://sns.eu-west-1.amazonaws.com/not-a-certificate',
    ]) {
      const before = fetched.length;
      assert.equal((await parse(notification(AWS_BOUNCE_EXAMPLE, {}, '2', url))).signatureValid, false, url);
      assert.equal(fetched.length, before, `${url} was not fetched`);
    }
  });

  it('ses: a message of another topic is refused, however well signed', async () => {
    const { parse } = reader();
    assert.equal((await parse(notification(AWS_BOUNCE_EXAMPLE, { TopicArn: 'arn:aws:sns:eu-west-1:999999999999:other' }))).signatureValid, false);
  });

  it('ses: the certificate is fetched once per URL', async () => {
    const { parse, fetched } = reader();
    for (let i = 0; i < 3; i++) await parse(notification(AWS_BOUNCE_EXAMPLE, { MessageId: `m-${i}` }));
    assert.deepEqual(fetched, [CERT_URL]);
  });

  it('ses: token and signing time are the SNS MessageId and Timestamp (the server refuses replays and stale ones by them)', async () => {
    const { parse } = reader();
    const at = new Date(Date.now() - 3_600_000);
    const p = await parse(notification(AWS_BOUNCE_EXAMPLE, { MessageId: 'sns-msg-42', Timestamp: at.toISOString() }));
    assert.equal(p.token, 'sns-msg-42');
    assert.equal(p.signedAtSeconds, at.getTime() / 1000);
  });

  it("ses: AWS's example bounce notification is a permanent failure of jane@example.com", async () => {
    const { parse } = reader();
    const p = await parse(notification(AWS_BOUNCE_EXAMPLE));
    assert.equal(p.eventName, 'Bounce');
    const e = p.event('ses')!;
    assert.equal(e.type, 'failed-permanent');
    assert.equal(e.email, 'jane@example.com');
    assert.equal(e.occurredAt.toISOString(), '2016-01-27T14:59:38.237Z');
    assert.match(e.reason, /^Permanent\/General; 5\.1\.1; smtp; 550 5\.1\.1/);
    assert.equal(e.campaignId, undefined, 'identity notifications carry no tags');
  });

  it("ses: AWS's example complaint notification is a complaint of richard@example.com; a transient bounce is a temporary failure", async () => {
    const { parse } = reader();
    const c = (await parse(notification(AWS_COMPLAINT_EXAMPLE))).event('ses')!;
    assert.deepEqual([c.type, c.email, c.reason], ['complained', 'richard@example.com', 'complaint (abuse)']);
    const transient = { ...AWS_BOUNCE_EXAMPLE, bounce: { ...AWS_BOUNCE_EXAMPLE.bounce, bounceType: 'Transient', bounceSubType: 'MailboxFull' } };
    assert.equal((await parse(notification(transient))).event('ses')!.type, 'failed-temporary');
  });

  it('ses: event publishing (eventType) carries the campaign and seq in mail.tags; a Send event is not tracked', async () => {
    const { parse } = reader();
    const published = {
      ...AWS_BOUNCE_EXAMPLE,
      notificationType: undefined,
      eventType: 'Bounce',
      mail: { ...AWS_BOUNCE_EXAMPLE.mail, tags: { 'mailover-campaign': ['spring-sale'], 'mailover-seq': ['41'] } },
    };
    const e = (await parse(notification(published))).event('ses')!;
    assert.deepEqual([e.campaignId, e.seq, e.type], ['spring-sale', 41, 'failed-permanent']);
    const send = await parse(notification({ eventType: 'Send', mail: AWS_BOUNCE_EXAMPLE.mail, send: {} }));
    assert.equal(send.event('ses'), null);
    assert.equal(send.eventName, 'Send');
  });

  it('ses: a SubscriptionConfirmation is confirmed through its SubscribeURL on the SNS host only once its signature checks out', async () => {
    const { parse, confirmed } = reader();
    const url = `https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(TOPIC)}&Token=abc`;
    const confirmation = (over: Partial<SnsMessage> = {}) =>
      sign({
        Type: 'SubscriptionConfirmation',
        MessageId: 'c-1',
        TopicArn: TOPIC,
        Message: 'You have chosen to subscribe',
        SubscribeURL: url,
        Token: 'abc',
        Timestamp: new Date().toISOString(),
        ...over,
      });
    const p = await parse(confirmation());
    assert.equal(p.signatureValid, true);
    assert.equal(p.event('ses'), null);
    assert.deepEqual(confirmed, [url]);
    const forged = { ...confirmation(), SubscribeURL: 'https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=other' };
    assert.equal((await parse(forged)).signatureValid, false);
    assert.deepEqual(confirmed, [url], 'a forged confirmation is not followed');
    await assert.rejects(
      parse(confirmation({ SubscribeURL: 'https://evil.example/?Action=ConfirmSubscription' })),
      (err: Error) => err instanceof WebhookBodyError && /SubscribeURL/.test(err.message),
    );
    assert.deepEqual(confirmed, [url]);
  });

  it('ses: a body that is not an SNS message is refused naming the field', async () => {
    const { parse } = reader();
    await assert.rejects(parse({ hello: 1 }), /Type: expected a string/);
    await assert.rejects(parse({ ...notification(AWS_BOUNCE_EXAMPLE), SignatureVersion: '3' }), /SignatureVersion: expected "1" or "2", got "3"/);
    await assert.rejects(parse({ ...notification(AWS_BOUNCE_EXAMPLE), Message: 'not json' }), /Message: expected the JSON/);
  });

  it('ses: topic regions and SNS hosts', () => {
    assert.equal(topicRegion(TOPIC), 'eu-west-1');
    assert.equal(topicRegion('arn:aws-cn:sns:cn-north-1:123456789012:t'), 'cn-north-1');
    assert.equal(topicRegion('arn:aws:sqs:eu-west-1:123456789012:t'), undefined);
    assert.equal(urlOnHosts('https://sns.eu-west-1.amazonaws.com/x.pem', ['sns.eu-west-1.amazonaws.com'], true), true);
    assert.equal(urlOnHosts('https://user@sns.eu-west-1.amazonaws.com/x.pem', ['sns.eu-west-1.amazonaws.com'], true), false);
  });

  it('ses: a loopback host:port (a local emulator, sns.certificateHosts) takes http on exactly that port; the AWS hosts never do', () => {
    const local = ['127.0.0.1:4566'];
    assert.equal(urlOnHosts('http://127.0.0.1:4566/SimpleNotificationService-1.pem', local, true), true);
    assert.equal(urlOnHosts('http://127.0.0.1:4567/SimpleNotificationService-1.pem', local, true), false);
    assert.equal(urlOnHosts('http://localhost:4566/SimpleNotificationService-1.pem', local, true), false);
    assert.equal(urlOnHosts('https://sns.eu-west-1.amazonaws.com/x.pem', local, true), false, 'the AWS host is not trusted besides a local one');
    assert.equal(urlOnHosts('http://127.0.0.1:4566/SimpleNotificationService-1.pem', ['sns.eu-west-1.amazonaws.com'], true), false);
    assert.equal(
      urlOnHosts('http://sns.eu-west-1.amazonaws.com:4566/x.pem', ['sns.eu-west-1.amazonaws.com:4566'], true),
      false,
      'only loopback entries take a port',
    );
  });
});
