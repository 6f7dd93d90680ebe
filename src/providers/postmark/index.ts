/**
 * The Postmark module, through `postmark` (Postmark's own client): batch sending on the broadcast
 * or transactional message stream with look-ups of messages left in flight (./provider.ts),
 * webhooks behind HTTP basic auth (./webhooks.ts), its per-stream suppression lists synced with
 * mailover's (./suppressions.ts), and a Postmark-compatible API on loopback as its emulator
 * (./emulator.ts).
 */
import type { RateLimit } from '../../config';
import type { ProviderModule } from '../provider-module';
import type { PostmarkServer } from './emulator';
import { POSTMARK_MAX_BATCH, PostmarkProvider, type PostmarkProviderConfig } from './provider';
import { pullPostmarkSuppressions, pushPostmarkSuppressions } from './suppressions';
import { EMULATOR_WEBHOOK_USER, parsePostmarkWebhookRequest, postmarkWebhookKey } from './webhooks';

export interface PostmarkProviderDefinition extends PostmarkProviderConfig {
  kind: 'postmark';
  rateLimit?: RateLimit;
}

/** The emulator's server token unless told otherwise (a fake). */
const EMULATOR_SERVER_TOKEN = 'pm-emulator-00000000-0000-0000-0000-000000000000';

const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};
const HOST_RE = /^[A-Za-z0-9.-]+(:\d{1,5})?$/;
const STREAM_RE = /^[a-z0-9][a-z0-9-]{0,99}$/;

export const postmarkModule: ProviderModule<PostmarkProviderDefinition, PostmarkServer> = {
  kind: 'postmark',
  title: 'Postmark',

  parseConfig(raw, path, problems) {
    if (typeof raw.serverToken !== 'string' || raw.serverToken === '')
      problems.push(`${path}.serverToken: expected the server API token, as a reference to an environment variable: serverToken: "\${POSTMARK_SERVER_TOKEN}"`);
    if (raw.requestHost !== undefined && (typeof raw.requestHost !== 'string' || !HOST_RE.test(raw.requestHost)))
      problems.push(`${path}.requestHost: expected a host name with an optional port (api.postmarkapp.com, 127.0.0.1:8081), got ${show(raw.requestHost)}`);
    if (raw.useHttps !== undefined && typeof raw.useHttps !== 'boolean') problems.push(`${path}.useHttps: expected true or false, got ${show(raw.useHttps)}`);
    for (const key of ['broadcastStream', 'transactionalStream']) {
      if (raw[key] !== undefined && (typeof raw[key] !== 'string' || !STREAM_RE.test(raw[key])))
        problems.push(`${path}.${key}: expected a message stream ID (lower-case letters, digits and '-'), got ${show(raw[key])}`);
    }
    const intField = (key: string, min: number, max: number) => {
      const v = raw[key];
      if (v === undefined) return;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        problems.push(`${path}.${key}: expected a whole number from ${min} to ${max}, got ${show(v)}`);
    };
    intField('callSize', 1, POSTMARK_MAX_BATCH);
    intField('concurrency', 1, 32);
    intField('timeoutMs', 100, 600_000);
    intField('lookupSettleMs', 0, 3_600_000);
    if (raw.webhookAuth !== undefined) {
      const a = raw.webhookAuth as Record<string, unknown> | null;
      const ok =
        typeof a === 'object' &&
        a !== null &&
        typeof a.user === 'string' &&
        a.user !== '' &&
        !a.user.includes(':') &&
        typeof a.pass === 'string' &&
        a.pass.length >= 8;
      if (!ok)
        problems.push(
          `${path}.webhookAuth: expected { user, pass } (user without ':', pass of at least 8 characters), as environment references: webhookAuth: { user: "\${POSTMARK_WEBHOOK_USER}", pass: "\${POSTMARK_WEBHOOK_PASSWORD}" }`,
        );
    }
    return raw as unknown as PostmarkProviderDefinition;
  },

  secrets: [
    { path: 'serverToken', envSuffix: 'SERVER_TOKEN' },
    { path: 'webhookAuth.user', envSuffix: 'WEBHOOK_USER' },
    { path: 'webhookAuth.pass', envSuffix: 'WEBHOOK_PASSWORD' },
  ],

  create: (config) => new PostmarkProvider(config),

  webhooks: {
    signingKey: (config) => (config.webhookAuth ? postmarkWebhookKey(config.webhookAuth) : undefined),
    parse: parsePostmarkWebhookRequest,
  },

  suppressions: {
    lists: 'the suppression list of each message stream (broadcast, transactional)',
    async pull(store, config) {
      const report = await pullPostmarkSuppressions(store, config);
      const read = Object.entries(report.read)
        .map(([stream, n]) => `${n} from stream ${stream}`)
        .join(', ');
      return { ...report, summary: `read ${read} of ${config.name}; ${report.added} addresses newly suppressed` };
    },
    async push(store, config) {
      const report = await pushPostmarkSuppressions(store, config);
      const pushed = Object.entries(report.pushed)
        .map(([stream, n]) => `${n} to stream ${stream}`)
        .join(', ');
      return {
        ...report,
        summary: `pushed ${pushed} of ${config.name} (${report.calls} calls${report.failed ? `, ${report.failed} refused by Postmark` : ''})`,
      };
    },
  },

  emulator: {
    description: 'a Postmark-compatible API',
    // Loaded only when started: a worker or the CLI never loads the emulator.
    start: async (opts) =>
      (await import('./emulator')).PostmarkServer.start({ name: opts.name, port: opts.port, serverToken: opts.credentials?.pass ?? EMULATOR_SERVER_TOKEN }),
    config: (server, opts = {}) => ({
      kind: 'postmark',
      name: server.name,
      serverToken: server.serverToken,
      requestHost: server.requestHost,
      useHttps: false,
      // Its search has every accepted message at once.
      lookupSettleMs: 0,
      ...(opts.webhookSigningKey ? { webhookAuth: { user: EMULATOR_WEBHOOK_USER, pass: opts.webhookSigningKey } } : {}),
    }),
  },
};
