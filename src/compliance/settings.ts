/**
 * The compliance sections of the YAML config: `unsubscribe:`, `webhooks:` and `bounces:`.
 * Signing keys are secrets: in the file they are environment references (`${NAME}`), resolved
 * by src/config.ts before these are validated.
 */
import { accessSync, constants } from 'fs';
import { quote } from '../quote-value';

export type UnsubscribeScope = 'all' | 'list';

export interface UnsubscribeSettings {
  /** Public base URL of the `mailover webhooks` server; links are `<baseUrl>/u/<token>`. */
  baseUrl: string;
  /** Address for the mailto: form of List-Unsubscribe (taken in by the inbound listener), optional. */
  mailto?: string;
  /** HMAC key signing unsubscribe tokens (from the environment). */
  signingKey: string;
  /** `all`: an unsubscribe stops all mail to the address; `list`: only campaigns of the same list. */
  scope: UnsubscribeScope;
}

export interface WebhookSettings {
  host: string;
  port: number;
  /** Requests signed longer ago than this (or in the future by more) are refused as stale. */
  maxAgeSeconds: number;
  /** Larger request bodies are refused (413). */
  maxBodyBytes: number;
}

export interface BounceSettings {
  /** Domain of the VERP Return-Path; its MX must point at the inbound listener. */
  domain: string;
  /** Local part before the `+token` (default `bounces`). */
  localPart: string;
  /** HMAC key signing the VERP tokens (from the environment). */
  signingKey: string;
  /** Inbound SMTP listener (run by `mailover webhooks`). */
  host: string;
  port: number;
  /** Larger messages are refused at DATA (552). */
  maxMessageBytes: number;
  /** PEM files for STARTTLS (offered to relays that deliver bounces when set). */
  tls?: { certFile: string; keyFile: string };
}

export interface ComplianceSettings {
  unsubscribe?: UnsubscribeSettings;
  webhooks: WebhookSettings;
  bounces?: BounceSettings;
}

export const DEFAULT_WEBHOOKS: WebhookSettings = { host: '127.0.0.1', port: 8025, maxAgeSeconds: 300, maxBodyBytes: 64 * 1024 };
export const DEFAULT_BOUNCE_PORT = 2525;
export const DEFAULT_MAX_DSN_BYTES = 1024 * 1024;

/** Secret fields of these sections, as dotted paths (must be environment references in the file). */
export const COMPLIANCE_SECRET_FIELDS = ['unsubscribe.signingKey', 'bounces.signingKey'] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const DOMAIN = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,}$/;
const LOCAL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

