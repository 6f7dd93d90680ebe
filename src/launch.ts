/**
 * Launching a campaign: validate everything, then store it, import its audience and start
 * its workflow. Any problem with the definition, the audience file or the merge fields is
 * reported (field, line, value) before anything is stored or sent.
 */
import { basename } from 'path';
import type { Client } from '@temporalio/client';
import { insertAudienceFile, scanAudienceFile, type AudienceImportReport, type AudienceScan } from './audience';
import { assertSendable, type CampaignDefinition } from './campaign-definition';
import { CampaignAlreadyStartedError, startCampaign } from './client';
import { InvalidCampaignError } from './errors';
import type { CampaignStore, Store } from './store/types';
import { compileTemplate, TemplateError, type CompiledTemplate } from './template';
import { workerCampaignProblems, type WorkerCampaignContext } from './worker-campaign-checks';
import type { CampaignOptions } from '../workflows/campaign-api';

export interface LaunchOptions {
  client: Client;
  store: Store;
  definition: CampaignDefinition;
  audienceFile: string;
  taskQueue?: string;
  options?: CampaignOptions;
  /** Send nothing before this time (must be ahead when the launch begins; once the audience is in, a time gone by means at once). */
  startAt?: Date;
  /** Rows checked so far in the first pass over the audience file (every 10,000 rows). */
  onCheckProgress?: (rows: number) => void;
  /** Rows inserted so far in the second pass. */
  onImportProgress?: (done: number, total: number) => void;
}

export interface LaunchResult extends AudienceImportReport {
  workflowId: string;
  runId: string;
}

const MAX_LISTED = 10;

/** What the checks found: the audience file's scan (valid rows, duplicates, rejected rows). */
export type LaunchCheck = AudienceScan;

export interface LaunchCheckOptions extends Pick<LaunchOptions, 'definition' | 'audienceFile' | 'onCheckProgress'> {
  /** Where the id must be new; absent: no store exists yet, so every id is. */
  store?: Pick<CampaignStore, 'getCampaign'>;
  /** Also what a worker with this configuration (from `configPath`) refuses before it sends: prepareCampaign's checks. */
  worker?: WorkerCampaignContext & { configPath: string };
}

/**
 * Every check a launch makes, with nothing stored or started: the id is new, the audience file
 * parses, every valid row has usable merge values, the template is sound, a marketing campaign
 * carries its unsubscribe link and postal address; given `worker`, what that worker refuses too.
 * Throws InvalidCampaignError (or CampaignAlreadyStartedError) naming what is wrong.
 * `mailover campaign start --dry-run` is this, with the worker's configuration.
 */
export async function checkLaunch(opts: LaunchCheckOptions): Promise<LaunchCheck> {
  const { store, definition: def } = opts;
  if (await store?.getCampaign(def.id)) {
    throw new CampaignAlreadyStartedError(`campaign '${def.id}' already exists in the store; a campaign runs once (pick a new id)`);
  }
  const source = basename(opts.audienceFile);
  // A broken template is reported after the audience file's own problems.
  let template: CompiledTemplate | undefined;
  let templateError: InvalidCampaignError | undefined;
  try {
    template = compileTemplate(def.template);
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    templateError = new InvalidCampaignError(`campaign '${def.id}': ${err.message}`);
  }
  // One pass over the file: every row checked, merge values included; nothing kept but the problems.
  const listed: string[] = [];
  let badCount = 0;
  let checked = 0;
  const scan = await scanAudienceFile(opts.audienceFile, (row, line) => {
    if (++checked % 10_000 === 0) opts.onCheckProgress?.(checked);
    const problems = template?.problemsWith(row.fields) ?? [];
    if (problems.length) {
      badCount++;
      if (listed.length < MAX_LISTED) listed.push(`${source} line ${line}: ${row.email} ${problems.join('; ')}`);
    }
  });
  if (scan.valid === 0) {
    throw new InvalidCampaignError(
      `${source}: no valid recipients (${scan.rejected.length} rejected${scan.rejected[0] ? `, first: line ${scan.rejected[0].line}: ${scan.rejected[0].reason}` : ''})`,
    );
  }
  if (templateError) throw templateError;
  if (badCount) {
    const more = badCount > listed.length ? `\n  - ... and ${badCount - listed.length} more` : '';
    throw new InvalidCampaignError(
      `${badCount} recipient(s) have merge values the template cannot use (nothing was stored or sent):\n  - ${listed.join('\n  - ')}${more}`,
      listed,
    );
  }
  assertSendable(def);
  if (opts.worker && template) {
    const problems = workerCampaignProblems({ record: def, engineFields: template.engineFields, providers: def.providers }, opts.worker);
    if (problems.length) {
      throw new InvalidCampaignError(`campaign '${def.id}' would be refused by a worker with ${opts.worker.configPath}: ${problems.join('; ')}`, problems);
    }
  }
  return scan;
}

export async function launchCampaign(opts: LaunchOptions): Promise<LaunchResult> {
  const { store, definition: def } = opts;
  const startAt = opts.startAt?.getTime();
  if (startAt !== undefined && !(startAt > Date.now())) {
    const shown = opts.startAt && !Number.isNaN(startAt) ? opts.startAt.toISOString() : 'an invalid date';
    throw new InvalidCampaignError(`campaign '${def.id}': startAt: ${shown} is not in the future; nothing was stored or started`);
  }
  const scan = await checkLaunch(opts);
  await store.createCampaign(def);
  // Second pass: the rows go into the store in chunks.
  const report = await insertAudienceFile(store, def.id, opts.audienceFile, scan, { onProgress: opts.onImportProgress });
  const handle = await startCampaign(opts.client, {
    campaignId: def.id,
    providers: def.providers,
    ...(def.weights ? { weights: def.weights } : {}),
    batchSize: def.batchSize,
    total: report.inserted,
    taskQueue: opts.taskQueue,
    options: def.batchesInFlight !== undefined ? { ...opts.options, batchesInFlight: def.batchesInFlight } : opts.options,
    retryOf: def.retryOf,
    ...(opts.startAt ? { startAt: opts.startAt } : {}),
    ...(def.window ? { window: def.window } : {}),
  });
  return { ...report, workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
}
