/**
 * One ESP as mailover knows it. Everything about a kind of provider lives in its own folder,
 * src/providers/<kind>/, and is reached only through the ProviderModule that folder exports:
 * how its definition in the config file is checked, its sending adapter (./provider.ts's
 * Provider, look-ups included), and optionally its webhooks, its own suppression lists and a
 * local emulator of its API. ./modules.ts lists the modules; nothing outside src/providers/
 * names a kind. Adding an ESP is one folder (and its tests) plus its line in ./modules.ts, or
 * `registerProviderModule(module)` at run time.
 */
import type { RateLimit } from '../config';
import type { QuotaSettings, WarmupSettings } from '../quota';
import type { DeliveryEventInput, Store } from '../store/types';
import type { Provider } from './provider';

/** What every provider definition has, whatever its kind (checked by src/config.ts for all kinds). */
export interface ProviderDefinitionBase {
  name: string;
  kind: string;
  /** The ESP plan's sending limits; held across all campaigns and all workers. */
  rateLimit?: RateLimit;
  /** Quotas per hour and day (and a per-second pace) on the provider's clock; shared by every worker through the store. */
  quota?: QuotaSettings;
  /** A daily warm-up ramp (src/quota.ts). */
  warmup?: WarmupSettings;
}

/**
 * A field of a definition that holds a secret (`auth.pass`, `apiKey`): in the file it must be an
 * environment reference (`${NAME}`), never the secret itself. `envSuffix` names the variable
 * suggested in that message: `<PROVIDER NAME>_<envSuffix>`.
 */
export interface SecretField {
  /** Dotted path within the definition. */
  path: string;
  envSuffix: string;
}

export interface ProviderModule<C extends ProviderDefinitionBase = ProviderDefinitionBase, E extends EspEmulator = EspEmulator> {
  /** The `kind:` of its definitions in the config file. */
  readonly kind: string;
  /** How people call it in messages: 'SMTP relay', 'Mailgun'. */
  readonly title: string;
  /**
   * Checks a definition's own settings, after environment references were resolved (`name`,
   * `kind` and `rateLimit` are checked by src/config.ts for every kind). Each problem is pushed
   * naming its field by path (`${path}.port: expected a port 1-65535, got 99999`); the value
   * returned is used only when no problem was pushed.
   */
  parseConfig(raw: Record<string, unknown>, path: string, problems: string[]): C;
  /** Its fields that hold secrets (checked in the file before references are resolved). */
  readonly secrets: readonly SecretField[];
  /**
   * The sending adapter of one configured provider. Its look-up of messages left in flight, when
   * the ESP can be asked, is the Provider's own `lookup`.
   */
  create(config: C): Provider;
  /** Event webhooks the ESP posts (delivered, bounced, complained, unsubscribed), signed. */
  readonly webhooks?: WebhookSupport<C>;
  /** Suppression lists the ESP keeps itself, synced with mailover's one list. */
  readonly suppressions?: SuppressionSupport<C>;
  /** A local stand-in for the ESP's API, for `mailover dev`, the demo, the tests and the bench. */
  readonly emulator?: EmulatorSupport<C, E>;
}

// ---------------------------------------------------------------------------------------
// Webhooks

/** A webhook body that cannot be taken; the message (400) names what is wrong. */
export class WebhookBodyError extends Error {
  override readonly name = 'WebhookBodyError';
}

export interface WebhookSupport<C extends ProviderDefinitionBase = ProviderDefinitionBase> {
  /** The key this provider's webhooks are signed with; undefined when they are not taken. */
  signingKey(config: C): string | undefined;
  /**
   * Reads one webhook request's body (throws WebhookBodyError naming what is wrong) and checks
   * its signature with the key. Stores nothing: the compliance server refuses forged, stale and
   * replayed requests, then records the event. `headers` (lower-case names, as Node gives them):
   * for ESPs whose proof is in a header (HTTP basic auth as Postmark, a signature header as SendGrid).
   * May answer a promise (an ESP whose signature check fetches a certificate: SES through SNS).
   * `config`: the provider's definition, when the caller has it (SES reads `sns.certificateHosts`).
   */
  parse(body: Buffer, signingKey: string, headers: WebhookHeaders, config?: C): ParsedWebhook | Promise<ParsedWebhook>;
}

/** A webhook request's headers, lower-case names (Node's IncomingHttpHeaders). */
export type WebhookHeaders = Readonly<Record<string, string | string[] | undefined>>;

export interface ParsedWebhook {
  /** Whether the signature matches the signing key. */
  signatureValid: boolean;
  /** When the ESP signed it, epoch seconds (outside webhooks.maxAgeSeconds it is stale). */
  signedAtSeconds: number;
  /** Unique per request: remembered for a while so a replayed request is refused. */
  token: string;
  /** The ESP's name for the event (the answer to an event mailover does not track names it). */
  eventName: unknown;
  /** The delivery event it reports, or null for one mailover does not track. Throws WebhookBodyError. */
  event(provider: string): DeliveryEventInput | null;
  /**
   * For ESPs that post several events in one request (SendGrid): every event mailover tracks, in
   * order (throws WebhookBodyError). When present, the server records these instead of `event`.
   */
  events?(provider: string): DeliveryEventInput[];
}

