// Helpers shared by the PostgREST and Storage stand-ins (rest.mjs, storage.mjs): JWT checks (over
// keys.mjs verifySignature, in either key mode) with the reasons each service reports, CORS as
// Supabase's gateway answers it, bounded body reading, and the per-request transaction that
// impersonates the caller (role + claims GUCs), which is what makes RLS decide exactly as it does
// on Supabase.

import fs from 'node:fs';
import path from 'node:path';
import { checkTimes, TokenError, verifySignature } from './keys.mjs';

export { TokenError };

// ---------------------------------------------------------------------------------------------
// JWT
// ---------------------------------------------------------------------------------------------

/**
 * Verifies a JWT's signature against the stack's keys (`verifier`: keys.verifier, i.e. the JWT
 * secret in legacy mode, the JWKS in new mode) and its exp/nbf/iat, and returns its claims. Unlike
 * keys.verify it does not require a role claim (PostgREST falls back to the anon role).
 * `skewSeconds` is the clock leeway (PostgREST allows 30 s; Storage's jose none).
 */
export function verifyToken(token, verifier, { nowMs = Date.now(), skewSeconds = 0 } = {}) {
  const { claims } = verifySignature(token, verifier);
  return checkTimes(claims, { nowMs, skewSeconds });
}

/** verifyToken with an HS256 secret only (Storage's signed-URL tokens, which it signs itself). */
export function verifyHs256(token, secret, opts = {}) {
  return verifyToken(token, { hmacSecret: secret }, opts);
}

/** The bearer token of an Authorization header, '' if it has none, null if there is no header. */
export function bearerToken(req) {
  const h = req.headers.authorization;
  if (h === undefined) return null;
  return String(h).replace(/^Bearer\s+/i, '').trim();
}

/** The clock the stand-ins use: ctx.now() when a test injects one, else Date.now(). */
export function nowMs(ctx) {
  return typeof ctx.now === 'function' ? ctx.now() : Date.now();
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

const CORS_METHODS = 'GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD';
const CORS_DEFAULT_HEADERS =
  'authorization, x-client-info, apikey, content-type, accept, accept-profile, content-profile, prefer, range, range-unit, x-upsert, x-metadata, cache-control';

/** Headers every response of an API route carries for browsers on another origin. */
export function corsHeaders(req, exposed) {
  if (!req.headers.origin) return {};
  return {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Expose-Headers': exposed,
  };
}

/** Answers a CORS preflight (the gateway does this before any key check). */
export function sendPreflight(req, res) {
  const requested = req.headers['access-control-request-headers'];
  res.writeHead(200, {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Methods': CORS_METHODS,
    'Access-Control-Allow-Headers': requested
      ? `authorization, ${requested}`
      : CORS_DEFAULT_HEADERS,
    'Access-Control-Max-Age': '86400',
    'Content-Length': '0',
  });
  res.end();
}

/** A request body larger than the reader's cap. */
export class BodyTooLarge extends Error {
  constructor(limit) {
    super(`request body exceeds ${limit} bytes`);
    this.name = 'BodyTooLarge';
    this.limit = limit;
  }
}

/**
 * Reads the whole request body into a Buffer, up to `limit` bytes. Past the limit it keeps
 * draining (discarding) up to `drainLimit` bytes so the client still reads our answer, then
 * rejects with BodyTooLarge; beyond drainLimit it rejects at once and leaves the rest of the
 * body to the gateway (server.mjs settleUnreadBody: drained after the answer, or the connection
 * closed cleanly), never resetting the connection under the client.
 */
export function readBody(req, { limit = 10 * 1024 * 1024, drainLimit = 1024 * 1024 * 1024 } = {}) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let over = false;
    const onData = (chunk) => {
      size += chunk.length;
      if (over || size > limit) {
        if (!over) chunks.length = 0;
        over = true;
        if (size > drainLimit) {
          req.removeListener('data', onData);
          req.pause();
          reject(new BodyTooLarge(limit));
        }
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on(
      'end',
      () => (over ? reject(new BodyTooLarge(limit)) : resolve(Buffer.concat(chunks, size))),
    );
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('request closed before its body was read'));
    });
  });
}

