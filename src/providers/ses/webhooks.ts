/**
 * Amazon SES events, as SNS posts them to `POST /webhooks/<provider>` of `mailover webhooks`.
 *
 * The SNS envelope is read and its signature checked by ./sns.ts. The provider's "signing key"
 * (WebhookSupport.signingKey) is the ARN of the SNS topic its events are published to
 * (`sns.topicArn`): a message from any other topic is refused like a forged one, and the topic's
 * region names the only host its signing certificate may come from (a local emulator's loopback
 * address instead when `sns.certificateHosts` lists it: `mailover dev`). SNS's MessageId is the
 * replay token, its Timestamp the signing time (stale outside webhooks.maxAgeSeconds).
 *
 * - SubscriptionConfirmation: confirmed by fetching SubscribeURL (only on the topic's SNS host),
 *   once its signature checked out; then answered as an ignored event.
 * - Notification: its Message is SES's JSON, either an identity notification (`notificationType`)
 *   or a configuration set's event publishing (`eventType`), as AWS documents them in
 *   "Amazon SNS notification contents for Amazon SES"
 *   (https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html) and
 *   "Event data that Amazon SES publishes to Amazon SNS"
 *   (https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html):
 *     Bounce     bounceType Permanent → failed-permanent (suppresses); Transient / Undetermined → failed-temporary
 *     Complaint  → complained (suppresses)
 *     Delivery   → delivered
 *     anything else (Send, Open, Click, DeliveryDelay...) is not tracked.
 *   The campaign and seq come from the message's tags (`mail.tags`, event publishing only),
 *   which mailover sets on every SendEmail (EmailTags mailover-campaign and mailover-seq).
 *   One notification may list several recipients; mailover sends one recipient per message, so
 *   the event is about the first one listed (any others are named in its reason).
 */
import type { DeliveryEventInput, DeliveryEventType } from '../../store/types';
import { WebhookBodyError, type ParsedWebhook, type ProviderDefinitionBase, type WebhookSupport } from '../provider-module';
import {
  confirmOverHttps,
  isLoopbackHost,
  parseSnsMessage,
  snsHosts,
  snsVerifier,
  topicRegion,
  urlOnHosts,
  type CertificateFetcher,
  type SnsMessage,
  type SubscriptionConfirmer,
} from './sns';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The SES notification inside an SNS Notification's Message; throws WebhookBodyError naming what is wrong. */
export function parseSesNotification(message: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(message);
  } catch {
    throw new WebhookBodyError('Message: expected the JSON of an Amazon SES notification');
  }
  if (!isObject(json)) throw new WebhookBodyError('Message: expected a JSON object');
  return json;
}

/** The kind of an SES notification: `notificationType` (identity notifications) or `eventType` (event publishing). */
export function sesEventName(n: Record<string, unknown>): unknown {
  return n.notificationType ?? n.eventType;
}

function tag(mail: Record<string, unknown>, name: string): string | undefined {
  const tags = isObject(mail.tags) ? mail.tags : {};
  const v = tags[name];
  const first = Array.isArray(v) ? v[0] : v;
  return typeof first === 'string' && first !== '' ? first : undefined;
}

function addressesOf(list: unknown, path: string): string[] {
  if (!Array.isArray(list) || list.length === 0) throw new WebhookBodyError(`${path}: expected a list of recipients`);
  return list.map((r, i) => {
    const a = isObject(r) ? r.emailAddress : r;
    if (typeof a !== 'string' || !a.includes('@')) throw new WebhookBodyError(`${path}[${i}]: expected an address, got ${JSON.stringify(a)?.slice(0, 80)}`);
    return a.replace(/^.*<([^>]+)>.*$/, '$1').trim();
  });
}

function others(addresses: string[]): string {
  return addresses.length > 1 ? `; also ${addresses.length - 1} other recipient(s) in this notification` : '';
}

