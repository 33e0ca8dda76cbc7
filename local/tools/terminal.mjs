// The gateway's log sink for `npm start` (local/tools/start.mjs): every line to a file, and on the
// terminal only the errors, one line each as they happen (or every line with --verbose):
//   spool: error 15:41:55 job-worker: unexpected database API error: relation x does not exist

import fs from 'node:fs';
import { consoleLog, fileLog } from './stack.mjs';

const oneLine = (s, max = 120) => {
  const flat = String(s ?? '').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

/**
 * Whether a gateway log line is an error worth showing, and how: { at, source, text } or null.
 * Gateway lines with level 'error'; a function's line that is JSON with level 'error' (either
 * stream), or a plain stderr line that reads like an uncaught error (Deno's "error: Uncaught …").
 */
export function errorOf(line) {
  const at = line.at ? new Date(line.at) : new Date();
  if (line.function && line.stream) {
    let parsed = null;
    try {
      parsed = JSON.parse(line.msg);
    } catch {
      // a plain text line
    }
    if (parsed && typeof parsed === 'object') {
      if (parsed.level !== 'error') return null;
      const text = [parsed.msg, parsed.message ?? parsed.error].filter(Boolean).join(': ');
      return { at, source: line.function, text: oneLine(text || line.msg) };
    }
    return line.stream === 'stderr' && /^error\b|\bUncaught\b/i.test(line.msg)
      ? { at, source: line.function, text: oneLine(line.msg) }
      : null;
  }
  if (line.level !== 'error') return null;
  const source = line.function ?? line.route ?? line.service ?? 'gateway';
  const firstLine = String(line.error ?? line.msg ?? '').split('\n')[0];
  return { at, source, text: oneLine([line.event, firstLine].filter(Boolean).join(': ')) };
}

/**
 * A sink for startApi({ log }): each line appended to `file` as JSON (the previous run's file
 * renamed to <file>.1 first); with `verbose` printed as consoleLog does, else an errorOf() line
 * printed to `err` as "spool: error HH:MM:SS source: text".
 */
export function gatewayLog({ file, verbose = false, err = process.stderr }) {
  if (fs.existsSync(file)) fs.renameSync(file, `${file}.1`);
  const write = fileLog(file);
  const sink = (line) => {
    write(line);
    if (verbose) return consoleLog(line);
    const e = errorOf(line);
    if (e) err.write(`spool: error ${e.at.toISOString().slice(11, 19)} ${e.source}: ${e.text}\n`);
  };
  sink.file = file;
  sink.close = write.close;
  return sink;
}
