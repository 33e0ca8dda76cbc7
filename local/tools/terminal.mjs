// What `npm start` shows in a terminal once the stack is up: the banner stays on screen, the
// gateway's and the functions' log lines go to a file, and one status line says how the queue is
// doing. local/tools/start.mjs uses it; nothing here starts or stops a service.
//
//   const log = gatewayLog({ file, verbose })   a sink for startApi({ log }): JSON lines to
//                                               `file` (the previous run's kept as <file>.1),
//                                               streamed as today with verbose; log.lastError
//   const status = statusLine({ dbUrl, log })   on a TTY one line, rewritten in place every
//                                               STATUS_TTY_MS; elsewhere a plain line when it
//                                               changed, at most every STATUS_PLAIN_MS
//   status.start(); status.stop()
//
// The status line reads public.jobs as the platform superuser (counts by state, the last minute's
// finished jobs, the newest failure):
//   15:42:07  2 pending · 1 running │ last min 14 done · 1 failed │ error 15:41:55 image job …

import fs from 'node:fs';
import pg from 'pg';
import { consoleLog, fileLog } from './stack.mjs';

/** How often the TTY status line is redrawn (its counts read again). */
const STATUS_TTY_MS = 2_000;
/** A non-TTY status line is printed when it changed, at most this often. */
const STATUS_PLAIN_MS = 60_000;

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
 * The gateway's log sink for npm start: every line appended to `file` as JSON (the file of the
 * previous run renamed to <file>.1 first), and with `verbose` also printed as consoleLog does.
 * sink.lastError is the newest errorOf() line; sink.lines counts what was written.
 */
export function gatewayLog({ file, verbose = false }) {
  if (fs.existsSync(file)) fs.renameSync(file, `${file}.1`);
  const write = fileLog(file);
  const sink = (line) => {
    write(line);
    sink.lines++;
    const error = errorOf(line);
    if (error) sink.lastError = error;
    if (verbose) consoleLog(line);
  };
  sink.file = file;
  sink.lines = 0;
  sink.lastError = null;
  sink.close = write.close;
  return sink;
}

/** Job counts now (pending, running, waiting) and over the last minute (done, failed, cancelled). */
const COUNTS_SQL = `
  select
    (select count(*) from public.jobs where status = 'pending')::int as pending,
    (select count(*) from public.jobs where status = 'running')::int as running,
    (select count(*) from public.jobs where status = 'waiting')::int as waiting,
    count(*) filter (where j.status = 'done')::int as done,
    count(*) filter (where j.status = 'failed')::int as failed,
    count(*) filter (where j.status = 'cancelled')::int as cancelled,
    (select jsonb_build_object('at', f.finished_at, 'type', f.type, 'error', f.error)
       from public.jobs f
      where f.status = 'failed' and f.finished_at > now() - interval '1 hour'
      order by f.finished_at desc limit 1) as last_failed
  from public.jobs j
  where j.finished_at > now() - interval '1 minute'`;

const clock = (d) => d.toISOString().slice(11, 19);

/**
 * The status text (no time prefix) for counts (or a database error) and the newest error:
 *   2 pending · 1 running │ last min 14 done · 1 failed │ error 15:41:55 image job openai_timeout: …
 * waiting and cancelled only when there are some.
 */
export function statusText({ counts, dbError, lastError }) {
  const parts = [];
  if (dbError) {
    parts.push(`database unreachable: ${oneLine(dbError, 60)}`);
  } else if (counts) {
    const c = counts;
    const now = [`${c.pending} pending`, `${c.running} running`];
    if (c.waiting) now.push(`${c.waiting} waiting`);
    const finished = [`${c.done} done`, `${c.failed} failed`];
    if (c.cancelled) finished.push(`${c.cancelled} cancelled`);
    parts.push(now.join(' · '), `last min ${finished.join(' · ')}`);
  } else {
    parts.push('reading the queue…');
  }
  if (lastError) parts.push(`error ${clock(lastError.at)} ${lastError.source}: ${lastError.text}`);
  return parts.join(' │ ');
}

/** The newest of the gateway's last error and the last failed job (as errorOf shapes them). */
function newestError(logError, lastFailed) {
  let failed = null;
  if (lastFailed?.at) {
    const e = lastFailed.error ?? {};
    failed = {
      at: new Date(lastFailed.at),
      source: `${lastFailed.type} job`,
      text: oneLine([e.code, e.message].filter(Boolean).join(': ') || 'failed'),
    };
  }
  if (!logError) return failed;
  if (!failed) return logError;
  return failed.at > logError.at ? failed : logError;
}

/**
 * The live status line. On a TTY (out.isTTY) it is the last line of the screen, rewritten in
 * place; anything else written to stdout or stderr meanwhile clears it first and it is drawn
 * again under that output, so the two never mix on one line. Not on a TTY: "spool status:"
 * lines, one when the text changed and STATUS_PLAIN_MS passed since the last.
 */
export function statusLine({ dbUrl, log, out = process.stdout, err = process.stderr }) {
  const tty = out.isTTY === true;
  const pool = new pg.Pool({ connectionString: dbUrl, max: 1, application_name: 'spool-status' });
  pool.on('error', () => {}); // an idle client lost (the cluster restarting): the next read says so
  const write = out.write.bind(out);
  const errWrite = err.write.bind(err);
  let shown = false; // a TTY status line is on screen (the cursor at its end)
  let text = '';
  let printed = { text: null, at: 0 };
  let timer = null;
  let reading = false;
  let stopped = false;

  const clear = () => {
    if (shown) write('\r\x1b[2K');
    shown = false;
  };
  const draw = () => {
    if (stopped || !tty || !text) return;
    // Room for the terminal's own "^C" echo, so it does not wrap onto a line of its own.
    const width = Math.max(20, (out.columns || 120) - 3);
    const line = `${clock(new Date())}  ${text}`;
    write(`\r\x1b[2K\x1b[2m${line.length > width ? `${line.slice(0, width - 1)}…` : line}\x1b[0m`);
    shown = true;
  };
  // Other output (Vite's warnings, a message of the platform) goes above the status line.
  let redraw = null;
  const around = (orig) => (chunk, ...rest) => {
    if (stopped || !tty) return orig(chunk, ...rest);
    clear();
    const ok = orig(chunk, ...rest);
    redraw ??= setImmediate(() => {
      redraw = null;
      draw();
    });
    return ok;
  };

  async function tick() {
    if (reading || stopped) return;
    reading = true;
    let counts = null;
    let dbError = null;
    try {
      counts = (await pool.query(COUNTS_SQL)).rows[0];
    } catch (e) {
      dbError = e.message;
    } finally {
      reading = false;
    }
    if (stopped) return;
    text = statusText({
      counts,
      dbError,
      lastError: newestError(log?.lastError, counts?.last_failed),
    });
    if (tty) return draw();
    const now = Date.now();
    if (text !== printed.text && now - printed.at >= STATUS_PLAIN_MS) {
      write(`spool status ${clock(new Date())}: ${text}\n`);
      printed = { text, at: now };
    }
  }

  return {
    tty,
    start() {
      if (tty) {
        out.write = around(write);
        err.write = around(errWrite);
      }
      tick();
      timer = setInterval(tick, tty ? STATUS_TTY_MS : Math.min(STATUS_PLAIN_MS, 5_000));
    },
    /** Clears the line and stops reading; resolves when the database connection is closed. */
    async stop() {
      if (stopped) return;
      clearInterval(timer);
      clear();
      stopped = true;
      if (tty) {
        out.write = write;
        err.write = errWrite;
      }
      await pool.end().catch(() => {});
    },
  };
}
