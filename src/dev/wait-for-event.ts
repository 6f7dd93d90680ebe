import type { EventEmitter } from 'events';

/**
 * Resolves as soon as `done()` is true: checked now and on every one of `events`. Rejects
 * when `done` throws, or after `timeoutMs` with the message `onTimeout()` builds.
 */
export function waitForEvents(emitter: EventEmitter, events: string[], done: () => boolean, timeoutMs: number, onTimeout: () => string): Promise<void> {
  try {
    if (done()) return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise<void>((resolve, reject) => {
    const check = () => {
      let ok: boolean;
      try {
        ok = done();
      } catch (err) {
        cleanup();
        reject(err);
        return;
      }
      if (ok) {
        cleanup();
        resolve();
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(onTimeout()));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      for (const e of events) emitter.off(e, check);
    };
    for (const e of events) emitter.on(e, check);
  });
}
