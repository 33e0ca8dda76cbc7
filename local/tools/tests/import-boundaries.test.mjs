// The import boundaries of supabase/functions (issue "Your own job types"): folders starting
// with `_` are shared code, the others are functions, deployed one by one.
//
//   _shared/   infrastructure (env, http, auth, clients): imports nothing outside _shared
//   _jobs/     the job kinds (descriptors, states, errors, probes, providers): imports only
//              _shared and _jobs
//   <function>/  imports its own files, _shared and _jobs; never another function's files
//   tests/     the Deno tests: may import anything
//
// and no module imports itself back through a cycle. Run alone: node --test
// local/tools/tests/import-boundaries.test.mjs (npm test runs it with the rest of local/tools/tests/).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const FUNCTIONS = path.resolve(import.meta.dirname, '../../../supabase/functions');

/** Every .ts module under supabase/functions, as paths relative to it. */
function modules(dir = FUNCTIONS) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return modules(full);
    return e.name.endsWith('.ts') ? [path.relative(FUNCTIONS, full)] : [];
  });
}

/** The relative specifiers a module imports: static, dynamic and `export … from`. */
export function importsOf(source) {
  const found = [];
  const patterns = [
    /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g,
    /(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  for (const re of patterns) {
    for (const m of code.matchAll(re)) if (m[1].startsWith('.')) found.push(m[1]);
  }
  return found;
}

/** The folder a module belongs to: its first path segment. */
const areaOf = (rel) => rel.split(path.sep)[0];

/** Why `from` may not import `to` (both relative to supabase/functions), or null. */
export function violation(from, to) {
  const a = areaOf(from);
  const b = areaOf(to);
  if (a === 'tests' || a === b) return null;
  if (a === '_shared') return `_shared is infrastructure only: ${from} imports ${to}`;
  if (a === '_jobs') {
    return b === '_shared' ? null : `_jobs imports only _shared and _jobs: ${from} imports ${to}`;
  }
  if (b === '_shared' || b === '_jobs') return null;
  return `a function imports another's files: ${from} imports ${to}`;
}

function graph() {
  const edges = new Map();
  for (const rel of modules()) {
    const source = fs.readFileSync(path.join(FUNCTIONS, rel), 'utf8');
    const targets = importsOf(source).map((s) =>
      path.relative(FUNCTIONS, path.resolve(path.dirname(path.join(FUNCTIONS, rel)), s))
    );
    edges.set(rel, targets);
  }
  return edges;
}

/** The import cycles of the graph (each once, as the modules on it). */
export function cycles(edges) {
  const found = [];
  const state = new Map(); // 1: on the stack, 2: done
  const stack = [];
  const visit = (n) => {
    state.set(n, 1);
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === 1) found.push(stack.slice(stack.indexOf(m)));
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of edges.keys()) if (!state.has(n)) visit(n);
  return found;
}

test('the boundaries check itself tells allowed imports from forbidden ones', () => {
  assert.equal(violation('_shared/http.ts', '_shared/env.ts'), null);
  assert.match(violation('_shared/x.ts', 'job-worker/run.ts'), /infrastructure only/);
  assert.match(violation('_shared/x.ts', '_jobs/roto.ts'), /infrastructure only/);
  assert.equal(violation('_jobs/roto.ts', '_shared/env.ts'), null);
  assert.match(violation('_jobs/roto.ts', 'job-worker/media/image.ts'), /_jobs imports only/);
  assert.equal(violation('roto/index.ts', '_jobs/roto.ts'), null);
  assert.match(violation('job-callback/index.ts', 'job-worker/wiring.ts'), /another's files/);
  assert.equal(violation('tests/a.test.ts', 'job-worker/run.ts'), null);
  assert.deepEqual(
    importsOf(`import a from './a.ts';\nexport { b } from "../b.ts";\nconst c = import('./c.ts');\n// import x from './x.ts'\nimport 'npm:zod';`),
    ['./a.ts', '../b.ts', './c.ts'],
  );
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['a']], ['c', ['a']]])), [['a', 'b']]);
});

test('nothing under _shared or _jobs imports a function folder, and no function imports another\'s files', () => {
  const problems = [];
  for (const [from, targets] of graph()) {
    for (const to of targets) {
      const why = violation(from, to);
      if (why) problems.push(why);
    }
  }
  assert.deepEqual(problems, []);
});

test('the modules of supabase/functions import one another without cycles', () => {
  const found = cycles(graph()).map((c) => c.join(' -> '));
  assert.deepEqual(found, []);
});

// local/: the stand-ins (what replaces Supabase) never import the developer tooling, apart from
// tools/db.mjs's ROOT and PlatformError; the tooling may import the stand-ins.
const LOCAL = path.resolve(import.meta.dirname, '../..');

test('the stand-ins under local/standins import no developer tooling but tools/db.mjs', () => {
  const problems = [];
  const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'tests' ? [] : walk(full);
    return /\.(mjs|ts)$/.test(e.name) ? [full] : [];
  });
  for (const file of walk(path.join(LOCAL, 'standins'))) {
    for (const spec of importsOf(fs.readFileSync(file, 'utf8'))) {
      const target = path.relative(LOCAL, path.resolve(path.dirname(file), spec));
      if (!target.startsWith(`standins${path.sep}`) && target !== path.join('tools', 'db.mjs')) {
        problems.push(`${path.relative(LOCAL, file)} imports ${target}`);
      }
    }
  }
  assert.deepEqual(problems, []);
});
