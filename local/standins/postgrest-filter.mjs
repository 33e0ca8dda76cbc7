// PostgREST's filter grammar, once, for the REST stand-in (`?col=op.value`) and the Realtime
// stand-in (postgres_changes `filter: 'col=op.value,...'`); no or=/and= trees (Spool sends none).
//   parse(column, '[not.]op.value')     one filter -> { column, op, negate, value | values }: eq neq
//                                       lt lte gt gte, in.(a,"b,c"), is.null|not_null|true|false|
//                                       unknown; { quoted: true } unquotes a "value" (as Realtime).
//   compile(nodes, { params, column })  the AND of nodes as SQL, identifiers quoted by column(name),
//                                       each value a $n appended to `params` (`in`: one array, = ANY).
// Errors are FilterError: PostgREST's PGRST100 message and details; `parts` are the pieces
// Realtime quotes when it refuses a filter (["foo", "hey"] for an unknown operator).

const OPERATORS = { eq: '=', neq: '<>', lt: '<', lte: '<=', gt: '>', gte: '>=' };
const IS_VALUES = { null: 'NULL', not_null: 'NOT NULL', true: 'TRUE', false: 'FALSE', unknown: 'UNKNOWN' };

export class FilterError extends Error {
  constructor(message, details = null, parts = null) {
    super(message);
    this.details = details;
    this.parts = parts;
  }
}

export const quoteIdent = (name) => `"${String(name).replaceAll('"', '""')}"`;

/** Splits on commas outside parentheses and double quotes (a backslash escapes in quotes). */
export function splitTopLevel(text) {
  const out = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted && ch === '\\' && i + 1 < text.length) {
      cur += ch + text[++i];
      continue;
    }
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '(') depth++;
    else if (!quoted && ch === ')') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0 && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** `"a \"b\""` -> `a "b"`; anything not wholly quoted stays as it is. */
export function unquote(value) {
  if (value.length < 2 || !value.startsWith('"') || !value.endsWith('"')) return value;
  const inner = value.slice(1, -1);
  if (/(^|[^\\])(\\\\)*"/.test(inner)) return value; // a bare quote inside: not one value
  return inner.replace(/\\(.)/g, '$1');
}

/** One filter on `column` from `[not.]op.value`; throws FilterError. */
export function parse(column, text, { quoted = false } = {}) {
  let rest = text;
  const negate = rest.startsWith('not.');
  if (negate) rest = rest.slice(4);
  const dot = rest.indexOf('.');
  const failed = `failed to parse filter (${text})`;
  if (dot < 0) throw new FilterError(failed, 'unexpected end of input expecting operator', [rest]);
  const op = rest.slice(0, dot);
  const value = rest.slice(dot + 1);
  if (op === 'in') {
    if (value.length < 2 || !value.startsWith('(') || !value.endsWith(')')) {
      throw new FilterError(failed, '`in` filter value must be wrapped by parentheses', [op, value]);
    }
    const inner = value.slice(1, -1);
    const values = inner === '' ? [] : splitTopLevel(inner).map((v) => unquote(v.trim()));
    return { column, op, negate, values };
  }
  if (op === 'is') {
    if (!Object.hasOwn(IS_VALUES, value)) {
      const expected = 'expecting null or trilean value (unknown, true, false)';
      throw new FilterError(failed, `unexpected "${value}" ${expected}`, [op, value]);
    }
    return { column, op, negate, value };
  }
  if (!Object.hasOwn(OPERATORS, op)) {
    throw new FilterError(failed, `unexpected "${op}" expecting operator (eq, gt, ...)`, [op, value]);
  }
  return { column, op, negate, value: quoted ? unquote(value) : value };
}

/** The AND of `nodes` as one SQL predicate with $n parameters; see the header. */
export function compile(nodes, { params = [], column = quoteIdent } = {}) {
  const bind = (v) => `$${params.push(v)}`;
  const one = (n) => {
    let sql;
    if (n.op === 'in') sql = `${column(n.column)} = ANY(${bind(n.values)})`;
    else if (n.op === 'is') sql = `${column(n.column)} IS ${IS_VALUES[n.value]}`;
    else sql = `${column(n.column)} ${OPERATORS[n.op]} ${bind(n.value)}`;
    return n.negate ? `NOT (${sql})` : sql;
  };
  return { sql: nodes.length ? nodes.map(one).join(' AND ') : 'TRUE', params };
}
