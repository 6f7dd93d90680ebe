/** A local HTTP receiver for alert webhooks: records every request; answers from a programmable list of statuses. */
import { createServer, type IncomingHttpHeaders, type Server } from 'http';
import type { AddressInfo } from 'net';

export interface ReceivedAlert {
  path: string;
  headers: IncomingHttpHeaders;
  // Tests read the alert JSON's fields directly, whatever its shape.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export class AlertReceiver {
  readonly received: ReceivedAlert[] = [];
  /** Statuses for the next requests, in order; after them every request gets 200. */
  private statuses: number[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<AlertReceiver> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown = raw;
        try {
          body = JSON.parse(raw);
        } catch {
          // kept as text: the test will say what it got
        }
        self.received.push({ path: req.url ?? '', headers: req.headers, body });
        const status = self.statuses.shift() ?? 200;
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'nope');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const self = new AlertReceiver(server, (server.address() as AddressInfo).port);
    return self;
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Answer the next requests with these statuses (e.g. [500, 500]: two failures, then 200s). */
  failNext(...statuses: number[]): void {
    this.statuses.push(...statuses);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** A URL on a port nothing listens on (bound, then closed). */
export async function closedPortUrl(path = '/hook'): Promise<string> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return `http://127.0.0.1:${port}${path}`;
}
