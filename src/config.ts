/**
 * Worker configuration: the providers it can send through and how it treats rows
 * found in flight after a crash. Read from YAML (MAILOVER_CONFIG, default ./mailover.yaml).
 * Secrets are only ever references to environment variables: `${MAILGUN_API_KEY}`.
 */
import { readYamlFile } from './yaml-file';
import { MAILGUN_MAX_RECIPIENTS_PER_CALL, MAILGUN_REGIONS, type MailgunProviderConfig } from './providers/mailgun';
import type { SmtpProviderConfig } from './providers/smtp';
import { COMPLIANCE_SECRET_FIELDS, parseComplianceSettings, type ComplianceSettings } from './compliance/settings';

export type InFlightPolicy = 'resend' | 'hold';

export interface SmtpProviderDefinition extends SmtpProviderConfig {
  kind: 'smtp';
}

export interface MailgunProviderDefinition extends MailgunProviderConfig {
  kind: 'mailgun';
}

export type ProviderDefinition = SmtpProviderDefinition | MailgunProviderDefinition;
export const PROVIDER_KINDS = ['smtp', 'mailgun'] as const;

export interface MailoverConfig {
  providers: ProviderDefinition[];
  /** What to do with rows found in state `sending` after a crash when the provider cannot look messages up. */
  inFlight: InFlightPolicy;
  /** unsubscribe:, webhooks:, bounces: (README, Compliance). */
  compliance: ComplianceSettings;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replace `${VAR}` references in every string; a missing variable is an error naming the field. */
function resolveEnv(value: unknown, path: string, env: NodeJS.ProcessEnv, missing: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) {
        missing.push(`${path}: environment variable ${name} is not set`);
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveEnv(v, `${path}[${i}]`, env, missing));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveEnv(v, path ? `${path}.${k}` : k, env, missing)]));
  }
  return value;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function validateProvider(raw: unknown, path: string, problems: string[]): ProviderDefinition | undefined {
  if (!isObject(raw)) {
    problems.push(`${path}: expected a mapping with name and kind`);
    return undefined;
  }
  const name = raw.name;
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    problems.push(`${path}.name: expected a provider name (letters, digits, _ . -), got ${JSON.stringify(name)}`);
  }
  if (raw.kind === 'smtp') return validateSmtp(raw, path, problems);
  if (raw.kind === 'mailgun') return validateMailgun(raw, path, problems);
  problems.push(`${path}.kind: expected one of ${PROVIDER_KINDS.join(', ')}, got ${JSON.stringify(raw.kind)}`);
  return undefined;
}

function validateSmtp(raw: Record<string, unknown>, path: string, problems: string[]): SmtpProviderDefinition {
  if (typeof raw.host !== 'string' || raw.host === '') problems.push(`${path}.host: expected a host name`);
  const port = Number(raw.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`${path}.port: expected a port 1-65535, got ${JSON.stringify(raw.port)}`);
  if (raw.auth !== undefined) {
    if (!isObject(raw.auth) || typeof raw.auth.user !== 'string' || typeof raw.auth.pass !== 'string') {
      problems.push(`${path}.auth: expected { user, pass }`);
    }
  }
  return { ...(raw as unknown as SmtpProviderDefinition), port };
}

