// The PostgREST stand-in at /rest/v1: the subset Spool's clients use, on PostgREST's wire format.
//
//   auth      `apikey` must be a key in force (shared.mjs apiKeyRefusal); role and claims come from
//             the token the gateway forwards (keys.mjs forwardedToken; PostgREST's 30 s leeway).
//   per call  one transaction as the caller's role with request.jwt.claims (shared.mjs
//             withCallerTransaction): RLS decides. GET and STABLE/IMMUTABLE calls run READ ONLY.
//   GET /<table>   select=col,…|*, filters col=[not.]eq|neq|gt|gte|lt|lte|in|is.… (postgrest-filter.mjs),
//             order=col[.asc|.desc][.nullsfirst|.nullslast],…, limit=n (capped by [api] max_rows).
//   POST /rpc/<fn> {named args}: each cast from JSON to its declared type; composite -> object,
//             setof -> array, scalar -> value, void -> 204.
//   errors    {code, details, hint, message}, PostgREST's SQLSTATE -> HTTP mapping, PGRST codes.
// Anything else PostgREST serves (table writes, or=/and=, embedding, Range, counts, other media
// types) is 501 PGRST127 "Feature not implemented": nothing in Spool asks for it.

import {
  apiKeyOf, apiKeyRefusal, corsHeaders, nowMs, readConfigSection, readJson, sendPreflight,
  withCallerTransaction,
} from './shared.mjs';
import { TokenError, verifyToken } from './keys.mjs';
import { compile, FilterError, parse, quoteIdent } from './postgrest-filter.mjs';

const PREFIX = '/rest/v1';
const EXPOSED = 'Content-Range, Content-Type, Content-Location, Preference-Applied';
const BODY_LIMIT = 10 * 1024 * 1024;
const RESERVED = new Set(['select', 'order', 'limit']);

/** An answer other than success: HTTP status, PostgREST's body, extra headers. */
class ApiError extends Error {
  constructor(status, code, message, { details = null, hint = null, headers = {}, body } = {}) {
    super(message);
    this.status = status;
    this.body = body ?? { code, details, hint, message };
    this.headers = headers;
  }
}

const parseError = (message, details = null) => new ApiError(400, 'PGRST100', message, { details });
const notImplemented = (what) =>
  new ApiError(501, 'PGRST127', 'Feature not implemented', {
    details: `${what} is not served by the local PostgREST stand-in (Spool does not use it)`,
  });

const STATUS_OF_SQLSTATE = {
  23503: 409, 23505: 409, 25006: 405, '42P01': 404, 42883: 404, '42P17': 500, 21000: 500, P0001: 400, '57P01': 503,
  53400: 500,
};

/** PostgREST's SQLSTATE -> HTTP status mapping (src/PostgREST/Error.hs, for the codes that occur). */
function httpStatusForSqlState(code, message = '', authenticated = true) {
  const c = String(code ?? '');
  if (c.startsWith('PT')) {
    const n = Number(c.slice(2));
    return Number.isInteger(n) && n >= 100 && n <= 599 ? n : 500;
  }
  if (c in STATUS_OF_SQLSTATE) return STATUS_OF_SQLSTATE[c];
  if (c === '42501') return authenticated ? 403 : 401;
  if (c === '22023') return message.startsWith('role') && message.endsWith('does not exist') ? 401 : 400;
  if (/^(08|53)/.test(c)) return 503;
  if (/^(0L|0P|28)/.test(c)) return 403;
  if (/^(09|25|2D|38|39|3B|40|54|55|57|58|F0|HV|P0|XX)/.test(c)) return 500;
  return 400;
}

const JWT_MESSAGES = {
  empty: ['PGRST301', 'Empty JWT is sent in Authorization header'],
  alg: ['PGRST301', 'Wrong or unsupported encoding algorithm'],
  signature: ['PGRST301', 'JWT cryptographic operation failed'],
  expired: ['PGRST303', 'JWT expired'],
  nbf: ['PGRST303', 'JWT not yet valid'],
  iat: ['PGRST303', 'JWT issued at future'],
};

function jwtError(err) {
  const [code, message] = err.reason === 'parts'
    ? ['PGRST301', `Expected 3 parts in JWT; got ${err.detail}`]
    : JWT_MESSAGES[err.reason] ?? ['PGRST301', "JWT couldn't be decoded"];
  const headers = { 'WWW-Authenticate': `Bearer error="invalid_token", error_description=${JSON.stringify(message)}` };
  return new ApiError(401, code, message, { headers });
}

