/**
 * The compliance HTTP server run by `mailover webhooks` (and `mailover dev`):
 *
 *   POST /webhooks/<provider>   event webhooks of a provider whose kind has them (its module's
 *                               `webhooks`, src/providers/) and that has a signing key configured:
 *                               body and signature read by the module; forged, stale (outside
 *                               webhooks.maxAgeSeconds) and replayed (token seen before, remembered
 *                               in the store; spent once its signature checks out, whatever follows)
 *                               requests refused with 4xx; delivered / failed /
 *                               complained / unsubscribed stored as events, linked to their ledger
 *                               row; hard bounces, complaints and unsubscribes suppress the address
 *                               at once.
 *   GET  /u/<token>             a small page asking to confirm the unsubscribe (a link scanner's
 *                               GET changes nothing), whose button POSTs:
 *   POST /u/<token>             unsubscribes at once: RFC 8058 one-click (`List-Unsubscribe=One-Click`)
 *                               or the page's button; idempotent. A forged or altered token is refused (403),
 *                               a badly percent-encoded one (`/u/%E0%A4%A`) with 400.
 *   GET  /metrics               counters (Prometheus text, ./metrics.ts): accepted and refused requests
 *                               by reason, delivery events stored by provider and type, and the bounce
 *                               listener's (mailover_bounce_*_total) when it runs beside.
 *   GET  /healthz               `ok`.
 *
 * Bodies over webhooks.maxBodyBytes are refused with 413 before they are read in full. Every
 * response says `X-Content-Type-Options: nosniff`; the HTML pages also carry a
 * Content-Security-Policy (nothing loaded, no script, never framed) and `X-Frame-Options: DENY`.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { WebhookBodyError, type ParsedWebhook, type ProviderDefinitionBase, type WebhookSupport } from '../providers/provider-module';
import type { DeliveryEventInput, DeliveryEventType, Store } from '../store/types';
import { escapeHtml } from '../template';
import { counterText, DeliveryEventCounts, SERVER_COUNTER_HELP, snakeCase } from './metrics';
import type { UnsubscribeSettings, WebhookSettings } from './settings';
import { applyUnsubscribe, UNSUBSCRIBE_PATH } from './unsubscribe';
import { verifyUnsubscribeToken } from './tokens';

export interface ComplianceServerOptions {
  store: Store;
  webhooks: WebhookSettings;
  unsubscribe?: UnsubscribeSettings;
  /** Providers whose webhooks are taken, by provider name (see providerWebhooks in ./services). */
  providerWebhooks: Map<string, ProviderWebhook>;
  /** Override the port of `webhooks` (0: any free port). */
  port?: number;
  /** Delivery events stored, shared with the bounce listener (./services); a fresh one when absent. */
  events?: DeliveryEventCounts;
}

/** One provider's webhooks: its kind's reader and the key its requests are signed with. */
export interface ProviderWebhook {
  signingKey: string;
  webhooks: WebhookSupport;
  /** The provider's definition, handed to its reader (absent: the reader's defaults). */
  config?: ProviderDefinitionBase;
}

/** Event types that put the address on the suppression list at once. */
const SUPPRESSING: ReadonlySet<DeliveryEventType> = new Set(['failed-permanent', 'complained', 'unsubscribed']);

function suppressionReason(e: DeliveryEventInput): string {
  const what = e.type === 'failed-permanent' ? 'hard bounce' : e.type === 'complained' ? 'complaint' : 'unsubscribed';
  return `${what} (${e.provider}): ${e.reason}`.slice(0, 500);
}

export const COUNTERS = [
  'webhook_accepted',
  'webhook_ignored',
  'webhook_refused_forged',
  'webhook_refused_stale',
  'webhook_refused_replayed',
  'webhook_refused_malformed',
  'webhook_refused_too_large',
  'webhook_refused_unknown_provider',
  'webhook_failed',
  'suppressed_by_webhook',
  'unsubscribe_one_click',
  'unsubscribe_confirmed',
  'unsubscribe_page_shown',
  'unsubscribe_refused',
  'request_failed',
] as const;
export type Counter = (typeof COUNTERS)[number];

class TooLarge extends Error {}

export class ComplianceServer {
  readonly counts: Record<Counter, number> = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>;
  readonly events: DeliveryEventCounts;
  private readonly extraCounters: Array<{ prefix: string; read: () => Record<string, number>; help: Record<string, string> }> = [];
  private readonly http: http.Server;
  private _port = 0;

  private constructor(private readonly opts: ComplianceServerOptions) {
    this.events = opts.events ?? new DeliveryEventCounts();
    this.http = http.createServer((req, res) => {
      this.route(req, res).catch(() => {
        this.count('request_failed');
        if (!res.headersSent) text(res, 500, 'internal error');
        else res.destroy();
      });
    });
    // Slow clients cannot hold a connection open forever.
    this.http.requestTimeout = 30_000;
    this.http.headersTimeout = 10_000;
  }

