/**
 * SendGrid's Event Webhook: the Signed Event Webhook's ECDSA signature checked with
 * @sendgrid/eventwebhook (SendGrid's own verifier) against the verification key from the provider
 * definition, and each event of a posted batch mapped to a mailover delivery event.
 *
 * A request (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features):
 *   X-Twilio-Email-Event-Webhook-Signature: base64 ECDSA (P-256, SHA-256) signature of timestamp + body
 *   X-Twilio-Email-Event-Webhook-Timestamp: epoch seconds
 *   body: a JSON array of events (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event),
 *     each with the message's custom args at top level:
 *     [{ "email": "a@example.com", "timestamp": 1513299569, "event": "bounce", "type": "bounce",
 *        "reason": "500 unknown recipient", "status": "5.0.0", "sg_event_id": "...",
 *        "sg_message_id": "...", "mailover_campaign": "spring", "mailover_seq": "41" }]
 *
 * The signature covers the timestamp and the whole body, so the request's replay token is a hash of
 * both (not of the signature: an ECDSA signature can be altered and stay valid).
 */
import { createHash } from 'crypto';
import { EventWebhook, EventWebhookHeader } from '@sendgrid/eventwebhook';
import type { DeliveryEventInput, DeliveryEventType } from '../../store/types';
import { WebhookBodyError, type ParsedWebhook } from '../provider-module';

export const SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE();
export const TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP();

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const verifier = new EventWebhook();
type EcdsaKey = ReturnType<EventWebhook['convertPublicKeyToECDSA']>;
const keys = new Map<string, EcdsaKey | null>();

/** The verification key read once (null when it is not a P-256 public key). */
function ecdsaKey(publicKey: string): EcdsaKey | null {
  if (!keys.has(publicKey)) {
    let key: EcdsaKey | null;
    try {
      key = verifier.convertPublicKeyToECDSA(publicKey);
    } catch {
      key = null;
    }
    keys.set(publicKey, key);
  }
  return keys.get(publicKey) ?? null;
}

/** Whether a string is a verification key SendGrid would show (base64 of a P-256 public key, or PEM). */
export function isSendGridPublicKey(publicKey: string): boolean {
  return ecdsaKey(publicKey) !== null;
}

/** Whether `signature` (the header, base64) is SendGrid's signature of timestamp + body with the key's private half. */
export function sendGridSignatureValid(publicKey: string, body: Buffer, signature: string, timestamp: string): boolean {
  const key = ecdsaKey(publicKey);
  if (!key || !/^[A-Za-z0-9+/=]{8,200}$/.test(signature)) return false;
  try {
    return verifier.verifySignature(key, body, signature, timestamp);
  } catch {
    return false;
  }
}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name.toLowerCase()] ?? headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** What an event means for mailover, or null for events it does not track (processed, deferred, open, click...). */
export function sendGridEventType(e: Record<string, unknown>): DeliveryEventType | null {
  switch (e.event) {
    case 'delivered':
      return 'delivered';
    case 'bounce':
      // SendGrid's bounce event has type "bounce" (permanent) or "blocked" (this time only).
      return e.type === 'blocked' ? 'failed-temporary' : 'failed-permanent';
    case 'dropped':
      // Dropped: SendGrid did not send it; its reason says why (its own lists, or a bad address).
      switch (e.reason) {
        case 'Bounced Address':
        case 'Invalid':
          return 'failed-permanent';
        case 'Spam Reporting Address':
          return 'complained';
        case 'Unsubscribed Address':
        case 'Unsubscribed Group':
          return 'unsubscribed';
        default:
          return 'failed-temporary';
      }
    case 'spamreport':
      return 'complained';
    case 'unsubscribe':
    case 'group_unsubscribe':
      return 'unsubscribed';
    default:
      return null;
  }
}

