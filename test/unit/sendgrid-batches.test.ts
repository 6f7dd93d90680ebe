/**
 * How the SendGrid provider lays a batch out in Mail Send calls: 1,000 personalizations a call
 * with per-recipient substitutions, a recipient over SendGrid's 10,000-byte substitution limit in
 * a call of its own with its content inline, and the request body's shape.
 */
import { strict as assert } from 'assert';
import type { OutgoingMessage } from '../../src/providers/provider';
import { activityQuery, HTML_TAG, mailSendBody, planCalls, sendGridAddress, TEXT_TAG } from '../../src/providers/sendgrid/provider';

const msg = (seq: number, over: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
  campaignId: 'spring',
  seq,
  to: `user${seq}@example.com`,
  from: 'News <news@shop.example>',
  subject: `Hello ${seq}`,
  text: `Hi ${seq}`,
  html: `<p>Hi ${seq}</p>`,
  messageId: `<spring.${seq}@mailover>`,
  headers: { 'X-Mailover-Campaign': 'spring', 'X-Mailover-Recipient': String(seq), 'List-Unsubscribe': `<https://u.example/${seq}>` },
  ...over,
});

describe('sendgrid batches (unit)', () => {
  it('sendgrid: 2,500 recipients go in calls of 1,000, 1,000 and 500 personalizations', () => {
    const calls = planCalls(
      Array.from({ length: 2500 }, (_, i) => msg(i + 1)),
      1000,
    );
    assert.deepEqual(
      calls.map((c) => c.length),
      [1000, 1000, 500],
    );
    assert.deepEqual(
      calls.flat().map((m) => m.seq),
      Array.from({ length: 2500 }, (_, i) => i + 1),
    );
  });

  it('sendgrid: a recipient whose text and HTML exceed 10,000 bytes of substitutions goes alone with its content inline', () => {
    const big = msg(2, { html: `<p>${'x'.repeat(10_000)}</p>` });
    const calls = planCalls([msg(1), big, msg(3)], 1000);
    assert.deepEqual(
      calls.map((c) => c.map((m) => m.seq)),
      [[1, 3], [2]],
    );
    const inline = mailSendBody([big]);
    const p = (inline.personalizations as Array<Record<string, unknown>>)[0];
    assert.equal(p.substitutions, undefined);
    assert.deepEqual(inline.content, [
      { type: 'text/plain', value: 'Hi 2' },
      { type: 'text/html', value: big.html },
    ]);
  });

  it('sendgrid: a call has one content with substitution tags; each personalization its subject, headers, custom args and substitutions', () => {
    const body = mailSendBody([msg(1), msg(2, { text: 'Ann & <Bob>' })]);
    assert.deepEqual(body.from, { email: 'news@shop.example', name: 'News' });
    assert.deepEqual(body.content, [
      { type: 'text/plain', value: TEXT_TAG },
      { type: 'text/html', value: HTML_TAG },
    ]);
    assert.deepEqual(body.custom_args, { mailover_campaign: 'spring' });
    const ps = body.personalizations as Array<Record<string, unknown>>;
    assert.deepEqual(ps[1], {
      to: [{ email: 'user2@example.com' }],
      subject: 'Hello 2',
      headers: {
        'List-Unsubscribe': '<https://u.example/2>',
        'X-Mailover-Campaign': 'spring',
        'X-Mailover-Recipient': '2',
        'X-Mailover-Message-Id': '<spring.2@mailover>',
      },
      custom_args: { mailover_seq: '2' },
      substitutions: { [TEXT_TAG]: 'Ann & <Bob>', [HTML_TAG]: '<p>Hi 2</p>' },
    });
    assert.deepEqual(mailSendBody([msg(1, { html: undefined })]).content, [{ type: 'text/plain', value: TEXT_TAG }]);
  });

  it('sendgrid: senders become SendGrid email objects (quoted names unquoted)', () => {
    assert.deepEqual(sendGridAddress('news@shop.example'), { email: 'news@shop.example' });
    assert.deepEqual(sendGridAddress('"Acme, Inc." <news@acme.example>'), { email: 'news@acme.example', name: 'Acme, Inc.' });
  });

  it('sendgrid: the Email Activity query names the campaign, the window and optionally the recipient', () => {
    const q = activityQuery('spring', new Date('2026-12-02T01:00:00.123Z'), new Date('2026-12-02T02:00:00Z'), 'a@b.example');
    assert.equal(
      q,
      `unique_args['mailover_campaign']="spring" AND to_email="a@b.example" AND last_event_time BETWEEN TIMESTAMP "2026-12-02T01:00:00Z" AND TIMESTAMP "2026-12-02T02:00:00Z"`,
    );
  });
});
