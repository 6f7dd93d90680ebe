/**
 * What CLI commands share: the provider file, the store and the Temporal client, each opened
 * on first use and closed at the end. Defaults line up with `mailover dev` so a second
 * terminal needs no settings.
 */
import { existsSync } from 'fs';
import { join } from 'path';
import { Client, Connection } from '@temporalio/client';
import { loadProviderNames } from '../config';
import { DEV_CONFIG_FILE } from '../dev/dev-esps';
import { openStore } from '../store/open-store';
import type { Store } from '../store/types';
import { temporalSettingsFromEnv, type TemporalSettings } from '../temporal-connection';

export interface GlobalOptions {
  config?: string;
}

/** --config, else MAILOVER_CONFIG, else ./mailover.yaml, else the file `mailover dev` writes. */
export function configPath(opts: GlobalOptions): string {
  if (opts.config) return opts.config;
  if (process.env.MAILOVER_CONFIG) return process.env.MAILOVER_CONFIG;
  if (existsSync('mailover.yaml')) return 'mailover.yaml';
  const dev = join(process.env.MAILOVER_DATA_DIR ?? 'data', DEV_CONFIG_FILE);
  if (existsSync(dev)) return dev;
  return 'mailover.yaml';
}

export class CliContext {
  private store?: Store;
  private connection?: Connection;
  private client?: Client;
  private temporalSettings?: TemporalSettings;

  constructor(private readonly opts: GlobalOptions) {}

  get options(): GlobalOptions {
    return this.opts;
  }

  /** Temporal settings, read (TLS files included) only by commands that talk to Temporal. */
  get settings(): TemporalSettings {
    this.temporalSettings ??= temporalSettingsFromEnv();
    return this.temporalSettings;
  }

  /** Provider names from the provider file (secrets are the workers' business, not resolved here). */
  providerNames(): string[] {
    return loadProviderNames(configPath(this.opts));
  }

  async openStore(): Promise<Store> {
    this.store ??= await openStore();
    return this.store;
  }

  async temporal(): Promise<Client> {
    if (!this.client) {
      try {
        this.connection = await Connection.connect({
          address: this.settings.address,
          tls: this.settings.tls,
          apiKey: this.settings.apiKey,
          connectTimeout: '5s',
        });
      } catch (err) {
        throw new Error(
          `cannot reach Temporal at ${this.settings.address} (${(err as Error).message}); start one with \`mailover dev\` or set TEMPORAL_ADDRESS`,
          { cause: err },
        );
      }
      this.client = new Client({ connection: this.connection, namespace: this.settings.namespace, dataConverter: this.settings.dataConverter });
    }
    return this.client;
  }

  /** Where a campaign is in the Temporal Web UI. */
  webUiLink(workflowId: string): string {
    const base = (process.env.MAILOVER_UI_URL ?? 'http://localhost:8233').replace(/\/+$/, '');
    return `${base}/namespaces/${encodeURIComponent(this.settings.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  }

  async close(): Promise<void> {
    await this.store?.close();
    await this.connection?.close();
  }
}
