// Change capture for the Realtime stand-in (local/gateway/realtime.mjs): Postgres Changes as
// Supabase Realtime's postgres_cdc_rls extension produces them, from a logical replication slot.
//
//   slot      a TEMPORARY logical slot `spool_realtime_<pid>_<hex>` with the built-in pgoutput
//             plugin (publication supabase_realtime), on a dedicated superuser connection, created
//             when the first subscription arrives and dropped when the last one has been gone for
//             a while (or the gateway closes; a temporary slot also dies with its connection).
//             Polled with pg_logical_slot_get_binary_changes every 25 ms after recent activity,
//             50 ms when idle, and again at once while changes keep coming (Realtime's poller
//             does the same with wal2json every 100 ms).
//   records   as realtime.apply_rls builds them: `record` (INSERT, UPDATE), `old_record` (the
//             replica identity: for UPDATE taken from the new row when the key did not change;
//             for DELETE on an RLS table only the primary key), `columns` [{name, type: typname}]
//             of the columns the subscriber's role may SELECT, values as to_jsonb renders them
//             (numbers, booleans, parsed json/jsonb, ISO timestamps, arrays), unchanged TOAST
//             values left out, `commit_timestamp` with millisecond precision.
//   filters   parsed as Realtime's Subscriptions.parse_subscription_params (eq neq lt lte gt gte
//             in is isdistinct like ilike match imatch, `not.` prefix, comma = AND) and validated
//             at subscribe time as realtime.subscription_check_filters does (column exists and is
//             selectable by the role, value castable, `in` at most 100 values).
//   security  per subscriber, as realtime.apply_rls: no SELECT on the primary key -> an
//             "Error 401: Unauthorized" record; no primary key -> "Error 400"; INSERT/UPDATE on an
//             RLS table reach a subscriber only if, as its role with its claims
//             (request.jwt.claims), the row is visible by primary key (one query per distinct
//             claims, table and poll). DELETE bypasses RLS; its filters see only the identity.
//
// Deviations from Realtime are listed in realtime.mjs.

import crypto from 'node:crypto';
import pg from 'pg';
import { withCallerTransaction } from './shared.mjs';

export const PUBLICATION = 'supabase_realtime';
const SLOT_PREFIX = 'spool_realtime_';
const PG_EPOCH_MS = 946_684_800_000; // 2000-01-01T00:00:00Z, pgoutput's time origin
const MAX_CHANGES_PER_POLL = 2000; // whole transactions are returned, so this is a soft cap
const MAX_RECORD_BYTES = 1024 * 1024; // Realtime's poll_max_record_bytes
const CATALOG_TTL_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// pgoutput (protocol version 1), as returned by pg_logical_slot_get_binary_changes
// ---------------------------------------------------------------------------------------------

