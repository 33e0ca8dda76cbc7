#!/usr/bin/env node
// supabase/functions/_shared/database.types.ts is generated from the migrations, never edited:
//   npm run gen:types     a throwaway cluster, the migrations, `supabase gen types`, deno fmt, written
//   checkTypes({ port })  the same against a migrated database (npm test's), compared with the file
// The output depends only on the migrations, the bootstrap and the pinned CLI and deno versions.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { denoBinary } from '../standins/edge-runtime/cache.mjs';
import { PlatformError, pushMigrations, ROOT, startThrowawayCluster, supabaseCli } from './db.mjs';

const TYPES_FILE = path.join(ROOT, 'supabase', 'functions', '_shared', 'database.types.ts');
const REL = path.relative(ROOT, TYPES_FILE);

const HEADER = `// Generated from supabase/migrations by \`npm run gen:types\` (supabase gen types typescript,
// schema public). Do not edit: change the migrations and regenerate; npm test fails when this
// file is stale.
`;

/** The typings of schema public of the database on `port`, formatted (deno fmt, deno.json) as committed. */
async function generateTypes({ port }) {
  const args = ['--schema', 'public'];
  const gen = await supabaseCli(['gen', 'types', 'typescript'], { port, args, captureStderr: true });
  if (gen.code !== 0 || !gen.stdout.includes('export type Database')) {
    throw new PlatformError(`supabase gen types failed (exit ${gen.code}):\n${(gen.stderr || gen.stdout).trim()}`);
  }
  const fmtArgs = ['fmt', '--quiet', '--config', path.join(ROOT, 'deno.json'), '--ext', 'ts', '-'];
  const fmt = spawnSync(denoBinary(ROOT), fmtArgs, { input: HEADER + gen.stdout, encoding: 'utf8' });
  if (fmt.status !== 0) throw new PlatformError(`deno fmt failed:\n${(fmt.stderr || String(fmt.error)).trim()}`);
  return fmt.stdout;
}

/**
 * Compares the committed typings with the ones generated from the database on `port` (which must
 * have every migration). Returns 0 when they match, 1 (with a hint) when the file is stale.
 */
export async function checkTypes({ port }) {
  const want = await generateTypes({ port });
  const have = fs.existsSync(TYPES_FILE) ? fs.readFileSync(TYPES_FILE, 'utf8') : '';
  if (have === want) {
    console.log(`ok: ${REL} matches the migrations`);
    return 0;
  }
  const [a, b] = [have.split('\n'), want.split('\n')];
  let line = 0;
  while (line < a.length && line < b.length && a[line] === b[line]) line++;
  console.log(`not ok: ${REL} is stale: run \`npm run gen:types\` and commit it (first difference: line ${line + 1})`);
  console.log(`    committed: ${JSON.stringify(a[line] ?? '(end of file)')}`);
  console.log(`    generated: ${JSON.stringify(b[line] ?? '(end of file)')}`);
  return 1;
}

/** `npm run gen:types`: a throwaway cluster, the migrations, the typings written in place. */
async function main() {
  const cluster = await startThrowawayCluster('spool-gen-types-');
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      cluster.stop();
      process.exit(128 + os.constants.signals[signal]);
    });
  }
  try {
    await pushMigrations({ port: cluster.port });
    const text = await generateTypes({ port: cluster.port });
    const before = fs.existsSync(TYPES_FILE) ? fs.readFileSync(TYPES_FILE, 'utf8') : null;
    fs.writeFileSync(TYPES_FILE, text);
    console.log(before === text ? `${REL} is up to date` : `wrote ${REL}`);
  } finally {
    cluster.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((err) => {
    console.error(`spool gen:types: ${err instanceof PlatformError ? err.message : err.stack}`);
    process.exit(1);
  });
}
