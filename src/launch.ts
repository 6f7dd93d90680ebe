/**
 * Launching a campaign: validate everything, then store it, import its audience and start
 * its workflow. Any problem with the definition, the audience file or the merge fields is
 * reported (field, line, value) before anything is stored or sent.
 */
import { basename } from 'path';
import type { Client } from '@temporalio/client';
import { detectAudienceFormat, insertAudience, parseAudience, readAudienceFile, type AudienceImportReport } from './audience';
import { assertSendable, type CampaignDefinition } from './campaign-definition';
import { CampaignAlreadyStartedError, startCampaign } from './client';
import { InvalidCampaignError } from './errors';
import type { Store } from './store/types';
import { compileTemplate, TemplateError } from './template';
import type { CampaignOptions } from '../workflows/campaign';

export interface LaunchOptions {
  client: Client;
  store: Store;
  definition: CampaignDefinition;
  audienceFile: string;
  taskQueue?: string;
  options?: CampaignOptions;
  onImportProgress?: (done: number, total: number) => void;
}

export interface LaunchResult extends AudienceImportReport {
  workflowId: string;
  runId: string;
}

const MAX_LISTED = 10;

export async function launchCampaign(opts: LaunchOptions): Promise<LaunchResult> {
  const { store, definition: def } = opts;
  if (await store.getCampaign(def.id)) {
    throw new CampaignAlreadyStartedError(`campaign '${def.id}' already exists in the store; a campaign runs once (pick a new id)`);
  }
  const source = basename(opts.audienceFile);
  const format = detectAudienceFormat(opts.audienceFile);
  const parsed = parseAudience(await readAudienceFile(opts.audienceFile), format, source);
  if (parsed.rows.length === 0) {
    throw new InvalidCampaignError(`${source}: no valid recipients (${parsed.rejected.length} rejected${parsed.rejected[0] ? `, first: line ${parsed.rejected[0].line}: ${parsed.rejected[0].reason}` : ''})`);
  }

  let template;
  try {
    template = compileTemplate(def.template);
  } catch (err) {
    if (err instanceof TemplateError) throw new InvalidCampaignError(`campaign '${def.id}': ${err.message}`);
    throw err;
  }
  const listed: string[] = [];
  let badCount = 0;
  parsed.rows.forEach((row, i) => {
    const problems = template.problemsWith(row.fields);
    if (problems.length) {
      badCount++;
      if (listed.length < MAX_LISTED) listed.push(`${source} line ${parsed.lines[i]}: ${row.email} ${problems.join('; ')}`);
    }
  });
  if (badCount) {
    const more = badCount > listed.length ? `\n  - ... and ${badCount - listed.length} more` : '';
    throw new InvalidCampaignError(`${badCount} recipient(s) have merge values the template cannot use (nothing was stored or sent):\n  - ${listed.join('\n  - ')}${more}`, listed);
  }

  assertSendable(def);

  await store.createCampaign(def);
  const report = await insertAudience(store, def.id, parsed, { onProgress: opts.onImportProgress });
  const handle = await startCampaign(opts.client, {
    campaignId: def.id,
    providers: def.providers,
    batchSize: def.batchSize,
    total: report.inserted,
    taskQueue: opts.taskQueue,
    options: opts.options,
  });
  return { ...report, workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
}
