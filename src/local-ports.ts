/** Local TCP ports for the servers mailover starts beside itself (dev stack, runtime metrics). */
import { createServer } from 'net';

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
  });
}

/** The given port if it is free on 127.0.0.1, else any free port (0 asks for any). */
export async function preferredPort(port: number): Promise<number> {
  if (port && (await portFree(port))) return port;
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => res(p));
    });
  });
}

/** A local port that was free a moment ago (for a server that must be told its port up front). */
export const freeLocalPort = (): Promise<number> => preferredPort(0);

/**
 * Starts a server on `port`, or on any free port when that one is taken (EADDRINUSE), also by
 * another process starting at the same moment.
 */
export async function listenPreferring<T>(port: number, start: (port: number) => Promise<T>): Promise<T> {
  try {
    return await start(port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
    return start(0);
  }
}
