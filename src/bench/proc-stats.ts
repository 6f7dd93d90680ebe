/** What the bench reads about its processes from /proc: CPU time, resident memory, children. */
import { readdirSync, readFileSync } from 'fs';

/** Linux USER_HZ; 100 on every common configuration. */
const CLOCK_TICKS = 100;

/** CPU time (user + system, all threads) a process has used so far, in ms, from /proc. */
export function cpuMsOf(pid: number): number {
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** Pids of this process's children whose command name is `name` (the Temporal dev server). */
export function childrenNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && comm === name) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** A `Vm...:  N kB` line of /proc/<pid>/status in MB (VmRSS: resident now; VmHWM: the peak so far); undefined once the process is gone. */
export function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS of a process, sampled from /proc every 100 ms. */
export function rssSampler(pid: number): { stop(): number } {
  let peak = 0;
  const sample = () => {
    peak = Math.max(peak, statusMb(pid, 'VmRSS') ?? 0);
  };
  const timer = setInterval(sample, 100);
  sample();
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** The 1-minute load average, as /proc/loadavg has it. */
export function load1m(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