/** The delivery event of an SES notification, or null when mailover does not track its kind. */
export function sesDeliveryEvent(provider: string, snsMessageId: string, n: Record<string, unknown>): DeliveryEventInput | null {
  const kind = sesEventName(n);
  const mail = isObject(n.mail) ? n.mail : undefined;
  let type: DeliveryEventType;
  let addresses: string[];
  let at: unknown;
  let reason: string;
  let eventId: unknown;
  if (kind === 'Bounce') {
    const b = n.bounce;
    if (!isObject(b)) throw new WebhookBodyError('Message.bounce: missing');
    type = b.bounceType === 'Permanent' ? 'failed-permanent' : 'failed-temporary';
    addresses = addressesOf(b.bouncedRecipients, 'Message.bounce.bouncedRecipients');
    const first = (b.bouncedRecipients as unknown[])[0];
    const r = isObject(first) ? first : {};
    reason =
      [`${String(b.bounceType)}/${String(b.bounceSubType)}`, r.status, r.diagnosticCode].filter((v) => typeof v === 'string' && v !== '').join('; ') +
      others(addresses);
    at = b.timestamp;
    eventId = b.feedbackId;
  } else if (kind === 'Complaint') {
    const c = n.complaint;
    if (!isObject(c)) throw new WebhookBodyError('Message.complaint: missing');
    type = 'complained';
    addresses = addressesOf(c.complainedRecipients, 'Message.complaint.complainedRecipients');
    reason = `complaint${typeof c.complaintFeedbackType === 'string' ? ` (${c.complaintFeedbackType})` : ''}${others(addresses)}`;
    at = c.timestamp;
    eventId = c.feedbackId;
  } else if (kind === 'Delivery') {
    const d = n.delivery;
    if (!isObject(d)) throw new WebhookBodyError('Message.delivery: missing');
    type = 'delivered';
    addresses = addressesOf(d.recipients, 'Message.delivery.recipients');
    reason = (typeof d.smtpResponse === 'string' && d.smtpResponse ? d.smtpResponse : 'delivered') + others(addresses);
    at = d.timestamp;
  } else {
    return null;
  }
  if (!mail) throw new WebhookBodyError('Message.mail: missing');
  const campaignId = tag(mail, 'mailover-campaign');
  const seq = Number(tag(mail, 'mailover-seq'));
  const occurred = typeof at === 'string' ? new Date(at) : new Date(NaN);
  const sesMessageId = typeof mail.messageId === 'string' ? mail.messageId : '';
  return {
    provider,
    // One event per SES message, kind and feedback: a repeat (SNS redelivers) is stored once.
    providerEventId: `${sesMessageId || snsMessageId}:${String(kind)}:${typeof eventId === 'string' ? eventId : addresses[0]}`,
    type,
    occurredAt: Number.isNaN(occurred.getTime()) ? new Date() : occurred,
    email: addresses[0],
    ...(campaignId ? { campaignId } : {}),
    ...(campaignId && Number.isSafeInteger(seq) && seq > 0 ? { seq } : {}),
    reason: reason.slice(0, 2000),
  };
}

export interface SnsWebhookOptions {
  /** Reads a signing certificate (default: an HTTPS GET). Only ever called for an allow-listed URL. */
  fetchCertificate?: CertificateFetcher;
  /** Confirms a subscription (default: an HTTPS GET of SubscribeURL). Only ever called for an allow-listed URL. */
  confirmSubscription?: SubscriptionConfirmer;
}

/**
 * The `webhooks` of the SES module: WebhookSupport reading SNS messages. `signingKey` is the
 * topic ARN (see the top of this file). Options are for tests (their own certificate and host).
 */
export function snsWebhooks<C extends ProviderDefinitionBase & { sns?: { topicArn: string; certificateHosts?: string[] } }>(
  opts: SnsWebhookOptions = {},
): WebhookSupport<C> {
  const verifier = snsVerifier(opts.fetchCertificate);
  const confirm = opts.confirmSubscription ?? confirmOverHttps;
  return {
    signingKey: (config) => config.sns?.topicArn || undefined,
    async parse(body, topicArn, _headers, config) {
      const m: SnsMessage = parseSnsMessage(body);
      const region = topicRegion(topicArn);
      if (!region) throw new WebhookBodyError(`the configured sns.topicArn ${JSON.stringify(topicArn.slice(0, 100))} is not an SNS topic ARN`);
      // The AWS host of the topic's region, unless the provider lists a local emulator's address (loopback only).
      const local = (config?.sns?.certificateHosts ?? []).filter(isLoopbackHost);
      const hosts = local.length ? local : snsHosts(region);
      // A message from another topic is not ours, whoever signed it.
      const verdict = m.TopicArn !== topicArn ? { valid: false as const, why: 'another topic' } : await verifier.verify(m, hosts);
      const notification = m.Type === 'Notification' ? parseSesNotification(m.Message) : undefined;
      if (verdict.valid && m.Type === 'SubscriptionConfirmation') {
        if (!m.SubscribeURL || !urlOnHosts(m.SubscribeURL, hosts)) throw new WebhookBodyError(`SubscribeURL: expected an https URL on ${hosts.join(' or ')}`);
        try {
          await confirm(m.SubscribeURL);
        } catch (err) {
          throw new WebhookBodyError(`SubscriptionConfirmation: could not confirm (${(err as Error).message.slice(0, 200)})`);
        }
      }
      const parsed: ParsedWebhook = {
        signatureValid: verdict.valid,
        signedAtSeconds: Date.parse(m.Timestamp) / 1000,
        token: m.MessageId,
        eventName: notification ? sesEventName(notification) : m.Type,
        event: (provider) => (notification ? sesDeliveryEvent(provider, m.MessageId, notification) : null),
      };
      return parsed;
    },
  };
}
