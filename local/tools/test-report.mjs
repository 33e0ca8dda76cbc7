// Skipped, ignored and todo tests in the suites `npm test` runs (local/tools/test.mjs): a green run must
// mean that every test ran, so each runner also writes a machine-readable report and any test it
// did not run counts as a failure of its suite. The terminal output stays the runner's own.
//
//   node --test   testReport('node', file) adds a second reporter, TAP to `file`, and reads its
//                 `# SKIP` / `# TODO` directives (a skipped describe() is not counted in the
//                 summary's `# skipped N`, but it carries the directive)
//   deno test     testReport('deno', file) adds --junit-path=file and reads its <skipped/>
//                 (Deno's `ignore`, for tests and steps)
//   pg_prove      PG_PROVE_ARGS makes it print every result with a directive (--directives; no
//                 other line changes); pgProveSkips() reads those and whole files it reports
//                 "skipped: <reason>" (pgTAP's skip_all)
//
// Each parser returns [{ file, test, directive: 'SKIP' | 'TODO', reason }] (file when known).

import fs from 'node:fs';

/** pg_prove's option that prints each TODO or SKIP result (nothing else changes in its output). */
export const PG_PROVE_ARGS = ['--directives'];

// TAP escapes `#` and `\` in test names (node's reporter does).
const unescapeTap = (s) => s.replace(/\\([\\#])/g, '$1');

/**
 * The tests a node --test TAP report did not run: `ok N - name # SKIP reason` or `# TODO`,
 * at any depth; names are the path of enclosing subtests, joined with " > ".
 */
function nodeTapSkips(tap) {
  const skips = [];
  const stack = []; // [indent, name] of the enclosing "# Subtest:" lines
  for (const line of tap.split('\n')) {
    const subtest = /^(\s*)# Subtest: (.*)$/.exec(line);
    if (subtest) {
      const indent = subtest[1].length;
      while (stack.length && stack.at(-1)[0] >= indent) stack.pop();
      stack.push([indent, subtest[2]]);
      continue;
    }
    const result = /^(\s*)(?:not )?ok \d+(?: - (.*?))?(?: # (SKIP|TODO)\b\s*(.*))?$/i.exec(line);
    if (!result) continue;
    const indent = result[1].length;
    // A result closes its own "# Subtest:" line (same indent) and any deeper ones.
    while (stack.length && stack.at(-1)[0] > indent) stack.pop();
    const parents = stack.filter(([i]) => i < indent).map(([, n]) => unescapeTap(n));
    if (stack.length && stack.at(-1)[0] === indent) stack.pop();
    if (!result[3]) continue;
    skips.push({
      file: null,
      test: [...parents, unescapeTap(result[2] ?? '')].join(' > '),
      directive: result[3].toUpperCase(),
      reason: result[4].trim(),
    });
  }
  return skips;
}

const XML_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const unescapeXml = (s) =>
  s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (m, e) =>
    e[0] === '#'
      ? String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1)))
      : XML_ENTITIES[e] ?? m);

/** The test cases a JUnit report (deno test --junit-path) marks <skipped/>. */
function denoJunitSkips(xml) {
  const skips = [];
  const testcase = /<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const [, attrs, body = ''] of xml.matchAll(testcase)) {
    if (!/<skipped\b/.test(body)) continue;
    const attr = (name) => {
      const m = new RegExp(`\\b${name}="([^"]*)"`).exec(attrs);
      return m ? unescapeXml(m[1]) : null;
    };
    const message = /<skipped\b[^>]*\bmessage="([^"]*)"/.exec(body);
    skips.push({
      file: attr('classname'),
      test: attr('name') ?? '',
      directive: 'SKIP',
      reason: message ? unescapeXml(message[1]) : 'ignored',
    });
  }
  return skips;
}

// pg_prove colours its output on a terminal.
// deno-lint-ignore no-control-regex
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

/**
 * The tests pg_prove's output (with PG_PROVE_ARGS) shows with a SKIP or TODO directive, and the
 * files it reports skipped as a whole.
 */
export function pgProveSkips(output) {
  const skips = [];
  let file = null;
  for (const raw of stripAnsi(output).split('\n')) {
    const line = raw.replace(/^.*\r/, ''); // the last state of a line redrawn with \r
    const header = /^(\S+\.(?:sql|pg)) \.\.+ ?(.*)$/.exec(line);
    if (header) {
      file = header[1];
      const whole = /^skipped:?\s*(.*)$/.exec(header[2]);
      if (whole) skips.push({ file, test: '(all of it)', directive: 'SKIP', reason: whole[1].trim() });
      continue;
    }
    const result = /^\s*(?:not )?ok \d+(?: - (.*?))? # (SKIP|TODO)\b\s*(.*)$/i.exec(line);
    if (result) {
      skips.push({ file, test: result[1] ?? '', directive: result[2].toUpperCase(), reason: result[3].trim() });
    }
  }
  return skips;
}

/**
 * A report for one run of a runner (kind 'node' or 'deno') in `file`: `args`, to add to the
 * runner's own (node: its usual terminal reporter to stdout, spec on a terminal and TAP
 * otherwise, plus TAP to `file`; deno: a JUnit report), and `skips()`, what it did not run, read
 * once it has exited. A runner that wrote no report counts too: nothing proves its tests ran.
 */
export function testReport(kind, file) {
  const tty = process.stdout.isTTY ? 'spec' : 'tap';
  const [args, parse] = kind === 'node'
    ? [['--test-reporter', tty, '--test-reporter-destination', 'stdout', '--test-reporter', 'tap', '--test-reporter-destination', file], nodeTapSkips]
    : kind === 'deno'
    ? [[`--junit-path=${file}`], denoJunitSkips]
    : [];
  if (!args) throw new Error(`unknown report kind ${kind}`);
  const noReport = { file: null, test: '(no report)', directive: 'SKIP', reason: `the runner wrote no report to ${file}` };
  return { args, skips: () => (fs.existsSync(file) ? parse(fs.readFileSync(file, 'utf8')) : [noReport]) };
}

/** One line per test not run, for the terminal. */
export function describeSkips(skips) {
  return skips.map((s) =>
    `  ${s.directive === 'TODO' ? 'todo' : 'skipped'}: ${s.file ? `${s.file}: ` : ''}${s.test}${
      s.reason ? ` (${s.reason})` : ''
    }`
  );
}