/** PostgREST operators Spool never sends: 501 rather than a parse error. */
const UNSERVED_OPERATORS = /^(i?like|i?match|isdistinct|cs|cd|ov|sl|sr|nxl|nxr|adj|(pl|ph|w)?fts)$/;

/** Filter nodes of a query string (every parameter but select, order, limit). */
function parseFilters(params) {
  const nodes = [];
  for (const [key, value] of params) {
    if (RESERVED.has(key)) continue;
    if (/^(not\.)?(and|or)$/.test(key)) throw notImplemented('Logic trees (or=, and=)');
    try {
      nodes.push(parse(key, value));
    } catch (err) {
      if (!(err instanceof FilterError)) throw err;
      const op = value.replace(/^not\./, '').split('.')[0];
      throw UNSERVED_OPERATORS.test(op) ? notImplemented(`The ${op} operator`) : parseError(err.message, err.details);
    }
  }
  return nodes;
}

/** `name` quoted, if it is a column of the relation `rel`; else PostgREST's 42703. */
function columnOf({ relName, columns }, name) {
  if (!columns.has(name)) throw new ApiError(400, '42703', `column ${relName}.${name} does not exist`);
  return quoteIdent(name);
}

/** `select=`: '*' or plain column names. */
function renderSelect(text, rel) {
  const items = (text ?? '*').split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) return '*';
  return items.map((item) => {
    if (item === '*') return '*';
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(item)) return columnOf(rel, item);
    throw notImplemented('Embedding, aggregates, aliases, casts and JSON paths in select');
  }).join(', ');
}

/** `order=`: col[.asc|.desc][.nullsfirst|.nullslast],… */
function renderOrder(text, rel) {
  if (!text) return '';
  return ` ORDER BY ${
    text.split(',').filter(Boolean).map((item) => {
      const [name, ...mods] = item.split('.');
      const column = columnOf(rel, name);
      const words = { asc: 'ASC', desc: 'DESC', nullsfirst: 'NULLS FIRST', nullslast: 'NULLS LAST' };
      const bad = mods.find((m) => !words[m]);
      const expected = 'expecting "asc", "desc", "nullsfirst" or "nullslast"';
      if (bad) throw parseError(`failed to parse order (${text})`, `unexpected "${bad}" ${expected}`);
      return [column, ...mods.map((m) => words[m])].join(' ');
    }).join(', ')
  }`;
}

