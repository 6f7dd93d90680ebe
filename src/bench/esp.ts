/** The bench's side of ./esp-process.ts: start a local ESP in a process of its own and talk to it. */
import { fork, type ChildProcess } from 'child_process';
import { join } from 'path';
import type { ProviderDefinitionBase } from '../providers/provider-module';

export interface EspStats {
  accepted: number;
  firstAcceptAt?: number;
  failingSince?: number;
}

export interface SinkTally {
  accepted: number;
  lost: number;
  duplicated: number;
  extraCopies: number;
}

export interface Esp {
  child: ChildProcess;
  port: number;
  url: string;
  /** The provider definition that sends through it (fake secrets as values). */
  config: ProviderDefinitionBase;
  stats(): Promise<EspStats>;
  /** mailgun-sink only: lost and duplicated recipients of the audience r1.<tag> … r<n>.<tag>. */
  tally(tag: string, n: number): Promise<SinkTally>;
  send(msg: object): void;
  stop(): Promise<void>;
}

/** Asks the child once and resolves with the `key` of its answer (answers come in order: one question at a time per key). */
function ask<T>(child: ChildProcess, question: object, key: string): Promise<T> {
  return new Promise((res) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (!(key in m)) return;
      child.off('message', onMessage);
      res(m[key] as T);
    };
    child.on('message', onMessage);
    child.send(question);
  });
}

/** The emulator of a provider kind (or `mailgun-sink`) in a process of its own, answering `latencyMs` late. */
export async function startEsp(kind: string, name: string, latencyMs = 0): Promise<Esp> {
  type Ready = { port: number; url: string; config: ProviderDefinitionBase };
  const child = fork(join(__dirname, 'esp-process.js'), [kind, name, String(latencyMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await new Promise<Ready>((res, rej) => {
    child.once('message', (m: { ready?: Ready }) => (m.ready ? res(m.ready) : rej(new Error('unexpected message'))));
    child.once('exit', (code) => rej(new Error(`${name} exited with ${code}`)));
  });
  return {
    child,
    ...ready,
    send: (msg) => child.send(msg),
    stats: () => ask<EspStats>(child, { cmd: 'stats' }, 'stats'),
    tally: (tag, n) => ask<SinkTally>(child, { cmd: 'tally', tag, n }, 'tally'),
    stop: () =>
      new Promise((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.send({ cmd: 'stop' });
      }),
  };
}
