// The PostgREST stand-in at /rest/v1: exactly the subset Spool's clients use, on PostgREST's wire
// format, behind the same API-key check Supabase's gateway makes.
//
//   auth      `apikey` (header or query param) must be a key in force (keys.mjs, SPOOL_KEYS):
//             the anon or service_role JWT, or the sb_publishable_/sb_secret_ key. The role and
//             claims come from the Bearer JWT (HS256 with the JWT secret, or ES256 against the
//             JWKS), else from the apikey: the legacy key JWT itself, or the JWT the gateway
//             mints for the new key's role (also when Authorization repeats that same sb_ key).
//   per call  one transaction on a ctx.pool (authenticator) connection:
//             set_config('role', <claims.role>, true) + request.jwt.claims/method/path/headers,
//             then the statement; commit, or roll back on error. GET/HEAD and calls of
//             STABLE/IMMUTABLE functions run READ ONLY, as in PostgREST.
//   /rpc/fn   POST {named args} (GET ?args for reads): `public.fn(a := ...)`, each argument cast
//             from JSON to its declared type by json_to_record; shaped like PostgREST (composite ->
//             object, setof -> array, scalar -> value, void -> 204). PGRST202 for unknown names.
//   /<table>  GET/HEAD: select (columns, alias:, ::cast, json ->/->>), filters eq neq gt gte lt lte
//             like ilike match imatch is isdistinct in cs cd ov with not., or=()/and=() trees,
//             order, limit/offset, Range header, Prefer count=exact (Content-Range, 206/416),
//             Accept application/vnd.pgrst.object+json (PGRST116). PATCH and DELETE with filters,
//             POST insert (object or array), Prefer return=representation|minimal.
//   errors    PostgreSQL errors as {code, details, hint, message} with PostgREST's SQLSTATE ->
//             HTTP mapping (PTxyz -> xyz, 42501 -> 401 for anon else 403, ...).
//
// Not implemented (answered with a PostgREST-shaped 400/406 where a client could ask): resource
// embedding, aggregates, upsert (merge-duplicates), CSV/plan output, schemas other than public.

import {
  BodyTooLarge,
  corsHeaders,
  nowMs,
  readBody,
  readConfigSection,
  sendPreflight,
  TokenError,
  verifyToken,
  withCallerTransaction,
} from './shared.mjs';

const PREFIX = '/rest/v1';
const EXPOSED_HEADERS =
  'Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, Transfer-Encoding, Range-Unit, Preference-Applied';
