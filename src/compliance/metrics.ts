/**
 * The compliance services' Prometheus text (`mailover webhooks` GET /metrics): every counter with
 * HELP and TYPE, and delivery events by provider and type for the complaint and hard-bounce rate
 * alerts (deploy/prometheus/alerts.yml). Counters exist from the start at 0 (for every configured
 * provider and event type), so increase() and rate() see the first event of each.
 */
import { DELIVERY_EVENT_TYPES, type DeliveryEventType } from '../store/types';
import type { BounceListener } from './bounce-listener';
import type { Counter } from './server';

/** What each webhooks-server counter counts (`mailover_<name>_total`). */
export const SERVER_COUNTER_HELP: Record<Counter, string> = {
  webhook_accepted: 'Provider webhook requests whose event was stored.',
  webhook_ignored: 'Provider webhook requests with a valid signature for an event type mailover does not store.',
  webhook_refused_forged: 'Provider webhook requests refused because their signature does not match the signing key (401).',
  webhook_refused_stale: 'Provider webhook requests refused because they were signed outside webhooks.maxAgeSeconds (400).',
  webhook_refused_replayed: 'Provider webhook requests refused because their token was accepted before (409).',
  webhook_refused_malformed: 'Provider webhook requests refused because their body could not be read (400).',
  webhook_refused_too_large: 'Provider webhook requests refused because their body is over webhooks.maxBodyBytes (413).',
  webhook_refused_unknown_provider: 'Webhook requests for a provider that has no webhooks or no signing key configured (404).',
  webhook_failed: 'Provider webhook requests whose event could not be stored (503; the provider retries).',
  suppressed_by_webhook: 'Addresses newly suppressed by a webhook event (hard bounce, complaint, unsubscribe).',
  unsubscribe_one_click: 'Unsubscribes by RFC 8058 one-click POST.',
  unsubscribe_confirmed: "Unsubscribes confirmed on the unsubscribe page's button.",
  unsubscribe_page_shown: 'Unsubscribe pages shown (a GET changes nothing).',
  unsubscribe_refused: 'Unsubscribe requests refused because their token is forged or altered or badly percent-encoded (403 or 400).',
  request_failed: 'Requests that ended in an internal error (500); each is a bug to report.',
};

/** What each bounce-listener counter counts (`mailover_bounce_<name>_total`, the listener's camelCase names in snake case). */
export const BOUNCE_COUNTER_HELP: Record<keyof BounceListener['counts'], string> = {
  dsn: 'Delivery status notifications received for a ledger row.',
  suppressed: 'Addresses newly suppressed by a delivery status notification (permanent failure).',
  notDsn: 'Messages to a valid bounce address that were not delivery status notifications (recorded, nothing suppressed).',
  unsubscribed: 'Unsubscribes by mail (mailto: List-Unsubscribe).',
  refusedRecipients: 'RCPT TO refused (550): not a correctly signed bounce address of an existing row, nor the unsubscribe address.',
  refusedTooLarge: 'Messages refused at the end of DATA (552 5.3.4) for being over bounces.maxMessageBytes.',
  unmatched: 'Bounce or unsubscribe messages that matched no ledger row or token.',
  tlsMessages: 'Messages received over STARTTLS.',
};

/** Delivery events stored (a repeated event counts once), by provider and type; from webhooks and DSNs alike. */
export class DeliveryEventCounts {
  private readonly counts = new Map<string, number>();

  /** `providers`: the configured provider names (their series start at 0). */
  constructor(providers: readonly string[] = []) {
    for (const provider of providers) for (const type of DELIVERY_EVENT_TYPES) this.counts.set(key(provider, type), 0);
  }

  count(provider: string, type: DeliveryEventType): void {
    const k = key(provider, type);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  get(provider: string, type: DeliveryEventType): number {
    return this.counts.get(key(provider, type)) ?? 0;
  }

  text(): string {
    const samples = [...this.counts]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => {
        const [provider, type] = JSON.parse(k) as [string, string];
        return { labels: { provider, type }, value: v };
      });
    return counterText(
      'mailover_delivery_events_total',
      'Delivery events stored from provider webhooks and bounce messages (a repeated event counts once), by provider and type (delivered, failed-permanent, failed-temporary, complained, unsubscribed).',
      samples,
    );
  }
}

const key = (provider: string, type: string) => JSON.stringify([provider, type]);

/** One counter in the Prometheus text format (0.0.4): HELP, TYPE and its samples. */
export function counterText(name: string, help: string, samples: Array<{ labels?: Record<string, string>; value: number }>): string {
  const lines = [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} counter`];
  for (const { labels, value } of samples) {
    const l = Object.entries(labels ?? {}).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
    lines.push(`${name}${l.length ? `{${l.join(',')}}` : ''} ${value}`);
  }
  return lines.join('\n');
}

/** A camelCase counter name in snake case (`refusedTooLarge` -> `refused_too_large`). */
export const snakeCase = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
