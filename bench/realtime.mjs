// The realtime section of `npm run bench`: how soon a committed change to public.jobs reaches a
// supabase-js subscriber through the Realtime stand-in (local/standins/realtime.mjs), as the
// browser client subscribes (postgres_changes on jobs, filter user_id=eq.<uid>, as that user:
// RLS applies).
//
// On a throwaway cluster (fsync on, bench/cluster.mjs) and a gateway of its own (no Edge
// Functions are called), one user subscribes; the changes are made as the superuser over one
// connection, in autocommit:
//   latency     `samples` changes one at a time, alternating an INSERT of a job for the user and
//               an UPDATE of its progress, each after a random pause of 0-100 ms (so that commits
//               fall anywhere in the stand-in's poll cycle); a sample is the time from the
//               statement's completion (the commit) to the event's arrival in the client.
//   throughput  `burst` INSERTs from `writers` connections at once, half for the subscriber and
//               half for another user (that the filter leaves out); events/s is the subscriber's
//               events over the time from the first statement to its last event.
// Reported: median, p95 and max latency (ms) per kind and together, events/s. Correctness fails
// the section: a duplicate event, or one of the other user's, marks it failed; a change the
// subscriber should see that does not arrive within the timeout stops the run with an error.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';
import { freePort, ROOT } from '../local/tools/db.mjs';
import { startGateway } from '../local/standins/server.mjs';

export const DEFAULTS = Object.freeze({ samples: 200, burst: 2000, writers: 4, timeoutMs: 30_000 });

const quantile = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
const round = (x) => (x === null ? null : Math.round(x * 10) / 10);

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, median: round(quantile(s, 0.5)), p95: round(quantile(s, 0.95)), max: round(s.at(-1) ?? null) };
}

async function makeUser(admin, keys, url) {
  const id = crypto.randomUUID();
  await admin.query(
    `insert into auth.users (id, aud, role, is_anonymous, created_at, updated_at, raw_app_meta_data, raw_user_meta_data)
     values ($1, 'authenticated', 'authenticated', true, now(), now(), '{}', '{}')`,
    [id],
  );
  const sessionId = crypto.randomUUID();
  await admin.query('insert into auth.sessions (id, user_id) values ($1, $2)', [sessionId, id]);
  const iat = Math.floor(Date.now() / 1000);
  const token = await keys.sign({
    iss: `${url}/auth/v1`, sub: id, aud: 'authenticated', iat, exp: iat + 3600 * 6, role: 'authenticated',
    session_id: sessionId, is_anonymous: true,
  });
  return { id, token };
}

const INSERT = `insert into public.jobs (user_id, type, run_at) values ($1, 'bench-rt', now() + interval '1 day') returning id`;