const JSON_TYPE = 'application/json; charset=utf-8';
const BODY_LIMIT = 10 * 1024 * 1024;
/** PostgREST's leeway on exp/nbf/iat. */
const JWT_SKEW_SECONDS = 30;
const RESERVED_PARAMS = new Set(['select', 'order', 'limit', 'offset', 'columns', 'on_conflict']);

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** An answer other than success: HTTP status, JSON body (object) and extra headers. */
class ApiError extends Error {
  constructor(status, body, headers = {}) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** PostgREST's error body: code, details, hint, message (in that order, nulls kept). */
function pgrstBody(code, message, details = null, hint = null) {
  return { code, details, hint, message };
}

const pgrstError = (status, code, message, details = null, hint = null) =>
  new ApiError(status, pgrstBody(code, message, details, hint));

/** PostgREST's SQLSTATE -> HTTP status mapping (src/library/PostgREST/Error.hs, mapSQLtoHTTP). */
export function httpStatusForSqlState(code, message = '', authenticated = true) {
  const c = String(code ?? '');
  if (c.startsWith('08')) return 503;
  if (c.startsWith('09')) return 500;
  if (c.startsWith('0L') || c.startsWith('0P')) return 403;
  if (c === '23503' || c === '23505') return 409;
  if (c === '25006') return 405;
  if (c === '21000') return message.endsWith('requires a WHERE clause') ? 400 : 500;
  if (c === '22023') {
    return message.startsWith('role') && message.endsWith('does not exist') ? 401 : 400;
  }
  if (c.startsWith('25')) return 500;
  if (c.startsWith('28')) return 403;
  if (c.startsWith('2D') || c.startsWith('38') || c.startsWith('39') || c.startsWith('3B')) {
    return 500;
  }
  if (c.startsWith('40')) return 500;
  if (c === '53400') return 500;
  if (c.startsWith('53')) return 503;
  if (c.startsWith('54') || c.startsWith('55')) return 500;
  if (c === '57P01') return 503;
  if (c.startsWith('57') || c.startsWith('58') || c.startsWith('F0') || c.startsWith('HV')) {
    return 500;
  }
  if (c === 'P0001') return 400;
  if (c.startsWith('P0') || c.startsWith('XX')) return 500;
  if (c === '42883') return message.startsWith('function xmlagg(') ? 406 : 404;
  if (c === '42P01') return 404;
  if (c === '42P17') return 500;
  if (c === '42501') return authenticated ? 403 : 401;
  if (c.startsWith('PT')) {
    const n = Number(c.slice(2));
    return Number.isInteger(n) && n >= 100 && n <= 599 ? n : 500;
  }
  return 400;
}

/** A PostgreSQL error from node-pg as PostgREST would answer it. */
function fromPgError(err, role) {
  const status = httpStatusForSqlState(err.code, err.message, role !== 'anon');
  const headers = status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {};
  return new ApiError(
    status,
    pgrstBody(err.code, err.message, err.detail ?? null, err.hint ?? null),
    headers,
  );
}

function jwtError(err) {
  let code = 'PGRST301';
  let message;
  switch (err.reason) {
    case 'empty':
      message = 'Empty JWT is sent in Authorization header';
      break;
    case 'parts':
      message = `Expected 3 parts in JWT; got ${err.detail}`;
      break;
    case 'alg':
      message = 'Wrong or unsupported encoding algorithm';
      break;
    case 'signature':
      message = 'JWT cryptographic operation failed';
      break;
    case 'expired':
      code = 'PGRST303';
      message = 'JWT expired';
      break;
    case 'nbf':
      code = 'PGRST303';
      message = 'JWT not yet valid';
      break;
    case 'iat':
      code = 'PGRST303';
      message = 'JWT issued at future';
      break;
    default:
      message = "JWT couldn't be decoded";
  }
  return new ApiError(401, pgrstBody(code, message), {
    'WWW-Authenticate': `Bearer error="invalid_token", error_description=${
      JSON.stringify(message)
    }`,
  });
}

// ---------------------------------------------------------------------------------------------
// Identifiers and similarity
// ---------------------------------------------------------------------------------------------

const quoteIdent = (name) => `"${String(name).replaceAll('"', '""')}"`;
const quoteLiteral = (value) => `'${String(value).replaceAll("'", "''")}'`;

/**
 * 1 - Levenshtein distance / longer length: PostgREST's "Perhaps you meant" hints come from a
 * fuzzy set scored this way, with a 0.75 threshold.
 */
function similarity(a, b) {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  if (s === t) return 1;
  const prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= t.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (s[i - 1] === t[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return 1 - prev[t.length] / Math.max(s.length, t.length);
}

function closest(name, candidates, min = 0.75) {
  let best = null;
  let score = min;
  for (const c of candidates) {
    const s = similarity(name, c);
    if (s >= score) {
      best = c;
      score = s;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Schema cache (public schema only). Misses re-read the catalog, so new objects are seen at once.
// ---------------------------------------------------------------------------------------------

class SchemaCache {
  constructor(pool) {
    this.pool = pool;
    this.relations = new Map();
    this.functions = new Map();
  }

  invalidate() {
    this.relations.clear();
    this.functions.clear();
  }

  /** { name, kind, columns: Map(name -> type) } of a table/view in public, or null. */
  async relation(name) {
    if (this.relations.has(name)) return this.relations.get(name);
    const { rows } = await this.pool.query(
      `select c.relkind::text as kind, a.attname as column, pg_catalog.format_type(a.atttypid, a.atttypmod) as type
         from pg_catalog.pg_class c
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = 'public' and c.relname = $1 and c.relkind in ('r', 'v', 'm', 'f', 'p')
        order by a.attnum`,
      [name],
    );
    if (rows.length === 0) return null;
    const rel = { name, kind: rows[0].kind, columns: new Map(rows.map((r) => [r.column, r.type])) };
    this.relations.set(name, rel);
    return rel;
  }

  async relationNames() {
    const { rows } = await this.pool.query(
      `select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'f', 'p')`,
    );
    return rows.map((r) => r.relname);
  }

  /** The overloads of public.<name>: params, return shape, volatility. */
  async routines(name) {
    if (this.functions.has(name)) return this.functions.get(name);
    const { rows } = await this.pool.query(
      `select p.oid, p.proretset as returns_set, p.provolatile::text as volatility,
              p.pronargdefaults as n_defaults,
              t.typtype::text as ret_typtype, t.typrelid as ret_relid,
              p.prorettype = 'pg_catalog.void'::pg_catalog.regtype as returns_void,
              p.prorettype = 'pg_catalog.record'::pg_catalog.regtype as returns_record,
              coalesce(p.proargnames, '{}') as arg_names,
              coalesce(p.proargmodes::text[], '{}') as arg_modes,
              array(select pg_catalog.format_type(u.t, null)
                      from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality as u(t, i)
                     order by u.i) as arg_types,
              array(select a.attname::text from pg_catalog.pg_attribute a
                     where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped
                     order by a.attnum) as ret_columns
         from pg_catalog.pg_proc p
         join pg_catalog.pg_namespace n on n.oid = p.pronamespace
         join pg_catalog.pg_type t on t.oid = p.prorettype
        where n.nspname = 'public' and p.proname = $1 and p.prokind = 'f'`,
      [name],
    );
    const routines = rows.map((r) => {
      const all = r.arg_types.map((type, i) => ({
        name: r.arg_names[i] ?? '',
        mode: r.arg_modes[i] ?? 'i',
        type,
      }));
      const inputs = all.filter((a) => a.mode === 'i' || a.mode === 'b' || a.mode === 'v');
      const firstDefault = inputs.length - r.n_defaults;
      const params = inputs.map((a, i) => ({
        ...a,
        required: i < firstDefault,
        variadic: a.mode === 'v',
      }));
      const outColumns = all.filter((a) => a.mode === 'o' || a.mode === 'b' || a.mode === 't').map((
        a,
      ) => a.name);
      let shape = 'scalar';
      if (r.returns_void) shape = 'void';
      else if (
        r.ret_typtype === 'c' || (r.returns_record && outColumns.length > 0) || r.returns_record
      ) shape = 'composite';
      return {
        name,
        params,
        returnsSet: r.returns_set,
        shape,
        columns: r.ret_typtype === 'c' ? r.ret_columns : outColumns,
        readOnly: r.volatility !== 'v',
      };
    });
    if (routines.length > 0) this.functions.set(name, routines);
    return routines;
  }

  async routineNames() {
    const { rows } = await this.pool.query(
      `select distinct p.proname from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and p.prokind = 'f'`,
    );
    return rows.map((r) => r.proname);
  }
}

// ---------------------------------------------------------------------------------------------
// Query string grammar
// ---------------------------------------------------------------------------------------------

const parseError = (message, details = null) => pgrstError(400, 'PGRST100', message, details);

/** Splits on commas outside parentheses and double quotes. */
function splitTopLevel(text) {
  const out = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      cur += ch;
      if (ch === '\\' && i + 1 < text.length) cur += text[++i];
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** Removes the double quotes PostgREST allows around list and logic-tree values. */
function unquote(value) {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return value.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return value;
}

/** `col`, `col->a->>b`, `col->0`: { name, path: [{ arrow, key }] }. */
function parseField(text) {
  const parts = text.split(/(->>?)/);
  const name = parts[0].trim();
  if (name === '') throw parseError(`failed to parse field "${text}"`);
  const path = [];
  for (let i = 1; i < parts.length; i += 2) {
    const key = parts[i + 1];
    if (key === undefined || key === '') throw parseError(`failed to parse field "${text}"`);
    path.push({ arrow: parts[i], key });
  }
  return { name, path };
}

const OPERATORS = {
  eq: '=',
  neq: '<>',
  gt: '>',
  gte: '>=',
  lt: '<',
  lte: '<=',
  like: 'LIKE',
  ilike: 'ILIKE',
  match: '~',
  imatch: '~*',
  isdistinct: 'IS DISTINCT FROM',
  cs: '@>',
  cd: '<@',
  ov: '&&',
};

/** `[not.]op.value` for one field: a filter node. */
function parseOperation(field, text, inLogic) {
  let rest = text;
  let negate = false;
  if (rest.startsWith('not.')) {
    negate = true;
    rest = rest.slice(4);
  }
  const dot = rest.indexOf('.');
  if (dot < 0) {
    throw parseError(
      `failed to parse filter (${text})`,
      `unexpected end of input expecting operator`,
    );
  }
  const op = rest.slice(0, dot);
  let value = rest.slice(dot + 1);
  if (op === 'in') {
    if (!value.startsWith('(') || !value.endsWith(')')) {
      throw parseError(`failed to parse filter (${text})`, 'unexpected end of input expecting "("');
    }
    const inner = value.slice(1, -1);
    const values = inner === '' ? [] : splitTopLevel(inner).map((v) => unquote(v.trim()));
    return { kind: 'filter', field, negate, op, values };
  }
  if (op === 'is') {
    const v = value.toLowerCase();
    if (!['null', 'not_null', 'true', 'false', 'unknown'].includes(v)) {
      throw parseError(
        `failed to parse filter (${text})`,
        `unexpected "${value}" expecting null or trilean value (unknown, true, false)`,
      );
    }
    return { kind: 'filter', field, negate, op, value: v };
  }
  if (!(op in OPERATORS)) {
    throw parseError(
      `failed to parse filter (${text})`,
      `unexpected "${op}" expecting operator (eq, gt, ...)`,
    );
  }
  if (inLogic) value = unquote(value);
  if (op === 'like' || op === 'ilike') value = value.replaceAll('*', '%');
  return { kind: 'filter', field, negate, op, value };
}

/** `and(...)`, `or(...)`, `not.and(...)` or `field.[not.]op.value` inside a logic tree. */
function parseLogicItem(text) {
  const t = text.trim();
  const tree = t.match(/^(not\.)?(and|or)\((.*)\)$/s);
  if (tree) return parseLogicTree(tree[2], Boolean(tree[1]), `(${tree[3]})`);
  const ops = Object.keys(OPERATORS).concat(['in', 'is']);
  // The field ends at the first ".op." or ".not.op."; fields themselves contain no dots here.
  const m = t.match(new RegExp(`^(.+?)\\.((?:not\\.)?(?:${ops.join('|')})\\..*)$`, 's'));
  if (!m) {
    throw parseError(
      `failed to parse logic tree (${text})`,
      'unexpected end of input expecting operator',
    );
  }
  return parseOperation(parseField(m[1]), m[2], true);
}

function parseLogicTree(op, negate, value) {
  if (!value.startsWith('(') || !value.endsWith(')')) {
    throw parseError(
      `failed to parse logic tree (${value})`,
      'unexpected end of input expecting "("',
    );
  }
  const inner = value.slice(1, -1);
  const children = splitTopLevel(inner).filter((s) => s.trim() !== '').map(parseLogicItem);
  return { kind: 'logic', op, negate, children };
}

/** The filter nodes of a query string (everything but the reserved parameters). */
function parseFilters(params) {
  const nodes = [];
  for (const [key, value] of params) {
    if (RESERVED_PARAMS.has(key)) continue;
    const logic = key.match(/^(not\.)?(and|or)$/);
    if (logic) nodes.push(parseLogicTree(logic[2], Boolean(logic[1]), value));
    else nodes.push(parseOperation(parseField(key), value, false));
  }
  return nodes;
}

/** `select=` items: '*', 'col', 'alias:col', 'col::type', 'col->a->>b'. */
function parseSelect(text, relName) {
  if (text === undefined || text === null || text.trim() === '') return [{ star: true }];
  const items = [];
  for (const raw of splitTopLevel(text.replace(/\s+(?=(?:[^"]*"[^"]*")*[^"]*$)/g, ''))) {
    let item = raw;
    if (item === '') continue;
    if (item === '*') {
      items.push({ star: true });
      continue;
    }
    let alias = null;
    const am = item.match(/^([^:()]+):(?!:)(.*)$/s);
    if (am) {
      alias = am[1];
      item = am[2];
    }
    if (item.includes('(')) {
      const rel = item.slice(0, item.indexOf('(')).replace(/^\.\.\./, '').split('!')[0];
      if (['count', 'sum', 'avg', 'min', 'max'].includes(rel) && item.startsWith(`${rel}()`)) {
        throw pgrstError(400, 'PGRST123', 'Use of aggregate functions is not allowed');
      }
      throw pgrstError(
        400,
        'PGRST200',
        `Could not find a relationship between '${relName}' and '${rel}' in the schema cache`,
        `Searched for a foreign key relationship between '${relName}' and '${rel}' in the schema 'public', but no matches were found.`,
      );
    }
    let cast = null;
    const ci = item.lastIndexOf('::');
    if (ci > 0) {
      cast = item.slice(ci + 2);
      item = item.slice(0, ci);
      if (!/^[A-Za-z_][A-Za-z0-9_ ]*(\[\])?$/.test(cast)) {
        throw parseError(`failed to parse select parameter (${text})`, `unexpected cast "${cast}"`);
      }
    }
    items.push({ field: parseField(item), alias, cast });
  }
  return items.length ? items : [{ star: true }];
}

/** `order=` items: field[.asc|.desc][.nullsfirst|.nullslast]. */
function parseOrder(text) {
  if (!text) return [];
  return splitTopLevel(text).filter((s) => s !== '').map((item) => {
    const parts = item.split('.');
    const field = parseField(parts[0]);
    let dir = null;
    let nulls = null;
    for (const p of parts.slice(1)) {
      if (p === 'asc' || p === 'desc') dir = p;
      else if (p === 'nullsfirst' || p === 'nullslast') nulls = p;
      else {throw parseError(
          `failed to parse order (${text})`,
          `unexpected "${p}" expecting "asc", "desc", "nullsfirst" or "nullslast"`,
        );}
    }
    return { field, dir, nulls };
  });
}

function parseNonNegInt(value, what) {
  if (value === null || value === undefined) return null;
  if (!/^\d+$/.test(value)) {
    throw parseError(
      `failed to parse ${what} parameter (${value})`,
      `unexpected "${value}" expecting digit`,
    );
  }
  return Number(value);
}

/** Combines limit/offset parameters, the Range header and max_rows into [offset, limit|null]. */
function computeRange(url, req, maxRows) {
  let lower = 0;
  let upper = Infinity;
  const header = req.headers.range;
  if (header) {
    const m = String(header).trim().match(/^(\d+)-(\d*)$/);
    if (m) {
      lower = Number(m[1]);
      if (m[2] !== '') upper = Number(m[2]);
    }
  }
  const offset = parseNonNegInt(url.searchParams.get('offset'), 'offset');
  const limit = parseNonNegInt(url.searchParams.get('limit'), 'limit');
  const pLower = offset ?? 0;
  const pUpper = limit === null ? Infinity : pLower + limit - 1;
  lower = Math.max(lower, pLower);
  upper = Math.min(upper, pUpper);
  if (maxRows) upper = Math.min(upper, lower + maxRows - 1);
  if (limit === 0 || upper < lower) return { offset: lower, limit: 0 };
  return { offset: lower, limit: upper === Infinity ? null : upper - lower + 1 };
}

function parsePrefer(req) {
  const prefs = {};
  const raw = req.headers.prefer;
  const list = Array.isArray(raw) ? raw.join(',') : raw ?? '';
  for (const token of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [k, v] = token.split('=').map((s) => s.trim());
    prefs[k] = v ?? '';
  }
  return prefs;
}

/** What the client accepts: { single, stripNulls } or a 406. */
function negotiate(req) {
  const accept = String(req.headers.accept ?? '').trim();
  if (accept === '') return { single: false, stripNulls: false, type: JSON_TYPE };
  const types = accept.split(',').map((s) => s.trim().toLowerCase());
  for (const t of types) {
    const [base, ...params] = t.split(';').map((s) => s.trim());
    const stripNulls = params.includes('nulls=stripped');
    if (base === 'application/vnd.pgrst.object+json' || base === 'application/vnd.pgrst.object') {
      return {
        single: true,
        stripNulls,
        type: `application/vnd.pgrst.object+json;${
          stripNulls ? ' nulls=stripped;' : ''
        } charset=utf-8`,
      };
    }
    if (base === 'application/vnd.pgrst.array+json') {
      return {
        single: false,
        stripNulls,
        type: `application/vnd.pgrst.array+json;${
          stripNulls ? ' nulls=stripped;' : ''
        } charset=utf-8`,
      };
    }
    if (['application/json', '*/*', 'application/*'].includes(base)) {
      return { single: false, stripNulls: false, type: JSON_TYPE };
    }
  }
  throw pgrstError(406, 'PGRST107', `None of these media types are available: ${types.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// SQL rendering
// ---------------------------------------------------------------------------------------------

/** Renders queries against one relation-like source with bind parameters. */
class Renderer {
  constructor(qualifier, columns, relName) {
    this.q = qualifier; // e.g. "public"."jobs" or pgrst_source
    this.columns = columns; // Set or Map of column names, or null for "anything"
    this.relName = relName;
    this.params = [];
  }

  bind(value) {
    this.params.push(value);
    return `$${this.params.length}`;
  }

  checkColumn(name) {
    if (this.columns && !this.columns.has(name)) {
      throw new ApiError(400, pgrstBody('42703', `column ${this.relName}.${name} does not exist`));
    }
  }

  field({ name, path }) {
    this.checkColumn(name);
    let sql = `${this.q}.${quoteIdent(name)}`;
    for (const { arrow, key } of path) {
      sql += `${arrow}${/^-?\d+$/.test(key) ? key : quoteLiteral(key)}`;
    }
    return sql;
  }

  filter(node) {
    if (node.kind === 'logic') {
      const inner = node.children.map((c) => this.filter(c));
      const joined = inner.length === 0
        ? 'true'
        : `(${inner.join(node.op === 'and' ? ' AND ' : ' OR ')})`;
      return node.negate ? `NOT ${joined}` : joined;
    }
    const col = this.field(node.field);
    let sql;
    if (node.op === 'in') {
      sql = node.values.length === 0
        ? 'false'
        : `${col} IN (${node.values.map((v) => this.bind(v)).join(', ')})`;
    } else if (node.op === 'is') {
      sql = `${col} IS ${node.value === 'not_null' ? 'NOT NULL' : node.value.toUpperCase()}`;
    } else {
      sql = `${col} ${OPERATORS[node.op]} ${this.bind(node.value)}`;
    }
    return node.negate ? `NOT ${sql}` : sql;
  }

  where(nodes) {
    const parts = nodes.map((n) => this.filter(n));
    return parts.length ? ` WHERE ${parts.join(' AND ')}` : '';
  }

  select(items) {
    return items.map((it) => {
      if (it.star) return `${this.q}.*`;
      const expr = this.field(it.field);
      const name = it.alias ?? (it.field.path.length ? it.field.path.at(-1).key : it.field.name);
      return `${expr}${it.cast ? `::${it.cast}` : ''} AS ${quoteIdent(name)}`;
    }).join(', ');
  }

  order(items) {
    if (items.length === 0) return '';
    return ` ORDER BY ${
      items.map((o) => {
        let s = this.field(o.field);
        if (o.dir) s += o.dir === 'asc' ? ' ASC' : ' DESC';
        if (o.nulls) s += o.nulls === 'nullsfirst' ? ' NULLS FIRST' : ' NULLS LAST';
        return s;
      }).join(', ')
    }`;
  }
}

function limitOffset({ offset, limit }) {
  return `${limit === null ? '' : ` LIMIT ${limit}`}${offset > 0 ? ` OFFSET ${offset}` : ''}`;
}

function aggregateBody(single, stripNulls, scalar = false) {
  const row = scalar ? '_postgrest_t.pgrst_scalar' : '_postgrest_t';
  let agg = `pg_catalog.json_agg(${row})`;
  if (single) agg = `${agg}->0`;
  if (stripNulls) agg = `pg_catalog.json_strip_nulls(${agg})`;
  return `coalesce(${agg}, ${single ? `'null'` : `'[]'`})::text`;
}

/** Content-Range as PostgREST writes it (RangeQuery.contentRangeH). */
function contentRange(lower, upper, total) {
  const totalText = total === null || total === undefined ? '*' : String(total);
  const range = total !== 0 && lower <= upper ? `${lower}-${upper}` : '*';
  return `${range}/${totalText}`;
}

// ---------------------------------------------------------------------------------------------
// The route
// ---------------------------------------------------------------------------------------------

export async function create(ctx) {
  const cache = new SchemaCache(ctx.pool);
  const api = readConfigSection(ctx.root, 'api');
  const maxRows = Number.isInteger(api.max_rows) && api.max_rows > 0 ? api.max_rows : null;
  const exposedSchemas = Array.isArray(api.schemas) && api.schemas.length
    ? api.schemas
    : ['public'];

  function send(req, res, status, headers, body) {
    const payload = body === null || body === undefined ? '' : body;
    const all = { ...corsHeaders(req, EXPOSED_HEADERS), ...headers };
    if (payload !== '' || status !== 204) {
      all['Content-Length'] = String(Buffer.byteLength(payload));
    }
    res.writeHead(status, all);
    res.end(req.method === 'HEAD' ? undefined : payload);
  }

  function sendError(req, res, err) {
    send(
      req,
      res,
      err.status,
      { 'Content-Type': JSON_TYPE, ...err.headers },
      JSON.stringify(err.body),
    );
  }

  /** The gateway's key check, then the caller's claims (PostgREST's JWT check). */
  function authenticate(req, url) {
    const apikey = req.headers.apikey ?? url.searchParams.get('apikey');
    if (apikey === undefined || apikey === null || apikey === '') {
      throw new ApiError(401, {
        message: 'No API key found in request',
        hint: 'No `apikey` request header or url param was found.',
      });
    }
    if (!ctx.keys.apiKeyRole(String(apikey))) {
      throw new ApiError(401, {
        message: 'Invalid API key',
        hint: ctx.keys.mode === 'new'
          ? 'Double check your Supabase publishable or secret API key.'
          : 'Double check your Supabase `anon` or `service_role` API key.',
      });
    }
    const { token } = ctx.keys.forwardedToken(
      { apikey: String(apikey), authorization: req.headers.authorization },
      { nowMs: nowMs(ctx) },
    );
    try {
      return verifyToken(token, ctx.keys.verifier, {
        nowMs: nowMs(ctx),
        skewSeconds: JWT_SKEW_SECONDS,
      });
    } catch (err) {
      if (err instanceof TokenError) throw jwtError(err);
      throw err;
    }
  }

  async function readJsonBody(req) {
    let buf;
    try {
      buf = await readBody(req, { limit: BODY_LIMIT, drainLimit: BODY_LIMIT * 4 });
    } catch (err) {
      if (err instanceof BodyTooLarge) throw pgrstError(413, 'PGRST102', 'Request body too large');
      throw err;
    }
    const text = buf.toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw pgrstError(400, 'PGRST102', 'Empty or invalid json');
    }
  }

  /** Runs `sql` in the caller's transaction; returns the first row. */
  async function run(auth, req, url, { readOnly, sql, params, check }) {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k !== 'authorization' && k !== 'apikey' && k !== 'cookie') {
        headers[k] = Array.isArray(v) ? v.join(', ') : v;
      }
    }
    try {
      return await withCallerTransaction(ctx.pool, {
        role: auth.role,
        claims: auth.claims,
        readOnly,
        gucs: {
          'request.method': req.method,
          'request.path': url.pathname.slice(PREFIX.length) || '/',
          'request.headers': JSON.stringify(headers),
          'request.cookies': '{}',
          search_path: 'public, extensions',
        },
      }, async (client) => {
        const { rows } = await client.query(sql, params);
        const row = rows[0];
        if (check) check(row); // may throw: the transaction rolls back
        return row;
      });
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (err && typeof err.code === 'string' && err.severity) {
        if (err.code === '42883' || err.code === '42703' || err.code === '42P01') {
          cache.invalidate();
        }
        throw fromPgError(err, auth.role);
      }
      if (err && (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET')) {
        throw pgrstError(503, 'PGRST000', 'Database connection error. Retrying the connection.');
      }
      throw err;
    }
  }

  function singularCheck(single) {
    return (row) => {
      if (single && Number(row.page_total) !== 1) {
        throw pgrstError(
          406,
          'PGRST116',
          'Cannot coerce the result to a single JSON object',
          `The result contains ${row.page_total} rows`,
        );
      }
    };
  }

  function preferenceApplied(prefs, keys) {
    const applied = keys.filter((k) => prefs[k] !== undefined).map((k) => `${k}=${prefs[k]}`);
    return applied.length ? { 'Preference-Applied': applied.join(', ') } : {};
  }

  async function tableNotFound(name) {
    const match = closest(name, await cache.relationNames());
    return pgrstError(
      404,
      'PGRST205',
      `Could not find the table 'public.${name}' in the schema cache`,
      null,
      match ? `Perhaps you meant the table 'public.${match}'` : null,
    );
  }

  // --- reads ---------------------------------------------------------------------------------

  async function readTable(auth, req, url, relName) {
    const rel = await cache.relation(relName);
    if (!rel) throw await tableNotFound(relName);
    const media = negotiate(req);
    const prefs = parsePrefer(req);
    const counting = ['exact', 'planned', 'estimated'].includes(prefs.count);
    const r = new Renderer(`${quoteIdent('public')}.${quoteIdent(relName)}`, rel.columns, relName);
    const selectSql = r.select(parseSelect(url.searchParams.get('select'), relName));
    const whereSql = r.where(parseFilters(url.searchParams));
    const orderSql = r.order(parseOrder(url.searchParams.get('order')));
    const range = computeRange(url, req, maxRows);
    const source = `SELECT ${selectSql} FROM ${r.q}${whereSql}${orderSql}${limitOffset(range)}`;
    const count = counting ? `(SELECT pg_catalog.count(*) FROM ${r.q}${whereSql})` : 'null';
    const sql =
      `WITH pgrst_source AS (${source}) SELECT ${count}::bigint AS total, pg_catalog.count(_postgrest_t) AS page_total, ${
        aggregateBody(media.single, media.stripNulls)
      } AS body FROM (SELECT * FROM pgrst_source) _postgrest_t`;
    const row = await run(auth, req, url, {
      readOnly: true,
      sql,
      params: r.params,
      check: singularCheck(media.single),
    });
    return respondRead(req, range, row, media, prefs, `/${relName}${url.search}`);
  }

  function respondRead(req, range, row, media, prefs, location) {
    const pageTotal = Number(row.page_total);
    const total = row.total === null ? null : Number(row.total);
    const lower = range.offset;
    const upper = lower + pageTotal - 1;
    let status = 200;
    if (total !== null) {
      if (lower > total) status = 416;
      else if (1 + upper - lower < total) status = 206;
    }
    const headers = {
      'Content-Range': contentRange(lower, upper, total),
      ...(location ? { 'Content-Location': location } : {}),
      ...preferenceApplied(prefs, ['count']),
    };
    if (status === 416) {
      return {
        status,
        headers: { ...headers, 'Content-Type': JSON_TYPE },
        body: JSON.stringify(
          pgrstBody(
            'PGRST103',
            'Requested range not satisfiable',
            `An offset of ${lower} was requested, but there are only ${total} rows.`,
          ),
        ),
      };
    }
    return { status, headers: { ...headers, 'Content-Type': media.type }, body: row.body };
  }

  // --- rpc -----------------------------------------------------------------------------------

  async function callRoutine(auth, req, url, fnName) {
    const isRead = req.method === 'GET' || req.method === 'HEAD';
    let args;
    if (isRead) {
      args = {};
      for (const [k, v] of url.searchParams) {
        if (RESERVED_PARAMS.has(k)) continue;
        args[k] = v; // GET arguments are text; json_to_record parses them per parameter type
      }
    } else {
      const body = await readJsonBody(req);
      args = body === undefined ? {} : body;
      if (args === null || typeof args !== 'object' || Array.isArray(args)) {
        throw pgrstError(400, 'PGRST102', 'Empty or invalid json');
      }
    }
    const keys = Object.keys(args).sort();
    let routines = await cache.routines(fnName);
    let routine = pickRoutine(routines, keys);
    if (!routine) {
      cache.invalidate();
      routines = await cache.routines(fnName);
      routine = pickRoutine(routines, keys);
    }
    if (!routine) throw await noRoutine(fnName, keys, routines, !isRead);
    if (routine === 'ambiguous') {
      throw pgrstError(
        300,
        'PGRST203',
        `Could not choose the best candidate function between: ${
          routines.map((f) =>
            `public.${fnName}(${f.params.map((p) => `${p.name} => ${p.type}`).join(', ')})`
          ).join(', ')
        }`,
        null,
        'Try renaming the parameters or the function itself in the database so function overloading can be resolved',
      );
    }

    const media = negotiate(req);
    const prefs = parsePrefer(req);
    const counting = ['exact', 'planned', 'estimated'].includes(prefs.count);
    const scalar = routine.shape === 'scalar';
    const used = routine.params.filter((p) => keys.includes(p.name));
    const fnSql = `${quoteIdent('public')}.${quoteIdent(fnName)}(${
      used.map((p) =>
        `${p.variadic ? 'VARIADIC ' : ''}${quoteIdent(p.name)} := pgrst_body.${quoteIdent(p.name)}`
      ).join(', ')
    })`;
    const params = [];
    let fromBody = '';
    if (used.length > 0) {
      params.push(JSON.stringify(args));
      fromBody = `pg_catalog.json_to_record($1::json) AS pgrst_body(${
        used.map((p) => `${quoteIdent(p.name)} ${p.type}`).join(', ')
      }), LATERAL `;
    }
    const call = scalar || routine.shape === 'void'
      ? `SELECT pgrst_call.pgrst_scalar FROM ${fromBody}(SELECT ${fnSql} AS pgrst_scalar) pgrst_call`
      : `SELECT pgrst_call.* FROM ${fromBody}${fnSql} pgrst_call`;

    let sql;
    let range = { offset: 0, limit: null };
    if (routine.shape === 'void') {
      sql =
        `WITH pgrst_source AS (${call}) SELECT null::bigint AS total, pg_catalog.count(*) AS page_total, null::text AS body FROM pgrst_source`;
    } else {
      const r = new Renderer('pgrst_source', scalar ? null : new Set(routine.columns), fnName);
      r.params = params;
      let inner = 'SELECT * FROM pgrst_source';
      let count = 'null';
      if (!scalar) {
        const selectSql = r.select(parseSelect(url.searchParams.get('select'), fnName));
        const whereSql = r.where(parseFilters(isRead ? [] : url.searchParams));
        const orderSql = r.order(parseOrder(url.searchParams.get('order')));
        if (routine.returnsSet) range = computeRange(url, req, maxRows);
        inner = `SELECT ${selectSql} FROM pgrst_source${whereSql}${orderSql}${limitOffset(range)}`;
        if (counting) count = `(SELECT pg_catalog.count(*) FROM pgrst_source${whereSql})`;
      }
      const single = media.single || !routine.returnsSet;
      sql =
        `WITH pgrst_source AS (${call}) SELECT ${count}::bigint AS total, pg_catalog.count(_postgrest_t) AS page_total, ${
          aggregateBody(single, media.stripNulls, scalar)
        } AS body FROM (${inner}) _postgrest_t`;
    }
    const row = await run(auth, req, url, {
      readOnly: isRead || routine.readOnly,
      sql,
      params,
      check: singularCheck(media.single),
    });
    if (routine.shape === 'void') {
      return { status: 204, headers: { 'Content-Range': contentRange(0, -1, null) }, body: '' };
    }
    return respondRead(req, range, row, media, prefs, null);
  }

  /** The one overload whose parameters fit the given argument names (PostgREST's rule). */
  function pickRoutine(routines, keys) {
    const fits = routines.filter((f) => {
      const names = new Set(f.params.map((p) => p.name));
      return keys.every((k) => names.has(k)) &&
        f.params.every((p) => !p.required || keys.includes(p.name));
    });
    if (fits.length === 0) return null;
    if (fits.length > 1) return 'ambiguous';
    return fits[0];
  }

  async function noRoutine(fnName, keys, overloads, isPost) {
    const func = `public.${fnName}`;
    const withParams = keys.length ? `(${keys.join(', ')})` : ' without parameters';
    const detailParams = keys.length
      ? ` with parameter${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`
      : ' without parameters';
    const details = `Searched for the function ${func}${detailParams}${
      isPost ? ' or with a single unnamed json/jsonb parameter' : ''
    }, but no matches were found in the schema cache.`;
    let hint = null;
    if (overloads.length > 0) {
      const lists = overloads.map((f) => `(${f.params.map((p) => p.name).sort().join(', ')})`);
      const best = closest(`(${keys.join(', ')})`, lists, 0) ?? lists[0];
      hint = `Perhaps you meant to call the function ${func}${best}`;
    } else {
      const match = closest(fnName, await cache.routineNames());
      if (match) hint = `Perhaps you meant to call the function public.${match}`;
    }
    return pgrstError(
      404,
      'PGRST202',
      `Could not find the function ${func}${withParams} in the schema cache`,
      details,
      hint,
    );
  }

  // --- writes --------------------------------------------------------------------------------

  function mutationResponse(req, url, prefs, media, row, { created }) {
    const wantsBody = prefs.return === 'representation';
    const pageTotal = Number(row.page_total);
    const total = row.total === null ? null : Number(row.total);
    const headers = {
      'Content-Range': created ? contentRange(1, 0, total) : contentRange(0, pageTotal - 1, total),
      ...preferenceApplied(prefs, ['return', 'count', 'resolution', 'missing']),
    };
    if (wantsBody) {
      return {
        status: created ? 201 : 200,
        headers: { ...headers, 'Content-Type': media.type },
        body: row.body,
      };
    }
    return { status: created ? 201 : 204, headers, body: '' };
  }

  async function mutate(auth, req, url, relName) {
    const rel = await cache.relation(relName);
    if (!rel) throw await tableNotFound(relName);
    const media = negotiate(req);
    const prefs = parsePrefer(req);
    const counting = ['exact', 'planned', 'estimated'].includes(prefs.count);
    const wantsBody = prefs.return === 'representation';
    const qual = `${quoteIdent('public')}.${quoteIdent(relName)}`;
    const r = new Renderer(qual, rel.columns, relName);
    const method = req.method;
    let body;
    if (method === 'PATCH' || method === 'POST') body = await readJsonBody(req);

    const missingColumn = (col) =>
      pgrstError(
        400,
        'PGRST204',
        `Could not find the '${col}' column of '${relName}' in the schema cache`,
      );
    let mutation;
    if (method === 'PATCH') {
      if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw pgrstError(400, 'PGRST102', 'Empty or invalid json');
      }
      const cols = Object.keys(body);
      for (const c of cols) if (!rel.columns.has(c)) throw missingColumn(c);
      if (cols.length === 0) {
        // PostgREST: an empty PATCH body updates nothing.
        mutation = `SELECT ${qual}.* FROM ${qual} WHERE false`;
      } else {
        const bodyRef = r.bind(JSON.stringify(body));
        const whereSql = r.where(parseFilters(url.searchParams));
        mutation = `UPDATE ${qual} SET ${
          cols.map((c) => `${quoteIdent(c)} = pgrst_body.${quoteIdent(c)}`).join(', ')
        } FROM (SELECT * FROM pg_catalog.json_to_record(${bodyRef}::json) AS _(${
          cols.map((c) => `${quoteIdent(c)} ${rel.columns.get(c)}`).join(', ')
        })) pgrst_body${whereSql} RETURNING ${wantsBody || media.single ? `${qual}.*` : '1'}`;
      }
    } else if (method === 'DELETE') {
      const whereSql = r.where(parseFilters(url.searchParams));
      mutation = `DELETE FROM ${qual}${whereSql} RETURNING ${
        wantsBody || media.single ? `${qual}.*` : '1'
      }`;
    } else {
      if (prefs.resolution === 'merge-duplicates') {
        throw pgrstError(
          400,
          'PGRST127',
          'Feature not implemented',
          'upsert (resolution=merge-duplicates) is not supported by the local PostgREST stand-in',
        );
      }
      const rows = Array.isArray(body) ? body : [body];
      if (
        body === undefined ||
        rows.some((x) => x === null || typeof x !== 'object' || Array.isArray(x))
      ) {
        throw pgrstError(400, 'PGRST102', 'Empty or invalid json');
      }
      const columnsParam = url.searchParams.get('columns');
      const cols = columnsParam
        ? columnsParam.split(',').map((s) => s.trim().replace(/^"|"$/g, '')).filter(Boolean)
        : [...new Set(rows.flatMap((x) => Object.keys(x)))];
      for (const c of cols) if (!rel.columns.has(c)) throw missingColumn(c);
      const conflict = prefs.resolution === 'ignore-duplicates' ? ' ON CONFLICT DO NOTHING' : '';
      const returning = ` RETURNING ${wantsBody || media.single ? `${qual}.*` : '1'}`;
      if (rows.length === 0) mutation = `SELECT ${qual}.* FROM ${qual} WHERE false`;
      else if (cols.length === 0) {
        mutation = `INSERT INTO ${qual} DEFAULT VALUES${conflict}${returning}`;
      } else {
        const bodyRef = r.bind(JSON.stringify(rows));
        const list = cols.map(quoteIdent).join(', ');
        mutation =
          `INSERT INTO ${qual} (${list}) SELECT ${list} FROM pg_catalog.json_to_recordset(${bodyRef}::json) AS _(${
            cols.map((c) => `${quoteIdent(c)} ${rel.columns.get(c)}`).join(', ')
          })${conflict}${returning}`;
      }
    }

    let sql;
    if (wantsBody || media.single) {
      const sel = new Renderer('pgrst_source', rel.columns, relName);
      const selectSql = sel.select(parseSelect(url.searchParams.get('select'), relName));
      sql = `WITH pgrst_source AS (${mutation}) SELECT ${
        counting ? '(SELECT pg_catalog.count(*) FROM pgrst_source)' : 'null'
      }::bigint AS total, pg_catalog.count(_postgrest_t) AS page_total, ${
        aggregateBody(media.single, media.stripNulls)
      } AS body FROM (SELECT ${selectSql} FROM pgrst_source) _postgrest_t`;
    } else {
      sql = `WITH pgrst_source AS (${mutation}) SELECT ${
        counting ? 'pg_catalog.count(*)' : 'null'
      }::bigint AS total, pg_catalog.count(*) AS page_total, null::text AS body FROM pgrst_source`;
    }
    const row = await run(auth, req, url, {
      readOnly: false,
      sql,
      params: r.params,
      check: singularCheck(media.single),
    });
    return mutationResponse(req, url, prefs, media, row, { created: method === 'POST' });
  }

  // --- dispatch ------------------------------------------------------------------------------

  async function handle(req, res, url) {
    if (req.method === 'OPTIONS') return sendPreflight(req, res);
    try {
      const claims = authenticate(req, url);
      url.searchParams.delete('apikey'); // the gateway hides the credential from PostgREST
      const role = typeof claims.role === 'string' && claims.role !== '' ? claims.role : 'anon';
      const auth = { role, claims };

      const profile = req.method === 'GET' || req.method === 'HEAD'
        ? req.headers['accept-profile']
        : req.headers['content-profile'];
      if (profile !== undefined && profile !== 'public') {
        throw pgrstError(
          406,
          'PGRST106',
          `Invalid schema: ${profile}`,
          null,
          `Only the following schemas are exposed: ${exposedSchemas.join(', ')}`,
        );
      }

      const rest = url.pathname.slice(PREFIX.length);
      const segments = rest.split('/').filter((s) => s !== '').map(decodeURIComponent);
      let result;
      if (segments.length === 0) {
        throw pgrstError(404, 'PGRST126', 'Root endpoint metadata is disabled');
      } else if (segments[0] === 'rpc' && segments.length === 2) {
        if (!['GET', 'HEAD', 'POST'].includes(req.method)) {
          throw pgrstError(405, 'PGRST101', `Cannot use the ${req.method} method on RPC`);
        }
        result = await callRoutine(auth, req, url, segments[1]);
      } else if (segments.length === 1) {
        if (req.method === 'GET' || req.method === 'HEAD') {
          result = await readTable(auth, req, url, segments[0]);
        } else if (['POST', 'PATCH', 'DELETE'].includes(req.method)) {
          result = await mutate(auth, req, url, segments[0]);
        } else throw pgrstError(405, 'PGRST117', `Unsupported HTTP method: ${req.method}`);
      } else {
        throw pgrstError(404, 'PGRST125', 'Invalid path specified in request URL');
      }
      send(req, res, result.status, result.headers, result.body);
    } catch (err) {
      if (!(err instanceof ApiError)) {
        ctx.log({
          level: 'error',
          route: 'rest',
          path: url.pathname,
          error: err?.stack ?? String(err),
        });
        err = pgrstError(
          500,
          'PGRSTX00',
          'internal error in the local PostgREST stand-in',
          String(err?.message ?? err),
        );
      }
      if (!res.headersSent) sendError(req, res, err);
      else res.destroy();
    }
  }

  return {
    name: 'rest',
    prefix: PREFIX,
    handle,
    /** Forgets cached tables and functions (after a migration, like NOTIFY pgrst). */
    reloadSchema: () => cache.invalidate(),
    async close() {},
  };
}
