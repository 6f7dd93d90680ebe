/**
 * Client side of shared provider health: read a provider's circuit, mark it down or up.
 * Used by the CLI and tests; the health workflow itself is workflows/provider-health.ts.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { SignalDefinition } from '@temporalio/common';
import type { HealthConfig } from './config';
import {
  healthStateQuery,
  markDownSignal,
  markUpSignal,
  providerHealthWorkflowId,
  type HealthSettings,
  type ProviderHealthInput,
  type ProviderHealthState,
} from '../workflows/provider-health-api';

/** The provider's health, or undefined when no health workflow runs for it yet (no campaign has used it: closed). */
export async function providerHealth(client: Client, taskQueue: string, provider: string): Promise<ProviderHealthState | undefined> {
  const handle = client.workflow.getHandle(providerHealthWorkflowId(taskQueue, provider));
  try {
    const desc = await handle.describe();
    if (desc.status.name !== 'RUNNING') return undefined;
    return await handle.query(healthStateQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/** The settings a health workflow runs with (the probe's addresses stay in the worker's config). */
export function healthSettings(config: HealthConfig): HealthSettings {
  const { probe: _probe, ...settings } = config;
  return settings;
}

/** Signal a provider's health workflow on `taskQueue`, starting it with `settings` if it is not running. */
export function signalHealthWorkflow(
  client: Client,
  taskQueue: string,
  provider: string,
  settings: HealthSettings,
  signal: SignalDefinition<[string]>,
  arg: string,
) {
  return client.workflow.signalWithStart('providerHealthWorkflow', {
    workflowId: providerHealthWorkflowId(taskQueue, provider),
    taskQueue,
    args: [{ provider, settings } satisfies ProviderHealthInput],
    signal,
    signalArgs: [arg] as [string],
    staticSummary: `Health of provider ${provider}: circuit breaker shared by every campaign on task queue ${taskQueue}`,
  });
}

async function signalHealth(
  client: Client,
  taskQueue: string,
  provider: string,
  health: HealthConfig,
  signal: typeof markDownSignal | typeof markUpSignal,
  reason: string,
): Promise<ProviderHealthState> {
  const handle = await signalHealthWorkflow(client, taskQueue, provider, healthSettings(health), signal, reason);
  return handle.query(healthStateQuery);
}

/** Hold a provider down (planned maintenance): every campaign on it moves on; no probes until marked up. */
export const markProviderDown = (client: Client, taskQueue: string, provider: string, health: HealthConfig, reason: string) =>
  signalHealth(client, taskQueue, provider, health, markDownSignal, reason);

/** Close a provider's circuit now; campaigns fail back to it if it is higher in their order (failback: auto). */
export const markProviderUp = (client: Client, taskQueue: string, provider: string, health: HealthConfig, reason: string) =>
  signalHealth(client, taskQueue, provider, health, markUpSignal, reason);
