/** A tiny command framework over node:util parseArgs: help, usage errors, exit codes. */
import { parseArgs, type ParseArgsConfig } from 'util';
import type { CliContext } from './context';
import { UsageError } from './usage';

type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  /** e.g. "campaign start" */
  name: string;
  summary: string;
  /** e.g. "--file campaign.yaml --audience list.csv" */
  usage: string;
  /** Lines after the usage: what it does, options, examples. */
  details?: string;
  options?: Options;
  /** Names of the positional arguments it requires, in order. */
  args?: string[];
  /** Names of optional positional arguments after the required ones. */
  optionalArgs?: string[];
  run(ctx: CliContext, values: Values, args: string[]): Promise<number | void>;
}

export function helpText(cmd: Command): string {
  return [`Usage: mailover ${cmd.name} ${cmd.usage}`.trimEnd(), '', cmd.summary, ...(cmd.details ? ['', cmd.details] : [])].join('\n');
}

export function parseCommand(cmd: Command, argv: string[]): { values: Values; args: string[]; help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' }, config: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/, ''), helpText(cmd));
  }
  const values = parsed.values as Values;
  if (values.help) return { values, args: parsed.positionals, help: true };
  const expected = cmd.args ?? [];
  if (parsed.positionals.length < expected.length) {
    throw new UsageError(
      `missing ${expected
        .slice(parsed.positionals.length)
        .map((a) => `<${a}>`)
        .join(' ')}`,
      helpText(cmd),
    );
  }
  const most = expected.length + (cmd.optionalArgs?.length ?? 0);
  if (parsed.positionals.length > most) {
    throw new UsageError(`unexpected argument '${parsed.positionals[most]}'`, helpText(cmd));
  }
  return { values, args: parsed.positionals, help: false };
}

export function requireOption(values: Values, name: string, cmd: Command): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`, helpText(cmd));
  return v;
}
