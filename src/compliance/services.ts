/**
 * What `mailover webhooks` runs (and `mailover dev` beside its worker): the compliance HTTP server
 * (provider webhooks, unsubscribe endpoint) and, when `bounces:` is configured, the inbound SMTP
 * listener for delivery status notifications and mailto unsubscribes.
 */
import type { MailoverConfig } from '../config';
import { findProviderModule } from '../providers/modules';
import type { ProviderDefinitionBase } from '../providers/provider-module';
import type { Store } from '../store/types';
import { BounceListener } from './bounce-listener';
import { BOUNCE_COUNTER_HELP, DeliveryEventCounts } from './metrics';
import { ComplianceServer, type ProviderWebhook } from './server';

export interface ComplianceServices {
  http: ComplianceServer;
  bounces?: BounceListener;
  stop(): Promise<void>;
}

/** The providers whose webhooks are taken: their kind has webhooks and they have a signing key configured. */
export function providerWebhooks(config: { providers: readonly ProviderDefinitionBase[] }): Map<string, ProviderWebhook> {
  const hooks = new Map<string, ProviderWebhook>();
  for (const p of config.providers) {
    const webhooks = findProviderModule(p.kind)?.webhooks;
    const signingKey = webhooks?.signingKey(p);
    if (webhooks && signingKey) hooks.set(p.name, { signingKey, webhooks, config: p });
  }
  return hooks;
}

export async function startComplianceServices(
  config: Pick<MailoverConfig, 'compliance'> & { providers: readonly ProviderDefinitionBase[] },
  store: Store,
  ports: { http?: number; bounces?: number } = {},
): Promise<ComplianceServices> {
  const { compliance } = config;
  // Delivery events from webhooks and DSNs alike, every configured provider's series from 0.
  const events = new DeliveryEventCounts(config.providers.map((p) => p.name));
  const http = await ComplianceServer.start({
    events,
    store,
    webhooks: compliance.webhooks,
    unsubscribe: compliance.unsubscribe,
    providerWebhooks: providerWebhooks(config),
    port: ports.http,
  });
  let bounces: BounceListener | undefined;
  try {
    if (compliance.bounces)
      bounces = await BounceListener.start({ store, bounces: compliance.bounces, unsubscribe: compliance.unsubscribe, port: ports.bounces, events });
  } catch (err) {
    await http.stop();
    throw err;
  }
  const listener = bounces;
  if (listener) http.addCounters('bounce', () => ({ ...listener.counts }), BOUNCE_COUNTER_HELP);
  return {
    http,
    bounces,
    async stop() {
      await bounces?.stop();
      await http.stop();
    },
  };
}