/** Runs the section on the database at `port`; returns the result object. */
export async function runRealtimeBench({ port, log = console.log, ...over }) {
  const cfg = { ...DEFAULTS, ...over };
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-bench-rt-'));
  const gateway = await startGateway({ root: ROOT, stateDir, port: await freePort(), dbPort: port, quiet: true });
  const admin = new pg.Pool({ host: '127.0.0.1', port, database: 'postgres', user: 'supabase_admin', max: cfg.writers + 2 });
  let client;
  try {
    const user = await makeUser(admin, gateway.keys, gateway.url);
    const other = await makeUser(admin, gateway.keys, gateway.url);
    client = createClient(gateway.url, gateway.keys.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      accessToken: () => Promise.resolve(user.token),
      realtime: globalThis.WebSocket ? {} : { transport: WebSocket },
    });
    await client.realtime.setAuth();
    // Each event: its arrival time; waiters by job id and kind.
    const arrivals = new Map();
    const waiters = new Map();
    let foreign = 0;
    let duplicates = 0;
    const subscribed = new Promise((resolve, reject) => {
      client.channel(`bench-${crypto.randomUUID()}`)
        .on('postgres_changes', { event: '*', schema: 'public', table: 'jobs', filter: `user_id=eq.${user.id}` }, (p) => {
          const at = performance.now();
          if (p.new?.user_id !== user.id) foreign++;
          const key = `${p.eventType}:${p.new?.id}:${p.new?.progress}`;
          if (arrivals.has(key)) duplicates++;
          arrivals.set(key, at);
          waiters.get(key)?.(at);
        })
        .on('system', {}, (m) => {
          if (m.extension !== 'postgres_changes') return;
          if (m.status === 'ok') resolve();
          else reject(new Error(`subscription failed: ${m.message}`));
        })
        .subscribe((status, err) => {
          if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') reject(err ?? new Error(status));
        });
    });
    await subscribed;
    const arrival = (key) => {
      if (arrivals.has(key)) return Promise.resolve(arrivals.get(key));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event ${key} within ${cfg.timeoutMs} ms`)), cfg.timeoutMs);
        waiters.set(key, (at) => {
          clearTimeout(timer);
          waiters.delete(key);
          resolve(at);
        });
      });
    };

    // Warm-up: the first change (slot and catalog caches), not reported.
    const warm = (await admin.query(INSERT, [user.id])).rows[0].id;
    await arrival(`INSERT:${warm}:0`);

    log(`realtime: ${cfg.samples} changes one at a time (INSERT / UPDATE alternating)`);
    const latency = { INSERT: [], UPDATE: [] };
    let job = warm;
    for (let i = 0; i < cfg.samples; i++) {
      await new Promise((r) => setTimeout(r, Math.random() * 100));
      const kind = i % 2 === 0 ? 'INSERT' : 'UPDATE';
      let key;
      if (kind === 'INSERT') {
        const { rows } = await admin.query(INSERT, [user.id]);
        job = rows[0].id;
        key = `INSERT:${job}:0`;
      } else {
        await admin.query('update public.jobs set progress = 50 where id = $1', [job]);
        key = `UPDATE:${job}:50`;
      }
      const committed = performance.now();
      latency[kind].push((await arrival(key)) - committed);
    }

    log(`realtime: a burst of ${cfg.burst} INSERTs from ${cfg.writers} connections (half for another user)`);
    const mine = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: cfg.writers }, async () => {
      while (next < cfg.burst) {
        const forUser = next++ % 2 === 0;
        const { rows } = await admin.query(INSERT, [forUser ? user.id : other.id]);
        if (forUser) mine.push(rows[0].id);
      }
    }));
    const last = Math.max(...(await Promise.all(mine.map((id) => arrival(`INSERT:${id}:0`)))));
    const seconds = (last - t0) / 1000;
    const all = [...latency.INSERT, ...latency.UPDATE];
    return {
      ok: foreign === 0 && duplicates === 0,
      config: cfg,
      latencyMs: { all: summary(all), insert: summary(latency.INSERT), update: summary(latency.UPDATE) },
      burst: { events: mine.length, seconds: round(seconds), eventsPerSecond: Math.round(mine.length / seconds) },
      foreign,
      duplicates,
    };
  } finally {
    client?.realtime.disconnect();
    await gateway.close();
    await admin.end();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

export function formatRealtimeReport(r) {
  const line = (name, s) => `  ${name.padEnd(8)} n=${String(s.n).padStart(4)}  median ${s.median} ms  p95 ${s.p95} ms  max ${s.max} ms`;
  return [
    'realtime: commit-to-event latency (supabase-js subscriber, filter user_id=eq., RLS on)',
    line('all', r.latencyMs.all),
    line('INSERT', r.latencyMs.insert),
    line('UPDATE', r.latencyMs.update),
    `  burst    ${r.burst.events} events in ${r.burst.seconds} s: ${r.burst.eventsPerSecond} events/s`,
    `  ${r.ok ? '✓' : '✗'} ${r.duplicates} duplicate(s), ${r.foreign} event(s) of another user`,
  ];
}
