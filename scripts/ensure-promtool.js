#!/usr/bin/env node
// Makes sure promtool is installed (see src/promtool.ts); prints where it is.
'use strict';
const { ensurePromtool } = require('../build/src/promtool');
try {
  console.log(`promtool: ${ensurePromtool()}`);
} catch (err) {
  console.error(`mailover: ${err.message}`);
  process.exit(1);
}
