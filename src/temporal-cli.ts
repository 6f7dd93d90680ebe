/**
 * Finds or installs the Temporal CLI (which embeds the dev server and the Web UI).
 * Order: $TEMPORAL_CLI; a `temporal` of the pinned version on PATH or in Go's bin
 * directory; `go install` of the pinned version; else the SDK's own download.
 * One place used by tests, CI (scripts/ensure-temporal.js) and the demo.
 */
import { execFileSync, spawnSync } from 'child_process';
import { existsSync } from 'fs';
import { delimiter, join } from 'path';
import { findOnPath, isExecutable } from './executables';
import type { EphemeralServerExecutable } from '@temporalio/testing/lib/ephemeral-server';

export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
/** The Go toolchain named by the CLI's go.mod, used if the machine's Go cannot build it. */
const FALLBACK_TOOLCHAIN = 'go1.25.0';

function findGo(): string | undefined {
  return findOnPath('go', process.env, ['/usr/local/go/bin']);
}

function goBinDir(go: string | undefined): string {
  if (go) {
    try {
      const gobin = execFileSync(go, ['env', 'GOBIN'], { encoding: 'utf8' }).trim();
      if (gobin) return gobin;
      return join(execFileSync(go, ['env', 'GOPATH'], { encoding: 'utf8' }).trim(), 'bin');
    } catch {
      // fall through
    }
  }
  return join(process.env.HOME ?? '/root', 'go', 'bin');
}

/** True when the binary is the pinned CLI version (from Go build info, else from --version). */
function isPinnedVersion(path: string, go: string | undefined): boolean {
  if (go) {
    const info = spawnSync(go, ['version', '-m', path], { encoding: 'utf8' });
    if (info.status === 0 && info.stdout.includes('github.com/temporalio/cli')) {
      return new RegExp(`\\bmod\\s+github\\.com/temporalio/cli\\s+${TEMPORAL_CLI_VERSION.replace(/\./g, '\\.')}\\b`).test(info.stdout);
    }
  }
  const v = spawnSync(path, ['--version'], { encoding: 'utf8' });
  return v.status === 0 && v.stdout.includes(TEMPORAL_CLI_VERSION.slice(1));
}

function findInstalled(go: string | undefined): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), goBinDir(go)];
  for (const dir of dirs) {
    const candidate = join(dir, 'temporal');
    if (isExecutable(candidate) && isPinnedVersion(candidate, go)) return candidate;
  }
  return undefined;
}

function goInstall(go: string, log: (line: string) => void): string | undefined {
  const target = `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`;
  for (const toolchain of [undefined, FALLBACK_TOOLCHAIN]) {
    log(`mailover: building the Temporal CLI ${TEMPORAL_CLI_VERSION} with ${toolchain ?? 'the installed Go'} (first time only; about 5 minutes on 2 cores)...`);
    const started = Date.now();
    const env = { ...process.env, ...(toolchain ? { GOTOOLCHAIN: toolchain } : {}) };
    const r = spawnSync(go, ['install', target], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    const bin = join(goBinDir(go), 'temporal');
    if (r.status === 0 && existsSync(bin)) {
      log(`mailover: Temporal CLI built in ${Math.round((Date.now() - started) / 1000)} s: ${bin}`);
      return bin;
    }
    log(`mailover: go install ${target} failed (exit ${r.status})`);
  }
  return undefined;
}

export interface TemporalCli {
  /** For @temporalio/testing's createLocal: an existing binary, or the SDK download as last resort. */
  executable: EphemeralServerExecutable;
  /** Path of the binary, when one is installed. */
  path?: string;
  source: 'TEMPORAL_CLI' | 'installed' | 'go install' | 'sdk download';
}

let cached: TemporalCli | undefined;

export function ensureTemporalCli(log: (line: string) => void = (l) => process.stderr.write(l + '\n')): TemporalCli {
  if (cached) return cached;
  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`TEMPORAL_CLI=${fromEnv} is not an executable file`);
    return (cached = { executable: { type: 'existing-path', path: fromEnv }, path: fromEnv, source: 'TEMPORAL_CLI' });
  }
  const go = findGo();
  const installed = findInstalled(go);
  if (installed) return (cached = { executable: { type: 'existing-path', path: installed }, path: installed, source: 'installed' });
  if (go) {
    const built = goInstall(go, log);
    if (built) return (cached = { executable: { type: 'existing-path', path: built }, path: built, source: 'go install' });
  }
  log('mailover: no Go toolchain to build the Temporal CLI; falling back to the Temporal SDK download');
  return (cached = { executable: { type: 'cached-download' }, source: 'sdk download' });
}