/** `{ certFile, keyFile }`: PEM files that exist and can be read (the listener reads them when it starts). */
function tlsFiles(raw: unknown, path: string, problems: string[]): { certFile: string; keyFile: string } {
  if (!isObject(raw)) {
    problems.push(`${path}: expected a mapping with certFile and keyFile (PEM files), got ${quote(raw)}`);
    return { certFile: '', keyFile: '' };
  }
  unknownKeys(raw, path, ['certFile', 'keyFile'], problems);
  const file = (key: 'certFile' | 'keyFile'): string => {
    const v = raw[key];
    if (typeof v !== 'string' || v === '') {
      problems.push(`${path}.${key}: expected the path of a PEM file, got ${quote(v)}`);
      return '';
    }
    try {
      accessSync(v, constants.R_OK);
    } catch (err) {
      problems.push(`${path}.${key}: cannot read ${v}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return v;
  };
  return { certFile: file('certFile'), keyFile: file('keyFile') };
}

function unknownKeys(raw: Record<string, unknown>, path: string, allowed: string[], problems: string[]): void {
  for (const k of Object.keys(raw)) if (!allowed.includes(k)) problems.push(`${path}.${k}: unknown field (expected ${allowed.join(', ')})`);
}

function intField(raw: Record<string, unknown>, key: string, path: string, min: number, max: number, dflt: number, problems: string[]): number {
  const v = raw[key];
  if (v === undefined) return dflt;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    problems.push(`${path}.${key}: expected a whole number from ${min} to ${max}, got ${quote(v)}`);
    return dflt;
  }
  return n;
}

function keyField(raw: Record<string, unknown>, path: string, env: string, problems: string[]): string {
  const v = raw.signingKey;
  if (typeof v !== 'string' || v.length < 16) {
    problems.push(`${path}.signingKey: expected a signing key of at least 16 characters, as an environment reference: signingKey: "\${${env}}"`);
    return '';
  }
  return v;
}

/** Validates the (already env-resolved) compliance sections; problems name the field. */
export function parseComplianceSettings(resolved: Record<string, unknown>, problems: string[]): ComplianceSettings {
  const out: ComplianceSettings = { webhooks: { ...DEFAULT_WEBHOOKS } };

  const u = resolved.unsubscribe;
  if (u !== undefined) {
    if (!isObject(u)) problems.push('unsubscribe: expected a mapping with baseUrl, signingKey, optional mailto and scope');
    else {
      unknownKeys(u, 'unsubscribe', ['baseUrl', 'mailto', 'signingKey', 'scope'], problems);
      let baseUrl = '';
      if (typeof u.baseUrl !== 'string' || !/^https?:\/\/[^\s/]+/.test(u.baseUrl))
        problems.push(`unsubscribe.baseUrl: expected the public http(s) URL of the webhooks server, got ${quote(u.baseUrl)}`);
      else baseUrl = u.baseUrl.replace(/\/+$/, '');
      if (u.mailto !== undefined && (typeof u.mailto !== 'string' || !/^[^\s@<>?]+@[^\s@<>?]+\.[A-Za-z]{2,}$/.test(u.mailto)))
        problems.push(`unsubscribe.mailto: expected an address, got ${quote(u.mailto)}`);
      const scope = u.scope ?? 'all';
      if (scope !== 'all' && scope !== 'list') problems.push(`unsubscribe.scope: expected all or list, got ${quote(u.scope)}`);
      out.unsubscribe = {
        baseUrl,
        signingKey: keyField(u, 'unsubscribe', 'MAILOVER_UNSUBSCRIBE_KEY', problems),
        scope: scope as UnsubscribeScope,
        ...(typeof u.mailto === 'string' ? { mailto: u.mailto } : {}),
      };
    }
  }

  const w = resolved.webhooks;
  if (w !== undefined) {
    if (!isObject(w)) problems.push('webhooks: expected a mapping with host, port, maxAgeSeconds, maxBodyBytes');
    else {
      unknownKeys(w, 'webhooks', ['host', 'port', 'maxAgeSeconds', 'maxBodyBytes'], problems);
      if (w.host !== undefined && (typeof w.host !== 'string' || w.host === ''))
        problems.push(`webhooks.host: expected an interface address, got ${quote(w.host)}`);
      out.webhooks = {
        host: typeof w.host === 'string' && w.host ? w.host : DEFAULT_WEBHOOKS.host,
        port: intField(w, 'port', 'webhooks', 0, 65535, DEFAULT_WEBHOOKS.port, problems),
        maxAgeSeconds: intField(w, 'maxAgeSeconds', 'webhooks', 1, 86_400, DEFAULT_WEBHOOKS.maxAgeSeconds, problems),
        maxBodyBytes: intField(w, 'maxBodyBytes', 'webhooks', 1024, 10 * 1024 * 1024, DEFAULT_WEBHOOKS.maxBodyBytes, problems),
      };
    }
  }

  const b = resolved.bounces;
  if (b !== undefined) {
    if (!isObject(b)) problems.push('bounces: expected a mapping with domain, signingKey, optional localPart, host, port');
    else {
      unknownKeys(b, 'bounces', ['domain', 'localPart', 'signingKey', 'host', 'port', 'maxMessageBytes', 'tls'], problems);
      if (typeof b.domain !== 'string' || !DOMAIN.test(b.domain))
        problems.push(`bounces.domain: expected the bounce domain (its MX points at the inbound listener), got ${quote(b.domain)}`);
      const localPart = b.localPart ?? 'bounces';
      if (typeof localPart !== 'string' || !LOCAL.test(localPart))
        problems.push(`bounces.localPart: expected 1-32 letters, digits, . _ -, got ${quote(b.localPart)}`);
      out.bounces = {
        domain: typeof b.domain === 'string' ? b.domain.toLowerCase() : '',
        localPart: String(localPart),
        signingKey: keyField(b, 'bounces', 'MAILOVER_BOUNCE_KEY', problems),
        host: typeof b.host === 'string' && b.host ? b.host : '127.0.0.1',
        port: intField(b, 'port', 'bounces', 0, 65535, DEFAULT_BOUNCE_PORT, problems),
        maxMessageBytes: intField(b, 'maxMessageBytes', 'bounces', 1024, 50 * 1024 * 1024, DEFAULT_MAX_DSN_BYTES, problems),
        ...(b.tls === undefined ? {} : { tls: tlsFiles(b.tls, 'bounces.tls', problems) }),
      };
    }
  }
  return out;
}