  static async start(opts: ComplianceServerOptions): Promise<ComplianceServer> {
    const server = new ComplianceServer(opts);
    const host = opts.webhooks.host;
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', reject);
      server.http.listen(opts.port ?? opts.webhooks.port, host, () => {
        server.http.off('error', reject);
        resolve();
      });
    });
    server._port = (server.http.address() as net.AddressInfo).port;
    return server;
  }

  get port(): number {
    return this._port;
  }

  get url(): string {
    const host = this.opts.webhooks.host === '0.0.0.0' || this.opts.webhooks.host === '::' ? '127.0.0.1' : this.opts.webhooks.host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this._port}`;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
  }

  private count(c: Counter): void {
    this.counts[c]++;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/healthz' && req.method === 'GET') return text(res, 200, 'ok');
    if (path === '/metrics' && req.method === 'GET') return text(res, 200, this.metrics(), 'text/plain; version=0.0.4');
    const hook = /^\/webhooks\/([A-Za-z0-9_.-]+)\/?$/.exec(path);
    if (hook) {
      if (req.method !== 'POST') return text(res, 405, 'POST only', 'text/plain', { allow: 'POST' });
      return this.webhook(req, res, hook[1]);
    }
    if (path.startsWith(UNSUBSCRIBE_PATH)) {
      const token = decodePathPart(path.slice(UNSUBSCRIBE_PATH.length))?.replace(/\/+$/, '');
      if (token === undefined) {
        req.resume();
        this.count('unsubscribe_refused');
        return html(res, 400, 'Invalid link', '<p>This unsubscribe link is not valid (it is not correctly encoded). Please use the link from the email.</p>');
      }
      if (req.method === 'GET' || req.method === 'HEAD') return this.unsubscribePage(res, token);
      if (req.method === 'POST') return this.unsubscribe(req, res, token);
      return text(res, 405, 'GET or POST', 'text/plain', { allow: 'GET, POST' });
    }
    req.resume();
    text(res, 404, 'not found');
  }

  /**
   * Adds another component's counters to GET /metrics, as `mailover_<prefix>_<name>_total`
   * (camelCase names in snake case) with `help[name]` as HELP: the bounce listener's, beside this server's own.
   */
  addCounters(prefix: string, read: () => Record<string, number>, help: Record<string, string>): void {
    this.extraCounters.push({ prefix, read, help });
  }

  private metrics(): string {
    const blocks = COUNTERS.map((c) => counterText(`mailover_${c}_total`, SERVER_COUNTER_HELP[c], [{ value: this.counts[c] }]));
    blocks.push(this.events.text());
    for (const { prefix, read, help } of this.extraCounters) {
      for (const [name, value] of Object.entries(read())) {
        blocks.push(counterText(`mailover_${prefix}_${snakeCase(name)}_total`, help[name] ?? `${prefix} ${snakeCase(name).replace(/_/g, ' ')}.`, [{ value }]));
      }
    }
    return blocks.join('\n') + '\n';
  }

  private async readBody(req: http.IncomingMessage): Promise<Buffer> {
    const max = this.opts.webhooks.maxBodyBytes;
    if (Number(req.headers['content-length'] ?? 0) > max) throw new TooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw new TooLarge();
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  /** Refuse a too-large body: answer 413 and close (the rest is not read). */
  private tooLarge(res: http.ServerResponse): void {
    text(res, 413, `request body larger than ${this.opts.webhooks.maxBodyBytes} bytes`, 'text/plain', { connection: 'close' });
  }

  // ------------------------------------------------------------------ webhooks

  private async webhook(req: http.IncomingMessage, res: http.ServerResponse, provider: string): Promise<void> {
    const hook = this.opts.providerWebhooks.get(provider);
    if (!hook) {
      req.resume();
      this.count('webhook_refused_unknown_provider');
      return text(res, 404, `no provider '${provider}' with webhooks and a webhook signing key is configured`);
    }
    let parsed: ParsedWebhook;
    try {
      parsed = await hook.webhooks.parse(await this.readBody(req), hook.signingKey, req.headers, hook.config);
    } catch (err) {
      if (err instanceof TooLarge) {
        this.count('webhook_refused_too_large');
        return this.tooLarge(res);
      }
      this.count('webhook_refused_malformed');
      return text(res, 400, err instanceof WebhookBodyError ? err.message : 'expected a JSON body');
    }
    if (!parsed.signatureValid) {
      this.count('webhook_refused_forged');
      return text(res, 401, 'signature does not match');
    }
    const ageSeconds = Math.abs(Date.now() / 1000 - parsed.signedAtSeconds);
    if (ageSeconds > this.opts.webhooks.maxAgeSeconds) {
      this.count('webhook_refused_stale');
      return text(res, 400, `stale request: signed ${Math.round(ageSeconds)} s from now (window ${this.opts.webhooks.maxAgeSeconds} s)`);
    }
    const { store } = this.opts;
    const forgetBefore = new Date(Date.now() - 2 * this.opts.webhooks.maxAgeSeconds * 1000);
    // From here the token is spent, whatever follows (a 400 for its event data, a 503 when storing
    // fails): the signature covers timestamp and token, not the body, so a token given back would
    // let a captured signature carry any body once more.
    if (!(await store.rememberWebhookToken(provider, parsed.token, forgetBefore))) {
      this.count('webhook_refused_replayed');
      return text(res, 409, 'replayed request: this token was seen before');
    }
    try {
      // One event per request, or a batch of them (SendGrid): all read before any is stored.
      const events = parsed.events ? parsed.events(provider) : [parsed.event(provider)].filter((e): e is DeliveryEventInput => e !== null);
      if (!events.length) {
        this.count('webhook_ignored');
        return text(res, 200, `ignored event ${JSON.stringify(parsed.eventName)}`);
      }
      const said: string[] = [];
      for (const event of events) {
        const suppress = SUPPRESSING.has(event.type) ? { reason: suppressionReason(event), source: provider } : undefined;
        const result = await store.recordEvent(event, suppress);
        if (result.recorded) this.events.count(event.provider, event.type);
        if (result.suppressed) this.count('suppressed_by_webhook');
        said.push(`recorded ${event.type}${result.linked ? '' : ' (no ledger row matched)'}${result.suppressed ? '; suppressed' : ''}`);
      }
      this.count('webhook_accepted');
      return text(res, 200, said.join('\n'));
    } catch (err) {
      if (err instanceof WebhookBodyError) {
        this.count('webhook_refused_malformed');
        return text(res, 400, err.message);
      }
      this.count('webhook_failed');
      return text(res, 503, 'could not store the event; retry later');
    }
  }

  // ------------------------------------------------------------------ unsubscribe

  private unsubscribePage(res: http.ServerResponse, token: string): void {
    const s = this.opts.unsubscribe;
    const target = s ? verifyUnsubscribeToken(s.signingKey, token) : null;
    if (!s || !target) {
      this.count('unsubscribe_refused');
      return html(res, 403, 'Invalid link', '<p>This unsubscribe link is not valid (it may have been altered). Please use the link from the email.</p>');
    }
    this.count('unsubscribe_page_shown');
    html(
      res,
      200,
      'Unsubscribe',
      `<p>Stop sending email to <b>${escapeHtml(maskAddress(target.email))}</b>?</p>` +
        `<form method="post"><input type="hidden" name="confirm" value="yes"><button type="submit">Unsubscribe</button></form>`,
    );
  }

  private async unsubscribe(req: http.IncomingMessage, res: http.ServerResponse, token: string): Promise<void> {
    let body: string;
    try {
      body = (await this.readBody(req)).toString('utf8');
    } catch (err) {
      if (err instanceof TooLarge) return this.tooLarge(res);
      throw err;
    }
    const s = this.opts.unsubscribe;
    const form = new URLSearchParams(body);
    const oneClick = form.get('List-Unsubscribe') === 'One-Click';
    const outcome = s ? await applyUnsubscribe(this.opts.store, s, token, oneClick ? 'one-click' : 'link') : null;
    if (!outcome) {
      this.count('unsubscribe_refused');
      return html(res, 403, 'Invalid link', '<p>This unsubscribe link is not valid (it may have been altered).</p>');
    }
    this.count(oneClick ? 'unsubscribe_one_click' : 'unsubscribe_confirmed');
    if (oneClick) return text(res, 200, 'unsubscribed');
    html(
      res,
      200,
      'Unsubscribed',
      `<p><b>${escapeHtml(maskAddress(outcome.target.email))}</b> will get no more email${outcome.scope === 'all' ? '' : ' from this list'}.</p>`,
    );
  }
}

/** `ann@example.com` -> `a**@example.com`: the page shows whose link it is without spelling it out. */
export function maskAddress(email: string): string {
  const at = email.lastIndexOf('@');
  if (at <= 0) return email;
  return `${email[0]}${'*'.repeat(Math.min(at - 1, 8))}${email.slice(at)}`;
}

/** A percent-encoded path segment decoded, or undefined when its encoding is broken (`%E0%A4%A`). */
function decodePathPart(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/** Every response: the browser takes the content type as sent, never sniffs another. */
function text(res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

const PAGE_STYLE = 'body{font-family:sans-serif;max-width:32em;margin:3em auto}';
/**
 * The pages load nothing, run no script, post their form only back here and are never framed
 * (a framed unsubscribe button could be clicked for the recipient): their one style sheet is
 * allowed by its hash.
 */
const PAGE_HEADERS = {
  'content-security-policy': `default-src 'none'; style-src 'sha256-${createHash('sha256').update(PAGE_STYLE).digest('base64')}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

function html(res: http.ServerResponse, status: number, title: string, content: string): void {
  const page = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title><style>${PAGE_STYLE}</style></head><body>${content}</body></html>`;
  text(res, status, page, 'text/html; charset=utf-8', PAGE_HEADERS);
}
