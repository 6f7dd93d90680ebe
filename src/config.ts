/**
 * Worker configuration: the providers it can send through and how it treats rows
 * found in flight after a crash. Read from YAML (MAILOVER_CONFIG, default ./mailover.yaml).
 * Secrets are only ever references to environment variables: `${MAILGUN_API_KEY}`.
 */
import { readYamlFile } from './yaml-file';
import { findProviderModule, providerKinds, secretFields, type ProviderDefinition } from './providers/modules';
import { fieldAt } from './providers/provider-module';
import { DEFAULT_HEALTH_SETTINGS, type HealthSettings } from '../workflows/provider-health-api';
import { parseDrillSettings, type DrillSettings } from './drill-settings';
import { OPS_EVENT_KINDS, type OpsEventKind } from './ops-events';
import { COMPLIANCE_SECRET_FIELDS, parseComplianceSettings, type ComplianceSettings } from './compliance/settings';
import { quote } from './quote-value';
import { parseReputationSettings, type ReputationSettings } from './reputation';
import { parseQuota, parseWarmup, type ProviderQuotaFields } from './quota';

export type InFlightPolicy = 'resend' | 'hold';

/** An ESP plan's sending limits; held across all campaigns and all workers (through the store). */
export interface RateLimit {
  /** Messages per second at most. */
  perSecond?: number;
  /** At most `max` messages in any sliding window of `windowMs` (e.g. 10,000 per hour). */
  perWindow?: { max: number; windowMs: number };
}

/** A provider's definition; its kind's module (src/providers/modules.ts) checks its own settings. */
export type { ProviderDefinition };

export const ALERT_KINDS = ['slack', 'webhook'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** Where operational events (src/ops-events.ts) are posted. `url` is a secret: only ever an environment reference in the file. */
export interface AlertTarget {
  /** Label used in logs and metrics (the URL never is). */
  name: string;
  /** slack: Slack-compatible `{ text, blocks }`; webhook: generic JSON `{ event, text, severity, at }`. */
  kind: AlertKind;
  url: string;
  /** Event kinds sent to this target (default: all). */
  events: OpsEventKind[];
  /** Per request. Default 5000. */
  timeoutMs: number;
}

export const DEFAULT_ALERT_TIMEOUT_MS = 5_000;

/** The worker's Prometheus endpoint (off unless configured here or by MAILOVER_METRICS_PORT). */
export interface MetricsConfig {
  /** 0 = any free port (printed at start). */
  port: number;
  /** Default 0.0.0.0. */
  host: string;
}

export interface MailoverConfig {
  providers: ProviderDefinition[];
  /** What to do with rows found in state `sending` after a crash when the provider cannot look messages up. */
  inFlight: InFlightPolicy;
  /** Shared provider health: circuit breaker thresholds, failback, the half-open probe. */
  health: HealthConfig;
  /** Failover drills (`drills:`); absent when not configured. */
  drills?: DrillSettings;
  /** Alert targets (empty: events are only logged). */
  alerts: AlertTarget[];
  metrics?: MetricsConfig;
  /** unsubscribe:, webhooks:, bounces: (docs/compliance.md). */
  compliance: ComplianceSettings;
  /** The reputation breaker's thresholds and window (`reputation:`, src/reputation.ts); defaults when absent. */
  reputation: ReputationSettings;
}

export interface HealthConfig extends HealthSettings {
  /** The half-open probe sends one small message from `from` to `to`; without it the probe only checks the connection. */
  probe?: { to: string; from: string };
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
    problems.push(`${path}.name: expected a provider name (letters, digits, _ . -), got ${quote(name)}`);
  }
  if (raw.rateLimit !== undefined) validateRateLimit(raw.rateLimit, `${path}.rateLimit`, problems);
  const quota = raw.quota !== undefined ? parseQuota(raw.quota, `${path}.quota`, problems) : undefined;
  const warmup = raw.warmup !== undefined ? parseWarmup(raw.warmup, `${path}.warmup`, problems) : undefined;
  const module = findProviderModule(raw.kind);
  if (module) {
    const def = module.parseConfig(raw, path, problems) as ProviderDefinition;
    return { ...def, ...(quota ? { quota } : {}), ...(warmup ? { warmup } : {}) } as ProviderDefinition;
  }
  problems.push(`${path}.kind: expected one of ${providerKinds().join(', ')}, got ${quote(raw.kind)}`);
  return undefined;
}

