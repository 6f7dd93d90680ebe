/** A mailover worker (build/src/worker-main.js) in a process of its own, as the bench runs it. */
import { spawn, type ChildProcess } from 'child_process';
import { join } from 'path';

/**
 * The worker's Node flags, as the production image runs it (the Dockerfile's CMD): a heap cap keeps
 * its memory flat however large the campaign. MAILOVER_BENCH_WORKER_FLAGS replaces them ('' for
 * Node's defaults, as the bench ran before 2026-12-02).
 */
export const IMAGE_WORKER_FLAGS = '--max-old-space-size=256';

export function workerFlags(): string[] {
  return (process.env.MAILOVER_BENCH_WORKER_FLAGS ?? IMAGE_WORKER_FLAGS).split(/\s+/).filter(Boolean);
}

export class WorkerProc {
  private constructor(readonly child: ChildProcess) {}

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts a worker with `env` added to this process's environment; resolves once it is polling. */
  static async start(env: NodeJS.ProcessEnv): Promise<WorkerProc> {
    const profile = process.env.MAILOVER_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MAILOVER_BENCH_PROFILE}`] : [];
    const flags = workerFlags();
    const child = spawn(process.execPath, [...profile, ...flags, join(__dirname, '..', 'worker-main.js')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((res, rej) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        if (out.includes('mailover worker ready')) return;
        out += d;
        if (out.includes('mailover worker ready')) res();
      });
      child.once('exit', (code) => rej(new Error(`worker exited with ${code}: ${out}`)));
    });
    return new WorkerProc(child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}
