/** Writes a provider file the way users must: secrets as environment references. Returns the environment that resolves them. */
import { writeFileSync } from 'fs';
import { stringify } from 'yaml';
import { withSecretsAsEnvReferences } from '../../src/providers/modules';
import type { ProviderDefinitionBase } from '../../src/providers/provider-module';
import { TEST_UNSUBSCRIBE_KEY } from './harness';

/** `extra`: further top-level keys of the file (alerts, metrics), written as given. */
export function writeProviderFile(
  path: string,
  defs: readonly ProviderDefinitionBase[],
  inFlight: 'resend' | 'hold' = 'resend',
  extra: Record<string, unknown> = {},
): NodeJS.ProcessEnv {
  // Each kind's secret fields (its module's), as MAILOVER_TEST_SECRET_<n>_<SECRET>.
  const { defs: fileDefs, env } = withSecretsAsEnvReferences(defs, (_d, field, i) => `MAILOVER_TEST_SECRET_${i + 1}_${field.envSuffix}`);
  // Marketing campaigns need the worker to sign unsubscribe links; the key comes from the environment like any secret.
  const unsubscribe = { baseUrl: 'http://unsubscribe.mailover.test', signingKey: '${MAILOVER_TEST_UNSUBSCRIBE_KEY}' };
  writeFileSync(path, stringify({ inFlight, providers: fileDefs, unsubscribe, ...extra }));
  return { ...env, MAILOVER_TEST_UNSUBSCRIBE_KEY: TEST_UNSUBSCRIBE_KEY };
}
