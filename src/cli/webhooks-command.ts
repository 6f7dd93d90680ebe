/** `mailover webhooks`: the compliance server (provider webhooks, unsubscribe endpoint) and the inbound bounce listener. */
import { loadConfig } from '../config';
import { providerWebhooks, startComplianceServices } from '../compliance/services';
import { providerModules } from '../providers/modules';
import { describeStore } from '../store/open-store';
import type { Command } from './command';
import { configPath } from './context';

export const webhooksCommand: Command = {
  name: 'webhooks',
  summary: `The compliance server: provider event webhooks (POST /webhooks/<provider>; ${
    providerModules()
      .filter((m) => m.webhooks)
      .map((m) => m.title)
      .join(', ') || 'no kind has any'
  }), the unsubscribe endpoint (/u/<token>, one-click POST), and with bounces: the inbound SMTP listener for DSNs. Runs beside workers; Ctrl-C or SIGTERM stops it.`,
  usage: '[--config providers.yaml]',
  details: "Reads webhooks:, unsubscribe:, bounces: and the providers' webhook signing keys from the config file (signing keys from the environment).",
  async run(ctx) {
    const config = loadConfig(configPath(ctx.options));
    const store = await ctx.openStore();
    const services = await startComplianceServices(config, store);
    const hooks = [...providerWebhooks(config).keys()].map((name) => `${services.http.url}/webhooks/${name}`);
    console.log(`mailover webhooks ready: pid ${process.pid}, store ${describeStore(store)}`);
    console.log(`  http          ${services.http.url}  (metrics ${services.http.url}/metrics)`);
    console.log(`  webhooks      ${hooks.join(', ') || 'none (no provider with webhooks has a signing key configured)'}`);
    console.log(
      `  unsubscribe   ${config.compliance.unsubscribe ? `${config.compliance.unsubscribe.baseUrl}/u/<token> (scope ${config.compliance.unsubscribe.scope})` : 'off (no unsubscribe: section)'}`,
    );
    console.log(
      `  bounces       ${services.bounces ? `smtp://${services.bounces.host}:${services.bounces.port} for ${config.compliance.bounces!.domain}` : 'off (no bounces: section)'}`,
    );
    await new Promise<void>((res) => {
      process.once('SIGINT', () => res());
      process.once('SIGTERM', () => res());
    });
    await services.stop();
    console.log('stopped');
  },
};
