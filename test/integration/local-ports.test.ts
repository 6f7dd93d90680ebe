/** Local ports for the servers mailover starts beside itself. */
import { strict as assert } from 'assert';
import { createServer, type Server } from 'net';
import { listenPreferring, preferredPort } from '../../src/local-ports';

const listen = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
const portOf = (srv: Server) => (srv.address() as { port: number }).port;
const close = (srv: Server) => new Promise<void>((resolve) => srv.close(() => resolve()));

describe('local ports', () => {
  it('listenPreferring starts on the preferred port when it is free, and on another free port when it is taken (EADDRINUSE)', async () => {
    const free = await preferredPort(0);
    const first = await listenPreferring(free, listen);
    try {
      assert.equal(portOf(first), free);
      const second = await listenPreferring(free, listen);
      try {
        assert.notEqual(portOf(second), free, 'the taken port was not reused');
        assert.ok(portOf(second) > 0);
      } finally {
        await close(second);
      }
    } finally {
      await close(first);
    }
  });

  it('listenPreferring passes on errors other than a taken port', async () => {
    await assert.rejects(
      listenPreferring(1234, () => Promise.reject(Object.assign(new Error('permission denied'), { code: 'EACCES' }))),
      /permission denied/,
    );
  });
});
