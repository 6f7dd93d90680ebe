/** `mailover provider ...`: the shared health of each provider (its circuit), and marking one down or up by hand. */
import { loadHealthConfig, loadProviderQuotas } from '../config';
import { hasCountedQuota, quotaLimitsNow, thousands, type ProviderQuotaFields } from '../quota';
import { table } from '../progress';
import { markProviderDown, markProviderUp, providerHealth } from '../provider-health-client';
import type { ProviderHealthState } from '../../workflows/provider-health-api';
import type { Command } from './command';
import { configPath } from './context';
import type { CliContext } from './context';

function knownProvider(ctx: CliContext, name: string): string {
  const names = ctx.providerNames();
  if (!names.includes(name)) throw new Error(`unknown provider '${name}' (configured: ${names.join(', ')})`);
  return name;
}

function circuitLabel(s: ProviderHealthState | undefined): string {
  if (!s) return 'closed (not used yet)';
  if (s.manualDown !== undefined) return 'open (held down by an operator)';
  return s.circuit;
}

function stateRow(name: string, s: ProviderHealthState | undefined): string[] {
  return [
    name,
    circuitLabel(s),
    s?.since ?? '',
    String(s?.consecutiveFailures ?? 0),
    s ? `${s.recent.ok} ok / ${s.recent.failed} failed` : '',
    s ? `${s.probes.tried} tried, ${s.probes.failed} failed` : '',
    String(s?.subscribers.length ?? 0),
    s && s.circuit !== 'closed' ? (s.reason ?? '') : '',
  ];
}

const HEADER = ['provider', 'circuit', 'since', 'failures in a row', 'recent batches', 'probes', 'campaigns', 'why down'];

interface QuotaLine {
  limit: string;
  used: number;
  allowance: number;
  left: number;
  resetAt: string;
  warmupDay?: number;
}

/** Today's quotas and warm-up allowance of each named provider that has any, with their use so far (from the store's counters). */
async function quotasToday(ctx: CliContext, names: string[]): Promise<Map<string, QuotaLine[]>> {
  const settings = new Map<string, ProviderQuotaFields>(loadProviderQuotas(configPath(ctx.options)).map((p) => [p.name, p]));
  const out = new Map<string, QuotaLine[]>();
  const counted = names.filter((n) => hasCountedQuota(settings.get(n) ?? {}));
  if (!counted.length) return out;
  const store = await ctx.openStore();
  const now = Date.now();
  for (const name of counted) {
    const limits = quotaLimitsNow(settings.get(name)!, now);
    const usage = await store.quotaUsage(name, limits);
    out.set(
      name,
      usage.map((u, i) => ({
        limit: u.limit,
        used: u.used,
        allowance: u.allowance,
        left: Math.max(0, u.allowance - u.used),
        resetAt: new Date(u.resetAt).toISOString(),
        ...(limits[i].warmupDay !== undefined ? { warmupDay: limits[i].warmupDay } : {}),
      })),
    );
  }
  return out;
}

const quotaLabel = (q: QuotaLine) => (q.limit === 'warmup' ? `warm-up (day ${q.warmupDay})` : `per ${q.limit}`);

const status: Command = {
  name: 'provider status',
  summary:
    "Each provider's shared health: its circuit (closed = sending, open = down, half-open = probing), why, and the campaigns watching it; and today's quotas and warm-up allowance with their use.",
  usage: '[name] [--json]',
  optionalArgs: ['name'],
  options: { json: { type: 'boolean' } },
  async run(ctx, values, args) {
    const names = args.length ? [knownProvider(ctx, args[0])] : ctx.providerNames();
    const client = await ctx.temporal();
    const states = await Promise.all(names.map((n) => providerHealth(client, ctx.settings.taskQueue, n)));
    const quotas = await quotasToday(ctx, names);
    if (values.json) {
      console.log(
        JSON.stringify(
          names.map((n, i) => ({ ...(states[i] ?? { provider: n, circuit: 'closed', unused: true }), ...(quotas.has(n) ? { quota: quotas.get(n) } : {}) })),
          null,
          2,
        ),
      );
      return;
    }
    console.log(table([HEADER, ...names.map((n, i) => stateRow(n, states[i]))]));
    if (quotas.size) {
      console.log("\nQuotas today (on each provider's clock; shared by every campaign and worker):");
      const rows = [...quotas].flatMap(([n, lines]) =>
        lines.map((q) => [n, quotaLabel(q), thousands(q.used), thousands(q.allowance), thousands(q.left), q.resetAt]),
      );
      console.log(table([['provider', 'limit', 'used', 'allowance', 'left', 'resets'], ...rows]));
    }
    for (const s of states) {
      if (!s?.transitions.length) continue;
      console.log(`\n${s.provider}: last changes`);
      for (const t of s.transitions.slice(-5)) console.log(`  ${t.at}  → ${t.to}: ${t.reason}`);
    }
  },
};

const down: Command = {
  name: 'provider down',
  summary:
    'Mark a provider down by hand (planned maintenance): every campaign on it moves to its next provider at the next batch; no probes until `provider up`.',
  usage: '<name> [--reason TEXT]',
  args: ['name'],
  options: { reason: { type: 'string' } },
  async run(ctx, values, [name]) {
    knownProvider(ctx, name);
    const reason = typeof values.reason === 'string' && values.reason ? values.reason : 'planned maintenance';
    const s = await markProviderDown(await ctx.temporal(), ctx.settings.taskQueue, name, loadHealthConfig(configPath(ctx.options)), reason);
    console.log(`${name} is marked down (${reason}); ${s.subscribers.length} running campaign(s) told to move on.`);
  },
};

const up: Command = {
  name: 'provider up',
  summary: 'Mark a provider up again: its circuit closes now and campaigns fail back to it (failback: auto).',
  usage: '<name> [--reason TEXT]',
  args: ['name'],
  options: { reason: { type: 'string' } },
  async run(ctx, values, [name]) {
    knownProvider(ctx, name);
    const reason = typeof values.reason === 'string' && values.reason ? values.reason : 'operator';
    const s = await markProviderUp(await ctx.temporal(), ctx.settings.taskQueue, name, loadHealthConfig(configPath(ctx.options)), reason);
    console.log(`${name} is marked up; circuit ${s.circuit}; ${s.subscribers.length} running campaign(s) told.`);
  },
};

export const providerCommands: Command[] = [status, down, up];
