/**
 * Activities of shared provider health: campaigns subscribe to the providers' health workflows
 * (starting them if needed), and the health workflow's half-open probe.
 */
import { Context, log } from '@temporalio/activity';
import { healthSettings, signalHealthWorkflow } from '../src/provider-health-client';
import { healthStateQuery, subscribeSignal, updateSettingsSignal } from '../workflows/provider-health-api';
import type { HealthProbeResult, WatchProvidersInput, WatchProvidersResult } from './contracts';
import type { ActivityDeps } from './index';

/**
 * Subscribe the calling campaign workflow to each provider's health workflow on this task queue,
 * starting the ones not running yet; returns their current circuits.
 */
export async function watchProviders(deps: ActivityDeps, input: WatchProvidersInput): Promise<WatchProvidersResult> {
  const ctx = Context.current();
  const { workflowExecution, taskQueue } = ctx.info;
  if (!workflowExecution) throw new Error('watchProviders runs only on behalf of a campaign workflow');
  const settings = healthSettings(deps.health);
  const circuits: WatchProvidersResult['circuits'] = {};
  for (const provider of input.providers) {
    const handle = await signalHealthWorkflow(ctx.client, taskQueue, provider, settings, subscribeSignal, workflowExecution.workflowId);
    const state = await handle.query(healthStateQuery);
    if (JSON.stringify(state.settings) !== JSON.stringify(settings)) {
      // The worker's config changed since the health workflow started: it takes the new settings.
      await handle.signal(updateSettingsSignal, settings);
    }
    circuits[provider] = {
      circuit: state.circuit,
      ...(state.circuit !== 'closed' ? { reason: state.reason, by: state.manualDown !== undefined ? 'operator' : 'failures' } : {}),
    };
  }
  return { circuits, failback: deps.health.failback };
}

/** The half-open probe: one small message to the configured probe address, or a connection check. */
export async function probeHealth(deps: ActivityDeps, input: { provider: string }): Promise<HealthProbeResult> {
  if (!deps.providers.has(input.provider)) return { ok: false, detail: `provider '${input.provider}' is not configured on this worker` };
  const provider = deps.providers.get(input.provider);
  const probe = deps.health.probe;
  try {
    if (!probe) {
      await provider.verify();
      return { ok: true, detail: 'connection check passed (no probe address configured)' };
    }
    const at = new Date().toISOString();
    let outcome: string | undefined;
    await provider.sendBatch(
      [
        {
          campaignId: 'health-probe',
          seq: 0,
          to: probe.to,
          from: probe.from,
          subject: `mailover health probe for ${input.provider}`,
          text: `mailover sent this probe through ${input.provider} at ${at} to check that it accepts mail again. No action needed.`,
          messageId: `<mo.probe.${input.provider}.${Date.parse(at)}@mailover.invalid>`,
          headers: { 'X-Mailover-Probe': input.provider },
        },
      ],
      async (_m, result) => {
        outcome = result.status === 'accepted' ? 'accepted' : `rejected (${result.reason})`;
      },
    );
    // A rejection of the probe address still means the provider is answering.
    return { ok: true, detail: `probe message ${outcome ?? 'sent'}` };
  } catch (err) {
    const message = provider.classify(err).message;
    log.info('health probe failed', { provider: input.provider, error: message });
    return { ok: false, detail: message };
  }
}
