/**
 * Keeps the Temporal dev server from outliving `mailover dev` (and `npm start`) when that
 * process dies without running its cleanup (SIGKILL, an OOM kill, a closed container shell).
 *
 * The SDK starts the server as a direct child process. A small detached watchdog process
 * polls the parent once a second; when the parent is gone it stops the child (SIGTERM, then
 * SIGKILL after 5 s) and exits. It also exits as soon as the child is gone, which is what
 * happens on every ordinary stop. Linux only (it reads /proc); elsewhere it does nothing.
 */
import { spawn } from 'child_process';
import { existsSync, readdirSync, readFileSync } from 'fs';

/** Direct children of `parentPid` whose command line matches, from /proc. */
export function childProcesses(parentPid: number, matches: (argv: string[]) => boolean): number[] {
  if (!existsSync('/proc/self/stat')) return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parentPid) continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (matches(argv)) found.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

const WATCHDOG = `
const [parent, child] = process.argv.slice(1).map(Number);
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
const timer = setInterval(() => {
  if (!alive(child)) process.exit(0);
  if (alive(parent)) return;
  clearInterval(timer);
  try { process.kill(child, 'SIGTERM'); } catch {}
  setTimeout(() => { try { process.kill(child, 'SIGKILL'); } catch {} process.exit(0); }, 5000);
  setInterval(() => { if (!alive(child)) process.exit(0); }, 100);
}, 1000);
`;

/**
 * Starts a watchdog for each of this process's children that `matches` and is not in `except`
 * (children that were there before): if this process dies, the watchdog stops that child.
 * Returns the guarded pids.
 */
export function stopChildrenWithThisProcess(matches: (argv: string[]) => boolean, except: number[] = []): number[] {
  const children = childProcesses(process.pid, matches).filter((pid) => !except.includes(pid));
  for (const child of children) {
    const watchdog = spawn(process.execPath, ['-e', WATCHDOG, String(process.pid), String(child)], { detached: true, stdio: 'ignore' });
    watchdog.unref();
  }
  return children;
}

/** The `temporal server start-dev` process the SDK started. */
export const isTemporalDevServer = (argv: string[]): boolean => argv.includes('server') && argv.includes('start-dev');