/** Reads and discards the rest of a request body (bounded), so an early answer reaches the client. */
export function drainBody(req, drainLimit = 1024 * 1024 * 1024) {
  return readBody(req, { limit: 0, drainLimit }).catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------------

/** Per-role settings PostgREST applies when it impersonates a role (ALTER ROLE ... SET). */
const ROLE_SETTINGS_APPLIED = new Set(['statement_timeout', 'lock_timeout']);

const roleSettingsCache = new WeakMap();
const ROLE_SETTINGS_TTL_MS = 10_000;

/** The applied ALTER ROLE ... SET settings of `role`, cached briefly per pool. */
async function roleSettings(pool, client, role) {
  let byRole = roleSettingsCache.get(pool);
  if (!byRole) roleSettingsCache.set(pool, byRole = new Map());
  const hit = byRole.get(role);
  if (hit && Date.now() - hit.at < ROLE_SETTINGS_TTL_MS) return hit.settings;
  const { rows } = await client.query(
    `select split_part(s.setting, '=', 1) as name, substr(s.setting, strpos(s.setting, '=') + 1) as value
       from pg_catalog.pg_db_role_setting d
       join pg_catalog.pg_roles r on r.oid = d.setrole
       cross join lateral unnest(d.setconfig) as s(setting)
      where r.rolname = $1
        and d.setdatabase in (0, (select oid from pg_catalog.pg_database where datname = current_database()))
      order by d.setdatabase`,
    [role],
  );
  const settings = rows.filter((r) => ROLE_SETTINGS_APPLIED.has(r.name));
  byRole.set(role, { at: Date.now(), settings });
  return settings;
}

/**
 * Runs fn(client) in one transaction on a ctx.pool (authenticator) connection that impersonates
 * the caller: `set_config('role', role, true)` (SET LOCAL ROLE) and the request GUCs PostgREST and
 * Storage set (request.jwt.claims, request.method, ...). Commits when fn resolves, rolls back when
 * it throws (the error is rethrown). `gucs` adds more local settings.
 */
export async function withCallerTransaction(
  pool,
  { role, claims, readOnly = false, gucs = {} },
  fn,
) {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query(readOnly ? 'begin isolation level read committed read only' : 'begin');
    const names = Object.keys(gucs);
    const setters = names.map((_, i) =>
      `set_config($${i + 3}::text, $${i + 3 + names.length}::text, true)`
    );
    await client.query(
      `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)${
        setters.length ? `, ${setters.join(', ')}` : ''
      }`,
      [role, JSON.stringify(claims ?? {}), ...names, ...names.map((n) => gucs[n] ?? '')],
    );
    for (const { name, value } of await roleSettings(pool, client, role)) {
      await client.query('select set_config($1, $2, true)', [name, value]);
    }
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    try {
      await client.query('rollback');
    } catch {
      broken = true;
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

// ---------------------------------------------------------------------------------------------
// supabase/config.toml
// ---------------------------------------------------------------------------------------------

/**
 * Reads `key = value` pairs of one [section] of supabase/config.toml (strings, numbers, booleans
 * and flat string arrays: all the stand-ins need). Missing file or section: {}.
 */
export function readConfigSection(root, section) {
  let text;
  try {
    text = fs.readFileSync(path.join(root, 'supabase', 'config.toml'), 'utf8');
  } catch {
    return {};
  }
  const out = {};
  let current = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = line.match(/^\[([^\]]+)\]$/);
    if (header) {
      current = header[1].trim();
      continue;
    }
    if (current !== section) continue;
    const kv = line.match(/^([A-Za-z0-9_]+)\s*=\s*(.+)$/);
    if (!kv) continue;
    const value = kv[2].trim();
    if (/^".*"$/.test(value)) out[kv[1]] = value.slice(1, -1);
    else if (/^\[.*\]$/.test(value)) {
      out[kv[1]] = [...value.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
    } else if (value === 'true' || value === 'false') out[kv[1]] = value === 'true';
    else if (/^-?\d+(\.\d+)?$/.test(value)) out[kv[1]] = Number(value);
    else out[kv[1]] = value;
  }
  return out;
}

/** Parses a Supabase size string ("50MiB", "5GB", "1048576") into bytes; null if unparsable. */
export function parseSize(value) {
  if (typeof value === 'number') return value;
  const m = String(value ?? '').trim().match(/^(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?$/i);
  if (!m) return null;
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 }[unit];
  return Math.floor(Number(m[1]) * mult);
}
