/** Writes a provider file the way users must: secrets as environment references. Returns the environment that resolves them. */
import { writeFileSync } from 'fs';
import { stringify } from 'yaml';
import type { ProviderDefinition } from '../../src/config';
import { TEST_UNSUBSCRIBE_KEY } from './harness';

/** `extra`: further top-level keys of the file (alerts, metrics), written as given. */
export function writeProviderFile(path: string, defs: ProviderDefinition[], inFlight: 'resend' | 'hold' = 'resend', extra: Record<string, unknown> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const fileDefs = defs.map((d, i) => {
    const ref = `MAILOVER_TEST_SECRET_${i + 1}`;
    if (d.kind === 'mailgun') {
      env[ref] = d.apiKey;
      if (d.webhookSigningKey) env[`${ref}_WEBHOOK`] = d.webhookSigningKey;
      return { ...d, apiKey: `\${${ref}}`, ...(d.webhookSigningKey ? { webhookSigningKey: `\${${ref}_WEBHOOK}` } : {}) };
    }
    if (d.auth) {
      env[ref] = d.auth.pass;
      return { ...d, auth: { user: d.auth.user, pass: `\${${ref}}` } };
    }
    return d;
  });
  // Marketing campaigns need the worker to sign unsubscribe links; the key comes from the environment like any secret.
  env.MAILOVER_TEST_UNSUBSCRIBE_KEY = TEST_UNSUBSCRIBE_KEY;
  const unsubscribe = { baseUrl: 'http://unsubscribe.mailover.test', signingKey: '${MAILOVER_TEST_UNSUBSCRIBE_KEY}' };
  writeFileSync(path, stringify({ inFlight, providers: fileDefs, unsubscribe, ...extra }));
  return env;
}
