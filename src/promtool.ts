/**
 * Finds or installs promtool (Prometheus's checker: config, rules, rule unit tests, metrics lint),
 * which the monitoring tests run against deploy/prometheus/ and the workers' real /metrics.
 * Order: $PROMTOOL; `promtool` on PATH; Debian's `prometheus` package (it ships promtool),
 * installed with apt-get when running as root, without starting the prometheus service.
 * Elsewhere it stops with the one command that installs it.
 * One place used by tests and `npm test` (scripts/ensure-promtool.js), like src/temporal-cli.ts.
 */
import { spawnSync } from 'child_process';
import { existsSync, rmSync, writeFileSync } from 'fs';
import { findOnPath, isExecutable } from './executables';

export const PROMTOOL_PACKAGE = 'prometheus';
export const PROMTOOL_INSTALL_COMMAND = `sudo apt-get install -y --no-install-recommends ${PROMTOOL_PACKAGE}`;
export interface PromtoolHost {
  env: NodeJS.ProcessEnv;
  isRoot: boolean;
  /** Denies every service start while the package installs (invoke-rc.d and deb-systemd-invoke ask it): /usr/sbin/policy-rc.d. */
  policyRcD: string;
  /** Runs a command (inherits stdio); its exit code. */
  run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): number | null;
  log(line: string): void;
}

/** The promtool to use, or undefined when none is installed. */
export function findPromtool(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.PROMTOOL;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`PROMTOOL=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  return findOnPath('promtool', env);
}

const defaultHost = (): PromtoolHost => ({
  env: process.env,
  isRoot: process.getuid?.() === 0,
  policyRcD: '/usr/sbin/policy-rc.d',
  run: (cmd, args, env) => spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env: env ?? process.env }).status,
  log: (line) => process.stderr.write(line + '\n'),
});

/**
 * apt-get install of the package with service starts denied: a policy-rc.d that exits 101 is put
 * in place for the install when the machine has none (and removed after), so the package's
 * postinst neither starts nor restarts the prometheus server (nor, under systemd, enables it for the next boot).
 */
function aptInstall(host: PromtoolHost): boolean {
  const env = { ...host.env, DEBIAN_FRONTEND: 'noninteractive' };
  const ownPolicy = !existsSync(host.policyRcD);
  if (ownPolicy) writeFileSync(host.policyRcD, '#!/bin/sh\n# mailover: no service starts while promtool installs\nexit 101\n', { mode: 0o755 });
  try {
    const install = () => host.run('apt-get', ['install', '-y', '--no-install-recommends', PROMTOOL_PACKAGE], env);
    let ok = install() === 0;
    if (!ok) {
      // A fresh machine may have no package lists yet.
      host.log('mailover: apt-get install failed; updating the package lists and trying again');
      ok = host.run('apt-get', ['update', '-qq'], env) === 0 && install() === 0;
    }
    // Under systemd the package enables its unit for the next boot: only promtool is wanted.
    if (ok && existsSync('/run/systemd/system')) host.run('systemctl', ['disable', '--quiet', `${PROMTOOL_PACKAGE}.service`], env);
    return ok;
  } finally {
    if (ownPolicy) rmSync(host.policyRcD, { force: true });
  }
}

/** promtool's path, installing Debian's prometheus package when it can; else an error naming the command that does. */
export function ensurePromtool(host: PromtoolHost = defaultHost()): string {
  const found = findPromtool(host.env);
  if (found) return found;
  const apt = findOnPath('apt-get', host.env);
  if (!apt || !host.isRoot) {
    throw new Error(`promtool is not installed; install it with: ${PROMTOOL_INSTALL_COMMAND} (or set PROMTOOL to its path)`);
  }
  host.log(`mailover: installing promtool (Debian package ${PROMTOOL_PACKAGE}, its service not started)...`);
  if (!aptInstall(host))
    throw new Error(`apt-get could not install ${PROMTOOL_PACKAGE}; install it with: ${PROMTOOL_INSTALL_COMMAND} (or set PROMTOOL to its path)`);
  const installed = findPromtool(host.env);
  if (!installed) throw new Error(`the ${PROMTOOL_PACKAGE} package is installed but promtool is not on PATH; set PROMTOOL to its path`);
  return installed;
}
