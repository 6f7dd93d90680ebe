#!/usr/bin/env node
// Compiles the TypeScript into build/ (cleaned first) and marks the CLI executable, so
// `npx mailover ...` runs as the README says (tsc writes files without the executable bit).
//
//   node scripts/build.js                  everything, tests included (npm run build)
//   node scripts/build.js --production     what the worker image ships (npm run build:production):
//                                          tsconfig.build.json (no tests), then the dev-only files
//                                          (dev stack, local ESP emulators, benchmark, demo) removed
//   --out-dir DIR                          write elsewhere than build/ (the production build test)
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');

/** Compiled files the production build leaves out, relative to the output directory. */
const DEV_ONLY = ['src/dev/stack.js', 'src/dev/orphan-guard.js', 'src/dev/wait-for-event.js', 'src/bench', 'src/demo.js'];
/** Every ESP module's local emulator (src/providers/<kind>/emulator.ts). */
const EMULATOR = 'emulator.js';

function parseArgs(argv) {
  const opts = { production: false, outDir: path.join(ROOT, 'build') };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--production') opts.production = true;
    else if (argv[i] === '--out-dir' && argv[i + 1]) opts.outDir = path.resolve(argv[++i]);
    else {
      console.error(`build: unknown argument '${argv[i]}' (expected --production, --out-dir DIR)`);
      process.exit(2);
    }
  }
  return opts;
}

function removeWithMaps(file) {
  for (const f of [file, `${file}.map`]) fs.rmSync(f, { recursive: true, force: true });
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.rmSync(opts.outDir, { recursive: true, force: true });
  const tsc = require.resolve('typescript/bin/tsc');
  const project = path.join(ROOT, opts.production ? 'tsconfig.build.json' : 'tsconfig.json');
  const run = spawnSync(process.execPath, [tsc, '-p', project, '--outDir', opts.outDir], { stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
  if (opts.production) {
    for (const rel of DEV_ONLY) removeWithMaps(path.join(opts.outDir, rel));
    const providers = path.join(opts.outDir, 'src', 'providers');
    for (const entry of fs.readdirSync(providers, { withFileTypes: true })) {
      if (entry.isDirectory()) removeWithMaps(path.join(providers, entry.name, EMULATOR));
    }
  }
  fs.chmodSync(path.join(opts.outDir, 'src', 'cli', 'main.js'), 0o755);
}

main();