const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

function validateRateLimit(raw: unknown, path: string, problems: string[]): void {
  if (!isObject(raw)) {
    problems.push(`${path}: expected a mapping with perSecond and/or perWindow: { max, windowMs }`);
    return;
  }
  for (const key of Object.keys(raw))
    if (key !== 'perSecond' && key !== 'perWindow') problems.push(`${path}.${key}: unknown setting (expected perSecond, perWindow)`);
  if (raw.perSecond !== undefined && !isPositiveInt(raw.perSecond))
    problems.push(`${path}.perSecond: expected a whole number of messages above 0, got ${quote(raw.perSecond)}`);
  if (raw.perWindow !== undefined) {
    const w = raw.perWindow;
    if (!isObject(w) || !isPositiveInt(w.max) || !isPositiveInt(w.windowMs)) {
      problems.push(`${path}.perWindow: expected { max: messages, windowMs: milliseconds } with whole numbers above 0, got ${quote(w)}`);
    }
  }
  if (raw.perSecond === undefined && raw.perWindow === undefined) problems.push(`${path}: set perSecond, perWindow or both`);
}

function validateHealth(raw: unknown, problems: string[]): HealthConfig {
  if (raw === undefined) return { ...DEFAULT_HEALTH_SETTINGS };
  if (!isObject(raw)) {
    problems.push('health: expected a mapping (consecutiveFailures, failureRate, cooldownMs, maxCooldownMs, failback, probe)');
    return { ...DEFAULT_HEALTH_SETTINGS };
  }
  const known = ['consecutiveFailures', 'failureRate', 'cooldownMs', 'maxCooldownMs', 'failback', 'probe'];
  for (const key of Object.keys(raw)) if (!known.includes(key)) problems.push(`health.${key}: unknown setting (expected ${known.join(', ')})`);
  const out: HealthConfig = { ...DEFAULT_HEALTH_SETTINGS };
  const int = (key: 'consecutiveFailures' | 'cooldownMs' | 'maxCooldownMs', min: number) => {
    const v = raw[key];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) problems.push(`health.${key}: expected a whole number of at least ${min}, got ${quote(v)}`);
    else out[key] = v;
  };
  int('consecutiveFailures', 1);
  int('cooldownMs', 100);
  int('maxCooldownMs', 100);
  if (raw.failureRate !== undefined) {
    const r = raw.failureRate;
    if (
      !isObject(r) ||
      typeof r.threshold !== 'number' ||
      !(r.threshold > 0 && r.threshold <= 1) ||
      !isPositiveInt(r.window) ||
      (r.minReports !== undefined && !isPositiveInt(r.minReports))
    ) {
      problems.push(`health.failureRate: expected { threshold: 0 < t <= 1, window: outcomes, minReports: outcomes }, got ${quote(r)}`);
    } else {
      out.failureRate = { threshold: r.threshold, window: r.window, minReports: (r.minReports as number | undefined) ?? r.window };
    }
  }
  if (raw.failback !== undefined) {
    if (raw.failback !== 'auto' && raw.failback !== 'manual') problems.push(`health.failback: expected auto or manual, got ${quote(raw.failback)}`);
    else out.failback = raw.failback;
  }
  if (raw.probe !== undefined) {
    const p = raw.probe;
    const email = /^[^\s@<>]+@[^\s@<>]+$/;
    if (!isObject(p) || typeof p.to !== 'string' || !email.test(p.to) || typeof p.from !== 'string' || !/@/.test(p.from)) {
      problems.push(`health.probe: expected { to: an address you own, from: a sender address }, got ${quote(p)}`);
    } else {
      out.probe = { to: p.to, from: p.from };
    }
  }
  return out;
}