// ---------------------------------------------------------------------------------------
// Suppression lists

/** What a pull or a push did; `summary` is the line `mailover suppress sync|push` prints. */
export interface SuppressionSyncReport {
  summary: string;
}

export interface SuppressionSupport<C extends ProviderDefinitionBase = ProviderDefinitionBase> {
  /** The ESP's own lists, as its users know them (for help texts): 'bounces, unsubscribes, complaints'. */
  readonly lists: string;
  /** Adds what the ESP's lists hold to mailover's suppression list (so every provider sends by it). */
  pull(store: Store, config: C): Promise<SuppressionSyncReport>;
  /** Puts mailover's suppression list on the ESP's lists. */
  push(store: Store, config: C): Promise<SuppressionSyncReport>;
}

// ---------------------------------------------------------------------------------------
// Local emulators

/** One message an emulator accepted, for one recipient. */
export interface ReceivedMessage {
  to: string;
  /** The envelope sender (Return-Path) where the ESP has one, else the From header. */
  from: string;
  /** Lower-case header names. */
  headers: Record<string, string>;
}

/**
 * A running local stand-in for an ESP (loopback only, everything in memory). The optional
 * controls are what the demo, the dev stack and the bench drive without knowing the kind.
 */
export interface EspEmulator {
  readonly name: string;
  /** Where its clients reach it, as people write it: `127.0.0.1:2525`, `http://127.0.0.1:8080`. */
  readonly endpoint: string;
  /** Its TCP port, when it listens on one. */
  readonly port?: number;
  /** Messages accepted so far (one per recipient). */
  readonly acceptedCount: number;
  /** Accepted messages, one per recipient, in acceptance order. */
  received(): ReceivedMessage[];
  /** Per recipient address (lower case), how many messages it accepted. */
  countByRecipient(): Map<string, number>;
  /** Emits 'message' for each accepted message. */
  on?(event: 'message', listener: (...args: unknown[]) => void): unknown;
  /** Answers each message only after `ms` (a slow ESP). */
  setLatency?(ms: number): void;
  /** Refuses these recipients for good (no such mailbox: a hard bounce). */
  bounceRecipients?(addresses: string[]): void;
  /** Goes down (an outage: it takes no more messages) after `n` more accepted messages; 0: now. */
  goDownAfter?(n: number): void | Promise<void>;
  /** Clears every fault. */
  heal?(): void | Promise<void>;
  /** ESPs with webhooks: where its events are posted, signed with this key (null: nowhere). */
  setWebhook?(url: string | null, signingKey?: string): void;
  /** ESPs with webhooks: the recipient of an accepted message marked it as spam; posted to the webhook. */
  reportComplaint?(recipient: string): Promise<{ webhookStatus?: number }>;
  stop(): Promise<void>;
}

export interface EmulatorStartOptions {
  /** The provider name it stands in for (its messages and errors name it). */
  name: string;
  /** TCP port on 127.0.0.1; 0 or absent: any free port. */
  port?: number;
  /**
   * What its clients must present: a user and password (SMTP AUTH), or an API key as `pass`
   * where the ESP has no user name. Absent: the emulator's default (none, or a fake key).
   */
  credentials?: { user: string; pass: string };
}

export interface EmulatorSupport<C extends ProviderDefinitionBase = ProviderDefinitionBase, E extends EspEmulator = EspEmulator> {
  /** What it is, for people: 'an SMTP inbox', 'a Mailgun-compatible API'. */
  readonly description: string;
  /** Starts one on loopback, with fake credentials of its own unless the options give some. */
  start(opts: EmulatorStartOptions): Promise<E>;
  /**
   * The provider definition that sends through this emulator (secrets as values, as after
   * resolving the file's references). `webhookSigningKey`: the key its webhooks are signed with,
   * for an ESP with webhooks.
   */
  config(emulator: E, opts?: { webhookSigningKey?: string }): C;
}

// ---------------------------------------------------------------------------------------
// Helpers for modules and for whoever writes provider files

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value at a dotted path of a definition (undefined when any part is missing). */
export function fieldAt(def: unknown, path: string): unknown {
  let v: unknown = def;
  for (const key of path.split('.')) {
    if (!isObject(v)) return undefined;
    v = v[key];
  }
  return v;
}

/** A copy of the definition with the value at a dotted path replaced (parents must exist). */
export function withFieldAt<T>(def: T, path: string, value: unknown): T {
  const [key, ...rest] = path.split('.');
  const obj = def as Record<string, unknown>;
  if (!rest.length) return { ...obj, [key]: value } as T;
  return { ...obj, [key]: withFieldAt(obj[key], rest.join('.'), value) } as T;
}
