/**
 * A batch sent as several ESP calls in parallel, two of which the ESP took but answered with an
 * error: every recipient of both calls must be reported in doubt (looked up, never released to be
 * sent again). Against the Mailgun- and Postmark-compatible APIs over HTTP, without Temporal.
 */
import { strict as assert } from 'assert';
import { TransientProviderError } from '../../src/errors';
import { mailgunModule } from '../../src/providers/mailgun';
import { MailgunServer } from '../../src/providers/mailgun/emulator';
import { MailgunProvider } from '../../src/providers/mailgun/provider';
import { postmarkModule } from '../../src/providers/postmark';
import { PostmarkServer } from '../../src/providers/postmark/emulator';
import { PostmarkProvider } from '../../src/providers/postmark/provider';
import type { OutgoingMessage, Provider } from '../../src/providers/provider';

const message = (seq: number): OutgoingMessage => ({
  campaignId: 'c-parallel',
  seq,
  to: `u${seq}@example.com`,
  from: 'news@mailover.test',
  subject: 's',
  text: 't',
  messageId: `<c-parallel.${seq}@mailover>`,
});

async function batchError(p: Provider): Promise<unknown> {
  return p
    .sendBatch([1, 2, 3, 4].map(message), async () => undefined)
    .then(
      () => assert.fail('expected the batch to fail'),
      (e: unknown) => e,
    );
}

describe('parallel calls in doubt', function () {
  this.timeout(60_000);
  let mailgun: MailgunServer;
  let postmark: PostmarkServer;

  before(async () => {
    mailgun = await MailgunServer.start({ name: 'mailgun', apiKey: 'key-parallel' });
    postmark = await PostmarkServer.start({ name: 'postmark', serverToken: 'token-parallel' });
  });
  after(async () => {
    await mailgun?.stop();
    await postmark?.stop();
  });

  it('mailgun: two calls in parallel both answered 502 after Mailgun took them: the batch error names every recipient of both in doubt', async () => {
    const p = new MailgunProvider({ ...mailgunModule.emulator!.config(mailgun), callSize: 2, concurrency: 2 });
    mailgun.acceptThenFailNext(2, 502);
    const err = await batchError(p);
    assert.ok(err instanceof TransientProviderError, String(err));
    assert.deepEqual([...err.inDoubt].sort(), [1, 2, 3, 4]);
  });

  it('postmark: two calls in parallel both dropped after Postmark took them: the batch error names every recipient of both in doubt', async () => {
    const p = new PostmarkProvider({ ...postmarkModule.emulator!.config(postmark), callSize: 2, concurrency: 2 });
    postmark.acceptThenDropNext(2);
    const err = await batchError(p);
    assert.ok(err instanceof TransientProviderError, String(err));
    assert.deepEqual([...err.inDoubt].sort(), [1, 2, 3, 4]);
  });
});
