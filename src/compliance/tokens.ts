/**
 * Signed tokens for compliance links and addresses.
 *
 * - Unsubscribe token (in List-Unsubscribe and `{{unsubscribe_url}}`): names a campaign and a
 *   recipient address, HMAC-SHA256 signed with the unsubscribe signing key. It cannot be forged
 *   or altered without the key: changing one character of the campaign, the address or the
 *   signature makes verification fail.
 * - Bounce (VERP) address: `<localPart>+<seq>-<campaign hash>-<signature>@<bounce domain>`, the
 *   per-recipient Return-Path. It names the ledger row (campaign + seq) in 64 characters or less
 *   (RFC 5321's local-part limit), lower case only (some relays fold case), signed with the bounce
 *   signing key so a forged bounce cannot suppress anyone.
 */
import { createHash, createHmac, timingSafeEqual } from 'crypto';

const UNSUBSCRIBE_CONTEXT = 'mailover-unsubscribe-v1';
const BOUNCE_CONTEXT = 'mailover-bounce-v1';
/** Longest token accepted for verification (a campaign id of 128 and an address of 320, encoded). */
const MAX_TOKEN = 1024;

export interface UnsubscribeTarget {
  campaignId: string;
  email: string;
}

function hmac(key: string, context: string, payload: string): Buffer {
  return createHmac('sha256', key).update(`${context}\n${payload}`).digest();
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function signUnsubscribeToken(key: string, target: UnsubscribeTarget): string {
  const payload = `${target.campaignId}\n${target.email.toLowerCase()}`;
  return `${Buffer.from(payload, 'utf8').toString('base64url')}.${hmac(key, UNSUBSCRIBE_CONTEXT, payload).toString('base64url')}`;
}

/** The campaign and address a token names, or null when it is malformed, forged or altered. */
export function verifyUnsubscribeToken(key: string, token: string): UnsubscribeTarget | null {
  if (token.length > MAX_TOKEN) return null;
  const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return null;
  const payload = Buffer.from(m[1], 'base64url').toString('utf8');
  // base64url decoding is lenient: re-encode to refuse any altered spelling of the same bytes.
  if (Buffer.from(payload, 'utf8').toString('base64url') !== m[1]) return null;
  // The signature is compared as its canonical spelling: 43 characters carry 258 bits for 256, so
  // decoding alone would accept four spellings of each signature (any changed character must fail).
  if (!sameBytes(Buffer.from(m[2]), Buffer.from(hmac(key, UNSUBSCRIBE_CONTEXT, payload).toString('base64url')))) return null;
  const parts = payload.split('\n');
  if (parts.length !== 2 || !parts[0] || !parts[1].includes('@')) return null;
  return { campaignId: parts[0], email: parts[1] };
}

/** 8 hex characters naming a campaign inside a bounce address. */
export function campaignHash(campaignId: string): string {
  return createHash('sha256').update(campaignId).digest('hex').slice(0, 8);
}

function bounceSignature(key: string, campaignId: string, seq: number): string {
  return hmac(key, BOUNCE_CONTEXT, `${campaignId}\n${seq}`).toString('hex').slice(0, 16);
}

export interface BounceAddressSettings {
  domain: string;
  localPart: string;
  signingKey: string;
}

/** The VERP Return-Path of one ledger row. */
export function bounceAddress(s: BounceAddressSettings, campaignId: string, seq: number): string {
  return `${s.localPart}+${seq.toString(36)}-${campaignHash(campaignId)}-${bounceSignature(s.signingKey, campaignId, seq)}@${s.domain}`;
}

export interface BounceToken {
  seq: number;
  campaignHash: string;
  signature: string;
}

/** The parts of a bounce address (not yet verified), or null when it is not one of ours. */
export function parseBounceAddress(s: Pick<BounceAddressSettings, 'domain' | 'localPart'>, address: string): BounceToken | null {
  const at = address.lastIndexOf('@');
  if (at < 0 || address.slice(at + 1).toLowerCase() !== s.domain.toLowerCase()) return null;
  const local = address.slice(0, at).toLowerCase();
  const prefix = `${s.localPart.toLowerCase()}+`;
  if (!local.startsWith(prefix)) return null;
  const m = /^([0-9a-z]{1,11})-([0-9a-f]{8})-([0-9a-f]{16})$/.exec(local.slice(prefix.length));
  if (!m) return null;
  const seq = parseInt(m[1], 36);
  if (!Number.isSafeInteger(seq) || seq < 1) return null;
  return { seq, campaignHash: m[2], signature: m[3] };
}

/** Whether a parsed bounce token was signed for this campaign (its hash and signature both match). */
export function bounceTokenMatches(key: string, token: BounceToken, campaignId: string): boolean {
  if (campaignHash(campaignId) !== token.campaignHash) return false;
  return sameBytes(Buffer.from(token.signature), Buffer.from(bounceSignature(key, campaignId, token.seq)));
}
