/**
 * What `mailover webhooks` runs (and `mailover dev` beside its worker): the compliance HTTP server
 * (provider webhooks, unsubscribe endpoint) and, when `bounces:` is configured, the inbound SMTP
 * listener for delivery status notifications and mailto unsubscribes.
 */
import type { MailoverConfig } from '../config';
import type { Store } from '../store/types';
import { BounceListener } from './bounce-listener';
import { ComplianceServer } from './server';

export interface ComplianceServices {
  http: ComplianceServer;
  bounces?: BounceListener;
  stop(): Promise<void>;
}

export function mailgunSigningKeys(config: Pick<MailoverConfig, 'providers'>): Map<string, string> {
  const keys = new Map<string, string>();
  for (const p of config.providers) if (p.kind === 'mailgun' && p.webhookSigningKey) keys.set(p.name, p.webhookSigningKey);
  return keys;
}

export async function startComplianceServices(
  config: Pick<MailoverConfig, 'providers' | 'compliance'>,
  store: Store,
  ports: { http?: number; smtp?: number } = {},
): Promise<ComplianceServices> {
  const { compliance } = config;
  const http = await ComplianceServer.start({
    store,
    webhooks: compliance.webhooks,
    unsubscribe: compliance.unsubscribe,
    mailgunSigningKeys: mailgunSigningKeys(config),
    port: ports.http,
  });
  let bounces: BounceListener | undefined;
  try {
    if (compliance.bounces) bounces = await BounceListener.start({ store, bounces: compliance.bounces, unsubscribe: compliance.unsubscribe, port: ports.smtp });
  } catch (err) {
    await http.stop();
    throw err;
  }
  const listener = bounces;
  if (listener) http.addCounters('bounce', () => ({ ...listener.counts }));
  return {
    http,
    bounces,
    async stop() {
      await bounces?.stop();
      await http.stop();
    },
  };
}
