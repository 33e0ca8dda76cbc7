// Skipped, ignored and todo tests in npm test's suites (test.mjs): a green run must mean every test
// ran, so each runner also writes a machine-readable report; a test it did not run fails its suite.
//
//   node --test   testReport('node', file) adds a second reporter, JUnit to `file`
//   deno test     testReport('deno', file) adds --junit-path=file; junitSkips() reads the <skipped/>
//                 cases of either (node's skip and todo, a skipped describe(); Deno's `ignore`)
//   pg_prove      PG_PROVE_ARGS prints every result with a directive; pgProveSkips() reads those
//                 and whole files it reports "skipped: <reason>" (pgTAP's skip_all)
//
// Each parser returns [{ file, test, directive: 'SKIP' | 'TODO', reason }] (file when known).

import fs from 'node:fs';

/** pg_prove's option that prints each TODO or SKIP result (nothing else changes in its output). */
export const PG_PROVE_ARGS = ['--directives'];

const XML_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const unescapeXml = (s) =>
  s.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (m, e) =>
    e[0] === '#'
      ? String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1)))
      : XML_ENTITIES[e] ?? m);
const attr = (attrs, name) => {
  const m = new RegExp(`\\b${name}="([^"]*)"`).exec(attrs);
  return m ? unescapeXml(m[1]) : undefined;
};

/**
 * The test cases a JUnit report marks <skipped/>. Node nests a describe() as a <testsuite>
 * (its name joins the test's with " > "), Deno names steps "test > step" itself and puts each
 * file in a <testsuite> named as its cases' classname (the file reported).
 */
function junitSkips(xml) {
  const skips = [];
  const suites = [];
  let testcase = null;
  const tags = /<(\/?)(testsuite|testcase|skipped)\b([^>]*?)(\/?)>/g;
  for (const [, close, tag, attrs, selfClosing] of xml.matchAll(tags)) {
    if (tag === 'testsuite') {
      if (close) suites.pop();
      else if (!selfClosing) suites.push(attr(attrs, 'name'));
    } else if (tag === 'testcase') {
      testcase = close || selfClosing ? null : attrs;
    } else if (testcase !== null && !close) {
      const file = attr(testcase, 'classname');
      const message = attr(attrs, 'message');
      skips.push({
        file: suites.includes(file) ? file : null,
        test: [...suites.filter((s) => s !== file), attr(testcase, 'name') ?? ''].join(' > '),
        directive: attr(attrs, 'type') === 'todo' ? 'TODO' : 'SKIP',
        // node writes message="true" for a skip without a reason; Deno writes no message.
        reason: message === undefined ? 'ignored' : message === 'true' ? '' : message,
      });
    }
  }
  return skips;
}

// pg_prove colours its output on a terminal.
// deno-lint-ignore no-control-regex
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** The tests pg_prove's output (with PG_PROVE_ARGS) shows with a SKIP or TODO directive, or skipped whole. */
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
 * otherwise, plus JUnit to `file`; deno: a JUnit report), and `skips()`, what it did not run, read
 * once it has exited. A runner that wrote no report, or one without a test, counts too: nothing
 * proves its tests ran.
 */
export function testReport(kind, file) {
  const tty = process.stdout.isTTY ? 'spec' : 'tap';
  const args = kind === 'node'
    ? ['--test-reporter', tty, '--test-reporter-destination', 'stdout', '--test-reporter', 'junit', '--test-reporter-destination', file]
    : kind === 'deno'
    ? [`--junit-path=${file}`]
    : null;
  if (!args) throw new Error(`unknown report kind ${kind}`);
  const none = (test, reason) => [{ file: null, test, directive: 'SKIP', reason }];
  const skips = () => {
    if (!fs.existsSync(file)) return none('(no report)', `the runner wrote no report to ${file}`);
    const xml = fs.readFileSync(file, 'utf8');
    return /<testcase\b/.test(xml) ? junitSkips(xml) : none('(nothing ran)', `${file} has no test case`);
  };
  return { args, skips };
}

/** One line per test not run, for the terminal. */
export function describeSkips(skips) {
  return skips.map((s) =>
    `  ${s.directive === 'TODO' ? 'todo' : 'skipped'}: ${s.file ? `${s.file}: ` : ''}${s.test}${
      s.reason ? ` (${s.reason})` : ''
    }`
  );
}
