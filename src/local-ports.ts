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
 * Starts a server on `port` if it is free, else on any free port; also when another process
 * takes the port between the check and the bind (EADDRINUSE), which two stacks starting at once can do.
 */
export async function listenPreferring<T>(port: number, start: (port: number) => Promise<T>): Promise<T> {
  const chosen = await preferredPort(port);
  try {
    return await start(chosen);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || chosen === 0) throw err;
    return start(0);
  }
}