export function create(ctx) {
  const api = readConfigSection(ctx.root, 'api');
  const maxRows = Number.isInteger(api.max_rows) && api.max_rows > 0 ? api.max_rows : null;
  const exposedSchemas = Array.isArray(api.schemas) && api.schemas.length ? api.schemas : ['public'];

  /** The column names of a table or view in public (a Set), or null. */
  async function relation(name) {
    const { rows } = await ctx.pool.query(
      `select a.attname as column
         from pg_catalog.pg_class c
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = 'public' and c.relname = $1 and c.relkind in ('r', 'v', 'm', 'f', 'p')
        order by a.attnum`,
      [name],
    );
    return rows.length ? new Set(rows.map((r) => r.column)) : null;
  }

  /** The overloads of public.<name>: input params (name, type, required), set, shape, read-only. */
  async function routines(name) {
    const { rows } = await ctx.pool.query(
      `select p.proretset as returns_set, p.provolatile <> 'v' as read_only, p.pronargdefaults as n_defaults,
              p.prorettype = 'pg_catalog.void'::pg_catalog.regtype as returns_void,
              (t.typtype = 'c' or p.prorettype = 'pg_catalog.record'::pg_catalog.regtype) as composite,
              coalesce(p.proargnames, '{}') as arg_names, coalesce(p.proargmodes::text[], '{}') as arg_modes,
              array(select pg_catalog.format_type(u, null)
                      from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) u) as arg_types
         from pg_catalog.pg_proc p
         join pg_catalog.pg_namespace n on n.oid = p.pronamespace
         join pg_catalog.pg_type t on t.oid = p.prorettype
        where n.nspname = 'public' and p.proname = $1 and p.prokind = 'f'`,
      [name],
    );
    return rows.map((r) => {
      const inputs = r.arg_types.map((type, i) => ({ name: r.arg_names[i] ?? '', mode: r.arg_modes[i] ?? 'i', type }))
        .filter((a) => a.mode === 'i' || a.mode === 'b');
      const params = inputs.map((a, i) => ({ ...a, required: i < inputs.length - r.n_defaults }));
      const shape = r.returns_void ? 'void' : r.composite ? 'composite' : 'scalar';
      return { params, returnsSet: r.returns_set, shape, readOnly: r.read_only };
    });
  }

  /** Runs `sql` as the caller; returns its first row's `body` (json text). */
  async function run(auth, { readOnly, sql, params }) {
    try {
      const as = { ...auth, readOnly, gucs: { search_path: 'public, extensions' } };
      return await withCallerTransaction(ctx.pool, as, async (c) => (await c.query(sql, params)).rows[0]?.body);
    } catch (err) {
      if (err instanceof ApiError || typeof err?.severity !== 'string') throw err;
      const status = httpStatusForSqlState(err.code, err.message, auth.role !== 'anon');
      throw new ApiError(status, err.code, err.message, {
        details: err.detail ?? null,
        hint: err.hint ?? null,
        headers: status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {},
      });
    }
  }

  async function readTable(auth, url, relName) {
    const columns = await relation(relName);
    if (!columns) {
      throw new ApiError(404, 'PGRST205', `Could not find the table 'public.${relName}' in the schema cache`);
    }
    const rel = { relName, columns, params: [] };
    const q = url.searchParams;
    const select = renderSelect(q.get('select'), rel);
    const nodes = parseFilters(q);
    const column = (name) => columnOf(rel, name);
    const where = nodes.length ? ` WHERE ${compile(nodes, { params: rel.params, column }).sql}` : '';
    const order = renderOrder(q.get('order'), rel);
    const limitParam = q.get('limit');
    if (limitParam !== null && !/^\d+$/.test(limitParam)) {
      throw parseError(`failed to parse limit parameter (${limitParam})`, `unexpected "${limitParam}" expecting digit`);
    }
    const limits = [limitParam === null ? null : Number(limitParam), maxRows].filter((n) => n !== null);
    const limit = limits.length ? ` LIMIT ${Math.min(...limits)}` : '';
    const sql = `SELECT coalesce(pg_catalog.json_agg(t), '[]')::text AS body
                   FROM (SELECT ${select} FROM "public".${quoteIdent(relName)}${where}${order}${limit}) t`;
    const body = await run(auth, { readOnly: true, sql, params: rel.params });
    const rows = JSON.parse(body).length;
    return { status: 200, body, headers: { 'Content-Range': rows ? `0-${rows - 1}/*` : '*/*' } };
  }

  async function callRoutine(auth, req, fnName) {
    const args = await readJson(req, BODY_LIMIT, {
      tooLarge: () => new ApiError(413, 'PGRST102', 'Request body too large'),
      invalid: () => new ApiError(400, 'PGRST102', 'Empty or invalid json'),
    });
    const keys = Object.keys(args).sort();
    const overloads = await routines(fnName);
    const fits = overloads.filter((f) => keys.every((k) => f.params.some((p) => p.name === k)) &&
      f.params.every((p) => !p.required || keys.includes(p.name)));
    const fn = `public.${fnName}`;
    if (fits.length === 0) {
      const list = keys.join(', ');
      const names = overloads[0]?.params.map((p) => p.name).sort().join(', ');
      const which = keys.length ? ` with parameter${keys.length > 1 ? 's' : ''} ${list}` : ' without parameters';
      const called = keys.length ? `(${list})` : ' without parameters';
      throw new ApiError(404, 'PGRST202', `Could not find the function ${fn}${called} in the schema cache`, {
        details: `Searched for the function ${fn}${which} or with a single unnamed json/jsonb parameter, ` +
          'but no matches were found in the schema cache.',
        hint: overloads.length ? `Perhaps you meant to call the function ${fn}(${names})` : null,
      });
    }
    if (fits.length > 1) {
      const signature = (f) => `${fn}(${f.params.map((p) => `${p.name} => ${p.type}`).join(', ')})`;
      const hint = 'Try renaming the parameters or the function itself in the database so function overloading ' +
        'can be resolved';
      const message = `Could not choose the best candidate function between: ${fits.map(signature).join(', ')}`;
      throw new ApiError(300, 'PGRST203', message, { hint });
    }
    const { params, returnsSet, shape, readOnly } = fits[0];
    const used = params.filter((p) => keys.includes(p.name)).map((p) => ({ ...p, q: quoteIdent(p.name) }));
    const call = `"public".${quoteIdent(fnName)}(${used.map((p) => `${p.q} := a.${p.q}`).join(', ')})`;
    const from = used.length
      ? `pg_catalog.json_to_record($1::json) AS a(${used.map((p) => `${p.q} ${p.type}`).join(', ')}), LATERAL `
      : '';
    const row = shape === 'composite' ? 'r' : 'r.v';
    const source = shape === 'composite' ? `${from}${call} r` : `${from}(SELECT ${call} AS v) r`;
    // One row for a single result (its value, arrays included); all of them for a set.
    const agg = returnsSet ? `coalesce(pg_catalog.json_agg(${row}), '[]')` : `pg_catalog.to_json(${row})`;
    const sql = `SELECT ${agg}::text AS body FROM ${source}`;
    const body = await run(auth, { readOnly, sql, params: used.length ? [JSON.stringify(args)] : [] });
    if (shape === 'void') return { status: 204, body: '', headers: { 'Content-Range': '*/*' } };
    return { status: 200, body: body ?? 'null', headers: {} };
  }

  async function handle(req, res, url) {
    if (req.method === 'OPTIONS') return sendPreflight(req, res);
    let result;
    try {
      const apikey = apiKeyOf(req, url);
      const refusal = apiKeyRefusal(ctx, apikey);
      if (refusal) throw new ApiError(401, null, refusal.message, { body: refusal });
      const { authorization } = req.headers;
      const { token } = ctx.keys.forwardedToken({ apikey, authorization }, { nowMs: nowMs(ctx) });
      let claims;
      try {
        claims = await verifyToken(token, ctx.keys.verifier, { nowMs: nowMs(ctx), skewSeconds: 30 });
      } catch (err) {
        throw err instanceof TokenError ? jwtError(err) : err;
      }
      const auth = { role: typeof claims.role === 'string' && claims.role !== '' ? claims.role : 'anon', claims };
      const profile = req.headers[req.method === 'GET' || req.method === 'HEAD' ? 'accept-profile' : 'content-profile'];
      if (profile !== undefined && profile !== 'public') {
        throw new ApiError(406, 'PGRST106', `Invalid schema: ${profile}`, {
          hint: `Only the following schemas are exposed: ${exposedSchemas.join(', ')}`,
        });
      }
      const accept = String(req.headers.accept ?? '*/*').split(',').map((s) => s.split(';')[0].trim().toLowerCase());
      if (!accept.some((t) => ['', '*/*', 'application/json', 'application/*'].includes(t))) {
        throw notImplemented(`The media type ${req.headers.accept}`);
      }
      const { range, prefer } = req.headers;
      if (range || /count=/.test(String(prefer ?? ''))) throw notImplemented('Range and counts');
      const segments = url.pathname.slice(PREFIX.length).split('/').filter(Boolean).map(decodeURIComponent);
      if (segments.length === 0) throw new ApiError(404, 'PGRST126', 'Root endpoint metadata is disabled');
      if (segments[0] === 'rpc' && segments.length === 2) {
        if (req.method !== 'POST') throw notImplemented(`${req.method} on /rpc`);
        result = await callRoutine(auth, req, segments[1]);
      } else if (segments.length === 1) {
        if (req.method !== 'GET') throw notImplemented(`${req.method} on a table`);
        result = await readTable(auth, url, segments[0]);
      } else {
        throw new ApiError(404, 'PGRST125', 'Invalid path specified in request URL');
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err; // server.mjs logs it and answers 500
      result = { status: err.status, body: JSON.stringify(err.body), headers: err.headers };
    }
    const headers = { ...corsHeaders(req, EXPOSED), ...result.headers };
    if (result.body !== '') {
      headers['Content-Type'] = 'application/json; charset=utf-8';
      headers['Content-Length'] = String(Buffer.byteLength(result.body));
    }
    res.writeHead(result.status, headers);
    res.end(result.body);
  }

  return { name: 'rest', prefix: PREFIX, handle, async close() {} };
}
