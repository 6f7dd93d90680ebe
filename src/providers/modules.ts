/**
 * The ESPs mailover can send through: one ProviderModule per kind (./provider-module.ts), each
 * from its own folder. Everything outside src/providers/ that depends on the kind of a provider
 * (config checks, webhooks, suppression sync, the dev stack, the bench, the tests) asks here.
 *
 * Adding an ESP: its folder src/providers/<kind>/ exporting its module, and its line in
 * BUILT_IN below; or, without touching this file, `registerProviderModule(module)` before the
 * configuration is read.
 */
import type { ProviderQuotaFields } from '../quota';
import type { ProviderModule, ProviderDefinitionBase, SecretField } from './provider-module';
import { fieldAt, withFieldAt } from './provider-module';
import { mailgunModule } from './mailgun';
import { postmarkModule } from './postmark';
import { sendgridModule } from './sendgrid';
import { sesModule } from './ses';
import { smtpModule } from './smtp';

const BUILT_IN = [smtpModule, mailgunModule, postmarkModule, sendgridModule, sesModule] as const;

// A registry holds modules of different config types; their methods take the config as a parameter,
// so only `any` lets one map hold them (each module checks its own config in parseConfig).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyModule = ProviderModule<any, any>;
type DefinitionOf<M> = M extends ProviderModule<infer C, infer _E> ? C : never;

/**
 * A provider definition as the config file gives it (secrets resolved), typed by kind for the
 * built-in modules: narrow it with `def.kind === '<kind>'`. A kind registered at run time has its
 * own module's definition type (a ProviderDefinitionBase).
 */
/** Every definition may also carry quotas and a warm-up ramp (checked by src/config.ts for every kind). */
export type ProviderDefinition = DefinitionOf<(typeof BUILT_IN)[number]> & ProviderQuotaFields;

const KIND_RE = /^[a-z][a-z0-9-]{0,31}$/;
const registered = new Map<string, AnyModule>(BUILT_IN.map((m) => [m.kind, m as AnyModule]));

/**
 * Adds an ESP module (a kind) for this process: the config file may then name its kind, and every
 * part of mailover that goes through the modules uses it. Returns a function that removes it again.
 */
export function registerProviderModule(module: AnyModule): () => void {
  if (!KIND_RE.test(module.kind)) throw new Error(`provider module kind ${JSON.stringify(module.kind)}: expected lower-case letters, digits and '-'`);
  const existing = registered.get(module.kind);
  if (existing && existing !== module) throw new Error(`a provider module of kind '${module.kind}' is already registered`);
  registered.set(module.kind, module);
  return () => {
    if (registered.get(module.kind) === module && !BUILT_IN.some((m) => m === module)) registered.delete(module.kind);
  };
}

/** Every module, built-in ones first, in the order they were registered. */
export function providerModules(): ProviderModule[] {
  return [...registered.values()];
}

export function providerKinds(): string[] {
  return [...registered.keys()];
}

/** The module of a kind, or undefined when no module of that kind is registered. */
export function findProviderModule(kind: unknown): ProviderModule | undefined {
  return typeof kind === 'string' ? registered.get(kind) : undefined;
}

/** The module of a kind; an error naming the known kinds when there is none. */
export function providerModule(kind: string): ProviderModule {
  const m = registered.get(kind);
  if (!m) throw new Error(`no provider module of kind '${kind}' (known: ${providerKinds().join(', ')})`);
  return m;
}

/** The module a definition is of. */
export function moduleOf(def: ProviderDefinitionBase): ProviderModule {
  return providerModule(def.kind);
}

/** Every field that any module holds a secret in (a secret is never written into a file, whatever the kind). */
export function secretFields(): SecretField[] {
  const seen = new Map<string, SecretField>();
  for (const m of registered.values()) for (const f of m.secrets) if (!seen.has(f.path)) seen.set(f.path, f);
  return [...seen.values()];
}

/**
 * Definitions as a provider file must hold them: each secret replaced by an environment reference
 * `${VAR}`, VAR named by `varName`; `env` resolves them again. For whoever writes provider files
 * (the dev stack, the bench, the tests).
 */
export function withSecretsAsEnvReferences<D extends ProviderDefinitionBase>(
  defs: readonly D[],
  varName: (def: D, field: SecretField, index: number) => string,
): { defs: D[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  const out = defs.map((def, i) => {
    let d = def;
    for (const field of moduleOf(def).secrets) {
      const value = fieldAt(d, field.path);
      if (typeof value !== 'string' || value === '') continue;
      const name = varName(def, field, i);
      env[name] = value;
      d = withFieldAt(d, field.path, `\${${name}}`);
    }
    return d;
  });
  return { defs: out, env };
}
