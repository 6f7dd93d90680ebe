/**
 * A local ESP in a process of its own, for the benchmark: `smtp` (SmtpSink) or `mailgun`
 * (MailgunServer). Driven over the IPC channel of child_process.fork:
 *   → { cmd: 'stats' } / { cmd: 'failAfter', n } / { cmd: 'stop' }
 *   ← { ready: { port, url } } / { stats: { accepted, firstAcceptAt, failingSince } }
 */
import { MailgunServer } from '../providers/mailgun/emulator';
import { SmtpSink } from '../providers/smtp/emulator';

type Msg = { cmd: 'stats' } | { cmd: 'failAfter'; n: number } | { cmd: 'stop' };

async function main(): Promise<void> {
  const kind = process.argv[2];
  const name = process.argv[3] ?? kind;
  let firstAcceptAt: number | undefined;
  let failingSince: number | undefined;
  let failAfter: number | undefined;
  if (kind === 'smtp') {
    const sink = await SmtpSink.start({ name });
    sink.on('message', () => {
      firstAcceptAt ??= Date.now();
      if (failAfter !== undefined && sink.acceptedCount >= failAfter && failingSince === undefined) {
        failingSince = Date.now();
        void sink.setMode('refuse');
      }
    });
    process.on('message', (m: Msg) => {
      if (m.cmd === 'stats') process.send!({ stats: { accepted: sink.acceptedCount, firstAcceptAt, failingSince } });
      else if (m.cmd === 'failAfter') failAfter = m.n;
      else if (m.cmd === 'stop') void sink.stop().then(() => process.exit(0));
    });
    process.send!({ ready: { port: sink.port, url: `smtp://127.0.0.1:${sink.port}` } });
  } else if (kind === 'mailgun') {
    const server = await MailgunServer.start({ apiKey: process.argv[4] ?? 'key-bench', name });
    server.on('message', () => (firstAcceptAt ??= Date.now()));
    process.on('message', (m: Msg) => {
      if (m.cmd === 'stats') process.send!({ stats: { accepted: server.acceptedCount, firstAcceptAt, failingSince } });
      else if (m.cmd === 'stop') void server.stop().then(() => process.exit(0));
    });
    process.send!({ ready: { port: server.port, url: server.url } });
  } else {
    throw new Error(`esp-process: unknown kind '${kind}' (smtp or mailgun)`);
  }
  process.on('disconnect', () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
