/**
 * The SMTP module: any SMTP relay, through nodemailer's SMTPConnection (./provider.ts, with its
 * session pool ./session.ts and reply classification ./replies.ts). SMTP has no webhooks, no
 * suppression lists of its own (bounces come back as DSNs to the bounce listener) and no
 * look-up. Its emulator is the SMTP sink (./emulator.ts).
 */
import type { RateLimit } from '../../config';
import type { ProviderModule } from '../provider-module';
import type { SmtpSink } from './emulator';
import { SmtpProvider, type SmtpProviderConfig } from './provider';
import { quote } from '../../quote-value';

export interface SmtpProviderDefinition extends SmtpProviderConfig {
  kind: 'smtp';
  rateLimit?: RateLimit;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const smtpModule: ProviderModule<SmtpProviderDefinition, SmtpSink> = {
  kind: 'smtp',
  title: 'SMTP relay',

  parseConfig(raw, path, problems) {
    if (typeof raw.host !== 'string' || raw.host === '') problems.push(`${path}.host: expected a host name`);
    const port = Number(raw.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`${path}.port: expected a port 1-65535, got ${quote(raw.port)}`);
    if (raw.auth !== undefined) {
      if (!isObject(raw.auth) || typeof raw.auth.user !== 'string' || typeof raw.auth.pass !== 'string') {
        problems.push(`${path}.auth: expected { user, pass }`);
      }
    }
    return { ...(raw as unknown as SmtpProviderDefinition), port };
  },

  secrets: [{ path: 'auth.pass', envSuffix: 'PASSWORD' }],

  create: (config) => new SmtpProvider(config),

  emulator: {
    description: 'an SMTP inbox',
    // Loaded only when started: a worker or the CLI never loads the emulator.
    start: async (opts) => (await import('./emulator')).SmtpSink.start({ name: opts.name, port: opts.port, auth: opts.credentials }),
    config: (sink) => ({
      kind: 'smtp',
      name: sink.name,
      host: sink.host,
      port: sink.port,
      ...(sink.credentials ? { auth: { ...sink.credentials } } : {}),
    }),
  },
};
