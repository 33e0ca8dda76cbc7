#!/usr/bin/env node
// Runs before `npm start`, `npm test`, `npm run demo` and `npm run bench` (their pre-scripts): on a
// fresh clone, or after package-lock.json changed, installs the npm toolchain (`npm ci`) so each
// command installs what it needs. Node builtins only: nothing else is installed yet.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const lock = path.join(root, 'package-lock.json');
const installed = path.join(root, 'node_modules', '.package-lock.json');

const stale = !fs.existsSync(installed) || fs.statSync(installed).mtimeMs < fs.statSync(lock).mtimeMs;
if (stale) {
  console.log('spool: installing the npm toolchain (npm ci)…');
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('spool: npm ci failed; run `npm install` and try again');
    process.exit(result.status ?? 1);
  }
}
