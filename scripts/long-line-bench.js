#!/usr/bin/env node
// Times one pass (scanAudienceFile) over generated audience files with one long line, and the
// peak resident memory, each in a process of its own; the figures are in BENCHMARKS.md ("Long
// lines"). After `npm run build`:
//   node scripts/long-line-bench.js [MB ...]     (default: 4 50 100)
// Then the splitting alone, a line of MB million characters in chunks of 256 KiB: the line
// splitter against the former way (the carried text joined to each chunk and split again).
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { scanAudienceFile } = require('../build/src/audience');
const { LineSplitter } = require('../build/src/line-splitter');

/** A file whose second line holds one value of `mb` million characters. */
function generate(dir, format, mb) {
  const file = path.join(dir, `line-${mb}mb.${format}`);
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, format === 'csv' ? 'email,note\na@example.com,ok\nb@example.com,"' : '{"email":"a@example.com"}\n{"email":"b@example.com","note":"');
  const block = 'x'.repeat(1_000_000);
  for (let i = 0; i < mb; i++) fs.writeSync(fd, block);
  fs.writeSync(fd, format === 'csv' ? '"\nc@example.com,ok\n' : '"}\n{"email":"c@example.com"}\n');
  fs.closeSync(fd);
  return file;
}

async function measure(file) {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const started = process.hrtime.bigint();
  let outcome;
  try {
    const scan = await scanAudienceFile(file);
    outcome = `${scan.valid} valid, ${scan.rejected.length} rejected${scan.rejected[0] ? ` (${scan.rejected[0].reason})` : ''}`;
  } catch (err) {
    outcome = `refused: ${err.message}`;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  return { ms, peakMb: peak / 1024 / 1024, outcome };
}

/** Milliseconds to split a line of `mb` million characters, fed in 256 KiB chunks. */
function splitMs(mb, way) {
  const chunk = 'x'.repeat(256 * 1024);
  const chunks = Math.ceil((mb * 1_000_000) / chunk.length);
  let lines = 0;
  const started = process.hrtime.bigint();
  if (way === 'splitter') {
    const splitter = new LineSplitter(Number.MAX_SAFE_INTEGER, () => new Error('no limit'));
    for (let i = 0; i < chunks; i++) splitter.push(chunk, () => lines++);
    splitter.push('\n', () => lines++);
  } else {
    let carry = '';
    for (let i = 0; i <= chunks; i++) {
      const parts = (carry + (i < chunks ? chunk : '\n')).split('\n');
      carry = parts.pop();
      lines += parts.length;
    }
  }
  if (lines !== 1) throw new Error(`${way}: ${lines} lines`);
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main() {
  if (process.argv[2] === '--split') {
    console.log(`${(splitMs(Number(process.argv[3]), process.argv[4]) / 1000).toFixed(2)} s`);
    return;
  }
  if (process.argv[2] === '--one') {
    const r = await measure(process.argv[3]);
    console.log(`${(r.ms / 1000).toFixed(2)} s, peak RSS ${r.peakMb.toFixed(0)} MB: ${r.outcome.slice(0, 200)}`);
    return;
  }
  const sizes = process.argv.slice(2).map(Number);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailover-long-line-'));
  try {
    for (const mb of sizes.length ? sizes : [4, 50, 100]) {
      for (const format of ['jsonl', 'csv']) {
        const file = generate(dir, format, mb);
        const line = execFileSync(process.execPath, [__filename, '--one', file], { encoding: 'utf8' }).trim();
        console.log(`${format}, a line of ${mb} MB: ${line}`);
        fs.rmSync(file);
      }
    }
    for (const mb of sizes.length ? sizes : [4, 50, 100]) {
      for (const way of ['former', 'splitter']) {
        const line = execFileSync(process.execPath, [__filename, '--split', String(mb), way], { encoding: 'utf8' }).trim();
        console.log(`splitting a line of ${mb} MB, ${way === 'former' ? 'the former way' : 'line splitter'}: ${line}`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
