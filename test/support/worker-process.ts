/** A mailover worker in its own process (build/src/worker-main.js), so tests can kill -9 it and start another. */
import { spawn, type ChildProcess } from 'child_process';
import { join } from 'path';
import type { ProviderDefinitionBase } from '../../src/providers/provider-module';
import { writeProviderFile } from './provider-file';

export interface WorkerProcessOptions {
  address: string;
  taskQueue: string;
  dir: string;
  providers: readonly ProviderDefinitionBase[];
  sqlitePath?: string;
  databaseUrl?: string;
  bundlePath: string;
  inFlight?: 'resend' | 'hold';
  /** Further top-level keys of the worker's config file (alerts, metrics). */
  extraConfig?: Record<string, unknown>;
  /** Extra environment (fault injection, secrets the extra config references). */
  env?: NodeJS.ProcessEnv;
}

export class WorkerProcess {
  private readonly exit: Promise<number | null>;
  output = '';

  private constructor(readonly child: ChildProcess) {
    this.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(opts: WorkerProcessOptions): Promise<WorkerProcess> {
    const configPath = join(opts.dir, 'worker-config.yaml');
    const secrets = writeProviderFile(configPath, opts.providers, opts.inFlight, opts.extraConfig);
    const child = spawn(process.execPath, [join(__dirname, '..', '..', 'src', 'worker-main.js')], {
      env: {
        ...process.env,
        ...secrets,
        TEMPORAL_ADDRESS: opts.address,
        MAILOVER_TASK_QUEUE: opts.taskQueue,
        MAILOVER_CONFIG: configPath,
        MAILOVER_WORKFLOW_BUNDLE: opts.bundlePath,
        MAILOVER_STICKY_QUEUE_TIMEOUT_MS: '1000',
        ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : { DATABASE_URL: '', MAILOVER_DB: opts.sqlitePath }),
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const wp = new WorkerProcess(child);
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        wp.output += chunk.toString();
        if (wp.output.includes('mailover worker ready')) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (c: Buffer) => (wp.output += c.toString()));
      child.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready:\n${wp.output}`)));
    });
    return wp;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves when the process has exited by itself (or was killed). */
  exited(): Promise<number | null> {
    return this.exit;
  }

  /** kill -9: no cleanup, no graceful shutdown. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exit;
  }

  /** Graceful stop (SIGTERM), as an orchestrator would. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exit;
  }
}
