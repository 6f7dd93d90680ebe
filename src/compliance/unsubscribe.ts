/**
 * Unsubscribe: the signed link every marketing message carries (List-Unsubscribe, RFC 8058
 * one-click, and `{{unsubscribe_url}}` in the body), and what happens when it is used.
 */
import type { Store } from '../store/types';
import type { UnsubscribeSettings } from './settings';
import { signUnsubscribeToken, verifyUnsubscribeToken, type UnsubscribeTarget } from './tokens';

/** Path prefix of unsubscribe links on the webhooks server. */
export const UNSUBSCRIBE_PATH = '/u/';

export function unsubscribeUrl(s: UnsubscribeSettings, campaignId: string, email: string): string {
  return `${s.baseUrl}${UNSUBSCRIBE_PATH}${signUnsubscribeToken(s.signingKey, { campaignId, email })}`;
}

/** `List-Unsubscribe` (https, and mailto when configured) and `List-Unsubscribe-Post` (RFC 8058). */
export function listUnsubscribeHeaders(s: UnsubscribeSettings, campaignId: string, email: string): Record<string, string> {
  return unsubscribeLinks(s, campaignId, email).headers;
}

/** The recipient's link and headers, signed once (the send path needs both). */
export function unsubscribeLinks(s: UnsubscribeSettings, campaignId: string, email: string): { url: string; headers: Record<string, string> } {
  const token = signUnsubscribeToken(s.signingKey, { campaignId, email });
  const url = `${s.baseUrl}${UNSUBSCRIBE_PATH}${token}`;
  const targets = [`<${url}>`];
  if (s.mailto) targets.push(`<mailto:${s.mailto}?subject=unsubscribe%20${token}>`);
  return { url, headers: { 'List-Unsubscribe': targets.join(', '), 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' } };
}

export interface UnsubscribeOutcome {
  target: UnsubscribeTarget;
  /** `all` or the list name the address was suppressed for. */
  scope: string;
  /** False when it was already unsubscribed (the request is idempotent). */
  newlySuppressed: boolean;
}

/**
 * Verify a token and suppress its address at once (scope per settings: all mail, or the
 * campaign's list). Returns null for a forged, altered or malformed token (nothing changes).
 * Recorded as an `unsubscribed` event linked to the campaign's ledger row.
 */
export async function applyUnsubscribe(
  store: Store,
  s: UnsubscribeSettings,
  token: string,
  via: 'one-click' | 'link' | 'mailto',
): Promise<UnsubscribeOutcome | null> {
  const target = verifyUnsubscribeToken(s.signingKey, token);
  if (!target) return null;
  let list: string | undefined;
  if (s.scope === 'list') list = (await store.getCampaign(target.campaignId))?.list ?? target.campaignId;
  const result = await store.recordEvent(
    {
      provider: 'mailover',
      providerEventId: `unsubscribe:${target.campaignId}:${target.email}`,
      type: 'unsubscribed',
      occurredAt: new Date(),
      email: target.email,
      campaignId: target.campaignId,
      reason: `unsubscribed (${via}) from campaign ${target.campaignId}`,
    },
    { reason: `unsubscribed from campaign ${target.campaignId}`, source: `unsubscribe ${via}`, ...(list ? { list } : {}) },
  );
  return { target, scope: list ?? 'all', newlySuppressed: result.suppressed };
}
