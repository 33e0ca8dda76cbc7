// npm test's check that every test ran (local/tools/test-report.mjs), against the real runners: node
// --test, deno test and pg_prove each run a fixture that skips, ignores or leaves tests todo
// (the runners themselves call that a success), and the check must name every one of them; a
// fixture where everything runs must give nothing. The fixtures are written to a temp folder, so
// no runner of npm test's own ever sees them. pg_prove reads its TAP from a stand-in for psql.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { denoBinary } from '../../standins/functions.mjs';
import { PG_PROVE_ARGS, pgProveSkips, testReport } from '../test-report.mjs';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
let dir;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-test-report-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes `files` ({ name: text }) into a new folder under the temp dir; returns its path. */
function fixture(name, files) {
  const at = path.join(dir, name);
  fs.mkdirSync(at, { recursive: true });
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(at, file), text, { mode: 0o755 });
  return at;
}

/** Runs a command to its end; { code, stdout, stderr }. */
function run(cmd, args, { cwd = dir, env = {} } = {}) {
  // A node --test run marks its children (NODE_TEST_CONTEXT); a runner started by a test must
  // not think it reports to this one.
  const { NODE_TEST_CONTEXT: _, ...parent } = process.env;
  const r = spawnSync(cmd, args, { cwd, env: { ...parent, ...env }, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const names = (skips) => skips.map((s) => `${s.directive} ${s.test}${s.reason ? ` (${s.reason})` : ''}`);

describe('node --test', () => {
  const runNode = (at, name) => {
    const report = testReport('node', path.join(dir, `${name}.xml`));
    const result = run(process.execPath, ['--test', ...report.args, at]);
    return { ...result, skips: report.skips() };
  };

  test('a run that skips a test, a whole describe and a todo passes, and the check names each', () => {
    const at = fixture('node-skips', {
      'a.test.mjs': `import { describe, it, test } from 'node:test';
test('runs', () => {});
test('needs a variable', { skip: !process.env.SPOOL_NOT_SET && 'needs SPOOL_NOT_SET' }, () => {});
test('later', { todo: 'not written yet' }, () => {});
describe('the stack', { skip: 'no stack' }, () => { it('is up', () => {}); });
describe('a group', () => { it.skip('left out', () => {}); it('skips itself', (t) => t.skip('at run time')); });
`,
    });
    const { code, stdout, skips } = runNode(at, 'node-skips');
    assert.equal(code, 0, `node --test itself calls this a success:\n${stdout}`);
    assert.deepEqual(names(skips), [
      'SKIP needs a variable (needs SPOOL_NOT_SET)',
      'TODO later (not written yet)',
      'SKIP the stack (no stack)',
      'SKIP a group > left out',
      'SKIP a group > skips itself (at run time)',
    ]);
  });

  test('a run where every test runs gives nothing, and the terminal still gets its report', () => {
    const at = fixture('node-clean', {
      'b.test.mjs': `import { describe, it, test } from 'node:test';
test('one # with a hash', () => {});
describe('nested', () => { describe('deeper', () => { it('two', () => {}); }); });
`,
    });
    const { code, stdout, skips } = runNode(at, 'node-clean');
    assert.equal(code, 0, stdout);
    assert.deepEqual(skips, []);
    assert.match(stdout, /# pass 2/, 'the usual report still goes to stdout (TAP when not a terminal)');
  });

  test('a run with no test at all is not taken as one where everything ran', () => {
    const at = fixture('node-empty', { 'helpers.mjs': 'export const x = 1;\n' });
    const { code, skips } = runNode(at, 'node-empty');
    assert.equal(code, 0, 'node --test itself calls this a success');
    assert.deepEqual(skips.map((s) => s.test), ['(nothing ran)']);
  });
});

describe('deno test', () => {
  const runDeno = (at, name) => {
    const report = testReport('deno', path.join(dir, `${name}.xml`));
    const result = run(denoBinary(ROOT), ['test', '--allow-env', ...report.args, '--no-check', '--no-config', at], {
      env: { DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
    });
    return { ...result, skips: report.skips() };
  };

  test('a run that ignores a test and a step passes, and the check names both', () => {
    const at = fixture('deno-skips', {
      'a.test.ts': `Deno.test('runs', () => {});
Deno.test({ name: 'needs the stack', ignore: !Deno.env.get('SPOOL_NOT_SET'), fn() {} });
Deno.test('steps', async (t) => {
  await t.step({ name: 'left out', ignore: true, fn() {} });
  await t.step('runs too', () => {});
});
`,
    });
    const { code, stdout, skips } = runDeno(at, 'deno-skips');
    assert.equal(code, 0, `deno test itself calls this a success:\n${stdout}`);
    assert.match(stdout, /2 ignored|1 ignored \(1 step\)/);
    assert.deepEqual(names(skips), ['SKIP needs the stack (ignored)', 'SKIP steps > left out (ignored)']);
    assert.ok(skips.every((s) => s.file.endsWith('a.test.ts')), JSON.stringify(skips));
  });

  test('a run where every test runs gives nothing', () => {
    const at = fixture('deno-clean', {
      'b.test.ts': `Deno.test('one', () => {});
Deno.test('steps', async (t) => { await t.step('a <step> & "more"', () => {}); });
`,
    });
    const { code, stdout, skips } = runDeno(at, 'deno-clean');
    assert.equal(code, 0, stdout);
    assert.deepEqual(skips, []);
  });

  test('a run that wrote no report is not taken as one where everything ran', () => {
    const report = testReport('deno', path.join(dir, 'never-written.xml'));
    assert.deepEqual(report.skips().map((s) => s.test), ['(no report)']);
  });
});

describe('pg_prove', () => {
  // pg_prove runs `psql ... --file <test>`; this stand-in prints the file instead, which holds
  // TAP as pgTAP writes it (skip(), todo(), plan(skip_all)).
  const PSQL = `#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --file ] && cat "$2"; shift; done
`;
  const runProve = (at, files) => {
    const result = run('pg_prove', ['--psql-bin', path.join(at, 'psql'), ...PG_PROVE_ARGS, '--failures', '--comments', ...files], { cwd: at });
    return { ...result, skips: pgProveSkips(result.stdout) };
  };

  test('a run with skipped, todo and wholly skipped files passes, and the check names each', () => {
    const at = fixture('pgtap-skips', {
      psql: PSQL,
      '01_some.sql': '1..3\nok 1 - runs\nok 2 - needs pg_cron 1.5 # SKIP too old here\nnot ok 3 - later # TODO not written yet\n',
      '02_none.sql': '1..0 # SKIP nothing here\n',
      '03_clean.sql': '1..1\nok 1 - runs\n',
    });
    const { code, stdout, skips } = runProve(at, ['01_some.sql', '02_none.sql', '03_clean.sql']);
    assert.equal(code, 0, `pg_prove itself calls this a success:\n${stdout}`);
    assert.deepEqual(
      skips.map((s) => `${s.file}: ${s.directive} ${s.test} (${s.reason})`),
      [
        '01_some.sql: SKIP needs pg_cron 1.5 (too old here)',
        '01_some.sql: TODO later (not written yet)',
        '02_none.sql: SKIP (all of it) (nothing here)',
      ],
    );
  });

  test('a run where every test runs gives nothing, and its output is what pg_prove prints anyway', () => {
    const at = fixture('pgtap-clean', {
      psql: PSQL,
      '01_a.sql': '1..2\nok 1 - one\nok 2 - two\n',
      '02_b.sql': '1..1\nok 1 - three\n',
    });
    const { code, stdout, skips } = runProve(at, ['01_a.sql', '02_b.sql']);
    assert.equal(code, 0, stdout);
    assert.deepEqual(skips, []);
    const plain = run('pg_prove', ['--psql-bin', path.join(at, 'psql'), '--failures', '--comments', '01_a.sql', '02_b.sql'], { cwd: at });
    const lines = (s) => s.split('\n').filter((l) => !/wallclock/.test(l));
    assert.deepEqual(lines(stdout), lines(plain.stdout));
  });
});
