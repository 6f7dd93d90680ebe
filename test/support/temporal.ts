/** A real Temporal dev server for tests (the pinned CLI, through @temporalio/testing), with mailover's search attributes. */
import { writeFileSync } from 'fs';
import { join } from 'path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ensureTemporalCli } from '../../src/temporal-cli';
import { workflowsPath } from '../../src/worker';
import { campaignSearchAttributes } from '../../workflows/search-attributes';

export interface DevServerOptions {
  /** Persist to this SQLite file (needed to restart the server mid-test). */
  dbFilename?: string;
  port?: number;
  /** Serve the Temporal Web UI on this port (0 = none). */
  uiPort?: number;
  /** More `temporal server start-dev` flags (e.g. --ui-codec-endpoint). */
  extraArgs?: string[];
}

let runtimeInstalled = false;
/** Tests log worker warnings and errors only. */
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
}

export async function startDevServer(opts: DevServerOptions = {}): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: ensureTemporalCli().executable,
      ip: '127.0.0.1',
      searchAttributes: campaignSearchAttributes,
      ...(opts.dbFilename ? { dbFilename: opts.dbFilename } : {}),
      ...(opts.port ? { port: opts.port } : {}),
      ...(opts.uiPort ? { ui: true, uiPort: opts.uiPort } : {}),
      ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
      log: { format: 'pretty', level: 'error' },
    },
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test process and shared by every worker. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: new DefaultLogger('WARN') });
  return bundle;
}

/** The shared bundle written to `dir`, for worker child processes (MAILOVER_WORKFLOW_BUNDLE). */
export async function writeWorkflowBundle(dir: string): Promise<string> {
  const path = join(dir, 'workflow-bundle.js');
  writeFileSync(path, (await workflowBundle()).code);
  return path;
}
