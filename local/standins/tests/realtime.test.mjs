// Contract tests of the Realtime stand-in (local/standins/realtime.mjs, realtime-cdc.mjs): Postgres
// Changes driven by the official realtime-js inside supabase-js, as Spool's browser client uses it
// (vsn 2.0.0, its default), plus the raw Phoenix frames checked with `ws`.
// Jobs change through the SQL API as the service role; nothing here sleeps to synchronise: every
// wait is for an event, with a timeout. Run: node --test local/standins/tests/realtime.test.mjs

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@supabase/supabase-js';
import WebSocket from 'ws';
import { parseSubscriptionParams } from '../realtime-cdc.mjs';
import { generateSigningKey, signEs256, signJwt } from '../keys.mjs';
import { startStack } from './helpers.mjs';

let stack;
let service; // supabase-js with the service_role key
let alice;
let bob;
/** Jobs are created to run tomorrow, so the stack's job-worker never claims them. */
const LATER = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
const WAIT_MS = 5000;
const clients = [];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Collects what a callback receives; `next(pred)` resolves with the first match (or times out). */
function collector(name) {
  const items = [];
  const waiters = [];
  return {
    items,
    push(item) {
      items.push({ item, at: performance.now() });
      for (const w of [...waiters]) {
        if (w.pred(item)) {
          waiters.splice(waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.resolve(item);
        }
      }
    },
    /** The first item (at index `from` or later) matching `pred`. */
    next(pred = () => true, { from = 0, timeoutMs = WAIT_MS } = {}) {
      const hit = items.slice(from).find((x) => pred(x.item));
      if (hit) return Promise.resolve(hit.item);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(
            new Error(
              `${name}: nothing matching arrived within ${timeoutMs} ms (got ${items.length})`,
            ),
          );
        }, timeoutMs);
        waiters.push(w);
      });
    },
    /** When the matching item arrived (performance.now()). */
    arrivedAt(item) {
      return items.find((x) => x.item === item)?.at;
    },
  };
}

/**
 * Runs fn (synchronously) with timers that do not keep the process alive: realtime-js leaves a
 * 10 s timer behind on disconnect() and on every access_token push (Realtime never answers those),
 * which would hold each test file open for 10 s after its last test.
 */
function unrefTimers(fn) {
  const real = globalThis.setTimeout;
  globalThis.setTimeout = (...args) => {
    const timer = real(...args);
    timer.unref?.();
    return timer;
  };
  try {
    return fn();
  } finally {
    globalThis.setTimeout = real;
  }
}

/** supabase-js acting as `token`'s user (or with only the anon key), realtime over `ws`. */
function rtClient(token) {
  const client = createClient(stack.url, stack.keys.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    ...(token ? { accessToken: () => Promise.resolve(token) } : {}),
    realtime: { transport: WebSocket },
  });
  clients.push(client);
  return client;
}

/**
 * Subscribes a channel with postgres_changes bindings; resolves once the channel is SUBSCRIBED and
 * the server said "Subscribed to PostgreSQL". Returns { channel, events, system, statuses }.
 */
async function watch(client, bindings, { name = `w-${crypto.randomUUID()}`, config } = {}) {
  // The token must be in place before the join is pushed: a join sent before supabase-js has
  // resolved its accessToken callback goes out with the anon key (as against Supabase).
  await client.realtime.setAuth();
  const events = collector(`events on ${name}`);
  const system = collector(`system messages on ${name}`);
  const statuses = collector(`statuses of ${name}`);
  let channel = client.channel(name, config ? { config } : undefined);
  for (const b of bindings) channel = channel.on('postgres_changes', b, (p) => events.push(p));
  channel.on('system', {}, (p) => system.push(p));
  channel.subscribe((status, err) => statuses.push({ status, err }));
  const first = await statuses.next((s) => s.status !== 'CLOSED');
  if (first.status !== 'SUBSCRIBED') {
    throw new Error(`${name}: ${first.status} ${first.err?.message ?? ''}`);
  }
  const sys = await system.next((m) => m.extension === 'postgres_changes');
  assert.equal(sys.status, 'ok', sys.message);
  assert.equal(sys.message, 'Subscribed to PostgreSQL');
  return { channel, events, system, statuses };
}

/** A job type of its own for one test: its claims never lease another test's jobs. */
const jobType = () => `gw-rt-${crypto.randomBytes(4).toString('hex')}`;

