/**
 * The bench's command line: `node build/src/bench/run.js [--n N | --large] [--store postgres]
 * [--latency-ms L] [--window W] [--only smtp|mailgun] [--scale [--workers K]]`.
 */

export interface BenchArgs {
  /** Recipients per campaign. */
  n: number;
  store: 'sqlite' | 'postgres';
  /** The local ESPs answer each message (SMTP) or call (Mailgun) this many ms late. */
  latencyMs: number;
  /** options.batchesInFlight of the bench's campaigns; undefined: the workflow's default. */
  window?: number;
  /** Only one path's runs (raw and engine); undefined: both, the PostgreSQL and failover runs too. */
  only?: 'smtp' | 'mailgun';
  /** The scale-out run (PostgreSQL, several workers, Mailgun path) instead of the side-by-side bench. */
  scale: boolean;
  /** Worker processes of the scale-out run. */
  workers: number;
}

const FLAGS_WITH_VALUE = ['--n', '--store', '--latency-ms', '--window', '--only', '--workers'];
const FLAGS = ['--large', '--scale'];

/** Parses the arguments; throws naming the flag and the value when one is wrong. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (FLAGS.includes(arg)) flags.add(arg);
    else if (FLAGS_WITH_VALUE.includes(arg)) {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new Error(`${arg}: expected a value after it`);
      values.set(arg, value);
      i++;
    } else throw new Error(`unknown argument '${arg}' (expected ${[...FLAGS_WITH_VALUE, ...FLAGS].join(', ')})`);
  }
  const whole = (flag: string, min: number): number | undefined => {
    const raw = values.get(flag);
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min) throw new Error(`${flag}: expected a whole number of at least ${min}, got '${raw}'`);
    return n;
  };
  const scale = flags.has('--scale');
  const n = whole('--n', 1000) ?? (scale ? 1_000_000 : flags.has('--large') ? 100_000 : 10_000);
  const store = values.get('--store') ?? 'sqlite';
  if (store !== 'sqlite' && store !== 'postgres') throw new Error(`--store: expected 'sqlite' or 'postgres', got '${store}'`);
  const only = values.get('--only');
  if (only !== undefined && only !== 'smtp' && only !== 'mailgun') throw new Error(`--only: expected 'smtp' or 'mailgun', got '${only}'`);
  if (scale && (values.has('--store') || values.has('--only')))
    throw new Error('--scale: runs the Mailgun path on PostgreSQL; --store and --only do not apply');
  if (!scale && values.has('--workers')) throw new Error('--workers: only with --scale');
  return {
    n,
    store,
    latencyMs: whole('--latency-ms', 0) ?? 0,
    window: whole('--window', 1),
    only,
    scale,
    workers: whole('--workers', 1) ?? 2,
  };
}
