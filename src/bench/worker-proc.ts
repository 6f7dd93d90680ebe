/** A mailover worker (build/src/worker-main.js) in a process of its own, as the bench runs it. */
import { spawn, type ChildProcess } from 'child_process';
import { join } from 'path';

export class WorkerProc {
  private constructor(readonly child: ChildProcess) {}

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts a worker with `env` added to this process's environment; resolves once it is polling. */
  static async start(env: NodeJS.ProcessEnv): Promise<WorkerProc> {
    const profile = process.env.MAILOVER_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MAILOVER_BENCH_PROFILE}`] : [];
    // e.g. MAILOVER_BENCH_WORKER_FLAGS=--max-old-space-size=128: is the worker's RSS a leak or a lazy heap?
    const flags = (process.env.MAILOVER_BENCH_WORKER_FLAGS ?? '').split(/\s+/).filter(Boolean);
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
