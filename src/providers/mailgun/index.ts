/**
 * The Mailgun module, through mailgun.js (Mailgun's own client): batch sending with look-ups of
 * messages left in flight (./provider.ts), signed event webhooks (./webhooks.ts), its
 * bounces / unsubscribes / complaints lists synced with mailover's (./suppressions.ts), and a
 * Mailgun-compatible API on loopback as its emulator (./emulator.ts).
 */
import type { RateLimit } from '../../config';
import type { ProviderModule } from '../provider-module';
import type { MailgunServer } from './emulator';
import { MAILGUN_MAX_RECIPIENTS_PER_CALL, MAILGUN_REGIONS, MailgunProvider, type MailgunProviderConfig } from './provider';
import { pullMailgunSuppressions, pushMailgunSuppressions } from './suppressions';
import { parseMailgunWebhookRequest } from './webhooks';
import { quote } from '../../quote-value';

export interface MailgunProviderDefinition extends MailgunProviderConfig {
  kind: 'mailgun';
  rateLimit?: RateLimit;
}

/** The sending domain an emulator's provider definition uses unless told otherwise. */
export const EMULATOR_DOMAIN = 'mg.mailover.test';
/** The emulator's API key unless told otherwise (a fake). */
const EMULATOR_API_KEY = 'key-emulator-0123456789abcdef';

export const mailgunModule: ProviderModule<MailgunProviderDefinition, MailgunServer> = {
  kind: 'mailgun',
  title: 'Mailgun',

  parseConfig(raw, path, problems) {
    if (typeof raw.domain !== 'string' || !/^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/.test(raw.domain))
      problems.push(`${path}.domain: expected the sending domain (e.g. mg.example.org), got ${quote(raw.domain)}`);
    if (typeof raw.apiKey !== 'string' || raw.apiKey === '')
      problems.push(`${path}.apiKey: expected the API key, as a reference to an environment variable: apiKey: "\${MAILGUN_API_KEY}"`);
    if (raw.region !== undefined && !(typeof raw.region === 'string' && raw.region in MAILGUN_REGIONS))
      problems.push(`${path}.region: expected us or eu, got ${quote(raw.region)}`);
    if (raw.url !== undefined && (typeof raw.url !== 'string' || !/^https?:\/\//.test(raw.url)))
      problems.push(`${path}.url: expected an http(s) URL, got ${quote(raw.url)}`);
    const intField = (key: string, min: number, max: number) => {
      if (raw[key] === undefined) return;
      const v = raw[key];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        problems.push(`${path}.${key}: expected a whole number from ${min} to ${max}, got ${quote(v)}`);
    };
    intField('callSize', 1, MAILGUN_MAX_RECIPIENTS_PER_CALL);
    intField('concurrency', 1, 32);
    intField('timeoutMs', 100, 600_000);
    intField('lookupSettleMs', 0, 3_600_000);
    if (raw.webhookSigningKey !== undefined && (typeof raw.webhookSigningKey !== 'string' || raw.webhookSigningKey.length < 8)) {
      problems.push(
        `${path}.webhookSigningKey: expected Mailgun's HTTP webhook signing key, as an environment reference: webhookSigningKey: "\${MAILGUN_WEBHOOK_SIGNING_KEY}"`,
      );
    }
    return raw as unknown as MailgunProviderDefinition;
  },

  secrets: [
    { path: 'apiKey', envSuffix: 'API_KEY' },
    { path: 'webhookSigningKey', envSuffix: 'WEBHOOK_SIGNING_KEY' },
  ],

  create: (config) => new MailgunProvider(config),

  webhooks: {
    signingKey: (config) => config.webhookSigningKey || undefined,
    parse: parseMailgunWebhookRequest,
  },

  suppressions: {
    lists: 'bounces, unsubscribes, complaints',
    async pull(store, config) {
      const report = await pullMailgunSuppressions(store, config);
      return {
        ...report,
        summary:
          `read ${report.read.bounces} bounces, ${report.read.unsubscribes} unsubscribes, ${report.read.complaints} complaints from ${config.name} (${report.pages} pages); ${report.added} addresses newly suppressed` +
          (report.addedToLists ? `, ${report.addedToLists} for one list only (tag-scoped unsubscribes)` : ''),
      };
    },
    async push(store, config) {
      const report = await pushMailgunSuppressions(store, config);
      const forLists = report.pushedForLists ? `, ${report.pushedForLists} unsubscribes for their lists' tags only` : '';
      return {
        ...report,
        summary: `pushed ${report.pushed.bounces} bounces, ${report.pushed.unsubscribes} unsubscribes, ${report.pushed.complaints} complaints${forLists} to ${config.name} (${report.calls} calls)`,
      };
    },
  },

  emulator: {
    description: 'a Mailgun-compatible API',
    // Loaded only when started: a worker or the CLI never loads the emulator.
    start: async (opts) =>
      (await import('./emulator')).MailgunServer.start({ name: opts.name, port: opts.port, apiKey: opts.credentials?.pass ?? EMULATOR_API_KEY }),
    config: (server, opts = {}) => ({
      kind: 'mailgun',
      name: server.name,
      domain: EMULATOR_DOMAIN,
      apiKey: server.apiKey,
      url: server.url,
      // Its event log (Logs API) has every accepted message at once.
      lookupSettleMs: 0,
      ...(opts.webhookSigningKey ? { webhookSigningKey: opts.webhookSigningKey } : {}),
    }),
  },
};
