/**
 * The providers a worker can send through, built from configuration and shared by
 * every activity on the worker (one pooled transport per provider).
 */
import type { ProviderDefinition, RateLimit } from '../config';
import type { Provider } from './provider';
import { MailgunProvider } from './mailgun/provider';
import { SmtpProvider } from './smtp/provider';

export function createProvider(def: ProviderDefinition): Provider {
  switch (def.kind) {
    case 'smtp':
      return new SmtpProvider(def);
    case 'mailgun':
      return new MailgunProvider(def);
  }
}

export class ProviderRegistry {
  private readonly instances = new Map<string, Provider>();
  private readonly defs = new Map<string, ProviderDefinition>();

  constructor(definitions: ProviderDefinition[], private readonly factory: (def: ProviderDefinition) => Provider = createProvider) {
    for (const d of definitions) this.defs.set(d.name, d);
  }

  names(): string[] {
    return [...this.defs.keys()];
  }

  /** The provider's configured sending limits, if any. */
  rateLimit(name: string): RateLimit | undefined {
    return this.defs.get(name)?.rateLimit;
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
