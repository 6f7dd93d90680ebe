/**
 * One request to SendGrid's v3 API through @sendgrid/client (SendGrid's own client), answered as
 * status, headers and body whatever the status: the callers classify (./errors.ts). A request
 * that got no answer at all throws the client's network error (its `code` says which).
 */
import { Client } from '@sendgrid/client';
import type { SendGridAnswer } from './errors';

export const SENDGRID_REGIONS = { global: 'https://api.sendgrid.com', eu: 'https://api.eu.sendgrid.com' } as const;

export interface SendGridApiConfig {
  apiKey: string;
  /** API base URL; default from region (global). */
  url?: string;
  region?: keyof typeof SENDGRID_REGIONS;
}

export interface SendGridRequest {
  method: 'GET' | 'POST';
  /** Path from the base URL: `/v3/mail/send`. */
  url: string;
  qs?: Record<string, string | number>;
  body?: unknown;
}

export function sendGridBaseUrl(config: SendGridApiConfig): string {
  return (config.url ?? SENDGRID_REGIONS[config.region ?? 'global']).replace(/\/+$/, '');
}

function plainHeaders(h: unknown): Record<string, unknown> {
  if (!h || typeof h !== 'object') return {};
  const json = (h as { toJSON?: () => unknown }).toJSON;
  const obj = (typeof json === 'function' ? json.call(h) : h) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k.toLowerCase(), v]));
}

/**
 * Sends one request with the key as a Bearer token. `timeoutMs` bounds the whole request; `signal`
 * cancels it (an attempt cancelled by Temporal).
 */
export async function sendGridRequest(
  config: SendGridApiConfig,
  req: SendGridRequest,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<SendGridAnswer> {
  // One client per request: its defaults carry this request's timeout and cancellation.
  const client = new Client();
  client.setApiKey(config.apiKey);
  client.setDefaultRequest('baseUrl', sendGridBaseUrl(config));
  // axios options the client passes through (its typings name only some of them).
  client.setDefaultRequest({ timeout: opts.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) } as unknown as Parameters<
    Client['setDefaultRequest']
  >[0]);
  try {
    const [response, body] = await client.request({
      method: req.method,
      url: req.url,
      ...(req.qs ? { qs: req.qs } : {}),
      ...(req.body !== undefined ? { body: req.body } : {}),
    });
    return { status: response.statusCode, headers: plainHeaders(response.headers), body };
  } catch (err) {
    const response = (err as { response?: { headers?: unknown; body?: unknown } }).response;
    const status = (err as { code?: unknown }).code;
    // @sendgrid/client's ResponseError: an HTTP answer of 400 or more (`code` is the status).
    if (response && typeof status === 'number') return { status, headers: plainHeaders(response.headers), body: response.body };
    throw err;
  }
}
