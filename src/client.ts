/**
 * Client functions: start a campaign (workflow id = campaign id), signal, query, update.
 * Everything that crosses into Temporal is ids, counts and provider names.
 */
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { campaignWorkflow } from '../workflows/campaign';
import {
  cancelSignal,
  DEFAULT_BATCHES_IN_FLIGHT,
  pauseSignal,
  progressQuery,
  releaseHeldUpdate,
  resumeSignal,
  setProvidersUpdate,
  type CampaignInput,
  type ReleaseHeldOutcome,
  type ReleaseHeldRequest,
  type CampaignOptions,
  type CampaignProgress,
} from '../workflows/campaign-api';
import { CampaignIdKey, CampaignStatusKey, ActiveProviderKey, AcceptedCountKey } from '../workflows/search-attributes';
import { describeWindow, type SendWindowSpec } from '../workflows/send-window';
import { DEFAULT_TASK_QUEUE } from './worker';
import { providersText, type ProviderChoice } from '../workflows/weighted-routing';

export class CampaignAlreadyStartedError extends Error {
  override readonly name = 'CampaignAlreadyStartedError';
}

export interface StartCampaignOptions {
  campaignId: string;
  providers: string[];
  /** Weighted routing: provider name -> weight for every provider (absent: priority order). */
  weights?: Record<string, number>;
  batchSize: number;
  /** Audience size, for the summary shown in the Web UI. */
  total?: number;
  taskQueue?: string;
  options?: CampaignOptions;
  /** The campaign this one retries (named in its Web UI summary). */
  retryOf?: string;
  /** Send nothing before this time: the workflow starts now and waits on a timer (`campaign start --at`). */
  startAt?: Date;
  /** Send only inside this window (the campaign file's `window`, parsed by parseSendWindow). */
  window?: SendWindowSpec;
}

export async function startCampaign(client: Client, opts: StartCampaignOptions): Promise<WorkflowHandleWithFirstExecutionRunId<typeof campaignWorkflow>> {
  const batchesInFlight = opts.options?.batchesInFlight ?? DEFAULT_BATCHES_IN_FLIGHT;
  const input: CampaignInput = {
    campaignId: opts.campaignId,
    providers: opts.providers,
    ...(opts.weights ? { weights: opts.weights } : {}),
    batchSize: opts.batchSize,
    // The window is written into the input: a later change of the default never changes this campaign.
    options: { ...opts.options, batchesInFlight },
  };
  const via = opts.weights ? `split by weight ${providersText(opts.providers, opts.weights)}` : `via ${opts.providers.join(' → ')}`;
  // Only campaigns with a schedule carry these fields (the workflow's schedule is gated on them).
  const startAt = opts.startAt?.toISOString();
  if (startAt) input.startAt = startAt;
  if (opts.window) input.window = opts.window;
  const scheduled = opts.startAt !== undefined && opts.startAt.getTime() > Date.now();
  const when = [...(startAt ? [`starts at ${startAt}`] : []), ...(opts.window ? [`sends ${describeWindow(opts.window)}`] : [])];
  try {
    return await client.workflow.start(campaignWorkflow, {
      workflowId: opts.campaignId,
      taskQueue: opts.taskQueue ?? DEFAULT_TASK_QUEUE,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [
        { key: CampaignIdKey, value: opts.campaignId },
        { key: CampaignStatusKey, value: scheduled ? 'scheduled' : 'running' },
        { key: ActiveProviderKey, value: opts.weights ? opts.providers.join('+') : opts.providers[0] },
        { key: AcceptedCountKey, value: 0 },
      ],
      // `campaign list` shows when a scheduled campaign starts from this memo (the workflow keeps it current).
      ...(scheduled ? { memo: { waitingUntil: startAt } } : {}),
      staticSummary: `Campaign ${opts.campaignId}${opts.retryOf ? ` (retry of ${opts.retryOf})` : ''}${opts.total !== undefined ? `: ${opts.total} recipients` : ''} ${via}, batches of ${opts.batchSize}${inFlightNote(batchesInFlight, opts.batchSize, opts.total)}${when.length ? `; ${when.join(', ')}` : ''}`,
      staticDetails: `${opts.weights ? `Providers by weight: ${providersText(opts.providers, opts.weights)}` : `Providers in priority order: ${opts.providers.join(', ')}`}. Pause/resume/cancel with signals; query "progress" for counts.`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new CampaignAlreadyStartedError(
        `campaign '${opts.campaignId}' was already started (workflow id ${opts.campaignId}); a campaign runs once. Check it with: mailover campaign status ${opts.campaignId}`,
      );
    }
    throw err;
  }
}

const handle = (client: Client, campaignId: string) => client.workflow.getHandle<typeof campaignWorkflow>(campaignId);

export const pauseCampaign = (client: Client, campaignId: string, reason?: string) => handle(client, campaignId).signal(pauseSignal, reason);
export const resumeCampaign = (client: Client, campaignId: string) => handle(client, campaignId).signal(resumeSignal);
export const cancelCampaign = (client: Client, campaignId: string) => handle(client, campaignId).signal(cancelSignal);
export const campaignProgress = (client: Client, campaignId: string): Promise<CampaignProgress> => handle(client, campaignId).query(progressQuery);
/**
 * Change the provider plan of a running campaign: names set a priority order, `{ name, weight }` entries
 * weighted routing. A rejected plan throws with the validator's reason.
 */
export async function setCampaignProviders(client: Client, campaignId: string, providers: ProviderChoice[]): Promise<string[]> {
  try {
    return await handle(client, campaignId).executeUpdate(setProvidersUpdate, { args: [providers] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof Error)
      throw new Error(`campaign '${campaignId}': provider order rejected: ${err.cause.message}`, { cause: err });
    throw err;
  }
}
/**
 * Release a running campaign's rows held for review: `resend` (the campaign sends them again) or
 * `mark-sent` (settled as accepted). The workflow does it (so its counters follow) and answers
 * once the ledger has it; a request it refuses throws with its reason.
 */
export async function releaseHeldRows(client: Client, campaignId: string, request: ReleaseHeldRequest): Promise<ReleaseHeldOutcome> {
  try {
    return await handle(client, campaignId).executeUpdate(releaseHeldUpdate, { args: [request] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof Error)
      throw new Error(`campaign '${campaignId}': release refused: ${err.cause.message}`, { cause: err });
    throw err;
  }
}

/** The window in the Web UI's summary, when more than one batch can be in flight (a known total caps it at its batch count). */
function inFlightNote(batchesInFlight: number, batchSize: number, total?: number): string {
  const most = total === undefined ? batchesInFlight : Math.min(batchesInFlight, Math.ceil(total / batchSize));
  return most > 1 ? `, up to ${most} in flight` : '';
}
