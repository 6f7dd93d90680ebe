#!/usr/bin/env node
/**
 * `mailover`: start and steer campaigns, run workers, run the embedded dev stack.
 * Exit codes: 0 ok, 1 failure, 2 usage error. Errors are one line on stderr.
 */
import { describeEncryption } from '../codec/data-converter';
import { DEFAULT_ALERT_TIMEOUT_MS, type AlertTarget } from '../config';
import { OPS_EVENT_KINDS } from '../ops-events';
import { describeDevEsps } from '../dev/dev-esps';
import type * as DevStackModule from '../dev/stack';
import { runWorker } from '../worker-main';
import { campaignCommands } from './campaign-commands';
import { codecServer } from './codec-commands';
import { helpText, parseCommand, type Command } from './command';
import { CliContext, configPath } from './context';
import { providerCommands } from './provider-commands';
import { recipientCommands } from './recipient-commands';
import { drillCommands } from './drill-commands';
import { suppressCommands } from './suppress-commands';
import { webhooksCommand } from './webhooks-command';
import { EXIT, oneLine, UsageError } from './usage';

/**
 * The dev stack (Temporal dev server, emulators) is loaded only when `mailover dev` runs; the
 * production build leaves it out (scripts/build.js --production), and says so here.
 */
async function loadDevStack(): Promise<typeof DevStackModule> {
  try {
    return await import('../dev/stack');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new Error(
        'not part of this build: the production image leaves the dev stack and local ESPs out; run it from a source checkout (npm ci && npm start)',
        { cause: err },
      );
    }
    throw err;
  }
}

