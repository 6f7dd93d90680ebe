/**
 * Saves real run histories for the replay tests when MAILOVER_RECORD_HISTORIES=1 (see docs/testing.md:
 * Replay tests). Written by the Temporal CLI (`temporal workflow show --output json`), the same
 * format an operator would download from the Web UI.
 */
import { execFileSync } from 'child_process';
import { writeFileSync } from 'fs';
import { join } from 'path';
import type { WorkflowHandle } from '@temporalio/client';
import { ensureTemporalCli } from '../../src/temporal-cli';

export const HISTORIES_DIR = join(__dirname, '..', '..', '..', 'test', 'histories');

export async function maybeRecordHistory(name: string, handle: WorkflowHandle, address: string, runId?: string): Promise<void> {
  if (process.env.MAILOVER_RECORD_HISTORIES !== '1') return;
  const cli = ensureTemporalCli().path;
  if (!cli) throw new Error('recording histories needs the Temporal CLI binary');
  const json = execFileSync(
    cli,
    ['workflow', 'show', '--address', address, '--workflow-id', handle.workflowId, ...(runId ? ['--run-id', runId] : []), '--output', 'json'],
    {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  writeFileSync(join(HISTORIES_DIR, `${name}.json`), json);
}
