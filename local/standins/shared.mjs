// Helpers shared by the stand-ins: the gateway's API-key check, CORS as Supabase's gateway answers
// it, bounded bodies, JSON answers, supabase/config.toml (smol-toml), and the per-request
// transaction that impersonates the caller (role + claims), which makes RLS decide as on Supabase.

import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';

/** The clock the stand-ins use: ctx.now() when a test injects one, else Date.now(). */
export function nowMs(ctx) {
  return typeof ctx.now === 'function' ? ctx.now() : Date.now();
}

/** The `apikey` of a request (header, else query parameter), or null. */
export function apiKeyOf(req, url) {
  const key = req.headers.apikey ?? url.searchParams.get('apikey');
  return key ? String(key) : null;
}

/** The gateway's 401 body for a request without a key in force, as hosted words it; else null. */
export function apiKeyRefusal(ctx, apikey) {
  if (apikey === null) {
    return { message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.' };
  }
  if (ctx.keys.apiKeyRole(apikey)) return null;
  return {
    message: 'Invalid API key',
    hint: ctx.keys.mode === 'new'
      ? 'Double check your Supabase publishable or secret API key.'
      : 'Double check your Supabase `anon` or `service_role` API key.',
  };
}

/** Headers every response of an API route carries for browsers on another origin. */
export function corsHeaders(req, exposed) {
  if (!req.headers.origin) return {};
  return { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': exposed };
}

/** Refuses an HTTP Upgrade (a WebSocket) with a JSON answer written on the raw socket. */
export function refuseUpgrade(socket, status, body) {
  const text = JSON.stringify(body);
  const reason = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[status];
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

export function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Answers a CORS preflight (the gateway does, before any key check). */
export function sendPreflight(req, res) {
  const requested = req.headers['access-control-request-headers'];
  res.writeHead(200, {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Methods': 'GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD',
    'Access-Control-Allow-Headers': `authorization, ${requested ?? 'x-client-info, apikey, content-type'}`,
    'Access-Control-Max-Age': '86400',
    'Content-Length': '0',
  });
  res.end();
}

/**
 * The request body as a Buffer, up to `limit` bytes; past it rejects with tooLarge() at once and
 * leaves the rest to server.mjs settleUnreadBody (so the client reads the refusal).
 */
export function readBody(req, limit, tooLarge) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const onData = (chunk) => {
      size += chunk.length;
      if (size <= limit) return chunks.push(chunk);
      req.removeListener('data', onData);
      req.pause();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('request closed before its body was read'));
    });
  });
}

/** A JSON object body ({} when empty) with each service's refusals: tooLarge(), invalid() (not an object). */
export async function readJson(req, limit, { tooLarge, invalid }) {
  const text = (await readBody(req, limit, tooLarge)).toString('utf8');
  let body;
  try {
    body = text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    throw invalid();
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid();
  return body;
}

/** fn(client) in one transaction (`begin ${mode}`); a connection whose rollback failed is dropped. */
export async function inTransaction(pool, fn, mode = '') {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query(`begin ${mode}`);
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => (broken = true));
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * fn(client) in one transaction on a ctx.pool (authenticator) connection as the caller: SET LOCAL
 * ROLE, request.jwt.claims, `gucs`, and the role's own statement_timeout / lock_timeout (ALTER
 * ROLE ... SET: anon 3 s, authenticated 8 s), which PostgREST applies and a SET ROLE does not.
 */
export function withCallerTransaction(pool, { role, claims, readOnly = false, gucs = {} }, fn) {
  return inTransaction(pool, async (client) => {
    const settings = { role, 'request.jwt.claims': JSON.stringify(claims ?? {}), ...gucs };
    await client.query(
      `select pg_catalog.set_config(k, v, true) from unnest($1::text[], $2::text[]) as g(k, v)`,
      [Object.keys(settings), Object.values(settings).map((v) => String(v ?? ''))],
    );
    await client.query(
      `select pg_catalog.set_config(split_part(s, '=', 1), substr(s, strpos(s, '=') + 1), true)
         from pg_catalog.pg_db_role_setting d
         join pg_catalog.pg_roles r on r.oid = d.setrole
         cross join lateral unnest(d.setconfig) as s
        where r.rolname = $1
          and d.setdatabase in (0, (select oid from pg_catalog.pg_database where datname = current_database()))
          and split_part(s, '=', 1) in ('statement_timeout', 'lock_timeout')`,
      [role],
    );
    return await fn(client);
  }, readOnly ? 'isolation level read committed read only' : '');
}

/** One [section] of supabase/config.toml ("auth.rate_limit" for nested tables); {} if absent. */
export function readConfigSection(root, section) {
  let config;
  try {
    config = parseToml(fs.readFileSync(path.join(root, 'supabase', 'config.toml'), 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') return {};
    throw err;
  }
  return section.split('.').reduce((o, k) => o?.[k], config) ?? {};
}

/** Parses a Supabase size string ("50MiB", "5GB", "1048576") into bytes; null if unparsable. */
export function parseSize(value) {
  if (typeof value === 'number') return value;
  const m = String(value ?? '').trim().match(/^(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?$/i);
  if (!m) return null;
  const mult = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 };
  return Math.floor(Number(m[1]) * mult[(m[2] ?? 'B').toUpperCase()]);
}
