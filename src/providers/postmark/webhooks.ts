/**
 * Postmark's webhooks (https://postmarkapp.com/developer/webhooks/webhooks-overview): Bounce,
 * SpamComplaint, Delivery and SubscriptionChange posts, read into mailover delivery events.
 *
 * Postmark does not sign its webhooks; it sends the HTTP basic auth credentials written into the
 * webhook URL (https://user:pass@host/webhooks/<provider>). Those credentials are this provider's
 * "signing key" (`user:pass`, from `webhookAuth`): a request without them is refused as forged.
 * Staleness is judged by the event's own time (BouncedAt, DeliveredAt, ChangedAt), and the
 * replay token is the event's identity (the bounce ID, the message and recipient of a delivery,
 * the recipient and time of a subscription change): the same event posted twice is refused.
 *
 * Body (JSON; Postmark's documented Bounce example, abridged):
 *   { "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807,
 *     "Type": "HardBounce", "TypeCode": 1, "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
 *     "Metadata": { "campaign": "spring", "seq": "41" }, "Email": "john@example.com",
 *     "BouncedAt": "2019-11-05T16:33:54.9070259Z", "Details": "...", "Inactive": true, ... }
 */
import { createHash, timingSafeEqual } from 'crypto';
import type { DeliveryEventInput, DeliveryEventType } from '../../store/types';
import { WebhookBodyError, type ParsedWebhook, type WebhookHeaders } from '../provider-module';

/** The basic auth user the emulator's webhooks carry (their password is the key given to it). */
export const EMULATOR_WEBHOOK_USER = 'postmark';

/** The key the compliance server checks a Postmark webhook with: its basic auth credentials. */
export function postmarkWebhookKey(auth: { user: string; pass: string }): string {
  return `${auth.user}:${auth.pass}`;
}

