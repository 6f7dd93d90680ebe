/**
 * A local ESP in a process of its own, for the benchmark: the emulator of a provider kind,
 * started through its module (`node esp-process.js <kind> <name>`). Driven over the IPC channel
 * of child_process.fork:
 *   → { cmd: 'stats' } / { cmd: 'failAfter', n } / { cmd: 'stop' }
 *   ← { ready: { port, url, config } } / { stats: { accepted, firstAcceptAt, failingSince } }
 * `config` is the provider definition that sends through it (its fake secrets as values);
 * failAfter: the emulator goes down once it has accepted n messages in all.
 */
import { providerModule } from '../providers/modules';

type Msg = { cmd: 'stats' } | { cmd: 'failAfter'; n: number } | { cmd: 'stop' };

async function main(): Promise<void> {
  const kind = process.argv[2];
  const name = process.argv[3] ?? kind;
  const support = providerModule(kind).emulator;
  if (!support) throw new Error(`esp-process: kind '${kind}' has no emulator`);
  const esp = await support.start({ name });
  if (!esp.on) throw new Error(`esp-process: the ${kind} emulator emits no 'message' events`);
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
  });
  process.send!({ ready: { port: esp.port, url: esp.endpoint, config: support.config(esp) } });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
