/**
 * A TCP proxy on loopback between a provider and its ESP, with network faults: added latency,
 * connection resets, half-open connections (accepted, never answered) and slow reads.
 * (The test-support equivalent of Toxiproxy; no binary to install.)
 */
import { createServer, connect, type Server, type Socket } from 'net';

export type ProxyFault =
  | { kind: 'none' }
  | { kind: 'latency'; ms: number }
  /** Reset each connection after it has carried this many bytes towards the ESP. */
  | { kind: 'reset'; afterBytes: number }
  /** Accept connections but never connect them onward: the client waits until its timeout. */
  | { kind: 'half-open' }
  /** Deliver the ESP's answers at this many bytes per second. */
  | { kind: 'slow'; bytesPerSecond: number };

export class TcpProxy {
  private fault: ProxyFault = { kind: 'none' };
  private readonly sockets = new Set<Socket>();
  resets = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer((client) => proxy.handle(client, target));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    const proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  setFault(fault: ProxyFault): void {
    this.fault = fault;
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => undefined);
  }

  private handle(client: Socket, target: { host: string; port: number }): void {
    this.track(client);
    const fault = this.fault;
    if (fault.kind === 'half-open') return; // never answered; destroyed on stop()
    const upstream = connect(target.port, target.host);
    this.track(upstream);
    const delay = fault.kind === 'latency' ? fault.ms : 0;
    const later = (fn: () => void) => (delay ? setTimeout(fn, delay) : fn());
    let sent = 0;
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      if (fault.kind === 'reset' && sent > fault.afterBytes) {
        this.resets++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      later(() => upstream.write(chunk));
    });
    upstream.on('data', (chunk: Buffer) => {
      if (fault.kind === 'slow') {
        upstream.pause();
        const ms = Math.max(1, Math.round((chunk.length / fault.bytesPerSecond) * 1000));
        setTimeout(() => {
          client.write(chunk);
          upstream.resume();
        }, ms);
      } else later(() => client.write(chunk));
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}