/** The Authorization header Postmark sends for credentials `user:pass`. */
export function basicAuthHeader(key: string): string {
  return `Basic ${Buffer.from(key, 'utf8').toString('base64')}`;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Whether an Authorization header carries exactly these basic auth credentials (`user:pass`). */
export function basicAuthValid(header: string | string[] | undefined, key: string): boolean {
  if (typeof header !== 'string') return false;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return false;
  const given = Buffer.from(m[1], 'base64').toString('utf8');
  // Digests: equal lengths for timingSafeEqual, and nothing about the length leaks.
  return timingSafeEqual(digest(given), digest(key));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Bounce types that mean the address is gone for good (Postmark's bounce types, TypeCode). */
const PERMANENT_BOUNCES = new Set(['HardBounce', 'BadEmailAddress', 'ManuallyDeactivated']);
/** Bounce types that are a delivery failure that may pass. */
const TEMPORARY_BOUNCES = new Set(['Transient', 'SoftBounce', 'DnsError', 'Unknown', 'Blocked', 'SMTPApiError', 'DMARCPolicy']);

/** When the event happened, from the field its record type carries. */
function occurredAt(e: Record<string, unknown>): Date {
  const field =
    e.RecordType === 'Bounce' || e.RecordType === 'SpamComplaint'
      ? 'BouncedAt'
      : e.RecordType === 'Delivery'
        ? 'DeliveredAt'
        : e.RecordType === 'SubscriptionChange'
          ? 'ChangedAt'
          : 'ReceivedAt';
  const v = e[field];
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new WebhookBodyError(`${field}: expected the event's time (ISO 8601), got ${JSON.stringify(v)?.slice(0, 60)}`);
  return new Date(t);
}

/** The recipient an event is about. */
function recipientOf(e: Record<string, unknown>): string {
  const v = e.RecordType === 'Bounce' || e.RecordType === 'SpamComplaint' ? e.Email : e.Recipient;
  if (typeof v !== 'string' || !v.includes('@'))
    throw new WebhookBodyError(`${e.RecordType === 'Bounce' || e.RecordType === 'SpamComplaint' ? 'Email' : 'Recipient'}: expected an address`);
  return v;
}

/**
 * The event's identity: the same event posted again has the same token. A bounce's ID may exceed
 * what a JSON number holds exactly (Postmark's example is 2^63-1), so the message, the address and
 * the time are part of it too.
 */
function tokenOf(e: Record<string, unknown>, at: Date): string {
  const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '');
  const parts = [
    text(e.RecordType),
    text(e.ID),
    text(e.MessageID),
    (text(e.Email) || text(e.Recipient)).toLowerCase(),
    at.toISOString(),
    text(e.SuppressSending),
  ];
  return createHash('sha256').update(parts.join('\n')).digest('hex');
}

/** What a Postmark event means for mailover, or null for one it does not track (opens, clicks, auto-replies...). */
export function postmarkEventType(e: Record<string, unknown>): DeliveryEventType | null {
  switch (e.RecordType) {
    case 'Delivery':
      return 'delivered';
    case 'SpamComplaint':
      return 'complained';
    case 'Bounce':
      if (e.Type === 'SpamComplaint') return 'complained';
      if (e.Type === 'Unsubscribe') return 'unsubscribed';
      if (typeof e.Type === 'string' && PERMANENT_BOUNCES.has(e.Type)) return 'failed-permanent';
      if (typeof e.Type === 'string' && TEMPORARY_BOUNCES.has(e.Type)) return 'failed-temporary';
      return null;
    case 'SubscriptionChange':
      // Reactivation (SuppressSending false) lifts nothing in mailover: its list is changed by people.
      if (e.SuppressSending !== true) return null;
      if (e.SuppressionReason === 'HardBounce') return 'failed-permanent';
      if (e.SuppressionReason === 'SpamComplaint') return 'complained';
      return 'unsubscribed';
    default:
      return null;
  }
}

/** Postmark's words about an event, raw. */
function reasonOf(e: Record<string, unknown>): string {
  const parts = [
    typeof e.Type === 'string' ? `${e.Type}${e.TypeCode !== undefined ? ` (${String(e.TypeCode)})` : ''}` : '',
    typeof e.SuppressionReason === 'string' ? `${e.SuppressionReason}${typeof e.Origin === 'string' ? ` by ${e.Origin}` : ''}` : '',
    typeof e.Description === 'string' ? e.Description : '',
    typeof e.Details === 'string' ? e.Details : '',
    typeof e.MessageStream === 'string' ? `stream ${e.MessageStream}` : '',
  ].filter(Boolean);
  return (parts.join('; ') || String(e.RecordType)).slice(0, 2000);
}

/** The delivery event of a Postmark webhook body, or null when mailover does not track its kind. */
export function postmarkDeliveryEvent(provider: string, e: Record<string, unknown>, at = occurredAt(e)): DeliveryEventInput | null {
  const type = postmarkEventType(e);
  if (!type) return null;
  const email = recipientOf(e);
  const meta = isObject(e.Metadata) ? e.Metadata : {};
  // A campaign id too long for Postmark's Metadata travels as a digest: no use as an identity here.
  const campaignId = typeof meta.campaign === 'string' && meta.campaign && !meta.campaign.startsWith('sha256:') ? meta.campaign : undefined;
  const seq = Number(meta.seq);
  return {
    provider,
    providerEventId: tokenOf(e, at),
    type,
    occurredAt: at,
    email,
    ...(campaignId ? { campaignId } : {}),
    ...(campaignId && Number.isSafeInteger(seq) && seq > 0 ? { seq } : {}),
    reason: reasonOf(e),
  };
}

/**
 * One webhook request (WebhookSupport.parse): the JSON body read, its basic auth checked against
 * the credentials (`user:pass`). A body that is not a JSON object with a RecordType and the
 * event's time is a WebhookBodyError.
 */
export function parsePostmarkWebhookRequest(body: Buffer, signingKey: string, headers: WebhookHeaders): ParsedWebhook {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WebhookBodyError('expected a JSON body');
  }
  if (!isObject(json)) throw new WebhookBodyError('expected a JSON object (a Postmark webhook record)');
  if (typeof json.RecordType !== 'string' || json.RecordType === '') throw new WebhookBodyError('RecordType: missing');
  const at = occurredAt(json);
  return {
    signatureValid: basicAuthValid(headers.authorization, signingKey),
    signedAtSeconds: at.getTime() / 1000,
    token: tokenOf(json, at),
    eventName: json.RecordType,
    event: (provider) => postmarkDeliveryEvent(provider, json, at),
  };
}
