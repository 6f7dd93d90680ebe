/**
 * Mailgun's HTTP webhooks: signature verification (HMAC-SHA256 of timestamp + token with the
 * webhook signing key) and the mapping of an event to a mailover delivery event.
 *
 * Body (JSON, as Mailgun posts it):
 *   { "signature": { "timestamp": "1529006854", "token": "a8ce0edb2dd8...", "signature": "d2271d12..." },
 *     "event-data": { "id": "...", "event": "failed", "severity": "permanent", "timestamp": 1529006854.32,
 *                     "recipient": "alice@example.com", "reason": "bounce",
 *                     "delivery-status": { "code": 550, "message": "5.1.1 no such user", "description": "" },
 *                     "user-variables": { "mailover-campaign": "spring", "mailover-seq": "41" } } }
 */
import { createHmac, timingSafeEqual } from 'crypto';
import type { DeliveryEventInput, DeliveryEventType } from '../../store/types';
import { WebhookBodyError, type ParsedWebhook } from '../provider-module';

export { WebhookBodyError };

export interface MailgunSignature {
  timestamp: string;
  token: string;
  signature: string;
}

export function signMailgunWebhook(signingKey: string, timestamp: string, token: string): string {
  return createHmac('sha256', signingKey)
    .update(timestamp + token)
    .digest('hex');
}

export function mailgunSignatureValid(signingKey: string, s: MailgunSignature): boolean {
  if (!/^[0-9a-f]{64}$/i.test(s.signature)) return false;
  const expected = Buffer.from(signMailgunWebhook(signingKey, s.timestamp, s.token), 'hex');
  return timingSafeEqual(expected, Buffer.from(s.signature, 'hex'));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The signature block and the event data of a webhook body; throws WebhookBodyError naming what is wrong. */
export function parseMailgunWebhook(body: unknown): { signature: MailgunSignature; eventData: Record<string, unknown> } {
  if (!isObject(body)) throw new WebhookBodyError('expected a JSON object with signature and event-data');
  const sig = body.signature;
  if (!isObject(sig)) throw new WebhookBodyError('signature: missing');
  const timestamp = typeof sig.timestamp === 'number' ? String(sig.timestamp) : sig.timestamp;
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) throw new WebhookBodyError('signature.timestamp: expected epoch seconds');
  if (typeof sig.token !== 'string' || sig.token.length < 10 || sig.token.length > 200) throw new WebhookBodyError('signature.token: expected a token');
  if (typeof sig.signature !== 'string') throw new WebhookBodyError('signature.signature: missing');
  const eventData = body['event-data'];
  if (!isObject(eventData)) throw new WebhookBodyError('event-data: missing');
  return { signature: { timestamp, token: sig.token, signature: sig.signature }, eventData };
}

/** What an event means for mailover, or null for events it does not track (opened, clicked...). */
export function mailgunEventType(e: Record<string, unknown>): DeliveryEventType | null {
  switch (e.event) {
    case 'delivered':
      return 'delivered';
    case 'failed':
      return e.severity === 'temporary' ? 'failed-temporary' : 'failed-permanent';
    case 'complained':
      return 'complained';
    case 'unsubscribed':
      return 'unsubscribed';
    default:
      return null;
  }
}

/** Mailgun's words about an event, raw: reason, SMTP code and message. */
function reasonOf(e: Record<string, unknown>): string {
  const ds = isObject(e['delivery-status']) ? e['delivery-status'] : {};
  const parts = [
    typeof e.reason === 'string' && e.reason ? `reason ${e.reason}` : '',
    ds.code !== undefined && ds.code !== '' ? `code ${String(ds.code)}` : '',
    typeof ds.message === 'string' && ds.message ? ds.message : '',
    typeof ds.description === 'string' && ds.description ? ds.description : '',
  ].filter(Boolean);
  return (parts.join('; ') || String(e.event)).slice(0, 2000);
}

/** The delivery event of a Mailgun event, or null when mailover does not track its kind. */
export function mailgunDeliveryEvent(provider: string, e: Record<string, unknown>): DeliveryEventInput | null {
  const type = mailgunEventType(e);
  if (!type) return null;
  if (typeof e.recipient !== 'string' || !e.recipient.includes('@')) throw new WebhookBodyError('event-data.recipient: expected an address');
  if (typeof e.id !== 'string' || e.id === '') throw new WebhookBodyError('event-data.id: missing');
  const ts = typeof e.timestamp === 'number' ? e.timestamp : Number(e.timestamp);
  const vars = isObject(e['user-variables']) ? e['user-variables'] : {};
  const campaignId = typeof vars['mailover-campaign'] === 'string' ? vars['mailover-campaign'] : undefined;
  const seq = Number(vars['mailover-seq']);
  return {
    provider,
    providerEventId: e.id,
    type,
    occurredAt: Number.isFinite(ts) && ts > 0 ? new Date(ts * 1000) : new Date(),
    email: e.recipient,
    ...(campaignId ? { campaignId } : {}),
    ...(campaignId && Number.isSafeInteger(seq) && seq > 0 ? { seq } : {}),
    reason: reasonOf(e),
  };
}

/**
 * One webhook request (WebhookSupport.parse): the JSON body read, its signature checked with the
 * signing key. A body that is not JSON, or lacks the signature block or the event data, is a
 * WebhookBodyError.
 */
export function parseMailgunWebhookRequest(body: Buffer, signingKey: string): ParsedWebhook {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new WebhookBodyError('expected a JSON body');
  }
  const { signature, eventData } = parseMailgunWebhook(json);
  return {
    signatureValid: mailgunSignatureValid(signingKey, signature),
    signedAtSeconds: Number(signature.timestamp),
    token: signature.token,
    eventName: eventData.event,
    event: (provider) => mailgunDeliveryEvent(provider, eventData),
  };
}
