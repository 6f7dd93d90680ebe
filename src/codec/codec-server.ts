/**
 * A Temporal codec server: POST /encode and POST /decode in Temporal's remote codec format
 * ({"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}), so the Temporal Web UI
 * and CLI can show what mailover encrypted, to people who hold the token.
 *
 * Auth: `Authorization: Bearer <token>` (the Temporal CLI's --codec-auth), or the token as the
 * endpoint's first path segment (`https://codec.example/<token>`, for the Web UI's per-browser
 * codec endpoint setting, which cannot send a fixed header). Anything else gets 401 and nothing
 * is decoded. CORS answers only the configured Web UI origins. Bodies over the limit get 413.
 */
import { createHash, timingSafeEqual } from 'crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'http';
import type { AddressInfo } from 'net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { PayloadDecryptionError } from './aes-gcm-codec';

export const CODEC_TOKEN_ENV = 'MAILOVER_CODEC_TOKEN';
export const MIN_TOKEN_LENGTH = 16;
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface CodecServerOptions {
  codec: PayloadCodec;
  token: string;
  /** Origins allowed to call from a browser (the Web UI's), e.g. http://localhost:8233. */
  uiOrigins: string[];
  host?: string;
  /** 0 = any free port. */
  port?: number;
  maxBodyBytes?: number;
}

export interface CodecServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export class CodecServerConfigError extends Error {
  override readonly name = 'CodecServerConfigError';
}

/** The token from MAILOVER_CODEC_TOKEN; refuses a missing or short one (never echoes it). */
export function codecTokenFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const token = env[CODEC_TOKEN_ENV];
  if (!token) throw new CodecServerConfigError(`${CODEC_TOKEN_ENV} is not set: the codec server needs a bearer token (e.g. \`openssl rand -hex 24\`)`);
  if (token.length < MIN_TOKEN_LENGTH || /\s|\//.test(token)) {
    throw new CodecServerConfigError(
      `${CODEC_TOKEN_ENV}: expected at least ${MIN_TOKEN_LENGTH} characters without spaces or '/' (e.g. \`openssl rand -hex 24\`)`,
    );
  }
  return token;
}

/** Checks a Web UI origin such as http://localhost:8233 (scheme, host, optional port; no path). */
export function parseOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CodecServerConfigError(`--ui-origin: expected an origin like http://localhost:8233, got '${value}'`);
  }
  if (!/^https?:$/.test(url.protocol) || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new CodecServerConfigError(`--ui-origin: expected an origin like http://localhost:8233 (no path), got '${value}'`);
  }
  return url.origin;
}

const digest = (s: string) => createHash('sha256').update(s).digest();
const sameToken = (given: string, expected: string) => timingSafeEqual(digest(given), digest(expected));

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
};

const ROUTE = /^(?:\/([^/]+))?\/(encode|decode)\/?$/;

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new HttpError(413, `request body over ${limit} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `request body over ${limit} bytes`));
        req.removeAllListeners('data');
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const b64 = (value: unknown, where: string): Buffer => {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) throw new HttpError(400, `${where}: expected a base64 string`);
  return Buffer.from(value, 'base64');
};

/** Temporal's proto3 JSON payloads (bytes as base64) to Payload objects. */
function payloadsFromJson(body: Buffer): Payload[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `body is not JSON: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || !Array.isArray((doc as { payloads?: unknown }).payloads))
    throw new HttpError(400, 'body: expected {"payloads": [...]}');
  return (doc as { payloads: unknown[] }).payloads.map((p, i) => {
    if (!p || typeof p !== 'object') throw new HttpError(400, `payloads[${i}]: expected an object with metadata and data`);
    const { metadata, data } = p as { metadata?: unknown; data?: unknown };
    if (metadata !== undefined && (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)))
      throw new HttpError(400, `payloads[${i}].metadata: expected an object`);
    return {
      metadata: Object.fromEntries(Object.entries((metadata ?? {}) as Record<string, unknown>).map(([k, v]) => [k, b64(v, `payloads[${i}].metadata.${k}`)])),
      data: data === undefined ? new Uint8Array() : b64(data, `payloads[${i}].data`),
    };
  });
}

function payloadsToJson(payloads: Payload[]): string {
  const enc = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString('base64');
  return JSON.stringify({
    payloads: payloads.map((p) => ({ metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, enc(v)])), data: enc(p.data) })),
  });
}

export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServer> {
  const origins = new Set(opts.uiOrigins.map(parseOrigin));
  const limit = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  const corsHeaders = (origin: string | undefined): Record<string, string> =>
    origin && origins.has(origin)
      ? {
          'Access-Control-Allow-Origin': origin,
          'Access-Control-Allow-Credentials': 'true',
          'Access-Control-Allow-Methods': 'POST, OPTIONS',
          'Access-Control-Allow-Headers': 'Authorization, Content-Type, X-Namespace',
          'Access-Control-Max-Age': '600',
          Vary: 'Origin',
        }
      : { Vary: 'Origin' };

  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body?: string) => {
    res.writeHead(status, { ...headers, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), 'Cache-Control': 'no-store' });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
    const cors = corsHeaders(origin);
    const route = ROUTE.exec(new URL(req.url ?? '/', 'http://codec').pathname);
    if (!route) return send(res, 404, cors, JSON.stringify({ error: 'not found: use POST /encode or POST /decode' }));
    if (origin && !origins.has(origin))
      return send(res, 403, cors, JSON.stringify({ error: `origin ${origin} is not allowed (start the codec server with --ui-origin ${origin})` }));
    if (req.method === 'OPTIONS') return send(res, 204, cors);
    if (req.method !== 'POST') return send(res, 405, { ...cors, Allow: 'POST, OPTIONS' }, JSON.stringify({ error: 'use POST' }));

    const auth = req.headers.authorization;
    const bearer = typeof auth === 'string' && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '').trim() : undefined;
    const pathToken = route[1] !== undefined ? safeDecode(route[1]) : undefined;
    const authorized = (bearer !== undefined && sameToken(bearer, opts.token)) || (pathToken !== undefined && sameToken(pathToken, opts.token));
    if (!authorized) {
      req.resume();
      return send(res, 401, { ...cors, 'WWW-Authenticate': 'Bearer realm="mailover codec"' }, JSON.stringify({ error: 'missing or wrong token' }));
    }
    try {
      const payloads = payloadsFromJson(await readBody(req, limit));
      const out = route[2] === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
      send(res, 200, cors, payloadsToJson(out));
    } catch (err) {
      if (err instanceof HttpError) {
        // The rest of an oversized body is not read: close the connection once the answer is out.
        if (err.status === 413) res.once('finish', () => req.destroy());
        return send(res, err.status, { ...cors, Connection: 'close' }, JSON.stringify({ error: err.message }));
      }
      if (err instanceof PayloadDecryptionError) return send(res, 422, cors, JSON.stringify({ error: err.message }));
      throw err;
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, 500, {}, JSON.stringify({ error: `codec server error: ${(err as Error).message}` }));
      else res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