class Reader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }
  u8() {
    return this.buf[this.pos++];
  }
  i16() {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32() {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  i32() {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64() {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  i64() {
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  cstr() {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  tuple() {
    const n = this.i16();
    const cols = new Array(n);
    for (let i = 0; i < n; i++) {
      const kind = String.fromCharCode(this.u8());
      if (kind === 't' || kind === 'b') {
        const len = this.i32();
        const raw = this.buf.subarray(this.pos, this.pos + len);
        this.pos += len;
        cols[i] = { kind, value: kind === 't' ? raw.toString('utf8') : Buffer.from(raw) };
      } else {
        cols[i] = { kind, value: null }; // 'n' null, 'u' unchanged TOAST datum
      }
    }
    return cols;
  }
}

/** Microseconds since 2000-01-01 (pgoutput's TimestampTz) as an ISO string with milliseconds. */
export function pgTimestampToIso(micros) {
  const ms = Number(micros / 1000n) + PG_EPOCH_MS - (micros < 0n && micros % 1000n !== 0n ? 1 : 0);
  return new Date(ms).toISOString();
}

/** Decodes one pgoutput message. Unknown message types come back as { tag } only. */
export function decodePgoutput(buf) {
  const r = new Reader(buf);
  const tag = String.fromCharCode(r.u8());
  switch (tag) {
    case 'B':
      return { tag, finalLsn: r.u64(), commitTime: r.i64(), xid: r.u32() };
    case 'C':
      return { tag, flags: r.u8(), commitLsn: r.u64(), endLsn: r.u64(), commitTime: r.i64() };
    case 'O':
      return { tag, lsn: r.u64(), name: r.cstr() };
    case 'R': {
      const relid = r.u32();
      const schema = r.cstr() || 'pg_catalog';
      const table = r.cstr();
      const replident = String.fromCharCode(r.u8());
      const n = r.i16();
      const columns = [];
      for (let i = 0; i < n; i++) {
        const flags = r.u8();
        columns.push({ key: (flags & 1) === 1, name: r.cstr(), typeOid: r.u32(), typmod: r.i32() });
      }
      return { tag, relid, schema, table, replident, columns };
    }
    case 'Y':
      return { tag, oid: r.u32(), schema: r.cstr(), name: r.cstr() };
    case 'I': {
      const relid = r.u32();
      r.u8(); // 'N'
      return { tag, relid, newTuple: r.tuple() };
    }
    case 'U': {
      const relid = r.u32();
      let kind = String.fromCharCode(r.u8());
      let oldKind = null;
      let oldTuple = null;
      if (kind === 'K' || kind === 'O') {
        oldKind = kind;
        oldTuple = r.tuple();
        kind = String.fromCharCode(r.u8());
      }
      return { tag, relid, oldKind, oldTuple, newTuple: r.tuple() };
    }
    case 'D': {
      const relid = r.u32();
      const oldKind = String.fromCharCode(r.u8());
      return { tag, relid, oldKind, oldTuple: r.tuple() };
    }
    case 'T': {
      const n = r.i32();
      const options = r.u8();
      const relids = [];
      for (let i = 0; i < n; i++) relids.push(r.u32());
      return { tag, options, relids };
    }
    default:
      return { tag };
  }
}

// ---------------------------------------------------------------------------------------------
// Values: Postgres text output -> what to_jsonb(value) renders (realtime.cast does exactly that)
// ---------------------------------------------------------------------------------------------

const JSON_NUMBER_TYPES = new Set(['int2', 'int4', 'int8', 'float4', 'float8', 'numeric']);

/**
 * Parses a Postgres array literal ('{1,2}', '{{a,b},{c,NULL}}', '[0:1]={x,y}') into nested JS
 * arrays of element strings (null for NULL). `delim` is the element type's typdelim.
 */
export function parsePgArray(text, delim = ',') {
  let i = 0;
  if (text[0] === '[') {
    const eq = text.indexOf('=');
    if (eq < 0) throw new Error(`malformed array literal: ${text}`);
    i = eq + 1;
  }
  const parse = () => {
    if (text[i] !== '{') throw new Error(`malformed array literal: ${text}`);
    i++;
    const out = [];
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      while (text[i] === ' ') i++;
      if (text[i] === '{') {
        out.push(parse());
      } else if (text[i] === '"') {
        i++;
        let s = '';
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\') i++;
          s += text[i++];
        }
        i++; // closing quote
        out.push(s);
      } else {
        let s = '';
        while (i < text.length && text[i] !== delim && text[i] !== '}') {
          if (text[i] === '\\') i++;
          s += text[i++];
        }
        s = s.trim();
        out.push(s === 'NULL' ? null : s);
      }
      while (text[i] === ' ') i++;
      if (text[i] === delim) {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return out;
      }
      throw new Error(`malformed array literal: ${text}`);
    }
  };
  return parse();
}

/** timestamptz text (DateStyle ISO) -> to_jsonb's ISO 8601 ("2025-01-02T03:04:05.678+00:00"). */
function isoTimestamptz(text) {
  if (!/^\d/.test(text)) return text; // infinity, -infinity
  const t = text.replace(' ', 'T');
  return t.replace(/([+-]\d\d)$/, '$1:00');
}

/**
 * Converts the text output of a value of type `oid` to its JSON value as to_jsonb would render
 * it. `types` is the TypeCache (base types, element types, categories).
 */
export function toJsonValue(text, oid, types) {
  if (text === null || text === undefined) return null;
  const t = types.base(oid);
  if (!t) return text;
  if (t.elem && t.category === 'A') {
    const elem = t.elem;
    const delim = types.get(elem)?.delim ?? ',';
    const conv = (v) => (Array.isArray(v) ? v.map(conv) : toJsonValue(v, elem, types));
    try {
      return conv(parsePgArray(text, delim));
    } catch {
      return text;
    }
  }
  switch (t.name) {
    case 'bool':
      return text === 't' || text === 'true';
    case 'json':
    case 'jsonb':
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    case 'timestamptz':
      return isoTimestamptz(text);
    case 'timestamp':
      return /^\d/.test(text) ? text.replace(' ', 'T') : text;
    default:
      if (JSON_NUMBER_TYPES.has(t.name)) {
        const n = Number(text);
        return Number.isFinite(n) ? n : text; // NaN and Infinity stay strings, as in jsonb
      }
      return text;
  }
}

/** pg_type rows by oid, with domains resolved to their base type. */
export class TypeCache {
  constructor(query) {
    this.query = query;
    this.byOid = new Map();
  }
  get(oid) {
    return this.byOid.get(oid);
  }
  /** The type itself, or for a domain the type it is ultimately based on. */
  base(oid) {
    let t = this.byOid.get(oid);
    for (let hops = 0; t && t.type === 'd' && hops < 10; hops++) t = this.byOid.get(t.baseType);
    return t;
  }
  /** Loads the given oids and everything they refer to (element and base types). */
  async ensure(oids) {
    let missing = [...new Set(oids)].filter((o) => o && !this.byOid.has(o));
    for (let rounds = 0; missing.length > 0 && rounds < 5; rounds++) {
      const { rows } = await this.query(
        `select t.oid::int8 as oid, t.typname, t.typcategory, t.typelem::int8 as elem,
                t.typbasetype::int8 as base, t.typtype, t.typdelim
           from pg_catalog.pg_type t where t.oid = any($1::oid[])`,
        [missing],
      );
      const next = [];
      for (const row of rows) {
        const rec = {
          oid: Number(row.oid),
          name: row.typname,
          category: row.typcategory,
          elem: Number(row.elem) || 0,
          baseType: Number(row.base) || 0,
          type: row.typtype,
          delim: row.typdelim,
        };
        this.byOid.set(rec.oid, rec);
        if (rec.elem) next.push(rec.elem);
        if (rec.baseType) next.push(rec.baseType);
      }
      for (const o of missing) if (!this.byOid.has(o)) this.byOid.set(o, null);
      missing = [...new Set(next)].filter((o) => !this.byOid.has(o));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Filters (Realtime's Subscriptions.parse_subscription_params and realtime.check_equality_op)
// ---------------------------------------------------------------------------------------------

export const FILTER_OPS = [
  'eq',
  'neq',
  'lt',
  'lte',
  'gt',
  'gte',
  'in',
  'like',
  'ilike',
  'is',
  'match',
  'imatch',
  'isdistinct',
];

/** A subscription request Realtime refuses before touching the database. */
export class SubscriptionParamsError extends Error {}

/** Splits on commas outside parentheses and double quotes, as Realtime's split_top_level. */
function splitTopLevel(filter) {
  const out = [];
  let current = '';
  let depth = 0;
  let quoted = false;
  let prev = '';
  for (let i = 0; i < filter.length; i++) {
    const ch = filter[i];
    if (quoted) {
      if (ch === '\\' && i + 1 < filter.length) {
        current += ch + filter[++i];
        prev = filter[i];
        continue;
      }
      if (ch === '"') quoted = false;
      current += ch;
      prev = ch;
      continue;
    }
    if (ch === '"' && (prev === '.' || prev === '(' || prev === ',')) {
      quoted = true;
    } else if (ch === '(') {
      depth++;
    } else if (ch === ')') {
      depth = Math.max(0, depth - 1);
    } else if (ch === ',' && depth === 0) {
      out.push(current);
      current = '';
      prev = '';
      continue;
    }
    current += ch;
    prev = ch;
  }
  out.push(current);
  return out;
}

function unquoteValue(value) {
  if (!value.startsWith('"')) return value;
  let acc = '';
  for (let i = 1; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"') return i === value.length - 1 ? acc : value;
    if (ch === '\\' && i + 1 < value.length) {
      acc += value[++i];
      continue;
    }
    acc += ch;
  }
  return value;
}

/** Elixir's inspect() of a string, near enough for messages (JSON escaping). */
const inspectString = (s) => JSON.stringify(s);

/** Elixir's inspect() of a filter list / select list, for Realtime's error messages. */
export function paramsToLog({ action, schema, table, filters, select }) {
  const f = `[${
    filters.map((x) =>
      `{${inspectString(x.column)}, ${inspectString(x.op)}, ${inspectString(x.value)}, ${x.negate}}`
    ).join(', ')
  }]`;
  const s = select ? `[${select.map(inspectString).join(', ')}]` : 'nil';
  return `event: ${action}, schema: ${schema}, table: ${table}, filters: ${f}, select: ${s}`;
}

/**
 * Parses one postgres_changes binding ({event, schema, table, filter, select}) as Realtime does.
 * Returns { action, schema, table, filters: [{column, op, value, negate}], select } or throws
 * SubscriptionParamsError with Realtime's message.
 */
export function parseSubscriptionParams(params) {
  const has = (k) => params !== null && typeof params === 'object' && Object.hasOwn(params, k);
  let action = '*';
  if (has('event') && typeof params.event === 'string' && params.event !== '*') {
    const up = params.event.toUpperCase();
    action = ['INSERT', 'UPDATE', 'DELETE'].includes(up) ? up : '*';
  }
  let select = null;
  if (has('select')) {
    if (typeof params.select === 'string') {
      throw new SubscriptionParamsError(
        'Error parsing `select` params: expected a list of column name strings, e.g. select: ["col1", "col2"]',
      );
    }
    if (Array.isArray(params.select)) {
      const cols = params.select.filter((c) => typeof c === 'string');
      select = cols.length ? cols : null;
    }
  }
  const str = (k) => has(k) && typeof params[k] === 'string';
  let schema;
  let table;
  let filters = [];
  if (str('schema') && str('table') && str('filter')) {
    schema = params.schema;
    table = params.table;
    filters = parseFilters(params.filter);
  } else if (str('schema') && str('table') && !has('filter')) {
    schema = params.schema;
    table = params.table;
  } else if (str('schema') && !has('table') && !has('filter')) {
    schema = params.schema;
    table = '*';
  } else if (str('table') && !has('schema') && !has('filter')) {
    schema = 'public';
    table = params.table;
  } else {
    const shown = params && typeof params === 'object' && (has('user_token') || has('auth_token'))
      ? '<redacted>'
      : inspectParams(params);
    throw new SubscriptionParamsError(
      `No subscription params provided. Please provide at least a \`schema\` or \`table\` to subscribe to: ${shown}`,
    );
  }
  if (select && (schema === '*' || table === '*')) {
    throw new SubscriptionParamsError(
      'Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name.',
    );
  }
  return { action, schema, table, filters, select };
}

function inspectParams(params) {
  if (params === null || typeof params !== 'object') return String(params);
  const parts = Object.entries(params).map(([k, v]) =>
    `${inspectString(k)} => ${JSON.stringify(v)}`
  );
  return `%{${parts.join(', ')}}`;
}

function parseFilters(filter) {
  const trimmed = filter.trim();
  if (trimmed === '') return [];
  return splitTopLevel(trimmed).map((segment) => {
    const seg = segment.trim();
    if (seg === '') {
      throw new SubscriptionParamsError(
        'Error parsing `filter` params: filter must not contain empty segments (check for extra commas)',
      );
    }
    const eq = seg.indexOf('=');
    if (eq < 0) {
      throw new SubscriptionParamsError(`Error parsing \`filter\` params: ${inspectList([seg])}`);
    }
    const column = seg.slice(0, eq);
    let rest = seg.slice(eq + 1);
    let negate = false;
    if (rest.startsWith('not.')) {
      negate = true;
      rest = rest.slice(4);
    }
    const dot = rest.indexOf('.');
    if (dot < 0) {
      throw new SubscriptionParamsError(`Error parsing \`filter\` params: ${inspectList([rest])}`);
    }
    const op = rest.slice(0, dot);
    const value = rest.slice(dot + 1);
    if (!FILTER_OPS.includes(op)) {
      throw new SubscriptionParamsError(
        `Error parsing \`filter\` params: ${inspectList([op, value])}`,
      );
    }
    if (op === 'in') {
      if (value.length >= 2 && value.startsWith('(') && value.endsWith(')')) {
        return { column, op, value: `{${value.slice(1, -1)}}`, negate };
      }
      throw new SubscriptionParamsError(
        'Error parsing `filter` params: `in` filter value must be wrapped by parentheses',
      );
    }
    return { column, op, value: unquoteValue(value), negate };
  });
}

const inspectList = (items) => `[${items.map(inspectString).join(', ')}]`;

// --- comparison of typed values (text output of the same type on both sides) ---

const INT_TYPES = new Set(['int2', 'int4', 'int8', 'oid', 'xid']);

function compareDecimal(a, b) {
  // NaN sorts above everything (and equals itself), as in Postgres; then the infinities.
  const rank = (s) => (s === 'NaN' ? 3 : s === 'Infinity' ? 2 : s === '-Infinity' ? -2 : 0);
  const ra = rank(a);
  const rb = rank(b);
  if (ra || rb) return Math.sign(ra - rb);
  const parse = (s) => {
    let t = s.trim();
    let neg = false;
    if (t[0] === '-' || t[0] === '+') {
      neg = t[0] === '-';
      t = t.slice(1);
    }
    let [ip, fp = ''] = t.split('.');
    ip = ip.replace(/^0+/, '');
    fp = fp.replace(/0+$/, '');
    return { neg: neg && (ip !== '' || fp !== ''), ip, fp };
  };
  const x = parse(a);
  const y = parse(b);
  if (x.neg !== y.neg) return x.neg ? -1 : 1;
  let c = Math.sign(x.ip.length - y.ip.length) || (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : 0);
  if (c === 0) {
    const len = Math.max(x.fp.length, y.fp.length);
    const fa = x.fp.padEnd(len, '0');
    const fb = y.fp.padEnd(len, '0');
    c = fa < fb ? -1 : fa > fb ? 1 : 0;
  }
  return x.neg ? -c : c;
}

function compareFloat(a, b) {
  const x = Number(a);
  const y = Number(b);
  const nx = Number.isNaN(x);
  const ny = Number.isNaN(y);
  if (nx || ny) return nx && ny ? 0 : nx ? 1 : -1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A sortable key for date/timestamp/timestamptz text output (ISO DateStyle, UTC session). */
function timeKey(text) {
  if (text === 'infinity') return [1, 0n];
  if (text === '-infinity') return [-1, 0n];
  const m = text.match(
    /^(\d{4,})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?)?([+-]\d\d(?::?\d\d)?(?::?\d\d)?)?( BC)?$/,
  );
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', tz = '', bc] = m;
  const date = new Date(0);
  date.setUTCFullYear(bc ? 1 - Number(y) : Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  let ms = date.getTime();
  if (tz) {
    const sign = tz[0] === '-' ? -1 : 1;
    const digits = tz.slice(1).replaceAll(':', '');
    const hh = Number(digits.slice(0, 2)) || 0;
    const mm = Number(digits.slice(2, 4)) || 0;
    const ss = Number(digits.slice(4, 6)) || 0;
    ms -= sign * (hh * 3600_000 + mm * 60_000 + ss * 1000);
  }
  const micros = BigInt(ms) * 1000n + BigInt((frac + '000000').slice(0, 6));
  return [0, micros];
}

/** -1, 0, 1 comparing two text-output values of one (base) type; the type decides how. */
export function compareValues(typeName, a, b) {
  if (INT_TYPES.has(typeName)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeName === 'numeric') return compareDecimal(a, b);
  if (typeName === 'float4' || typeName === 'float8') return compareFloat(a, b);
  if (typeName === 'bool') {
    const x = a === 't' ? 1 : 0;
    const y = b === 't' ? 1 : 0;
    return x - y;
  }
  if (typeName === 'timestamptz' || typeName === 'timestamp' || typeName === 'date') {
    const x = timeKey(a);
    const y = timeKey(b);
    if (x && y) {
      if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
      return x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
    }
  }
  // text-like and everything else: code-point order (the local cluster's collation is C.UTF-8)
  return a < b ? -1 : a > b ? 1 : 0;
}

function likeToRegExp(pattern, caseInsensitive) {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\' && i + 1 < pattern.length) {
      re += pattern[++i].replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else if (ch === '%') re += '.*';
    else if (ch === '_') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`${re}$`, caseInsensitive ? 'is' : 's');
}

/**
 * Compiles validated filters for one table into a predicate over a column map
 * (name -> text or null). Returns (cols) => true | false | null (SQL's three-valued result:
 * only true makes the row visible).
 */
export function compileFilters(filters) {
  const tests = filters.map((f) => {
    const type = f.typeName;
    // Enums compare by their declared order, everything else by its type (compareValues).
    const cmp = f.enumOrder
      ? (a, b) => Math.sign((f.enumOrder.get(a) ?? -1) - (f.enumOrder.get(b) ?? -1))
      : (a, b) => compareValues(type, a, b);
    const eq = (a, b) => (a === b ? 0 : cmp(a, b));
    let test;
    switch (f.op) {
      case 'eq':
        test = (v) => eq(v, f.canonical) === 0;
        break;
      case 'neq':
        test = (v) => eq(v, f.canonical) !== 0;
        break;
      case 'lt':
        test = (v) => cmp(v, f.canonical) < 0;
        break;
      case 'lte':
        test = (v) => cmp(v, f.canonical) <= 0;
        break;
      case 'gt':
        test = (v) => cmp(v, f.canonical) > 0;
        break;
      case 'gte':
        test = (v) => cmp(v, f.canonical) >= 0;
        break;
      case 'in':
        test = (v) => {
          let sawNull = false;
          for (const item of f.list) {
            if (item === null) sawNull = true;
            else if (eq(v, item) === 0) return true;
          }
          return sawNull ? null : false;
        };
        break;
      case 'like':
      case 'ilike': {
        const re = likeToRegExp(f.value, f.op === 'ilike');
        test = (v) => re.test(v);
        break;
      }
      case 'match':
      case 'imatch': {
        const re = new RegExp(f.value, f.op === 'imatch' ? 'iu' : 'u');
        test = (v) => re.test(v);
        break;
      }
      default:
        test = null;
    }
    return {
      column: f.column,
      op: f.op,
      negate: f.negate,
      test,
      value: f.value,
      canonical: f.canonical,
      cmp,
    };
  });
  return (cols) => {
    let result = true;
    for (const t of tests) {
      if (!cols.has(t.column)) return false; // the column is not in this change: not visible
      const v = cols.get(t.column);
      let r;
      if (t.op === 'is') {
        if (t.value === 'null') r = v === null;
        else if (v === null) r = t.value === 'unknown';
        else if (t.value === 'unknown') r = false;
        else r = v === (t.value === 'true' ? 't' : 'f');
        if (t.negate) r = !r;
      } else if (t.op === 'isdistinct') {
        r = v === null ? true : v !== t.canonical && t.cmp(v, t.canonical) !== 0;
        if (t.negate) r = !r;
      } else if (v === null) {
        r = null;
      } else {
        r = t.test(v);
        if (t.negate && r !== null) r = !r;
      }
      if (r !== true) result = r === false ? false : result === false ? false : null;
      if (result === false) return false;
    }
    return result;
  };
}

// ---------------------------------------------------------------------------------------------
// Postgres errors rendered as Postgrex's Exception.message (Realtime quotes them verbatim)
// ---------------------------------------------------------------------------------------------

const CONDITION_NAMES = {
  P0001: 'raise_exception',
  '22P02': 'invalid_text_representation',
  22007: 'invalid_datetime_format',
  22008: 'datetime_field_overflow',
  22003: 'numeric_value_out_of_range',
  22023: 'invalid_parameter_value',
  '2201B': 'invalid_regular_expression',
  22021: 'character_not_in_repertoire',
  '2202E': 'array_subscript_error',
  42704: 'undefined_object',
  42703: 'undefined_column',
  42883: 'undefined_function',
  42501: 'insufficient_privilege',
};

export function postgrexMessage(err) {
  if (!err?.code) return String(err?.message ?? err);
  const name = CONDITION_NAMES[err.code];
  return `ERROR ${err.code}${name ? ` (${name})` : ''} ${err.message}`;
}

class RaiseException extends Error {
  constructor(message) {
    super(message);
    this.code = 'P0001';
  }
}

// ---------------------------------------------------------------------------------------------
// The change feed
// ---------------------------------------------------------------------------------------------

const quoteIdent = (s) => `"${String(s).replaceAll('"', '""')}"`;

/**
 * Drops the slots of gateways that died without dropping them. Ours are temporary, so owned by
 * (and active for) their session while it lives: an inactive one is stale.
 */
export async function dropStaleSlots(db) {
  const { rows } = await db.query(
    `select slot_name, pg_catalog.pg_drop_replication_slot(slot_name) is null as dropped
       from pg_catalog.pg_replication_slots where slot_name like $1 and not active`,
    [`${SLOT_PREFIX}%`],
  );
  return rows.map((r) => r.slot_name);
}

/** A subscription could not be created; `message` is what Realtime pushes as the system error. */
export class SubscriptionError extends Error {}

/**
 * One slot, many subscriptions. `deliver(sub, data)` is called once per change and group of
 * subscriptions sharing a role and column selection, with the subscriptions of that group that
 * may see the change (see onChange in the constructor).
 *
 * options: { connection (pg.Client config of a superuser), adminPool (catalog queries),
 *            pool (authenticator, for the per-subscriber RLS checks), log, pollMs, idlePollMs,
 *            stopAfterMs, onChange(groups) }
 */
export class ChangeFeed {
  constructor(options) {
    this.options = options;
    this.log = options.log ?? (() => {});
    this.subs = new Set();
    this.types = new TypeCache((text, values) => options.adminPool.query(text, values));
    this.relations = new Map(); // relid -> relation info (from pgoutput R + catalog)
    this.privileges = new Map(); // `${role}/${relid}` -> { at, columns: Set }
    this.client = null;
    this.slot = null;
    this.starting = null;
    this.running = false;
    this.stopTimer = null;
    this.lastActivity = 0;
    this.closed = false;
    this.stats = { polls: 0, changes: 0 };
  }

  // --- subscriptions -------------------------------------------------------------------------

  /**
   * Validates and registers the given bindings for one channel as a unit (as Realtime's
   * Subscriptions.create runs in one transaction): either all are added or none.
   * specs: [{ params (parsed), claims, deliver }]; returns the new subscription objects.
   */
  async subscribe(specs) {
    const prepared = [];
    for (const spec of specs) prepared.push(await this.prepare(spec));
    await this.ensureRunning();
    for (const sub of prepared) this.subs.add(sub);
    this.cancelStop();
    return prepared;
  }

  unsubscribe(subs) {
    for (const sub of subs) this.subs.delete(sub);
    if (this.subs.size === 0) this.scheduleStop();
  }

  /** Resolves tables and compiles filters for one binding; throws SubscriptionError. */
  async prepare({ params, claims, ...rest }) {
    const role = typeof claims?.role === 'string' ? claims.role : '';
    const { adminPool } = this.options;
    const unable = `Unable to subscribe to changes with given parameters.`;
    const logged = paramsToLog(params);
    let tables;
    try {
      const roleOk = await adminPool.query('select pg_catalog.to_regrole($1) is not null as ok', [
        role,
      ]);
      if (!roleOk.rows[0].ok) {
        const e = new Error(`role "${role}" does not exist`);
        e.code = '42704';
        throw e;
      }
      // Realtime's own query: LIKE patterns, so '*' means any and '_' matches any character.
      const { rows } = await adminPool.query(
        `select format('%I.%I', p.schemaname, p.tablename)::regclass::oid::int8 as relid,
                p.schemaname, p.tablename
           from pg_catalog.pg_publication_tables p
          where p.pubname = $1
            and p.schemaname like (case $2 when '*' then '%' else $2 end) escape ''
            and p.tablename like (case $3 when '*' then '%' else $3 end) escape ''`,
        [PUBLICATION, params.schema, params.table],
      );
      tables = rows;
      if (tables.length === 0) {
        throw new SubscriptionError(
          `${unable} Please check Realtime is enabled for the given connect parameters: [${logged}]`,
        );
      }
      const filtersByRelid = new Map();
      for (const t of tables) {
        filtersByRelid.set(
          Number(t.relid),
          await this.validateFilters(Number(t.relid), role, params),
        );
      }
      return {
        ...rest,
        params,
        claims,
        role,
        claimsKey: JSON.stringify(claims),
        action: params.action,
        select: params.select,
        relids: new Set(tables.map((t) => Number(t.relid))),
        filtersByRelid,
      };
    } catch (err) {
      if (err instanceof SubscriptionError) throw err;
      throw new SubscriptionError(
        `${unable} An exception happened so please check your connect parameters: [${logged}]. Exception: ${
          postgrexMessage(err)
        }`,
      );
    }
  }

  /** realtime.subscription_check_filters, then the canonical text of each filter value. */
  async validateFilters(relid, role, params) {
    const { adminPool } = this.options;
    const { rows: cols } = await adminPool.query(
      `select a.attname, a.atttypid::int8 as typoid, a.atttypid::regtype::text as regtype,
              pg_catalog.has_column_privilege($2, a.attrelid, a.attnum, 'SELECT') as selectable
         from pg_catalog.pg_attribute a
        where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped
        order by a.attnum`,
      [relid, role],
    );
    const selectable = new Map(cols.filter((c) => c.selectable).map((c) => [c.attname, c]));
    const out = [];
    for (const f of params.filters) {
      const col = selectable.get(f.column);
      if (!col) throw new RaiseException(`invalid column for filter ${f.column}`);
      const typoid = Number(col.typoid);
      await this.types.ensure([typoid]);
      const base = this.types.base(typoid);
      const typeName = base?.name ?? col.regtype;
      const compiled = { ...f, typeName, canonical: null, list: null, enumOrder: null };
      if (base?.type === 'e') {
        const { rows } = await adminPool.query(
          'select enumlabel from pg_catalog.pg_enum where enumtypid = $1::oid order by enumsortorder',
          [base.oid],
        );
        compiled.enumOrder = new Map(rows.map((r, i) => [r.enumlabel, i]));
      }
      if (f.op === 'in') {
        const { rows } = await adminPool.query(
          `select array(select x::text from unnest($1::text::${col.regtype}[]) x) as list`,
          [f.value],
        );
        if (rows[0].list.length > 100) {
          throw new RaiseException('too many values for `in` filter. Maximum 100');
        }
        compiled.list = rows[0].list;
      } else if (f.op === 'is') {
        if (!['null', 'true', 'false', 'unknown'].includes(f.value)) {
          throw new RaiseException(
            'invalid value for is filter: must be null, true, false, or unknown',
          );
        }
        if (f.value !== 'null' && col.regtype !== 'boolean') {
          throw new RaiseException(
            `is ${f.value} filter requires a boolean column, got ${col.regtype}`,
          );
        }
      } else if (f.op === 'like' || f.op === 'ilike') {
        const { rows } = await adminPool.query(
          `select exists (select 1 from pg_catalog.pg_operator where oprname = '~~' and oprleft = $1::oid) as ok`,
          [typoid],
        );
        if (!rows[0].ok) {
          throw new RaiseException(
            `operator ${f.op} requires a text-compatible column type, got ${col.regtype}`,
          );
        }
      } else if (f.op === 'match' || f.op === 'imatch') {
        const { rows } = await adminPool.query(
          `select exists (select 1 from pg_catalog.pg_operator
                           where oprname = $2 and oprleft = $1::oid and oprright = $1::oid
                             and oprresult = 'boolean'::regtype) as ok`,
          [typoid, f.op === 'imatch' ? '~*' : '~'],
        );
        if (!rows[0].ok) {
          throw new RaiseException(
            `operator ${f.op} requires a text-compatible column type, got ${col.regtype}`,
          );
        }
        try {
          await adminPool.query(`select '' ~ $1`, [f.value]);
          new RegExp(f.value, 'u'); // evaluated in JS: must compile there too
        } catch (err) {
          throw new RaiseException(`invalid regular expression for ${f.op} filter: ${err.message}`);
        }
      } else {
        const { rows } = await adminPool.query(`select ($1::text::${col.regtype})::text as v`, [
          f.value,
        ]);
        compiled.canonical = rows[0].v;
      }
      out.push(compiled);
    }
    return compileFilters(out);
  }

  // --- the slot ------------------------------------------------------------------------------

  /** Creates the slot and starts polling, once; concurrent callers share the same start. */
  ensureRunning() {
    if (this.closed) return Promise.reject(new SubscriptionError('Realtime is shutting down'));
    if (this.running) return Promise.resolve();
    if (!this.starting) {
      this.starting = this.start().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  async start() {
    const client = new pg.Client({
      ...this.options.connection,
      application_name: 'spool-realtime',
      // Output functions run in this session: fix how values are rendered.
      options:
        '-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1 -c statement_timeout=30s',
    });
    client.on(
      'error',
      (err) =>
        this.log({
          level: 'warn',
          msg: 'realtime replication connection error',
          error: err.message,
        }),
    );
    await client.connect();
    try {
      await dropStaleSlots(client);
      const slot = `${SLOT_PREFIX}${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
      await client.query(
        `select pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput', true)`,
        [slot],
      );
      this.client = client;
      this.slot = slot;
    } catch (err) {
      await client.end().catch(() => {});
      throw new SubscriptionError(`Realtime could not start replication: ${postgrexMessage(err)}`);
    }
    this.running = true;
    this.lastActivity = Date.now();
    this.log({ level: 'info', msg: 'realtime replication started', slot: this.slot });
    this.loop = this.pollLoop(client);
  }

  async pollLoop(client) {
    const pollMs = this.options.pollMs ?? 25;
    const idlePollMs = this.options.idlePollMs ?? 50;
    let failures = 0;
    while (this.running && this.client === client) {
      let got = 0;
      try {
        const { rows } = await client.query({
          text: `select data from pg_catalog.pg_logical_slot_get_binary_changes($1, null, $2,
                   'proto_version', '1', 'publication_names', '${PUBLICATION}')`,
          values: [this.slot, MAX_CHANGES_PER_POLL],
          rowMode: 'array',
        });
        this.stats.polls++;
        got = rows.length;
        if (got > 0) await this.process(rows.map((r) => r[0]));
        failures = 0;
      } catch (err) {
        if (!this.running || this.client !== client) break;
        failures++;
        this.log({
          level: 'error',
          msg: 'realtime replication poll failed',
          error: err.stack ?? String(err),
        });
        if (client._ending || client._connectionError || failures >= 5) {
          // The connection (and with it the temporary slot) is gone: start over.
          this.running = false;
          this.client = null;
          await client.end().catch(() => {});
          if (this.subs.size > 0 && !this.closed) {
            setTimeout(
              () =>
                this.ensureRunning().catch((e) =>
                  this.log({
                    level: 'error',
                    msg: 'realtime replication restart failed',
                    error: String(e.message),
                  })
                ),
              500,
            );
          }
          return;
        }
        await sleep(Math.min(5000, 100 * 2 ** failures));
        continue;
      }
      if (got > 0) {
        this.lastActivity = Date.now();
        continue; // more may be waiting
      }
      await sleep(Date.now() - this.lastActivity < 2000 ? pollMs : idlePollMs);
    }
  }

  scheduleStop() {
    this.cancelStop();
    const after = this.options.stopAfterMs ?? 10_000;
    this.stopTimer = setTimeout(() => {
      this.stopTimer = null;
      if (this.subs.size === 0) this.stop().catch(() => {});
    }, after);
    this.stopTimer.unref?.();
  }

  cancelStop() {
    if (this.stopTimer) clearTimeout(this.stopTimer);
    this.stopTimer = null;
  }

  async stop() {
    if (this.starting) await this.starting.catch(() => {});
    const client = this.client;
    const slot = this.slot;
    this.running = false;
    this.client = null;
    this.slot = null;
    if (!client) return;
    await this.loop?.catch(() => {});
    try {
      await client.query('select pg_catalog.pg_drop_replication_slot($1)', [slot]);
    } catch {
      // temporary: it goes with the session anyway
    }
    await client.end().catch(() => {});
    this.log({ level: 'info', msg: 'realtime replication stopped', slot });
  }

  async close() {
    this.closed = true;
    this.cancelStop();
    this.subs.clear();
    await this.stop();
  }

  // --- decoding and delivery -----------------------------------------------------------------

  async process(buffers) {
    const changes = [];
    let commitTime = null;
    let pending = [];
    for (const buf of buffers) {
      const msg = decodePgoutput(buf);
      switch (msg.tag) {
        case 'B':
          commitTime = msg.commitTime;
          pending = [];
          break;
        case 'R':
          await this.noteRelation(msg);
          break;
        case 'I':
        case 'U':
        case 'D':
          pending.push(msg);
          break;
        case 'C': {
          const ts = pgTimestampToIso(msg.commitTime ?? commitTime);
          for (const m of pending) changes.push({ ...m, commitTimestamp: ts });
          pending = [];
          break;
        }
        default:
          break;
      }
    }
    this.stats.changes += changes.length;
    if (changes.length === 0 || this.subs.size === 0) return;
    const work = [];
    for (const change of changes) {
      const rel = this.relations.get(change.relid);
      if (!rel) continue;
      const type = change.tag === 'I' ? 'INSERT' : change.tag === 'U' ? 'UPDATE' : 'DELETE';
      const subs = [...this.subs].filter((s) =>
        s.relids.has(change.relid) && (s.action === '*' || s.action === type)
      );
      if (subs.length === 0) continue;
      work.push({ change, rel, type, subs });
    }
    if (work.length === 0) return;
    await this.refreshCatalog(work);
    const checks = new Map(); // claimsKey -> { role, claims, byRel: Map<relid, [{idx, pk}]> }
    const plans = work.map((w, idx) => this.plan(w, idx, checks));
    const visible = await this.runRlsChecks(checks);
    for (const plan of plans) {
      if (plan) this.emit(plan, visible);
    }
  }

  /** Keeps the relation's column list from pgoutput; catalog details are (re)loaded lazily. */
  async noteRelation(msg) {
    const prev = this.relations.get(msg.relid);
    const signature = msg.columns.map((c) => `${c.name}:${c.typeOid}:${c.key ? 1 : 0}`).join(',') +
      `|${msg.replident}|${msg.schema}.${msg.table}`;
    if (prev && prev.signature === signature) return;
    await this.types.ensure(msg.columns.map((c) => c.typeOid));
    this.relations.set(msg.relid, {
      relid: msg.relid,
      schema: msg.schema,
      table: msg.table,
      replident: msg.replident,
      walColumns: msg.columns,
      signature,
      catalogAt: 0,
    });
  }

  /** Primary key, RLS flag and the catalog column list (with type names) of each relation. */
  async refreshCatalog(work) {
    const now = Date.now();
    const stale = [...new Set(work.map((w) => w.rel))].filter((rel) =>
      now - rel.catalogAt > CATALOG_TTL_MS
    );
    for (const rel of stale) {
      const { rows } = await this.options.adminPool.query(
        `select c.relrowsecurity as rls,
                coalesce((select json_agg(json_build_object('name', a.attname, 'type', t.typname,
                                                            'typoid', a.atttypid::int8,
                                                            'fmt', pg_catalog.format_type(a.atttypid, null),
                                                            'pk', pk.attnum is not null)
                                          order by a.attnum)
                            from pg_catalog.pg_attribute a
                            join pg_catalog.pg_type t on t.oid = a.atttypid
                            left join (select unnest(conkey) as attnum from pg_catalog.pg_constraint
                                        where conrelid = c.oid and contype = 'p') pk on pk.attnum = a.attnum
                           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]') as columns
           from pg_catalog.pg_class c where c.oid = $1::oid`,
        [rel.relid],
      );
      if (rows.length === 0) continue;
      rel.rls = rows[0].rls;
      rel.columns = rows[0].columns;
      rel.pk = rel.columns.filter((c) => c.pk);
      rel.catalogAt = now;
    }
    const roles = new Set();
    for (const w of work) for (const s of w.subs) roles.add(`${s.role}/${w.rel.relid}`);
    for (const key of roles) {
      const hit = this.privileges.get(key);
      if (hit && now - hit.at < CATALOG_TTL_MS) continue;
      const slash = key.lastIndexOf('/');
      const role = key.slice(0, slash);
      const relid = Number(key.slice(slash + 1));
      let columns = new Set();
      try {
        const { rows } = await this.options.adminPool.query(
          `select a.attname from pg_catalog.pg_attribute a
            where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped
              and pg_catalog.has_column_privilege($2, a.attrelid, a.attnum, 'SELECT')`,
          [relid, role],
        );
        columns = new Set(rows.map((r) => r.attname));
      } catch {
        // the role is gone: it can select nothing
      }
      this.privileges.set(key, { at: now, columns });
    }
  }

  /**
   * Works out, for one change, the record, identity and per-subscriber visibility (filters; the
   * RLS checks are queued into `checks` and run in one batch).
   */
  plan({ change, rel, type, subs }, idx, checks) {
    const wal = rel.walColumns;
    const newCols = new Map(); // name -> text | null (unchanged TOAST columns are absent)
    if (change.newTuple) {
      change.newTuple.forEach((v, i) => {
        if (v.kind !== 'u' && wal[i]) newCols.set(wal[i].name, v.kind === 'n' ? null : v.value);
      });
    }
    // The replica identity: the old key/row if logged, else (UPDATE) the key from the new row.
    const identity = new Map();
    if (change.oldTuple) {
      const full = change.oldKind === 'O';
      change.oldTuple.forEach((v, i) => {
        const col = wal[i];
        if (!col || v.kind === 'u') return;
        if (full || col.key) identity.set(col.name, v.kind === 'n' ? null : v.value);
      });
    } else if (type === 'UPDATE' && rel.pk.length > 0) {
      for (const col of wal) {
        if (col.key && newCols.has(col.name)) identity.set(col.name, newCols.get(col.name));
      }
    }
    const pkNames = rel.pk.map((c) => c.name);
    const pkValues = pkNames.map((n) => (type === 'DELETE' ? identity.get(n) : newCols.get(n)));
    const groups = new Map(); // `${role}|${select}` -> { role, select, subs: [], error }
    for (const sub of subs) {
      const key = `${sub.role}|${sub.select ? sub.select.join(',') : ''}`;
      let g = groups.get(key);
      if (!g) groups.set(key, g = { role: sub.role, select: sub.select, subs: [], candidates: [] });
      g.subs.push(sub);
    }
    for (const g of groups.values()) {
      const selectable = this.privileges.get(`${g.role}/${rel.relid}`)?.columns ?? new Set();
      g.selectable = selectable;
      if (type !== 'DELETE' && pkNames.length === 0) {
        g.error = 'Error 400: Bad Request, no primary key';
        continue;
      }
      if (type !== 'DELETE' && !pkNames.every((n) => selectable.has(n))) {
        g.error = 'Error 401: Unauthorized';
        continue;
      }
      for (const sub of g.subs) {
        const visibleByFilter = sub.filtersByRelid.get(rel.relid);
        const cols = type === 'DELETE' ? new Map() : newCols;
        const pass = visibleByFilter(cols) === true ||
          (type === 'DELETE' && visibleByFilter(identity) === true);
        if (!pass) continue;
        if (!rel.rls || type === 'DELETE') {
          g.candidates.push({ sub, ok: true });
        } else {
          let entry = checks.get(sub.claimsKey);
          if (!entry) {
            checks.set(
              sub.claimsKey,
              entry = { role: sub.role, claims: sub.claims, byRel: new Map() },
            );
          }
          let list = entry.byRel.get(rel.relid);
          if (!list) entry.byRel.set(rel.relid, list = { rel, items: [] });
          list.items.push({ idx, pk: pkValues });
          g.candidates.push({ sub, check: `${sub.claimsKey}#${idx}` });
        }
      }
    }
    return { change, rel, type, newCols, identity, groups };
  }

  /** Runs the queued RLS checks: one read-only transaction per distinct claims. */
  async runRlsChecks(checks) {
    const visible = new Set();
    const { pool } = this.options;
    await Promise.all([...checks].map(async ([claimsKey, entry]) => {
      try {
        await withCallerTransaction(pool, {
          role: entry.role,
          claims: entry.claims,
          readOnly: true,
        }, async (client) => {
          for (const { rel, items } of entry.byRel.values()) {
            const pk = rel.pk;
            const arrays = pk.map((_, j) => items.map((it) => it.pk[j] ?? null));
            const cond = pk.map((c, j) => `t.${quoteIdent(c.name)} = k.v${j}::${c.fmt}`).join(
              ' and ',
            );
            const cols = pk.map((_, j) => `v${j}`).join(', ');
            const params = pk.map((_, j) => `$${j + 2}::text[]`).join(', ');
            const { rows } = await client.query(
              `select k.i from unnest($1::int[], ${params}) as k(i, ${cols})
                where exists (select 1 from ${quoteIdent(rel.schema)}.${
                quoteIdent(rel.table)
              } t where ${cond})`,
              [items.map((it) => it.idx), ...arrays],
            );
            for (const r of rows) visible.add(`${claimsKey}#${r.i}`);
          }
        });
      } catch (err) {
        this.log({
          level: 'warn',
          msg: 'realtime RLS check failed; the change is withheld',
          role: entry.role,
          error: err.message,
        });
      }
    }));
    return visible;
  }

  /** Builds the records as realtime.apply_rls does and hands each group to onChange. */
  emit(plan, visible) {
    const { rel, type, newCols, identity, change } = plan;
    const out = [];
    for (const g of plan.groups.values()) {
      const base = { schema: rel.schema, table: rel.table, type };
      if (g.error) {
        out.push({
          data: {
            ...base,
            columns: [],
            commit_timestamp: null,
            errors: [g.error],
            ...(type === 'DELETE'
              ? { old_record: {} }
              : type === 'UPDATE'
              ? { record: {}, old_record: {} }
              : { record: {} }),
          },
          subs: g.subs,
        });
        continue;
      }
      const subs = g.candidates.filter((c) => c.ok || visible.has(c.check)).map((c) => c.sub);
      if (subs.length === 0) continue;
      const picked = (name, isPk) =>
        g.selectable.has(name) && (!g.select || isPk || g.select.includes(name));
      const typeOf = new Map(rel.walColumns.map((c) => [c.name, c.typeOid]));
      const pkSet = new Set(rel.pk.map((c) => c.name));
      const jsonOf = (name, text) => toJsonValue(text, typeOf.get(name), this.types);
      // Payload Too Large: only values of at most 64 bytes are kept.
      const size = estimateWalBytes(newCols, identity);
      const tooLarge = size > MAX_RECORD_BYTES;
      const small = (v) => !tooLarge || Buffer.byteLength(JSON.stringify(v) ?? 'null') <= 64;
      const data = {
        ...base,
        commit_timestamp: change.commitTimestamp,
        columns: rel.columns
          .filter((c) => picked(c.name, c.pk))
          .map((c) => ({ name: c.name, type: c.type })),
      };
      if (type === 'INSERT' || type === 'UPDATE') {
        const record = {};
        for (const col of rel.walColumns) {
          const name = col.name;
          let text;
          if (newCols.has(name)) text = newCols.get(name);
          else if (identity.has(name)) text = identity.get(name); // unchanged TOAST: from the old row
          else continue;
          if (!picked(name, pkSet.has(name))) continue;
          const v = jsonOf(name, text);
          if (small(v)) record[name] = v;
        }
        data.record = record;
      }
      if (type === 'UPDATE' || type === 'DELETE') {
        let old = null;
        for (const [name, text] of identity) {
          if (!picked(name, pkSet.has(name))) continue;
          if (type === 'DELETE' && rel.rls && !pkSet.has(name)) continue; // RLS: deletes show only the key
          const v = jsonOf(name, text);
          if (!small(v)) continue;
          old ??= {};
          old[name] = v;
        }
        data.old_record = old ?? {};
      }
      data.errors = tooLarge ? ['Error 413: Payload Too Large'] : null;
      out.push({ data, subs });
    }
    if (out.length > 0) this.options.onChange(out);
  }
}

function estimateWalBytes(newCols, identity) {
  let n = 200;
  for (const m of [newCols, identity]) {
    for (const [k, v] of m) n += k.length + 60 + (v === null ? 4 : Buffer.byteLength(v));
  }
  return n;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
