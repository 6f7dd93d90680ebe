#!/usr/bin/env node
// Makes sure a Chromium is there for the Web UI tests (playwright-core drives it; no browser
// download): $MAILOVER_CHROMIUM, else Debian's /usr/bin/chromium, installed with apt-get when
// this runs as root on Debian; otherwise stops with the one command that installs it.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');

const DEBIAN_PATH = '/usr/bin/chromium';
const INSTALL = 'sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium';

function executable(path) {
  try {
    fs.accessSync(path, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function fail(why) {
  console.error(`mailover: ${why}\n  install it with: ${INSTALL}\n  or point MAILOVER_CHROMIUM at a Chromium or Chrome binary`);
  process.exit(1);
}

function aptInstall() {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  console.log("chromium: not found; installing Debian's package (apt-get install chromium)...");
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', 'chromium'],
  ]) {
    const run = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (run.status !== 0) fail(`apt-get ${args.join(' ')} failed (exit ${run.status ?? run.signal})`);
  }
}

function main() {
  const wanted = process.env.MAILOVER_CHROMIUM;
  if (wanted) {
    if (!executable(wanted)) fail(`MAILOVER_CHROMIUM=${wanted} is not an executable file`);
    console.log(`chromium: ${wanted} (MAILOVER_CHROMIUM)`);
    return;
  }
  if (!executable(DEBIAN_PATH)) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
    if (!isRoot || !hasApt) fail(`no Chromium at ${DEBIAN_PATH} (the Web UI tests need one)`);
    aptInstall();
    if (!executable(DEBIAN_PATH)) fail(`apt-get installed chromium but ${DEBIAN_PATH} is still missing`);
  }
  console.log(`chromium: ${DEBIAN_PATH}`);
}

main();