async function createJob(userId, type, input = {}, extra = {}) {
  const { data, error } = await service.rpc('create_job', {
    p_user_id: userId,
    p_type: type,
    p_input: input,
    p_run_at: LATER,
    ...extra,
  });
  assert.equal(error, null);
  return data;
}

/**
 * claim_jobs for `type` as the service role, as of tomorrow (spool.now), so that it can lease the
 * jobs made to run then. Returns { [job id]: claimed row }.
 */
async function claim(type) {
  const c = await stack.admin.connect();
  try {
    await c.query('begin');
    await c.query(
      `select set_config('role', 'service_role', true),
              set_config('request.jwt.claims', '{"role":"service_role"}', true),
              set_config('spool.now', $1, true)`,
      [new Date(Date.parse(LATER) + 1000).toISOString()],
    );
    const { rows } = await c.query('select * from public.claim_jobs($1, 100, 60, $2)', [
      'gw-rt-worker',
      [type],
    ]);
    await c.query('commit');
    return Object.fromEntries(rows.map((r) => [r.id, r]));
  } catch (err) {
    await c.query('rollback');
    throw err;
  } finally {
    c.release();
  }
}

async function rpc(name, args) {
  const { data, error } = await service.rpc(name, args);
  assert.equal(error, null, error?.message);
  return data;
}

/** A raw Phoenix socket (vsn 2.0.0): frames in and out. */
async function rawSocket({ vsn = '2.0.0', apikey = stack.keys.anonKey } = {}) {
  const url = `${stack.url.replace('http', 'ws')}/realtime/v1/websocket?apikey=${
    encodeURIComponent(apikey)
  }&vsn=${vsn}`;
  const ws = new WebSocket(url);
  const frames = collector(`frames (vsn ${vsn})`);
  ws.on(
    'message',
    (data, isBinary) =>
      frames.push(isBinary ? { binary: Buffer.from(data) } : JSON.parse(data.toString())),
  );
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    ws,
    frames,
    send(joinRef, ref, topic, event, payload) {
      ws.send(JSON.stringify([joinRef, ref, topic, event, payload]));
    },
    close() {
      ws.close();
    },
  };
}

/** The HTTP status a WebSocket upgrade is refused with, and the body. */
function refusedUpgrade(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    });
    ws.on('open', () => reject(new Error('the upgrade was accepted')));
    ws.on('error', () => {});
  });
}

/**
 * A user's access token (a promise) as the stack's Auth signs it (keys.sign: ES256 or HS256 by SPOOL_KEYS);
 * with `secret`, a forgery: HS256 with that secret (legacy), or ES256 with another key under the
 * stack's kid (new).
 */
function userToken(id, { expiresIn = 3600, secret = null, extra = {} } = {}) {
  const iat = Math.floor(Date.now() / 1000);
  const claims = {
    sub: id,
    role: 'authenticated',
    aud: 'authenticated',
    iat,
    exp: iat + expiresIn,
    ...extra,
  };
  if (secret === null) return stack.keys.sign(claims);
  if (stack.keys.mode === 'legacy') return signJwt(claims, secret);
  return signEs256(claims, { ...generateSigningKey().privateJwk, kid: stack.keys.signingKey.kid });
}

before(async () => {
  stack = await startStack();
  service = stack.serviceClient();
  alice = await stack.makeUser();
  bob = await stack.makeUser();
}, { timeout: 180_000 });

after(async () => {
  // Closing the sockets ends every subscription server-side; realtime-js would otherwise keep
  // reconnect and deferred-disconnect timers alive.
  unrefTimers(() => {
    for (const c of clients) c.realtime.disconnect();
  });
  await stack?.close();
});

// ---------------------------------------------------------------------------------------------
// Postgres Changes through supabase-js
// ---------------------------------------------------------------------------------------------

