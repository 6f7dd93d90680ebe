#!/usr/bin/env node
// Makes sure the pinned Temporal CLI is installed (see src/temporal-cli.ts); prints where it is.
'use strict';
const { ensureTemporalCli } = require('../build/src/temporal-cli');
try {
  const cli = ensureTemporalCli();
  console.log(`temporal CLI: ${cli.path ?? 'SDK download at first use'} (${cli.source})`);
} catch (err) {
  console.error(`mailover: ${err.message}`);
  process.exit(1);
}
