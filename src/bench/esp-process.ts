/**
 * A local ESP in a process of its own, for the benchmark (`node esp-process.js <kind> <name> [latencyMs]`):
 * the emulator of a provider kind, started through its module, or `mailgun-sink`, the bench's
 * counting Mailgun-compatible API (./mailgun-sink.ts). With latencyMs > 0 the ESP answers each
 * message (SMTP: the reply to DATA) or call (Mailgun) that many ms late. Driven over the IPC
 * channel of child_process.fork:
 *   → { cmd: 'stats' } / { cmd: 'failAfter', n } / { cmd: 'tally', tag, n } / { cmd: 'stop' }
 *   ← { ready: { port, url, config } } / { stats: { accepted, firstAcceptAt, failingSince } }
 *     / { tally: { accepted, lost, duplicated, extraCopies } } (mailgun-sink only)
 * `config` is the provider definition that sends through it (its fake secrets as values);
 * failAfter: the emulator goes down once it has accepted n messages in all.
 */
import { providerModule } from '../providers/modules';
import type { ProviderDefinitionBase } from '../providers/provider-module';
import { MailgunSink } from './mailgun-sink';

type Msg = { cmd: 'stats' } | { cmd: 'failAfter'; n: number } | { cmd: 'tally'; tag: string; n: number } | { cmd: 'stop' };

/** The sending domain of the sink's provider definition. */
const SINK_DOMAIN = 'mg.bench.test';

async function startSink(name: string, latencyMs: number): Promise<void> {
  const sink = await MailgunSink.start(name);
  sink.setLatency(latencyMs);
  process.on('message', (m: Msg) => {
    if (m.cmd === 'stats') process.send!({ stats: { accepted: sink.acceptedCount, firstAcceptAt: sink.firstAcceptedAt } });
    else if (m.cmd === 'tally') process.send!({ tally: sink.counter.tally(m.tag, m.n) });
    else if (m.cmd === 'stop') void sink.stop().then(() => process.exit(0));
    else throw new Error(`esp-process: mailgun-sink cannot ${m.cmd}`);
  });
  const config: ProviderDefinitionBase & Record<string, unknown> = {
    kind: 'mailgun',
    name,
    domain: SINK_DOMAIN,
    apiKey: sink.apiKey,
    url: sink.url,
    lookupSettleMs: 0,
  };
  process.send!({ ready: { port: sink.port, url: sink.url, config } });
}

async function main(): Promise<void> {
  const kind = process.argv[2]!;
  const name = process.argv[3] ?? kind;
  const latencyMs = Number(process.argv[4] ?? 0);
  process.on('disconnect', () => process.exit(0));
  if (kind === 'mailgun-sink') return startSink(name, latencyMs);
  const support = providerModule(kind).emulator;
  if (!support) throw new Error(`esp-process: kind '${kind}' has no emulator`);
  const esp = await support.start({ name });
  if (!esp.on) throw new Error(`esp-process: the ${kind} emulator emits no 'message' events`);
  if (latencyMs > 0) {
    if (!esp.setLatency) throw new Error(`esp-process: the ${kind} emulator cannot answer late`);
    esp.setLatency(latencyMs);
  }
  let firstAcceptAt: number | undefined;
  let failingSince: number | undefined;
  let failAfter: number | undefined;
  esp.on('message', () => {
    firstAcceptAt ??= Date.now();
    if (failAfter !== undefined && esp.acceptedCount >= failAfter && failingSince === undefined) {
      failingSince = Date.now();
      if (!esp.goDownAfter) throw new Error(`esp-process: the ${kind} emulator cannot go down`);
      void esp.goDownAfter(0);
    }
  });
  process.on('message', (m: Msg) => {
    if (m.cmd === 'stats') process.send!({ stats: { accepted: esp.acceptedCount, firstAcceptAt, failingSince } });
    else if (m.cmd === 'failAfter') failAfter = m.n;
    else if (m.cmd === 'stop') void esp.stop().then(() => process.exit(0));
    else throw new Error(`esp-process: the ${kind} emulator cannot ${m.cmd}`);
  });
  process.send!({ ready: { port: esp.port, url: esp.endpoint, config: support.config(esp) } });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
