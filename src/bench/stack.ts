/**
 * What every bench run sets up: the Temporal dev server (as the tests start it), the workflow
 * bundle and provider config the worker processes load, and the audiences (addressed
 * `r<seq>.<tag>@example.com`, which the Mailgun sink counts per seq).
 */
import { writeFileSync } from 'fs';
import { join } from 'path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { stringify } from 'yaml';
import { dataConverterFromEnv } from '../codec/data-converter';
import { withSecretsAsEnvReferences } from '../providers/modules';
import type { ProviderDefinitionBase } from '../providers/provider-module';
import type { AudienceRow } from '../store/types';
import { ensureTemporalCli } from '../temporal-cli';
import { workflowsPath } from '../worker';
import { campaignSearchAttributes } from '../../workflows/search-attributes';

export const TEMPLATE = {
  subject: 'Hello {{first_name}}, your {{city}} news',
  text: 'Hi {{first_name}},\n\nHere is what changed in {{city}}.\n',
  html: '<p>Hi {{first_name}},</p><p>Here is what changed in <b>{{city}}</b>.</p>',
};
export const FROM = 'Bench <bench@example.org>';

export const log = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

const CITIES = ['Lisbon', 'Oslo', 'Austin', 'Kyoto', 'Lagos'];

/** Recipients `from + 1` … `to` of the audience tagged `tag` (seq = the number in the address). */
export function audienceRange(from: number, to: number, tag: string): AudienceRow[] {
  return Array.from({ length: to - from }, (_, k) => {
    const i = from + k;
    return { email: `r${i + 1}.${tag}@example.com`, fields: { first_name: `Reader${i + 1}`, city: CITIES[i % CITIES.length]! } };
  });
}

export function audience(n: number, tag: string): AudienceRow[] {
  return audienceRange(0, n, tag);
}

/**
 * The Temporal dev server. Eager activity execution (a server feature flag, off by default):
 * when a workflow task schedules the next batch, the server hands the activity straight back to
 * the worker that completed it instead of through a poll; see BENCHMARKS.md.
 */
export async function startTemporal(eager: boolean): Promise<TestWorkflowEnvironment> {
  const cli = ensureTemporalCli(log);
  // With MAILOVER_PAYLOAD_KEYS set, the worker processes encrypt; the bench's client must too.
  const dataConverter = dataConverterFromEnv();
  const extraArgs = eager ? ['--dynamic-config-value', 'system.enableActivityEagerExecution=true'] : [];
  return TestWorkflowEnvironment.createLocal({
    ...(dataConverter ? { client: { dataConverter } } : {}),
    server: { executable: cli.executable, ip: '127.0.0.1', searchAttributes: campaignSearchAttributes, log: { format: 'pretty', level: 'error' }, extraArgs },
  });
}

/** The workflow bundle and the providers file in `dir`; the environment a worker process needs besides its store. */
export async function workerFiles(
  dir: string,
  env: TestWorkflowEnvironment,
  taskQueue: string,
  providers: ProviderDefinitionBase[],
): Promise<NodeJS.ProcessEnv> {
  const bundlePath = join(dir, 'bundle.js');
  writeFileSync(bundlePath, (await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: new DefaultLogger('ERROR') })).code);
  // Secrets go into the file as environment references.
  const { defs, env: secrets } = withSecretsAsEnvReferences(
    providers,
    (d, field) => `BENCH_${d.name.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}_${field.envSuffix}`,
  );
  const configPath = join(dir, 'providers.yaml');
  writeFileSync(configPath, stringify({ providers: defs }));
  return {
    TEMPORAL_ADDRESS: env.address,
    MAILOVER_TASK_QUEUE: taskQueue,
    MAILOVER_CONFIG: configPath,
    MAILOVER_WORKFLOW_BUNDLE: bundlePath,
    ...secrets,
    MAILOVER_LOG_LEVEL: 'WARN',
  };
}
