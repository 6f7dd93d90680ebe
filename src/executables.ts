/** Finding installed tools (the Temporal CLI, Go, promtool, apt-get) without running them. */
import { accessSync, constants } from 'fs';
import { delimiter, join } from 'path';

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable of that name in the directories of PATH (and any extra ones), or undefined. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env, extraDirs: string[] = []): string | undefined {
  for (const dir of [...(env.PATH ?? '').split(delimiter), ...extraDirs]) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}