/** SendGrid's words about an event, raw: reason, status, type, classification, response, group. */
function reasonOf(e: Record<string, unknown>): string {
  const parts = [
    typeof e.reason === 'string' && e.reason ? e.reason : '',
    typeof e.status === 'string' && e.status ? `status ${e.status}` : '',
    typeof e.type === 'string' && e.type ? `type ${e.type}` : '',
    typeof e.bounce_classification === 'string' && e.bounce_classification ? `classification ${e.bounce_classification}` : '',
    typeof e.response === 'string' && e.response ? e.response : '',
    e.asm_group_id !== undefined ? `group ${String(e.asm_group_id)}` : '',
  ].filter(Boolean);
  return (parts.join('; ') || String(e.event)).slice(0, 2000);
}

/** The delivery event of one SendGrid event (index `i` of its batch), or null when mailover does not track its kind. */
export function sendGridDeliveryEvent(provider: string, e: Record<string, unknown>, i = 0): DeliveryEventInput | null {
  const type = sendGridEventType(e);
  if (!type) return null;
  if (typeof e.email !== 'string' || !e.email.includes('@'))
    throw new WebhookBodyError(`[${i}].email: expected an address, got ${JSON.stringify(e.email ?? null).slice(0, 80)}`);
  // sg_event_id is unique per event; an event without one (old dropped events) is keyed by its content.
  const id =
    typeof e.sg_event_id === 'string' && e.sg_event_id !== '' ? e.sg_event_id : `sha256:${createHash('sha256').update(JSON.stringify(e)).digest('hex')}`;
  const ts = typeof e.timestamp === 'number' ? e.timestamp : Number(e.timestamp);
  const campaignId = typeof e.mailover_campaign === 'string' && e.mailover_campaign !== '' ? e.mailover_campaign : undefined;
  const seq = Number(e.mailover_seq);
  return {
    provider,
    providerEventId: id,
    type,
    occurredAt: Number.isFinite(ts) && ts > 0 ? new Date(ts * 1000) : new Date(),
    email: e.email,
    ...(campaignId ? { campaignId } : {}),
    ...(campaignId && Number.isSafeInteger(seq) && seq > 0 ? { seq } : {}),
    reason: reasonOf(e),
  };
}

/**
 * One Event Webhook request (WebhookSupport.parse): the signature headers and the JSON array read,
 * the signature checked with the verification key. Missing headers, a body that is not a JSON
 * array of objects: WebhookBodyError.
 */
export function parseSendGridWebhookRequest(body: Buffer, publicKey: string, headers: Record<string, string | string[] | undefined> = {}): ParsedWebhook {
  const signature = headerValue(headers, SIGNATURE_HEADER);
  const timestamp = headerValue(headers, TIMESTAMP_HEADER);
  if (!signature) throw new WebhookBodyError(`${SIGNATURE_HEADER}: missing (is the Signed Event Webhook enabled?)`);
  if (!timestamp || !/^\d{1,12}$/.test(timestamp))
    throw new WebhookBodyError(`${TIMESTAMP_HEADER}: expected epoch seconds, got ${JSON.stringify(timestamp ?? null).slice(0, 40)}`);
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WebhookBodyError('expected a JSON array of events');
  }
  if (!Array.isArray(json)) throw new WebhookBodyError('expected a JSON array of events');
  const events = json.map((e, i) => {
    if (!isObject(e)) throw new WebhookBodyError(`[${i}]: expected an event object`);
    return e;
  });
  const all = (provider: string) => events.map((e, i) => sendGridDeliveryEvent(provider, e, i)).filter((e): e is DeliveryEventInput => e !== null);
  return {
    signatureValid: sendGridSignatureValid(publicKey, body, signature, timestamp),
    signedAtSeconds: Number(timestamp),
    token: createHash('sha256').update(`${timestamp}\n`).update(body).digest('hex'),
    eventName: events.map((e) => e.event),
    event: (provider) => all(provider)[0] ?? null,
    events: all,
  };
}