const dev: Command = {
  name: 'dev',
  summary: `The embedded dev stack: Temporal dev server with its Web UI (state under ./data), a worker, local ESPs (${describeDevEsps()}), the compliance services (webhooks, unsubscribe, bounces) and the worker's /metrics. Ctrl-C stops everything.`,
  usage: '[--data DIR] [--port 7233] [--ui-port 8233] [--alert-webhook URL] [--alert-slack URL]',
  details: [
    'Writes DIR/mailover.dev.yaml, the provider file other mailover commands pick up by default.',
    '--alert-webhook / --alert-slack: the dev worker posts its alerts (circuit opened or closed, provider switched,',
    'campaign holding or failed, drill finished) there, as generic JSON or Slack-compatible JSON.',
  ].join('\n'),
  options: {
    data: { type: 'string' },
    port: { type: 'string' },
    'ui-port': { type: 'string' },
    'alert-webhook': { type: 'string' },
    'alert-slack': { type: 'string' },
  },
  async run(_ctx, values) {
    const port = (name: string, dflt: number) => {
      const v = values[name];
      if (v === undefined) return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--${name}: expected a port number, got '${String(v)}'`, helpText(dev));
      return n;
    };
    const alerts: AlertTarget[] = [];
    for (const kind of ['webhook', 'slack'] as const) {
      const url = values[`alert-${kind}`];
      if (url === undefined) continue;
      if (typeof url !== 'string' || !/^https?:\/\/[^\s/]+/.test(url)) throw new UsageError(`--alert-${kind}: expected an http(s) URL`, helpText(dev));
      alerts.push({ name: `dev-${kind}`, kind, url, events: [...OPS_EVENT_KINDS], timeoutMs: DEFAULT_ALERT_TIMEOUT_MS });
    }
    const dataDir = typeof values.data === 'string' ? values.data : (process.env.MAILOVER_DATA_DIR ?? 'data');
    const { startDevStack } = await loadDevStack();
    const stack = await startDevStack({ dataDir, port: port('port', 7233), uiPort: port('ui-port', 8233), alerts, log: (l) => console.log(l) });
    console.log(`mailover dev is up:`);
    console.log(`  Temporal      ${stack.address} (namespace default, task queue ${stack.taskQueue})`);
    console.log(`  Web UI        ${stack.uiUrl}`);
    for (const e of stack.esps) console.log(`  ${e.name.padEnd(13)} ${e.emulator.endpoint}`);
    for (const e of stack.esps) if (e.webhookUrl) console.log(`  webhooks      ${e.webhookUrl} (the ${e.module.title} emulator posts its events here)`);
    console.log(`  unsubscribe   ${stack.compliance.http.url}/u/<token>`);
    console.log(`  bounces       smtp://127.0.0.1:${stack.compliance.bounces?.port} (DSNs to bounces+<token>@bounces.mailover.dev)`);
    console.log(`  metrics       ${stack.metricsUrl} (Prometheus: messages, switches, circuits, Temporal SDK)`);
    if (alerts.length)
      console.log(`  alerts        ${alerts.map((a) => `${a.name} (${a.kind === 'slack' ? 'Slack-compatible' : 'generic JSON'})`).join(', ')}`);
    console.log(`  providers     ${stack.configPath}`);
    console.log(`  payloads      ${describeEncryption(stack.dataConverter)}`);
    console.log(
      `In another terminal: TEMPORAL_ADDRESS=${stack.address} MAILOVER_UI_URL=${stack.uiUrl} npx mailover campaign start --file samples/campaign.yaml --audience samples/audience.csv --wait`,
    );
    console.log('Ctrl-C to stop.');
    await new Promise<void>((res) => {
      process.once('SIGINT', () => res());
      process.once('SIGTERM', () => res());
    });
    console.log('stopping...');
    await stack.stop();
    console.log('stopped');
  },
};

const worker: Command = {
  name: 'worker',
  summary:
    'A production worker: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MAILOVER_TASK_QUEUE, TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY or TEMPORAL_API_KEY, DATABASE_URL or MAILOVER_DB, MAILOVER_PAYLOAD_KEYS (payload encryption); MAILOVER_METRICS_PORT (or metrics: in the config) serves /metrics and prints its URL. Stops gracefully on SIGTERM.',
  usage: '[--config providers.yaml]',
  async run(_ctx, values) {
    await runWorker(configPath({ config: typeof values.config === 'string' ? values.config : undefined }));
  },
};

const COMMANDS: Command[] = [
  dev,
  worker,
  webhooksCommand,
  ...campaignCommands,
  ...recipientCommands,
  ...providerCommands,
  ...suppressCommands,
  ...drillCommands,
  codecServer,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: mailover <command> [options]      (mailover <command> --help for more)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary.split('. ')[0].replace(/\.$/, '')}`),
    '',
    'Global: --config providers.yaml (default: $MAILOVER_CONFIG, ./mailover.yaml, or data/mailover.dev.yaml from `mailover dev`)',
  ].join('\n');
}

/** Longest command name that prefixes argv (e.g. "campaign start"). */
function findCommand(argv: string[]): { cmd?: Command; rest: string[] } {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const cmd = COMMANDS.find((c) => c.name === name);
    if (cmd) return { cmd, rest: argv.slice(words) };
  }
  return { rest: argv };
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(overview());
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  const { cmd, rest } = findCommand(argv);
  if (!cmd) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
    if (group.length && (argv.length === 1 || argv[1] === '--help' || argv[1] === '-h')) {
      console.log(
        [`Usage: mailover ${argv[0]} <${group.map((c) => c.name.split(' ')[1]).join('|')}> ...`, '', ...group.map((c) => `  ${c.name}  ${c.usage}`)].join('\n'),
      );
      return argv.length === 1 ? EXIT.usage : EXIT.ok;
    }
    console.error(`mailover: unknown command '${argv.slice(0, group.length ? 2 : 1).join(' ')}' (see mailover --help)`);
    return EXIT.usage;
  }
  try {
    const { values, args, help } = parseCommand(cmd, rest);
    if (help) {
      console.log(helpText(cmd));
      return EXIT.ok;
    }
    const scoped = new CliContext({ config: typeof values.config === 'string' ? values.config : undefined });
    try {
      return (await cmd.run(scoped, values, args)) ?? EXIT.ok;
    } finally {
      await scoped.close();
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`mailover ${cmd.name}: ${err.message}`);
      if (err.help) console.error(`\n${err.help}`);
      return EXIT.usage;
    }
    console.error(`mailover ${cmd.name}: ${oneLine(err)}`);
    return EXIT.failure;
  }
}

/**
 * Exits once everything written to stdout and stderr has gone out: on a pipe those writes can
 * still be queued, and process.exit would cut a long output (`suppress list --json`) short.
 */
function exitAfterOutput(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(exitAfterOutput, (err) => {
    console.error(`mailover: ${oneLine(err)}`);
    exitAfterOutput(EXIT.failure);
  });
}