function validateMailgun(raw: Record<string, unknown>, path: string, problems: string[]): MailgunProviderDefinition {
  if (typeof raw.domain !== 'string' || !/^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/.test(raw.domain)) problems.push(`${path}.domain: expected the sending domain (e.g. mg.example.org), got ${JSON.stringify(raw.domain)}`);
  if (typeof raw.apiKey !== 'string' || raw.apiKey === '') problems.push(`${path}.apiKey: expected the API key, as a reference to an environment variable: apiKey: "\${MAILGUN_API_KEY}"`);
  if (raw.region !== undefined && !(typeof raw.region === 'string' && raw.region in MAILGUN_REGIONS)) problems.push(`${path}.region: expected us or eu, got ${JSON.stringify(raw.region)}`);
  if (raw.url !== undefined && (typeof raw.url !== 'string' || !/^https?:\/\//.test(raw.url))) problems.push(`${path}.url: expected an http(s) URL, got ${JSON.stringify(raw.url)}`);
  const intField = (key: string, min: number, max: number) => {
    if (raw[key] === undefined) return;
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) problems.push(`${path}.${key}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  };
  intField('callSize', 1, MAILGUN_MAX_RECIPIENTS_PER_CALL);
  intField('concurrency', 1, 32);
  intField('timeoutMs', 100, 600_000);
  intField('lookupSettleMs', 0, 3_600_000);
  if (raw.webhookSigningKey !== undefined && (typeof raw.webhookSigningKey !== 'string' || raw.webhookSigningKey.length < 8)) {
    problems.push(`${path}.webhookSigningKey: expected Mailgun's HTTP webhook signing key, as an environment reference: webhookSigningKey: "\${MAILGUN_WEBHOOK_SIGNING_KEY}"`);
  }
  return raw as unknown as MailgunProviderDefinition;
}

/** Fields that hold secrets: in the file they must be environment references, never the secret itself. */
const SECRET_FIELDS: Array<[string, (p: Record<string, unknown>) => unknown]> = [
  ['apiKey', (p) => p.apiKey],
  ['auth.pass', (p) => (isObject(p.auth) ? p.auth.pass : undefined)],
  ['webhookSigningKey', (p) => p.webhookSigningKey],
];

const SECRET_ENV_SUFFIX: Record<string, string> = { apiKey: 'API_KEY', 'auth.pass': 'PASSWORD', webhookSigningKey: 'WEBHOOK_SIGNING_KEY' };

function literalSecrets(source: unknown): string[] {
  if (!isObject(source) || !Array.isArray(source.providers)) return [];
  const problems: string[] = [];
  source.providers.forEach((p, i) => {
    if (!isObject(p)) return;
    for (const [field, get] of SECRET_FIELDS) {
      const v = get(p);
      if (typeof v === 'string' && v !== '' && !ENV_REF.test(v)) {
        problems.push(`providers[${i}].${field}: write secrets as environment references (${field}: "\${${String(p.name ?? 'PROVIDER').toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_${SECRET_ENV_SUFFIX[field]}}"), not in the file`);
      }
      ENV_REF.lastIndex = 0;
    }
  });
  for (const field of COMPLIANCE_SECRET_FIELDS) {
    const [section, key] = field.split('.');
    const v = isObject(source[section]) ? (source[section] as Record<string, unknown>)[key] : undefined;
    if (typeof v === 'string' && v !== '' && !ENV_REF.test(v)) {
      problems.push(`${field}: write secrets as environment references (${key}: "\${MAILOVER_${section.toUpperCase()}_KEY}"), not in the file`);
    }
    ENV_REF.lastIndex = 0;
  }
  return problems;
}

export function parseConfig(source: unknown, env: NodeJS.ProcessEnv = process.env, origin = 'config'): MailoverConfig {
  const missing: string[] = [];
  const resolved = resolveEnv(source ?? {}, '', env, missing);
  const problems: string[] = [...literalSecrets(source), ...missing];
  if (!isObject(resolved)) throw new ConfigError(`${origin}: expected a mapping at the top level`);
  const providers: ProviderDefinition[] = [];
  if (!Array.isArray(resolved.providers) || resolved.providers.length === 0) {
    problems.push('providers: expected a non-empty list of providers');
  } else {
    resolved.providers.forEach((p, i) => {
      const def = validateProvider(p, `providers[${i}]`, problems);
      if (def) providers.push(def);
    });
    const seen = new Set<string>();
    for (const p of providers) {
      if (seen.has(p.name)) problems.push(`providers: duplicate provider name '${p.name}'`);
      seen.add(p.name);
    }
  }
  const inFlight = resolved.inFlight ?? 'resend';
  if (inFlight !== 'resend' && inFlight !== 'hold') problems.push(`inFlight: expected resend or hold, got ${JSON.stringify(inFlight)}`);
  const compliance = parseComplianceSettings(resolved, problems);
  if (problems.length) throw new ConfigError(`${origin}: ${problems.join('; ')}`);
  return { providers, inFlight: inFlight as InFlightPolicy, compliance };
}

export function loadConfig(path = process.env.MAILOVER_CONFIG ?? './mailover.yaml', env: NodeJS.ProcessEnv = process.env): MailoverConfig {
  const doc = readYamlFile(path, 'config file', (m) => new ConfigError(m));
  return parseConfig(doc, env, path);
}

/** Just the provider names of a config file (for commands that only start or steer campaigns and never need the secrets). */
export function loadProviderNames(path: string): string[] {
  const doc = readYamlFile(path, 'config file', (m) => new ConfigError(m));
  const providers = isObject(doc) && Array.isArray(doc.providers) ? doc.providers : [];
  const names = providers.map((p) => (isObject(p) && typeof p.name === 'string' ? p.name : '')).filter(Boolean);
  if (!names.length) throw new ConfigError(`${path}: providers: expected a non-empty list of providers with names`);
  return names;
}
