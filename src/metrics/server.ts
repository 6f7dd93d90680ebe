/**
 * The worker's /metrics endpoint: mailover's registry, followed by the Temporal SDK's own runtime
 * metrics (temporal_*), which the Rust core serves on a private local port; one scrape gets both.
 * GET /healthz answers 200 while the worker runs (503 once it is shutting down), for container
 * health checks.
 */
import { createServer, type Server } from 'http';
import type { AddressInfo } from 'net';
import type { MailoverMetrics } from './metrics';

/** Runtime telemetry that serves the Temporal SDK's own metrics on a private local port, and where to read them. */
export function runtimeMetrics(port: number) {
  return {
    // Counters named with _total (Prometheus naming; promtool check metrics), durations in seconds.
    telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${port}`, countersTotalSuffix: true, useSecondsForDurations: true } } },
    url: `http://127.0.0.1:${port}/metrics`,
  };
}

export interface MetricsServerOptions {
  metrics: MailoverMetrics;
  /** Default 0.0.0.0. */
  host?: string;
  /** 0 = any free port. */
  port: number;
  /** The Temporal runtime's Prometheus endpoint (e.g. http://127.0.0.1:PORT/metrics), appended to every scrape. */
  temporalRuntimeUrl?: string;
  /** Deadline for reading the runtime's metrics. Default 2 s. */
  runtimeTimeoutMs?: number;
  /** For GET /healthz: the worker's state; 200 while `ok`, else 503 (shutting down, failed). */
  health?: () => { ok: boolean; state: string };
}

export class MetricsServer {
  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  /** http://host:port/metrics (the address it listens on). */
  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}/metrics`;
  }

  static async start(opts: MetricsServerOptions): Promise<MetricsServer> {
    const host = opts.host ?? '0.0.0.0';
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('mailover worker: metrics at /metrics\n');
        return;
      }
      if (path === '/healthz' && opts.health) {
        const { ok, state } = opts.health();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(`worker ${state}\n`);
        return;
      }
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics\n');
        return;
      }
      scrape(opts).then(
        (text) => res.writeHead(200, { 'content-type': opts.metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${(err as Error).message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new MetricsServer(server, host, (server.address() as AddressInfo).port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

async function scrape(opts: MetricsServerOptions): Promise<string> {
  let runtime = '';
  if (opts.temporalRuntimeUrl) {
    try {
      const res = await fetch(opts.temporalRuntimeUrl, { signal: AbortSignal.timeout(opts.runtimeTimeoutMs ?? 2_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      // An OpenMetrics terminator would end the exposition early: the runtime's text goes last without it.
      runtime = (await res.text()).replace(/^# EOF\s*$/m, '').trimEnd();
    } catch (err) {
      opts.metrics.countScrapeError('temporal_runtime', err);
    }
  }
  const own = await opts.metrics.text();
  return runtime ? `${own.trimEnd()}\n${runtime}\n` : own;
}
