/** Writes a provider file the way users must: secrets as environment references. Returns the environment that resolves them. */
import { writeFileSync } from 'fs';
import { stringify } from 'yaml';
import type { ProviderDefinition } from '../../src/config';

/** `extra`: further top-level keys of the file (alerts, metrics), written as given. */
export function writeProviderFile(path: string, defs: ProviderDefinition[], inFlight: 'resend' | 'hold' = 'resend', extra: Record<string, unknown> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const fileDefs = defs.map((d, i) => {
    const ref = `MAILOVER_TEST_SECRET_${i + 1}`;
    if (d.kind === 'mailgun') {
      env[ref] = d.apiKey;
      return { ...d, apiKey: `\${${ref}}` };
    }
    if (d.auth) {
      env[ref] = d.auth.pass;
      return { ...d, auth: { user: d.auth.user, pass: `\${${ref}}` } };
    }
    return d;
  });
  writeFileSync(path, stringify({ inFlight, providers: fileDefs, ...extra }));
  return env;
}
