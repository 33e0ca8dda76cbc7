// The README's Configuration tables list exactly what exists: every variable of .env.example (the
// source) and every column of spool.settings (the migrations), no more and no fewer.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** The README section under `## <title>`, up to the next `## `. */
function section(title) {
  const text = read('README.md');
  const start = text.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README.md has a "## ${title}" section`);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

/** The back-quoted names in the first column of the markdown table whose header starts `| head |`. */
function firstColumnNames(text, head) {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`| ${head} |`));
  assert.ok(at >= 0, `a table headed "| ${head} |"`);
  const names = [];
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith('|')) break;
    const cell = line.split('|')[1];
    names.push(...[...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]));
  }
  return names;
}

const sorted = (xs) => [...new Set(xs)].sort();

test('the Configuration table lists exactly the variables of .env.example', () => {
  const documented = firstColumnNames(section('Configuration'), 'variable');
  const example = Object.keys(parseEnv(read('.env.example')));
  assert.deepEqual(sorted(documented), sorted(example));
});

test('the Configuration table lists exactly the columns of spool.settings', () => {
  const documented = firstColumnNames(section('Configuration'), 'column');
  const columns = [];
  for (const file of fs.readdirSync(path.join(ROOT, 'supabase', 'migrations')).sort()) {
    const sql = read(path.join('supabase', 'migrations', file));
    const table = /create table spool\.settings \(([\s\S]*?)\n\);/.exec(sql);
    if (table) {
      for (const line of table[1].split('\n')) {
        const name = /^\s+([a-z_]+)\s+\S/.exec(line)?.[1];
        if (name && name !== 'id' && name !== 'constraint') columns.push(name);
      }
    }
    for (const m of sql.matchAll(/alter table spool\.settings\s+add column (?:if not exists )?([a-z_]+)/g)) {
      columns.push(m[1]);
    }
  }
  assert.ok(columns.length >= 12, `found the settings columns (${columns.join(', ')})`);
  assert.deepEqual(sorted(documented), sorted(columns));
});
