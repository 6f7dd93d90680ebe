/** `mailover suppress ...`: the one suppression list every provider sends by. */
import { basename } from 'path';
import { normaliseAddress } from '../address';
import { forEachCheckedChunk, scanAudienceFile } from '../audience';
import { loadConfig } from '../config';
import { findProviderModule, providerModules } from '../providers/modules';
import type { ProviderDefinitionBase, SuppressionSupport } from '../providers/provider-module';
import { rejectedRowLines, table } from '../progress';
import { quote } from '../quote-value';
import type { Command } from './command';
import { configPath, type CliContext } from './context';
import { LiveLine } from './live-line';

function address(raw: string): string {
  const a = normaliseAddress(raw);
  if (!a.ok) throw new Error(`invalid address ${quote(raw)}: ${a.reason}`);
  return a.email;
}

const add: Command = {
  name: 'suppress add',
  summary: 'Add an address to the suppression list: it is never sent again, on any provider.',
  usage: '<email> [--reason TEXT]',
  args: ['email'],
  options: { reason: { type: 'string' } },
  async run(ctx, values, [raw]) {
    const email = address(raw);
    await (await ctx.openStore()).addSuppression(email, typeof values.reason === 'string' ? values.reason : 'added by operator', 'cli');
    console.log(`suppressed ${email}`);
  },
};

const remove: Command = {
  name: 'suppress remove',
  summary: 'Remove an address from the suppression list.',
  usage: '<email>',
  args: ['email'],
  async run(ctx, _values, [raw]) {
    const email = address(raw);
    const removed = await (await ctx.openStore()).removeSuppression(email);
    if (!removed) throw new Error(`${email} is not on the suppression list`);
    console.log(`removed ${email} from the suppression list`);
  },
};

const importCmd: Command = {
  name: 'suppress import',
  summary: 'Add every address of a .csv (email column) or .jsonl file to the suppression list (exit 1 when it has none).',
  usage: '<file> [--reason TEXT]',
  args: ['file'],
  options: { reason: { type: 'string' } },
  async run(ctx, values, [file]) {
    // Checked whole first (nothing is added from a file that cannot be read), then added in chunks.
    const scan = await scanAudienceFile(file);
    if (scan.valid === 0) {
      const first = scan.rejected[0] ? `, first: line ${scan.rejected[0].line}: ${scan.rejected[0].reason}` : '';
      throw new Error(`${basename(file)}: no valid addresses (${scan.rejected.length} rejected${first}); nothing was added to the suppression list`);
    }
    const store = await ctx.openStore();
    const reason = typeof values.reason === 'string' ? values.reason : `imported from ${file}`;
    const bar = new LiveLine(process.stderr);
    let added = 0;
    await forEachCheckedChunk(file, scan, 'were added to the suppression list', async (rows, done) => {
      const n = await store.addSuppressions(
        rows.map((r) => r.email),
        reason,
        'cli import',
      );
      added += n;
      bar.update(`suppressing ${done}/${scan.valid}`);
      return n;
    });
    bar.done();
    const already = scan.valid - added;
    console.log(
      `suppressed ${scan.valid} addresses from ${file} (${already} already listed, ${scan.duplicates.length} duplicates, ${scan.rejected.length} rejected)`,
    );
    for (const line of rejectedRowLines(scan.rejected)) console.log(line);
  },
};

const list: Command = {
  name: 'suppress list',
  summary: 'The suppression list (a table; --json for scripts).',
  usage: '[--json]',
  options: { json: { type: 'boolean' } },
  async run(ctx, values) {
    const rows = await (await ctx.openStore()).listSuppressions();
    if (values.json) console.log(JSON.stringify(rows, null, 2));
    else if (!rows.length) console.log('the suppression list is empty');
    else
      console.log(
        table([
          ['address', 'reason', 'source', 'since (UTC)'],
          ...rows.map((r) => [r.email, r.reason, r.source, r.createdAt.toISOString().replace('T', ' ').slice(0, 19)]),
        ]),
      );
  },
};

/** The named provider from the full config (secrets resolved): its kind must keep lists of its own. */
function listKeepingProvider(ctx: CliContext, name: string): { provider: ProviderDefinitionBase; suppressions: SuppressionSupport } {
  const config = loadConfig(configPath(ctx.options));
  const p = config.providers.find((d) => d.name === name);
  if (!p) throw new Error(`unknown provider '${name}' (configured: ${config.providers.map((d) => d.name).join(', ')})`);
  const suppressions = findProviderModule(p.kind)?.suppressions;
  if (!suppressions) throw new Error(`provider '${name}' is ${p.kind}: it keeps no suppression lists of its own (mailover's list already applies to it)`);
  return { provider: p, suppressions };
}

/** The kinds that keep suppression lists of their own, with those lists, for the help texts. */
const LIST_KEEPERS = providerModules()
  .filter((m) => m.suppressions)
  .map((m) => `${m.title}: ${m.suppressions!.lists}`)
  .join('; ');

const sync: Command = {
  name: 'suppress sync',
  summary: `Pull a provider's own suppression lists (${LIST_KEEPERS || 'no kind keeps any'}) into mailover's list, so every provider sends by what that one knew.`,
  usage: '<provider>',
  details: 'Reads the provider (and its API key, from the environment) from the config file. Addresses already suppressed are left as they are.',
  args: ['provider'],
  async run(ctx, _values, [name]) {
    const { provider, suppressions } = listKeepingProvider(ctx, name);
    console.log((await suppressions.pull(await ctx.openStore(), provider)).summary);
  },
};

const push: Command = {
  name: 'suppress push',
  summary: `Push mailover's suppression list to a provider that keeps its own (${LIST_KEEPERS || 'no kind keeps any'}), each suppression on the list its reason belongs to (list-scoped ones for that list only).`,
  usage: '<provider>',
  args: ['provider'],
  async run(ctx, _values, [name]) {
    const { provider, suppressions } = listKeepingProvider(ctx, name);
    console.log((await suppressions.push(await ctx.openStore(), provider)).summary);
  },
};

export const suppressCommands: Command[] = [add, remove, importCmd, list, sync, push];
