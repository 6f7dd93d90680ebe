/**
 * The Amazon SES module, through AWS's SES v2 client: one SendEmail per recipient paced by the
 * account's send rate (./provider.ts, errors by ./errors.ts), its events through SNS with their
 * signatures checked (./webhooks.ts, ./sns.ts), its account-level suppression list synced with
 * mailover's (./suppressions.ts), and an SES v2 API on loopback as its emulator (./emulator.ts).
 * SES cannot be asked whether it took a message: no look-up; the `inFlight` policy applies.
 */
import type { RateLimit } from '../../config';
import type { ProviderModule } from '../provider-module';
import type { SesServer } from './emulator';
import { SesProvider, type SesProviderConfig } from './provider';
import { isLoopbackHost, topicRegion } from './sns';
import { pullSesSuppressions, pushSesSuppressions } from './suppressions';
import { snsWebhooks } from './webhooks';

export interface SesProviderDefinition extends SesProviderConfig {
  kind: 'ses';
  rateLimit?: RateLimit;
}

const REGION = /^[a-z]{2}(?:-gov)?-[a-z]+-\d$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const shown = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 80);

export const sesModule: ProviderModule<SesProviderDefinition, SesServer> = {
  kind: 'ses',
  title: 'Amazon SES',

  parseConfig(raw, path, problems) {
    if (typeof raw.region !== 'string' || !REGION.test(raw.region))
      problems.push(`${path}.region: expected an AWS region (e.g. eu-west-1), got ${shown(raw.region)}`);
    if (raw.endpoint !== undefined && (typeof raw.endpoint !== 'string' || !/^https?:\/\/[^\s/]+/.test(raw.endpoint)))
      problems.push(`${path}.endpoint: expected an http(s) URL, got ${shown(raw.endpoint)}`);
    const hasId = raw.accessKeyId !== undefined;
    const hasSecret = raw.secretAccessKey !== undefined;
    if (hasId !== hasSecret)
      problems.push(
        `${path}.${hasId ? 'secretAccessKey' : 'accessKeyId'}: expected with ${hasId ? 'accessKeyId' : 'secretAccessKey'} (both, or neither to use the AWS default credential chain)`,
      );
    for (const key of ['accessKeyId', 'secretAccessKey', 'sessionToken']) {
      if (raw[key] !== undefined && (typeof raw[key] !== 'string' || raw[key] === ''))
        problems.push(
          `${path}.${key}: expected a non-empty string from an environment reference, e.g. "\${SES_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}}"`,
        );
    }
    if (raw.configurationSet !== undefined && (typeof raw.configurationSet !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(raw.configurationSet))) {
      problems.push(`${path}.configurationSet: expected a configuration set name (letters, digits, '_', '-', up to 64), got ${shown(raw.configurationSet)}`);
    }
    const intField = (key: string, min: number, max: number) => {
      const v = raw[key];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max))
        problems.push(`${path}.${key}: expected a whole number from ${min} to ${max}, got ${shown(v)}`);
    };
    intField('concurrency', 1, 64);
    intField('timeoutMs', 100, 600_000);
    if (raw.sns !== undefined) {
      if (!isObject(raw.sns) || typeof raw.sns.topicArn !== 'string' || !topicRegion(raw.sns.topicArn)) {
        problems.push(
          `${path}.sns.topicArn: expected the ARN of the SNS topic SES publishes events to (arn:aws:sns:<region>:<account>:<name>), got ${shown(isObject(raw.sns) ? raw.sns.topicArn : raw.sns)}`,
        );
      }
      const hosts = isObject(raw.sns) ? raw.sns.certificateHosts : undefined;
      if (hosts !== undefined) {
        // Only a local emulator's address: in production SNS certificates come from the AWS host of the topic's region.
        if (!Array.isArray(hosts) || hosts.length === 0)
          problems.push(`${path}.sns.certificateHosts: expected a list of loopback host:port addresses of a local SES emulator, got ${shown(hosts)}`);
        else
          hosts.forEach((h, i) => {
            if (typeof h !== 'string' || !isLoopbackHost(h))
              problems.push(
                `${path}.sns.certificateHosts[${i}]: expected a loopback address of a local SES emulator (127.0.0.1:<port>, localhost:<port> or [::1]:<port>; in production leave certificateHosts out), got ${shown(h)}`,
              );
          });
      }
    }
    return raw as unknown as SesProviderDefinition;
  },

  secrets: [
    { path: 'accessKeyId', envSuffix: 'ACCESS_KEY_ID' },
    { path: 'secretAccessKey', envSuffix: 'SECRET_ACCESS_KEY' },
    { path: 'sessionToken', envSuffix: 'SESSION_TOKEN' },
  ],

  create: (config) => new SesProvider(config),

  webhooks: snsWebhooks<SesProviderDefinition>(),

  suppressions: {
    lists: 'the account-level suppression list (BOUNCE, COMPLAINT)',
    async pull(store, config) {
      const r = await pullSesSuppressions(store, config);
      return {
        ...r,
        summary: `read ${r.read.bounces} bounces, ${r.read.complaints} complaints from ${config.name} (${r.pages} pages); ${r.added} addresses newly suppressed`,
      };
    },
    async push(store, config) {
      const r = await pushSesSuppressions(store, config);
      return { ...r, summary: `pushed ${r.pushed.bounces} bounces, ${r.pushed.complaints} complaints to ${config.name} (${r.calls} calls)` };
    },
  },

  emulator: {
    description: 'an Amazon SES v2 API',
    // Loaded only when started: a worker or the CLI never loads the emulator.
    start: async (opts) =>
      (await import('./emulator')).SesServer.start({ name: opts.name, port: opts.port, ...(opts.credentials ? { accessKeyId: opts.credentials.user } : {}) }),
    // The emulator signs its notifications with a certificate of its own. Asked for webhooks (the dev
    // stack), it serves that certificate on its own address and the definition trusts that address
    // only (`sns.certificateHosts`); otherwise no `sns` (tests give the reader the emulator's fetcher).
    config: (server, opts) => {
      const def: SesProviderDefinition = {
        kind: 'ses',
        name: server.name,
        region: server.region,
        endpoint: server.url,
        accessKeyId: server.accessKeyId,
        secretAccessKey: server.secretAccessKey,
        timeoutMs: 2_000,
      };
      if (opts?.webhookSigningKey === undefined) return def;
      server.serveCertificateLocally();
      return { ...def, sns: { topicArn: server.topicArn, certificateHosts: [server.certificateHost] } };
    },
  },
};