describe('postgres_changes with supabase-js (vsn 2.0.0, the default)', () => {
  it('subscribes to a user\'s own jobs: SUBSCRIBED, then "Subscribed to PostgreSQL"', async () => {
    const client = rtClient(alice.token);
    const { channel } = await watch(client, [
      { event: '*', schema: 'public', table: 'jobs', filter: `user_id=eq.${alice.id}` },
    ]);
    assert.equal(client.realtime.vsn, '2.0.0');
    assert.equal(channel.state, 'joined');
    // The server's binding id was adopted by the client
    assert.equal(typeof channel.bindings.postgres_changes[0].id, 'number');
    assert.equal(await channel.unsubscribe(), 'ok');
  });

  it('delivers the job lifecycle to its owner with typed records: INSERT, then UPDATEs', async () => {
    const client = rtClient(alice.token);
    const { events } = await watch(client, [
      { event: '*', schema: 'public', table: 'jobs', filter: `user_id=eq.${alice.id}` },
    ]);

    const type = jobType();
    const job = await createJob(alice.id, type, { preset: 'warm', sizes: [1, 2] }, {
      p_priority: 7,
    });
    const inserted = await events.next((e) => e.eventType === 'INSERT' && e.new.id === job.id);
    assert.equal(inserted.schema, 'public');
    assert.equal(inserted.table, 'jobs');
    assert.match(inserted.commit_timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(inserted.errors, null);
    assert.deepEqual(inserted.old, {});
    assert.equal(inserted.new.user_id, alice.id);
    assert.equal(inserted.new.status, 'pending');
    assert.equal(inserted.new.priority, 7); // int2 -> number
    assert.equal(inserted.new.attempts, 0);
    assert.deepEqual(inserted.new.input, { preset: 'warm', sizes: [1, 2] }); // jsonb -> object
    assert.equal(inserted.new.output, null);
    assert.match(inserted.new.run_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/); // timestamptz as to_jsonb
    assert.equal(Date.parse(inserted.new.run_at), Date.parse(LATER));

    const claimed = (await claim(type))[job.id];
    assert.ok(claimed);
    const running = await events.next((e) =>
      e.eventType === 'UPDATE' && e.new.id === job.id && e.new.status === 'running'
    );
    assert.equal(running.new.attempts, 1);
    assert.equal(running.new.started_at !== null, true);
    assert.deepEqual(running.old, { id: job.id }); // replica identity default: the key only

    await rpc('heartbeat_job', {
      p_id: job.id,
      p_lease_token: claimed.lease_token,
      p_progress: 40,
      p_step: 'half way',
    });
    const beat = await events.next((e) =>
      e.eventType === 'UPDATE' && e.new.id === job.id && e.new.progress === 40
    );
    assert.equal(beat.new.step, 'half way');

    await rpc('complete_job', {
      p_id: job.id,
      p_lease_token: claimed.lease_token,
      p_output: { files: [{ path: 'x.png', size: 3 }] },
    });
    const done = await events.next((e) =>
      e.eventType === 'UPDATE' && e.new.id === job.id && e.new.status === 'done'
    );
    assert.equal(done.new.progress, 100);
    assert.deepEqual(done.new.output, { files: [{ path: 'x.png', size: 3 }] });
    assert.match(done.new.finished_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$/);
  });

  it('leaves out the columns the subscriber may not select, as apply_rls does (lease, worker, slot, key)', async () => {
    // authenticated selects only the public columns of jobs (20261202141000_job_columns.sql);
    // Realtime keeps in each record only what has_column_privilege allows the subscriber's role.
    const client = rtClient(alice.token);
    const { events } = await watch(client, [
      { event: '*', schema: 'public', table: 'jobs', filter: `user_id=eq.${alice.id}` },
    ]);
    const type = jobType();
    const job = await createJob(alice.id, type, {}, { p_idempotency_key: `key-${type}` });
    const claimed = (await claim(type))[job.id];
    await rpc('await_job', {
      p_id: job.id,
      p_lease_token: claimed.lease_token,
      p_provider: 'replicate',
      p_external_id: `pred-${type}`,
    });
    const inserted = await events.next((e) => e.eventType === 'INSERT' && e.new.id === job.id);
    const running = await events.next((e) =>
      e.eventType === 'UPDATE' && e.new.id === job.id && e.new.status === 'running'
    );
    const waiting = await events.next((e) =>
      e.eventType === 'UPDATE' && e.new.id === job.id && e.new.status === 'waiting'
    );
    const serverOnly = [
      'lease_token',
      'lease_expires_at',
      'worker_id',
      'fair_at',
      'idempotency_key',
      'external_provider',
      'external_id',
      'route',
      'timeout_at',
      'dependency_outputs',
    ];
    for (const e of [inserted, running, waiting]) {
      assert.equal(e.errors, null);
      assert.deepEqual(
        serverOnly.filter((c) => c in e.new || c in e.old),
        [],
        `${e.eventType} ${e.new.status}`,
      );
      assert.equal(e.new.user_id, alice.id);
    }
    assert.equal(running.new.attempts, 1);
    // The service role still sees them all.
    const iat = Math.floor(Date.now() / 1000);
    const serviceClient = rtClient(await stack.keys.sign({ role: 'service_role', iat, exp: iat + 3600 }));
    const seen = await watch(serviceClient, [
      { event: 'UPDATE', schema: 'public', table: 'jobs', filter: `id=eq.${job.id}` },
    ]);
    await rpc('cancel_job', { p_id: job.id });
    const cancelled = await seen.events.next((e) => e.new.status === 'cancelled');
    assert.equal(cancelled.new.worker_id, 'gw-rt-worker');
    assert.equal(cancelled.new.idempotency_key, `key-${type}`);
  });

  it('refuses a filter on a column the subscriber may not select, as subscription_check_filters does', async () => {
    const client = rtClient(alice.token);
    await client.realtime.setAuth();
    const system = collector('system');
    const statuses = collector('statuses');
    client.channel(`hidden-${crypto.randomUUID()}`)
      .on('postgres_changes', {
        event: '*',
        schema: 'public',
        table: 'jobs',
        filter: 'worker_id=eq.gw-rt-worker',
      }, () => {})
      .on('system', {}, (m) => system.push(m))
      .subscribe((status) => statuses.push({ status }));
    await statuses.next((s) => s.status === 'SUBSCRIBED');
    const m = await system.next();
    assert.equal(m.status, 'error');
    assert.match(m.message, /^Unable to subscribe to changes with given parameters/);
  });

  it('refuses a filter value the column cannot take, with the Postgres error', async () => {
    const client = rtClient(alice.token);
    await client.realtime.setAuth();
    const system = collector('system');
    client.channel(`badvalue-${crypto.randomUUID()}`)
      .on('postgres_changes', {
        event: '*',
        schema: 'public',
        table: 'jobs',
        filter: 'user_id=in.(not-a-uuid)',
      }, () => {})
      .on('system', {}, (m) => system.push(m))
      .subscribe();
    const m = await system.next();
    assert.equal(m.status, 'error');
    assert.equal(
      m.message,
      'Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [event: *, schema: public, table: jobs, filters: [{"user_id", "in", "{not-a-uuid}", false}], select: nil]. Exception: ERROR 22P02 (invalid_text_representation) invalid input syntax for type uuid: "not-a-uuid"',
    );
  });

  it('delivers each of 10 committed heartbeats (latency only logged: bench/realtime.mjs measures it)', async () => {
    const client = rtClient(alice.token);
    const type = jobType();
    const job = await createJob(alice.id, type);
    const { events } = await watch(client, [
      { event: 'UPDATE', schema: 'public', table: 'jobs', filter: `id=eq.${job.id}` },
    ]);
    const claimed = (await claim(type))[job.id];
    await events.next((e) => e.new.status === 'running');
    const samples = [];
    for (let i = 1; i <= 10; i++) {
      // Straight to Postgres: the query resolves right after the commit.
      await stack.admin.query('select public.heartbeat_job($1, $2, $3)', [
        job.id,
        claimed.lease_token,
        i * 5,
      ]);
      const committed = performance.now();
      const e = await events.next((x) => x.new.progress === i * 5);
      samples.push(events.arrivedAt(e) - committed);
    }
    const sorted = samples.sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(
      `# realtime latency commit -> event: median ${median.toFixed(1)} ms, max ${
        sorted.at(-1).toFixed(1)
      } ms (${sorted.map((x) => x.toFixed(0)).join(' ')})`,
    );
  });

  it("applies RLS per subscriber: an unfiltered subscriber sees its own rows and none of another user's", async () => {
    const bobClient = rtClient(bob.token);
    const { events } = await watch(bobClient, [{ event: '*', schema: 'public', table: 'jobs' }]);
    const type = jobType();
    const alicesJob = await createJob(alice.id, type);
    const bobsJob = await createJob(bob.id, type); // committed after Alice's: arrives after it would have
    const mine = await events.next((e) => e.eventType === 'INSERT' && e.new.id === bobsJob.id);
    assert.equal(mine.new.user_id, bob.id);
    assert.equal(
      events.items.filter((x) =>
        x.item.new?.user_id === alice.id || x.item.new?.id === alicesJob.id
      ).length,
      0,
    );
  });

  it('filters with in.(...): only the listed rows arrive', async () => {
    const type = jobType();
    const a = await createJob(alice.id, type);
    const b = await createJob(alice.id, type);
    const c = await createJob(alice.id, type);
    const client = rtClient(alice.token);
    const { events } = await watch(client, [
      { event: 'UPDATE', schema: 'public', table: 'jobs', filter: `id=in.(${a.id},${c.id})` },
    ]);
    const claimed = await claim(type);
    for (const j of [a, b, c]) {
      await rpc('heartbeat_job', {
        p_id: j.id,
        p_lease_token: claimed[j.id].lease_token,
        p_progress: 10,
      });
    }
    await events.next((e) => e.new.id === a.id && e.new.progress === 10);
    await events.next((e) => e.new.id === c.id && e.new.progress === 10); // after b's commit
    assert.deepEqual(new Set(events.items.map((x) => x.item.new.id)), new Set([a.id, c.id]));
  });

  it('filters on typed comparisons (gt on a smallint, not.eq on an enum, is.null) combined with AND', async () => {
    const client = rtClient(alice.token);
    const { events } = await watch(client, [
      {
        event: 'INSERT',
        schema: 'public',
        table: 'jobs',
        filter: `priority=gt.5,status=not.eq.done,finished_at=is.null,user_id=eq.${alice.id}`,
      },
    ]);
    const type = jobType();
    const low = await createJob(alice.id, type, {}, { p_priority: 5 });
    const high = await createJob(alice.id, type, {}, { p_priority: 10 });
    const got = await events.next((e) => e.new.id === high.id);
    assert.equal(got.new.priority, 10);
    assert.equal(events.items.filter((x) => x.item.new.id === low.id).length, 0);
  });

  it('DELETE bypasses RLS, carries only the primary key, and matches filters on the key only', async () => {
    const carol = await stack.makeUser();
    const job = await createJob(carol.id, jobType(), { secret: 'carol' });
    const bobClient = rtClient(bob.token);
    const { events: bobs } = await watch(bobClient, [{
      event: 'DELETE',
      schema: 'public',
      table: 'jobs',
    }]);
    const aliceClient = rtClient(alice.token);
    const { events: byKey } = await watch(aliceClient, [
      { event: 'DELETE', schema: 'public', table: 'jobs', filter: `id=eq.${job.id}` },
      { event: 'DELETE', schema: 'public', table: 'jobs', filter: `user_id=eq.${carol.id}` },
    ]);
    await stack.admin.query('delete from public.jobs where id = $1', [job.id]);

    const seenByBob = await bobs.next((e) => e.old.id === job.id);
    assert.equal(seenByBob.eventType, 'DELETE');
    assert.deepEqual(seenByBob.old, { id: job.id }); // RLS on: nothing but the key
    assert.deepEqual(seenByBob.new, {});
    const seenByKey = await byKey.next((e) => e.old.id === job.id);
    assert.deepEqual(seenByKey.old, { id: job.id });
    // The user_id filter cannot match: the old row of a DELETE holds only the key. Both bindings
    // share one message, so a second message would have arrived with the first.
    assert.equal(byKey.items.length, 1);
  });

  it('delivers a notification INSERT to its owner only', async () => {
    const aliceClient = rtClient(alice.token);
    const { events: alices } = await watch(aliceClient, [
      {
        event: 'INSERT',
        schema: 'public',
        table: 'notifications',
        filter: `user_id=eq.${alice.id}`,
      },
    ]);
    const bobClient = rtClient(bob.token);
    const { events: bobs } = await watch(bobClient, [{
      event: 'INSERT',
      schema: 'public',
      table: 'notifications',
    }]);

    const type = jobType();
    const job = await createJob(alice.id, type);
    const leased = await claim(type);
    await rpc('complete_job', {
      p_id: job.id,
      p_lease_token: leased[job.id].lease_token,
      p_output: {},
    });
    const note = await alices.next((e) => e.new.job_id === job.id);
    assert.equal(note.table, 'notifications');
    assert.equal(note.new.status, 'done');
    assert.equal(note.new.message, `Your ${type} job is done.`);
    assert.equal(note.new.read_at, null);

    const bobsJob = await createJob(bob.id, type);
    const bobLeased = await claim(type);
    await rpc('complete_job', {
      p_id: bobsJob.id,
      p_lease_token: bobLeased[bobsJob.id].lease_token,
      p_output: {},
    });
    await bobs.next((e) => e.new.job_id === bobsJob.id);
    assert.equal(bobs.items.filter((x) => x.item.new.job_id === job.id).length, 0);
  });

  it('switches identity on setAuth(token): the anon key sees "Error 401", the user token their rows', async () => {
    const client = rtClient(null); // the anon key only
    const { events, system } = await watch(client, [{
      event: 'INSERT',
      schema: 'public',
      table: 'jobs',
    }]);
    const type = jobType();
    await createJob(alice.id, type);
    const refused = await events.next();
    // anon has no SELECT on jobs: Realtime reports the change without its data
    assert.deepEqual(refused.errors, ['Error 401: Unauthorized']);
    assert.deepEqual(refused.new, {});

    await unrefTimers(() => client.realtime.setAuth(alice.token));
    const resubscribed = await system.next((m) => m.extension === 'postgres_changes', {
      from: system.items.length,
    });
    assert.equal(resubscribed.message, 'Subscribed to PostgreSQL');
    const second = await createJob(alice.id, type);
    const seen = await events.next((e) => e.new.id === second.id);
    assert.equal(seen.errors, null);
    assert.equal(seen.new.user_id, alice.id);
  });

  it('ends the channel when setAuth gives an expired token: system error, then CLOSED', async () => {
    const client = rtClient(alice.token);
    const { system, statuses } = await watch(client, [{
      event: '*',
      schema: 'public',
      table: 'jobs',
      filter: `user_id=eq.${alice.id}`,
    }]);
    const expired = await userToken(alice.id, { expiresIn: -30 });
    await unrefTimers(() => client.realtime.setAuth(expired));
    const err = await system.next((m) => m.status === 'error');
    assert.equal(err.extension, 'system');
    assert.match(err.message, /^Token has expired \d+ seconds ago$/);
    await statuses.next((s) => s.status === 'CLOSED');
  });

  it("refuses a join with a bad token with Realtime's reasons", async () => {
    const cases = [
      [
        await userToken(alice.id, { secret: 'not-the-secret' }),
        'JwtSignatureError: Failed to validate JWT signature',
      ],
      [
        await userToken(alice.id, { expiresIn: -10 }),
        /^InvalidJWTToken: Token has expired \d+ seconds ago$/,
      ],
      ['not-a-jwt', 'MalformedJWT: The token provided is not a valid JWT'],
    ];
    for (const [token, reason] of cases) {
      const client = rtClient(token);
      await client.realtime.setAuth();
      const statuses = collector('statuses');
      client.channel(`bad-${crypto.randomUUID()}`)
        .on('postgres_changes', { event: '*', schema: 'public', table: 'jobs' }, () => {})
        .subscribe((status, err) => statuses.push({ status, err }));
      const s = await statuses.next((x) => x.status !== 'CLOSED');
      assert.equal(s.status, 'CHANNEL_ERROR');
      if (reason instanceof RegExp) assert.match(s.err.message, reason);
      else assert.equal(s.err.message, reason);
    }
  });

  it('errors the channel when replication fails; realtime-js rejoins and changes flow again', async () => {
    const client = rtClient(alice.token);
    const { events, system, statuses } = await watch(client, [
      { event: 'INSERT', schema: 'public', table: 'jobs', filter: `user_id=eq.${alice.id}` },
    ]);
    // The session holding the (temporary) slot dies: the next poll fails.
    await stack.admin.query(
      `select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'spool-realtime-slot'`,
    );
    const failed = await statuses.next((s) => s.status === 'CHANNEL_ERROR');
    assert.ok(failed);
    const from = statuses.items.indexOf(statuses.items.find((x) => x.item === failed));
    await statuses.next((s) => s.status === 'SUBSCRIBED', { from, timeoutMs: 15_000 });
    const again = await system.next((m) => m.message === 'Subscribed to PostgreSQL', {
      from: 1,
      timeoutMs: 15_000,
    });
    assert.equal(again.status, 'ok');
    const job = await createJob(alice.id, jobType());
    await events.next((e) => e.new.id === job.id);
  });

  it('reports a table outside the publication as Realtime does', async () => {
    const client = rtClient(alice.token);
    await client.realtime.setAuth();
    const system = collector('system');
    const statuses = collector('statuses');
    client.channel(`nopub-${crypto.randomUUID()}`)
      .on('postgres_changes', { event: '*', schema: 'auth', table: 'users' }, () => {})
      .on('system', {}, (m) => system.push(m))
      .subscribe((status) => statuses.push({ status }));
    await statuses.next((s) => s.status === 'SUBSCRIBED');
    const m = await system.next();
    assert.equal(m.status, 'error');
    assert.equal(
      m.message,
      'Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: auth, table: users, filters: [], select: nil]',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The wire, frame by frame
// ---------------------------------------------------------------------------------------------

describe('the Phoenix protocol on the wire', () => {
  it('vsn 2.0.0: heartbeat, join reply with ids, system message, postgres_changes arrays, leave', async () => {
    const s = await rawSocket({ vsn: '2.0.0' });
    const topic = `realtime:raw-${crypto.randomUUID()}`;
    s.send(null, '1', 'phoenix', 'heartbeat', {});
    assert.deepEqual(await s.frames.next((f) => f[2] === 'phoenix'), [
      null,
      '1',
      'phoenix',
      'phx_reply',
      { status: 'ok', response: {} },
    ]);

    const binding = {
      event: 'UPDATE',
      schema: 'public',
      table: 'jobs',
      filter: `user_id=eq.${alice.id}`,
    };
    s.send('2', '2', topic, 'phx_join', {
      config: {
        broadcast: { ack: false, self: false },
        presence: { key: '', enabled: false },
        postgres_changes: [binding],
        private: false,
      },
      access_token: alice.token,
    });
    const reply = await s.frames.next((f) => f[3] === 'phx_reply' && f[1] === '2');
    assert.deepEqual(reply.slice(0, 3), ['2', '2', topic]);
    assert.equal(reply[4].status, 'ok');
    const [bound] = reply[4].response.postgres_changes;
    assert.deepEqual({ ...bound, id: undefined }, { ...binding, id: undefined });
    assert.ok(Number.isInteger(bound.id) && bound.id > 0 && bound.id < 2 ** 27);

    const sys = await s.frames.next((f) => f[3] === 'system');
    assert.deepEqual(sys, ['2', null, topic, 'system', {
      extension: 'postgres_changes',
      status: 'ok',
      message: 'Subscribed to PostgreSQL',
      channel: topic.slice(9),
    }]);

    const type = jobType();
    const job = await createJob(alice.id, type);
    const claimed = (await claim(type))[job.id];
    const change = await s.frames.next((f) => f[3] === 'postgres_changes');
    assert.deepEqual(change.slice(0, 3), [null, null, topic]);
    const { ids, data } = change[4];
    assert.deepEqual(ids, [bound.id]);
    assert.equal(data.type, 'UPDATE');
    assert.equal(data.schema, 'public');
    assert.equal(data.table, 'jobs');
    assert.equal(data.errors, null);
    assert.deepEqual(data.old_record, { id: job.id });
    assert.equal(data.record.status, 'running');
    assert.ok(claimed);
    for (const hidden of ['lease_token', 'worker_id', 'fair_at', 'idempotency_key']) {
      assert.equal(hidden in data.record, false, hidden);
      assert.equal(data.columns.some((c) => c.name === hidden), false, hidden);
    }
    assert.deepEqual(data.columns.slice(0, 5), [
      { name: 'id', type: 'uuid' },
      { name: 'user_id', type: 'uuid' },
      { name: 'type', type: 'text' },
      { name: 'status', type: 'job_status' },
      { name: 'priority', type: 'int2' },
    ]);
    assert.ok(data.columns.some((c) => c.name === 'input' && c.type === 'jsonb'));
    assert.ok(data.columns.some((c) => c.name === 'run_at' && c.type === 'timestamptz'));

    s.send('2', '3', topic, 'phx_leave', {});
    assert.deepEqual(await s.frames.next((f) => f[1] === '3'), ['2', '3', topic, 'phx_reply', {
      status: 'ok',
      response: {},
    }]);
    assert.deepEqual(await s.frames.next((f) => f[3] === 'phx_close'), [
      '2',
      '2',
      topic,
      'phx_close',
      {},
    ]);

    // A topic that is not joined (any more): Phoenix's "unmatched topic"
    s.send('2', '4', topic, 'access_token', { access_token: alice.token });
    assert.deepEqual(await s.frames.next((f) => f[1] === '4'), [null, '4', topic, 'phx_reply', {
      status: 'error',
      response: { reason: 'unmatched topic' },
    }]);
    s.close();
  });

  it('answers a join without a valid token with the reason', async () => {
    const s = await rawSocket({ vsn: '2.0.0' });
    s.send('1', '1', 'realtime:x', 'phx_join', {
      config: {},
      access_token: await userToken(alice.id, { extra: { role: undefined } }),
    });
    const refused = await s.frames.next((f) => f[1] === '1');
    assert.deepEqual(refused[4], {
      status: 'error',
      response: { reason: 'InvalidJWTToken: Fields `role` and `exp` are required in JWT' },
    });
    s.close();
  });

  it('answers plain HTTP under /realtime/v1: 400 on the socket path, 404 elsewhere', async () => {
    const socket = await fetch(`${stack.url}/realtime/v1/websocket?vsn=2.0.0`);
    assert.equal(socket.status, 400);
    assert.deepEqual(await socket.json(), { error: 'expected a WebSocket upgrade' });
    const other = await fetch(`${stack.url}/realtime/v1/api/broadcast`);
    assert.equal(other.status, 404);
    assert.deepEqual(await other.json(), { message: 'no route for /realtime/v1/api/broadcast' });
  });

  it('refuses the upgrade without a known API key, and unknown protocol versions', async () => {
    const base = `${stack.url.replace('http', 'ws')}/realtime/v1/websocket`;
    assert.deepEqual(await refusedUpgrade(`${base}?vsn=2.0.0`), {
      status: 401,
      body: {
        message: 'No API key found in request',
        hint: 'No `apikey` request header or url param was found.',
      },
    });
    const wrong = await refusedUpgrade(`${base}?vsn=2.0.0&apikey=${await userToken(alice.id)}`);
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.message, 'Invalid API key');
    // 1.0.0 (Realtime's V1 JSON objects, also what no vsn means) is not served: nothing sends it.
    for (const vsn of ['3.0.0', '1.0.0']) {
      assert.equal((await refusedUpgrade(`${base}?vsn=${vsn}&apikey=${stack.keys.anonKey}`)).status, 403);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Filters, without a database
// ---------------------------------------------------------------------------------------------

describe('filters as Realtime parses them', () => {
  it('parses filters: operators, not., comma-AND, in.(...), and refuses what Realtime refuses', () => {
    assert.deepEqual(
      parseSubscriptionParams({
        event: 'update',
        schema: 'public',
        table: 'jobs',
        filter: 'id=in.(1,2),status=not.eq.done',
      }),
      {
        action: 'UPDATE',
        schema: 'public',
        table: 'jobs',
        filters: [
          { column: 'id', op: 'in', values: ['1', '2'], negate: false },
          { column: 'status', op: 'eq', value: 'done', negate: true },
        ],
      },
    );
    assert.deepEqual(parseSubscriptionParams({ table: 'jobs' }).schema, 'public');
    assert.deepEqual(parseSubscriptionParams({ schema: 'public' }).table, '*');
    assert.throws(
      () => parseSubscriptionParams({ schema: 'public', table: 'jobs', filter: 'id=in.1,2' }),
      {
        message: 'Error parsing `filter` params: `in` filter value must be wrapped by parentheses',
      },
    );
    assert.throws(
      () => parseSubscriptionParams({ schema: 'public', table: 'jobs', filter: 'subject=foo.hey' }),
      {
        message: 'Error parsing `filter` params: ["foo", "hey"]',
      },
    );
    assert.throws(
      () => parseSubscriptionParams({ schema: 'public', table: 'jobs', filter: 'a=eq.1,,b=eq.2' }),
      {
        message:
          'Error parsing `filter` params: filter must not contain empty segments (check for extra commas)',
      },
    );
    assert.throws(() => parseSubscriptionParams({}), /^Error: No subscription params provided/);
    // Column selection, which Spool does not use, is refused rather than ignored.
    assert.throws(
      () => parseSubscriptionParams({ schema: 'public', table: 'jobs', select: ['status'] }),
      { message: 'Error parsing `select` params: column selection is not supported here' },
    );
    assert.equal(
      parseSubscriptionParams({ schema: 'public', table: 'jobs', filter: 'step=eq."a,b"' })
        .filters[0].value,
      'a,b',
    );
    // Operators hosted Realtime takes beyond PostgREST's eq..in/is are refused here as unknown.
    assert.throws(
      () => parseSubscriptionParams({ schema: 'public', table: 'jobs', filter: 'step=like.a%' }),
      { message: 'Error parsing `filter` params: ["like", "a%"]' },
    );
  });
});
