/**
 * The providers a worker can send through, built from configuration and shared by
 * every activity on the worker (one pooled transport per provider).
 */
import type { RateLimit } from '../config';
import type { ProviderQuotaFields } from '../quota';
import { moduleOf } from './modules';
import type { Provider } from './provider';
import type { ProviderDefinitionBase } from './provider-module';

/** The sending adapter of a definition, made by its kind's module. */
export function createProvider(def: ProviderDefinitionBase): Provider {
  return moduleOf(def).create(def);
}

export class ProviderRegistry {
  private readonly instances = new Map<string, Provider>();
  private readonly defs = new Map<string, ProviderDefinitionBase>();

  constructor(
    definitions: readonly ProviderDefinitionBase[],
    private readonly factory: (def: ProviderDefinitionBase) => Provider = createProvider,
  ) {
    for (const d of definitions) this.defs.set(d.name, d);
  }

  names(): string[] {
    return [...this.defs.keys()];
  }

  /** The provider's configured sending pace, if any: its rate limit, with a quota's perSecond (the lower one holds). */
  rateLimit(name: string): RateLimit | undefined {
    const def = this.defs.get(name);
    const perSecond = def?.quota?.perSecond;
    if (perSecond === undefined) return def?.rateLimit;
    const own = def?.rateLimit?.perSecond;
    return { ...def?.rateLimit, perSecond: own === undefined ? perSecond : Math.min(own, perSecond) };
  }

  /** The provider's quotas and warm-up ramp (src/quota.ts), if any. */
  quota(name: string): ProviderQuotaFields {
    const def = this.defs.get(name);
    return { ...(def?.quota ? { quota: def.quota } : {}), ...(def?.warmup ? { warmup: def.warmup } : {}) };
  }

  has(name: string): boolean {
    return this.defs.has(name);
  }

  get(name: string): Provider {
    let p = this.instances.get(name);
    if (!p) {
      const def = this.defs.get(name);
      if (!def) throw new Error(`provider '${name}' is not configured (configured: ${this.names().join(', ') || 'none'})`);
      p = this.factory(def);
      this.instances.set(name, p);
    }
    return p;
  }

  async closeAll(): Promise<void> {
    const all = [...this.instances.values()];
    this.instances.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }
}