function literalSecrets(source: unknown): string[] {
  if (!isObject(source)) return [];
  const problems: string[] = [];
  if (Array.isArray(source.alerts)) {
    source.alerts.forEach((a, i) => {
      if (!isObject(a) || typeof a.url !== 'string' || a.url === '') return;
      if (!ENV_REF.test(a.url)) {
        const ref = `${String(a.name ?? 'ALERT')
          .toUpperCase()
          .replace(/[^A-Z0-9]+/g, '_')}_URL`;
        problems.push(`alerts[${i}].url: a webhook URL is a secret: write it as an environment reference (url: "\${${ref}}"), not in the file`);
      }
      ENV_REF.lastIndex = 0;
    });
  }
  if (!Array.isArray(source.providers)) return problems;
  // Fields that hold secrets (any module's, whatever the kind): in the file they must be
  // environment references, never the secret itself.
  const secrets = secretFields();
  source.providers.forEach((p, i) => {
    if (!isObject(p)) return;
    for (const { path: field, envSuffix } of secrets) {
      const v = fieldAt(p, field);
      if (typeof v === 'string' && v !== '' && !ENV_REF.test(v)) {
        problems.push(
          `providers[${i}].${field}: write secrets as environment references (${field}: "\${${String(p.name ?? 'PROVIDER')
            .toUpperCase()
            .replace(/[^A-Z0-9]+/g, '_')}_${envSuffix}}"), not in the file`,
        );
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

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function validateAlert(raw: unknown, path: string, problems: string[]): AlertTarget | undefined {
  if (!isObject(raw)) {
    problems.push(`${path}: expected a mapping with name, kind and url`);
    return undefined;
  }
  const known = ['name', 'kind', 'url', 'events', 'timeoutMs'];
  for (const key of Object.keys(raw)) if (!known.includes(key)) problems.push(`${path}.${key}: unknown field (expected ${known.join(', ')})`);
  const before = problems.length;
  if (typeof raw.name !== 'string' || !NAME_RE.test(raw.name)) problems.push(`${path}.name: expected a name (letters, digits, _ . -), got ${quote(raw.name)}`);
  if (!ALERT_KINDS.includes(raw.kind as AlertKind)) problems.push(`${path}.kind: expected one of ${ALERT_KINDS.join(', ')}, got ${quote(raw.kind)}`);
  // The resolved URL is a secret: the message names the field, never the value.
  if (typeof raw.url !== 'string' || !/^https?:\/\/[^\s/]+/.test(raw.url))
    problems.push(`${path}.url: expected an http(s) URL (from the environment variable it references)`);
  let events: OpsEventKind[] = [...OPS_EVENT_KINDS];
  if (raw.events !== undefined) {
    if (!Array.isArray(raw.events) || raw.events.length === 0) {
      problems.push(`${path}.events: expected a non-empty list of event kinds (${OPS_EVENT_KINDS.join(', ')})`);
    } else {
      raw.events.forEach((e, j) => {
        if (!OPS_EVENT_KINDS.includes(e as OpsEventKind))
          problems.push(`${path}.events[${j}]: unknown event kind ${quote(e)} (expected one of ${OPS_EVENT_KINDS.join(', ')})`);
      });
      events = [...new Set(raw.events as OpsEventKind[])];
    }
  }
  let timeoutMs = DEFAULT_ALERT_TIMEOUT_MS;
  if (raw.timeoutMs !== undefined) {
    if (typeof raw.timeoutMs !== 'number' || !Number.isInteger(raw.timeoutMs) || raw.timeoutMs < 100 || raw.timeoutMs > 120_000) {
      problems.push(`${path}.timeoutMs: expected a whole number from 100 to 120000, got ${quote(raw.timeoutMs)}`);
    } else timeoutMs = raw.timeoutMs;
  }
  if (problems.length > before) return undefined;
  return { name: raw.name as string, kind: raw.kind as AlertKind, url: raw.url as string, events, timeoutMs };
}

function validateMetrics(raw: unknown, problems: string[]): MetricsConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) {
    problems.push('metrics: expected a mapping { port, host }');
    return undefined;
  }
  for (const key of Object.keys(raw)) if (key !== 'port' && key !== 'host') problems.push(`metrics.${key}: unknown field (expected port, host)`);
  const port = raw.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)
    problems.push(`metrics.port: expected a port 0-65535 (0: any free port), got ${quote(port)}`);
  const host = raw.host ?? '0.0.0.0';
  if (typeof host !== 'string' || host === '' || /\s/.test(host))
    problems.push(`metrics.host: expected an address to listen on (e.g. 0.0.0.0 or 127.0.0.1), got ${quote(raw.host)}`);
  return { port: port as number, host: host as string };
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
  if (inFlight !== 'resend' && inFlight !== 'hold') problems.push(`inFlight: expected resend or hold, got ${quote(inFlight)}`);
  const health = validateHealth(resolved.health, problems);
  const drills = parseDrillSettings(
    resolved.drills,
    providers.map((p) => p.name),
    problems,
  );
  const alerts: AlertTarget[] = [];
  if (resolved.alerts !== undefined && resolved.alerts !== null) {
    if (!Array.isArray(resolved.alerts)) problems.push('alerts: expected a list of alert targets');
    else {
      resolved.alerts.forEach((a, i) => {
        const t = validateAlert(a, `alerts[${i}]`, problems);
        if (t) alerts.push(t);
      });
      const seen = new Set<string>();
      for (const t of alerts) {
        if (seen.has(t.name)) problems.push(`alerts: duplicate alert name '${t.name}'`);
        seen.add(t.name);
      }
    }
  }
  const metrics = validateMetrics(resolved.metrics, problems);
  const compliance = parseComplianceSettings(resolved, problems);
  const reputation = parseReputationSettings(resolved.reputation, problems);
  if (problems.length) throw new ConfigError(`${origin}: ${problems.join('; ')}`);
  return {
    providers,
    inFlight: inFlight as InFlightPolicy,
    health,
    alerts,
    compliance,
    reputation,
    ...(drills ? { drills } : {}),
    ...(metrics ? { metrics } : {}),
  };
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

/** Each provider's quotas and warm-up ramp from a config file (for `provider status`, which never needs the secrets). */
export function loadProviderQuotas(path: string): Array<{ name: string } & ProviderQuotaFields> {
  const doc = readYamlFile(path, 'config file', (m) => new ConfigError(m));
  const providers = isObject(doc) && Array.isArray(doc.providers) ? doc.providers : [];
  const problems: string[] = [];
  const out = providers.filter(isObject).map((p, i) => {
    const quota = p.quota !== undefined ? parseQuota(p.quota, `providers[${i}].quota`, problems) : undefined;
    const warmup = p.warmup !== undefined ? parseWarmup(p.warmup, `providers[${i}].warmup`, problems) : undefined;
    return { name: String(p.name ?? ''), ...(quota ? { quota } : {}), ...(warmup ? { warmup } : {}) };
  });
  if (problems.length) throw new ConfigError(`${path}: ${problems.join('; ')}`);
  return out;
}

/** The health settings of a config file (for the CLI, which starts health workflows without the secrets). */
export function loadHealthConfig(path: string): HealthConfig {
  const doc = readYamlFile(path, 'config file', (m) => new ConfigError(m));
  const problems: string[] = [];
  const health = validateHealth(isObject(doc) ? doc.health : undefined, problems);
  if (problems.length) throw new ConfigError(`${path}: ${problems.join('; ')}`);
  return health;
}
