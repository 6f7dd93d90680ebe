/**
 * The SendGrid module, through SendGrid's own clients: v3 Mail Send with up to 1,000
 * personalizations a call and Email Activity look-ups of calls left in doubt (./provider.ts, its
 * answers classified by ./errors.ts), the Signed Event Webhook checked with
 * @sendgrid/eventwebhook (./webhooks.ts), its bounces / spam reports / global unsubscribes synced
 * with mailover's list (./suppressions.ts), and a SendGrid-compatible API on loopback as its
 * emulator (./emulator.ts).
 */
import type { RateLimit } from '../../config';
import type { ProviderModule } from '../provider-module';
import { SENDGRID_REGIONS } from './api';
import type { SendGridServer } from './emulator';
import { SENDGRID_MAX_PERSONALIZATIONS, SendGridProvider, type SendGridProviderConfig } from './provider';
import { pullSendGridSuppressions, pushSendGridSuppressions } from './suppressions';
import { isSendGridPublicKey, parseSendGridWebhookRequest } from './webhooks';

export interface SendGridProviderDefinition extends SendGridProviderConfig {
  kind: 'sendgrid';
  rateLimit?: RateLimit;
}

/** The emulator's API key unless told otherwise (a fake, shaped like SendGrid's). */
const EMULATOR_API_KEY = 'SG.emulator.0123456789abcdef';

const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

export const sendgridModule: ProviderModule<SendGridProviderDefinition, SendGridServer> = {
  kind: 'sendgrid',
  title: 'SendGrid',

  parseConfig(raw, path, problems) {
    if (typeof raw.apiKey !== 'string' || raw.apiKey === '')
      problems.push(`${path}.apiKey: expected the API key, as a reference to an environment variable: apiKey: "\${SENDGRID_API_KEY}"`);
    if (raw.region !== undefined && !(typeof raw.region === 'string' && raw.region in SENDGRID_REGIONS))
      problems.push(`${path}.region: expected global or eu, got ${show(raw.region)}`);
    if (raw.url !== undefined && (typeof raw.url !== 'string' || !/^https?:\/\/[^\s/]+/.test(raw.url)))
      problems.push(`${path}.url: expected an http(s) URL, got ${show(raw.url)}`);
    const intField = (key: string, min: number, max: number) => {
      const v = raw[key];
      if (v === undefined) return;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        problems.push(`${path}.${key}: expected a whole number from ${min} to ${max}, got ${show(v)}`);
    };
    intField('callSize', 1, SENDGRID_MAX_PERSONALIZATIONS);
    intField('concurrency', 1, 32);
    intField('timeoutMs', 100, 600_000);
    intField('lookupSettleMs', 0, 3_600_000);
    if (raw.emailActivity !== undefined && typeof raw.emailActivity !== 'boolean')
      problems.push(`${path}.emailActivity: expected true or false, got ${show(raw.emailActivity)}`);
    if (raw.webhookPublicKey !== undefined && (typeof raw.webhookPublicKey !== 'string' || !isSendGridPublicKey(raw.webhookPublicKey))) {
      problems.push(
        `${path}.webhookPublicKey: expected the Signed Event Webhook's verification key (base64, from Mail Settings), got ${show(raw.webhookPublicKey)}`,
      );
    }
    return raw as unknown as SendGridProviderDefinition;
  },

  secrets: [{ path: 'apiKey', envSuffix: 'API_KEY' }],

  create: (config) => new SendGridProvider(config),

  webhooks: {
    // The key that checks SendGrid's signatures: the public half (SendGrid keeps the private one).
    signingKey: (config) => config.webhookPublicKey || undefined,
    parse: parseSendGridWebhookRequest,
  },

  suppressions: {
    lists: 'bounces, blocks, spam reports, global unsubscribes',
    async pull(store, config) {
      const r = await pullSendGridSuppressions(store, config);
      return {
        ...r,
        summary: `read ${r.read.bounces} bounces, ${r.read.spam_reports} spam reports, ${r.read.unsubscribes} global unsubscribes, ${r.read.blocks} blocks (not suppressed) from ${config.name} (${r.pages} pages); ${r.added} addresses newly suppressed`,
      };
    },
    async push(store, config) {
      const r = await pushSendGridSuppressions(store, config);
      const skipped = r.skippedListScoped ? `; ${r.skippedListScoped} list-only suppressions not pushed (SendGrid's list is global)` : '';
      return { ...r, summary: `pushed ${r.pushed} addresses as global unsubscribes to ${config.name} (${r.calls} calls)${skipped}` };
    },
  },

  emulator: {
    description: 'a SendGrid-compatible API',
    // Loaded only when started: a worker or the CLI never loads the emulator.
    start: async (opts) =>
      (await import('./emulator')).SendGridServer.start({ name: opts.name, port: opts.port, apiKey: opts.credentials?.pass ?? EMULATOR_API_KEY }),
    // Its events are signed with its own key pair: the definition holds its verification key.
    config: (server, opts = {}) => ({
      kind: 'sendgrid',
      name: server.name,
      apiKey: server.apiKey,
      url: server.url,
      emailActivity: true,
      // Its Email Activity has every accepted message at once.
      lookupSettleMs: 0,
      ...(opts.webhookSigningKey ? { webhookPublicKey: server.publicKey } : {}),
    }),
  },
};
