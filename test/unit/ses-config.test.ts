/**
 * An Amazon SES definition in the config file: what is taken, and each mistake named by its
 * field path and value (credentials only as environment references).
 */
import { strict as assert } from 'assert';
import { ConfigError, parseConfig } from '../../src/config';

function problemsOf(raw: Record<string, unknown>, env: Record<string, string> = {}): string {
  try {
    parseConfig({ providers: [{ name: 'ses-eu', kind: 'ses', ...raw }] }, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return '';
}

describe('ses: provider definitions', () => {
  it('ses: a definition with region, endpoint, credentials from the environment, configuration set and SNS topic is taken', () => {
    const config = parseConfig(
      {
        providers: [
          {
            name: 'ses-eu',
            kind: 'ses',
            region: 'eu-west-1',
            endpoint: 'http://127.0.0.1:4566',
            accessKeyId: '${SES_ACCESS_KEY_ID}',
            secretAccessKey: '${SES_SECRET_ACCESS_KEY}',
            configurationSet: 'mailover-news',
            concurrency: 20,
            sns: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:ses-events' },
          },
        ],
      },
      { SES_ACCESS_KEY_ID: 'AKIAEXAMPLE', SES_SECRET_ACCESS_KEY: 'secret' },
    );
    assert.deepEqual(config.providers[0], {
      name: 'ses-eu',
      kind: 'ses',
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:4566',
      accessKeyId: 'AKIAEXAMPLE',
      secretAccessKey: 'secret',
      configurationSet: 'mailover-news',
      concurrency: 20,
      sns: { topicArn: 'arn:aws:sns:eu-west-1:123456789012:ses-events' },
    });
    assert.equal(problemsOf({ region: 'us-east-1' }), '', 'no credentials: the AWS default chain');
  });

  const CASES: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a region that is not one', { region: 'Mars' }, /providers\[0\]\.region: expected an AWS region \(e\.g\. eu-west-1\), got "Mars"/],
    ['no region', {}, /providers\[0\]\.region: expected an AWS region \(e\.g\. eu-west-1\), got undefined/],
    [
      'a key id written in the file',
      { region: 'eu-west-1', accessKeyId: 'AKIAREALKEY', secretAccessKey: '${S}' },
      /providers\[0\]\.accessKeyId: write secrets as environment references/,
    ],
    ['a key id without its secret', { region: 'eu-west-1', accessKeyId: '${A}' }, /providers\[0\]\.secretAccessKey: expected with accessKeyId/],
    [
      'an endpoint that is not a URL',
      { region: 'eu-west-1', endpoint: 'localhost:4566' },
      /providers\[0\]\.endpoint: expected an http\(s\) URL, got "localhost:4566"/,
    ],
    [
      'a bad configuration set',
      { region: 'eu-west-1', configurationSet: 'news letters' },
      /providers\[0\]\.configurationSet: expected a configuration set name .*, got "news letters"/,
    ],
    ['concurrency 0', { region: 'eu-west-1', concurrency: 0 }, /providers\[0\]\.concurrency: expected a whole number from 1 to 64, got 0/],
    [
      'a topic ARN that is not one',
      { region: 'eu-west-1', sns: { topicArn: 'arn:aws:sqs:eu-west-1:123456789012:q' } },
      /providers\[0\]\.sns\.topicArn: expected the ARN of the SNS topic .*, got "arn:aws:sqs:/,
    ],
  ];
  for (const [what, raw, expected] of CASES) {
    it(`ses: ${what} is named by its field path`, () => {
      assert.match(problemsOf(raw, { A: 'a', S: 's' }), expected);
    });
  }
});
