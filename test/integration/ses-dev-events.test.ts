/**
 * SES events in `mailover dev`: the SES emulator's definition as the dev stack builds it (asked
 * for webhooks) trusts the emulator's own loopback address for SNS signing certificates, and that
 * definition goes through the provider file checker as `mailover webhooks` reads it. A message
 * the emulator bounces (bounceRecipients) is posted as a signed SNS Bounce and suppresses the
 * address. Without `sns.certificateHosts` (production) a certificate URL off the AWS SNS host is
 * refused without being fetched, and certificateHosts takes loopback addresses only.
 * Real HTTP on loopback, real SQLite; no Temporal.
 */
import { strict as assert } from 'assert';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { ConfigError, parseConfig } from '../../src/config';
import { startComplianceServices, type ComplianceServices } from '../../src/compliance/services';
import { providerModule, withSecretsAsEnvReferences } from '../../src/providers/modules';
import type { OutgoingMessage } from '../../src/providers/provider';
import type { SesServer } from '../../src/providers/ses/emulator';
import type { SesProviderDefinition } from '../../src/providers/ses';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/types';
import { waitUntil } from '../support/wait';

const TMP_PREFIX = join(tmpdir(), 'mailover-ses-dev-');

const message = (to: string, seq: number): OutgoingMessage => ({
  campaignId: 'ses-dev',
  seq,
  to,
  from: 'News <news@mailover.test>',
  subject: 'Hello',
  text: 'Hi',
  messageId: `<ses-dev.${seq}@mailover.test>`,
});

describe('ses events in the dev stack (SES emulator, compliance server on loopback)', function () {
  this.timeout(30_000);
  let dir: string;
  let store: Store;
  let ses: SesServer;
  let services: ComplianceServices | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(TMP_PREFIX);
    store = await openStore({ databaseUrl: '', sqlitePath: join(dir, 'mailover.db') });
    ses = (await providerModule('ses').emulator!.start({ name: 'ses' })) as SesServer;
  });
  afterEach(async () => {
    await services?.stop();
    services = undefined;
    await ses.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The dev stack's wiring: the emulator's definition with webhooks, through the file checker, and the compliance services on it. */
  const wire = async (tweak: (d: SesProviderDefinition) => SesProviderDefinition = (d) => d) => {
    const support = providerModule('ses').emulator!;
    const def = tweak(support.config(ses, { webhookSigningKey: 'dev-webhook-signing-key-ses' }) as SesProviderDefinition);
    const file = withSecretsAsEnvReferences([def], (_d, f) => `MAILOVER_DEV_SES_${f.envSuffix}`);
    const config = parseConfig({ providers: file.defs }, file.env, 'mailover.dev.yaml');
    services = await startComplianceServices({ providers: config.providers, compliance: config.compliance }, store, { http: 0 });
    const key = providerModule('ses').webhooks!.signingKey(config.providers[0]);
    assert.ok(key, 'the dev definition has webhooks (an SNS topic)');
    ses.setWebhook(`${services.http.url}/webhooks/ses`, key);
    return { def: config.providers[0] as unknown as SesProviderDefinition };
  };

  it('ses: a bounce the emulator posts through the dev-stack wiring (its certificate on its own loopback address) suppresses the address', async () => {
    const { def } = await wire();
    assert.deepEqual(def.sns?.certificateHosts, [`127.0.0.1:${ses.port}`], 'the dev definition trusts the emulator’s address only');
    assert.equal(new URL(ses.signingCertUrl).host, `127.0.0.1:${ses.port}`);

    ses.bounceRecipients(['gone@example.org']);
    const provider = providerModule('ses').create(def as never);
    const results: string[] = [];
    try {
      await provider.sendBatch([message('gone@example.org', 1), message('here@example.org', 2)], async (m, r) => void results.push(`${m.to}:${r.status}`));
    } finally {
      await provider.close();
    }
    assert.deepEqual(results.sort(), ['gone@example.org:accepted', 'here@example.org:accepted']);
    await waitUntil(() => store.isSuppressed('gone@example.org'), 'the bounced address to be suppressed', 10_000);
    assert.equal(await store.isSuppressed('here@example.org'), false);
    assert.equal(ses.certificateRequests, 1, 'the certificate was read from the emulator itself');
    const events = await store.listEvents({ email: 'gone@example.org' });
    assert.deepEqual(
      events.map((e) => [e.provider, e.type]),
      [['ses', 'failed-permanent']],
    );
  });

  it('ses: without sns.certificateHosts (production) a certificate URL off the AWS SNS host is refused unfetched; certificateHosts takes loopback addresses only', async () => {
    await wire((d) => ({ ...d, sns: { topicArn: d.sns!.topicArn } }));
    await acceptOne(ses);
    const bounce = await ses.notify('gone@example.org', 'Bounce');
    assert.deepEqual([bounce.status, bounce.body], [401, 'signature does not match']);
    assert.equal(ses.certificateRequests, 0, 'refused by its URL alone: the certificate was never fetched');
    assert.equal(await store.isSuppressed('gone@example.org'), false, 'nothing refused was recorded');

    const refused = (hosts: unknown, expected: RegExp) =>
      assert.throws(
        () =>
          parseConfig(
            {
              providers: [
                { kind: 'ses', name: 'ses', region: 'us-east-1', sns: { topicArn: 'arn:aws:sns:us-east-1:123456789012:t', certificateHosts: hosts } },
              ],
            },
            {},
            'mailover.yaml',
          ),
        (err: Error) => err instanceof ConfigError && expected.test(err.message),
        `expected ${expected}`,
      );
    refused(['evil.example:443'], /providers\[0\]\.sns\.certificateHosts\[0\]: expected a loopback address of a local SES emulator .* got "evil\.example:443"/);
    refused(['sns.us-east-1.amazonaws.com'], /sns\.certificateHosts\[0\]: expected a loopback address/);
    refused(['127.0.0.1'], /sns\.certificateHosts\[0\]: expected a loopback address/);
    refused('127.0.0.1:4566', /sns\.certificateHosts: expected a list of loopback host:port addresses/);
  });
});

/** One accepted message to gone@example.org, so the emulator has something to report about. */
async function acceptOne(ses: SesServer): Promise<void> {
  const def = providerModule('ses').emulator!.config(ses);
  const p = providerModule('ses').create(def);
  try {
    await p.sendBatch([message('gone@example.org', 1)], async () => undefined);
  } finally {
    await p.close();
  }
}
