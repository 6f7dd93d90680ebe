/** Writes a provider file the way users must: secrets as environment references. Returns the environment that resolves them. */
import { writeFileSync } from 'fs';
import { stringify } from 'yaml';
import type { ProviderDefinition } from '../../src/config';

export function writeProviderFile(path: string, defs: ProviderDefinition[], inFlight: 'resend' | 'hold' = 'resend'): NodeJS.ProcessEnv {
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
  writeFileSync(path, stringify({ inFlight, providers: fileDefs }));
  return env;
}
