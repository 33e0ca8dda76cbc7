// Change capture for the Realtime stand-in (realtime.mjs), the way Supabase Realtime's
// postgres_cdc_rls extension does it: a logical slot read with wal2json (format-version 2), and
// each change checked per subscriber in SQL.
//
//   slot      a TEMPORARY wal2json slot `spool_realtime_<pid>_<hex>` on a dedicated superuser
//             connection, made for the first subscription, dropped when the last has been gone
//             10 s (or the gateway closes; a temporary slot also dies with its connection).
//             Polled every 25 ms after recent activity, 50 ms when idle, at once while changes
//             keep coming (Realtime polls every 100 ms), for the subscribed tables only.
//   per poll  ONE query (realtime.list_changes): pg_logical_slot_get_changes with wal2json, then
//             pg_temp.spool_apply_rls(change, subscriptions) per change, a temporary function the
//             connection makes, mirroring realtime.apply_rls: per distinct role + JWT claims of
//             the subscribers it sets role and request.jwt.claims and, in one statement, tests
//             every subscriber's filter against the row and (INSERT/UPDATE on an RLS table)
//             whether that role sees the row by primary key. DELETE bypasses RLS; its filters see
//             the replica identity. Records as apply_rls builds them: to_jsonb values, the columns
//             the role may SELECT (and `select`), unchanged TOAST values from the identity,
//             "Error 400" (no primary key) / "Error 401" (primary key not selectable) records,
//             "Error 413" over 1 MB (values of at most 64 bytes kept).
//   filters   parsed by postgrest-filter.mjs (Realtime's grammar: `col=[not.]op.value`, comma =
//             AND) and compiled to SQL over the WAL row; checked at subscribe time as
//             realtime.subscription_check_filters does (column selectable by the role, values
//             castable, at most 100 for `in`).

import crypto from 'node:crypto';
import pg from 'pg';
import { compile, FilterError, parse, quoteIdent, splitTopLevel } from './postgrest-filter.mjs';

export const PUBLICATION = 'supabase_realtime';
const SLOT_PREFIX = 'spool_realtime_';
const MAX_CHANGES_PER_POLL = 2000;
const MAX_RECORD_BYTES = 1024 * 1024; // Realtime's poll_max_record_bytes

// The row literal ("(v1,v2,...)", in column order) of a table from {column: text} (absent: NULL),
// and apply_rls over one wal2json change for the subscriptions given as JSON:
// [{id, relid, role, claims, action, select?, filter (SQL over (x.spool_r))}].
const SETUP_SQL = String.raw`
create function pg_temp.spool_row(entity regclass, vals jsonb) returns text language sql stable as $$
  select '(' || string_agg(coalesce('"' || replace(replace(vals ->> a.attname, '\', '\\'), '"', '\"') || '"', ''),
                           ',' order by a.attnum) || ')'
    from pg_catalog.pg_attribute a where a.attrelid = entity and a.attnum > 0 and not a.attisdropped
$$;
create function pg_temp.spool_apply_rls(wal jsonb, subs jsonb, max_bytes int)
  returns table (data jsonb, ids int[]) language plpgsql as $$
declare
  entity regclass := pg_catalog.format('%I.%I', wal ->> 'schema', wal ->> 'table')::regclass;
  action text := case wal ->> 'action' when 'I' then 'INSERT' when 'U' then 'UPDATE' else 'DELETE' end;
  rls boolean := (select c.relrowsecurity from pg_catalog.pg_class c where c.oid = entity);
  too_large boolean := octet_length(wal::text) > max_bytes;
  pk text[] := array(select x ->> 'name' from jsonb_array_elements(wal -> 'pk') x);
  new_vals jsonb := coalesce((select jsonb_object_agg(x ->> 'name', (x -> 'value') #>> '{}')
                                from jsonb_array_elements(wal -> 'columns') x), '{}');
  old_vals jsonb := coalesce((select jsonb_object_agg(x ->> 'name', (x -> 'value') #>> '{}')
                                from jsonb_array_elements(wal -> 'identity') x), '{}');
  row_text text := pg_temp.spool_row(entity, case when action = 'DELETE' then old_vals else old_vals || new_vals end);
  new_json jsonb;
  old_json jsonb;
  visible int[] := '{}';
  ok int[];
  g record;
  cols text[];
  msg jsonb;
begin
  perform set_config('role', null, true);
  execute format('select to_jsonb($1::%s), to_jsonb($2::%s)', entity, entity)
    into new_json, old_json using row_text, pg_temp.spool_row(entity, old_vals);
  -- Filters and RLS, once per distinct role and claims.
  for g in
    select s ->> 'role' as role, s -> 'claims' as claims,
           string_agg(format('case when %s then %s end', s ->> 'filter', s ->> 'id'), ',') as tests
      from jsonb_array_elements(subs) s
     where (s ->> 'relid')::oid = entity and s ->> 'action' in ('*', action)
       and (action = 'DELETE' or (pk <> '{}' and not exists (
             select from unnest(pk) c where not has_column_privilege(s ->> 'role', entity, c, 'SELECT'))))
     group by 1, 2
  loop
    begin
      perform set_config('role', g.role, true), set_config('request.jwt.claims', g.claims::text, true);
      execute format('select array_remove(array[%s]::int[], null) from (select $1::%s as spool_r) x%s',
                     g.tests, entity, case when rls and action <> 'DELETE' then
                       format(' where exists (select 1 from %s t where %s)', entity,
                              (select string_agg(format('t.%I = (x.spool_r).%I', c, c), ' and ') from unnest(pk) c))
                     else '' end)
        into ok using row_text;
      perform set_config('role', null, true);
      visible := visible || coalesce(ok, '{}');
    exception when others then
      raise warning 'spool realtime: the check as % failed: %', g.role, sqlerrm;
    end;
  end loop;
  -- One record per distinct role and column selection.
  for g in
    select s ->> 'role' as role, s -> 'select' as sel, array_agg((s ->> 'id')::int) as members
      from jsonb_array_elements(subs) s
     where (s ->> 'relid')::oid = entity and s ->> 'action' in ('*', action)
     group by 1, 2
  loop
    msg := jsonb_build_object('schema', wal ->> 'schema', 'table', wal ->> 'table', 'type', action);
    if action <> 'DELETE' and (pk = '{}' or exists (
         select from unnest(pk) c where not has_column_privilege(g.role, entity, c, 'SELECT'))) then
      return query select msg || jsonb_build_object('columns', '[]'::jsonb, 'commit_timestamp', null,
        'errors', jsonb_build_array(case when pk = '{}' then 'Error 400: Bad Request, no primary key'
                                    else 'Error 401: Unauthorized' end),
        'record', '{}'::jsonb) || case when action = 'UPDATE' then '{"old_record": {}}' else '{}' end::jsonb,
        g.members;
      continue;
    end if;
    ids := array(select unnest(g.members) intersect select unnest(visible));
    continue when ids = '{}';
    cols := array(select a.attname::text from pg_catalog.pg_attribute a
                   where a.attrelid = entity and a.attnum > 0 and not a.attisdropped
                     and has_column_privilege(g.role, entity, a.attnum, 'SELECT')
                     and (g.sel is null or g.sel ? a.attname or a.attname = any(pk)));
    msg := msg || jsonb_build_object(
      'commit_timestamp', to_char((wal ->> 'timestamp')::timestamptz at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'columns', (select coalesce(jsonb_agg(jsonb_build_object('name', a.attname, 'type', t.typname) order by a.attnum), '[]')
                    from pg_catalog.pg_attribute a join pg_catalog.pg_type t on t.oid = a.atttypid
                   where a.attrelid = entity and a.attname = any(cols)),
      'errors', case when too_large then '["Error 413: Payload Too Large"]'::jsonb end);
    if action <> 'DELETE' then
      msg := msg || jsonb_build_object('record', (select coalesce(jsonb_object_agg(key, value), '{}')
        from jsonb_each(new_json) where key = any(cols) and (new_vals ? key or old_vals ? key)
         and (not too_large or octet_length(value::text) <= 64)));
    end if;
    if action <> 'INSERT' then
      msg := msg || jsonb_build_object('old_record', (select coalesce(jsonb_object_agg(key, value), '{}')
        from jsonb_each(old_json) where key = any(cols) and old_vals ? key
         and (not too_large or octet_length(value::text) <= 64)
         and (action = 'UPDATE' or not rls or key = any(pk))));
    end if;
    return query select msg, ids;
  end loop;
  perform set_config('role', null, true);
end
$$;`;

/** A subscription request Realtime refuses before touching the database. */
export class SubscriptionParamsError extends Error {}
/** A subscription could not be created; `message` is what Realtime pushes as the system error. */
export class SubscriptionError extends Error {}

const inspect = (s) => JSON.stringify(s);

/**
 * One postgres_changes binding ({event, schema, table, filter, select}) as Realtime's
 * Subscriptions.parse_subscription_params reads it: { action, schema, table, filters, select },
 * or SubscriptionParamsError with Realtime's message.
 */
export function parseSubscriptionParams(params) {
  const p = params !== null && typeof params === 'object' ? params : {};
  const has = (k) => Object.hasOwn(p, k);
  const str = (k) => has(k) && typeof p[k] === 'string';
  const up = typeof p.event === 'string' ? p.event.toUpperCase() : '*';
  const action = ['INSERT', 'UPDATE', 'DELETE'].includes(up) ? up : '*';
  let select = null;
  if (typeof p.select === 'string') {
    throw new SubscriptionParamsError(
      'Error parsing `select` params: expected a list of column name strings, e.g. select: ["col1", "col2"]',
    );
  }
  if (Array.isArray(p.select)) select = p.select.filter((c) => typeof c === 'string');
  if (select?.length === 0) select = null;
  let schema = p.schema;
  let table = p.table;
  let filters = [];
  if (str('schema') && str('table') && str('filter')) filters = parseFilters(p.filter);
  else if (str('schema') && str('table') && !has('filter')) { /* as given */ }
  else if (str('schema') && !has('table') && !has('filter')) table = '*';
  else if (str('table') && !has('schema') && !has('filter')) schema = 'public';
  else {
    const shown = has('user_token') || has('auth_token')
      ? '<redacted>'
      : `%{${
        Object.entries(p).map(([k, v]) => `${inspect(k)} => ${JSON.stringify(v)}`).join(', ')
      }}`;
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

/** `col=[not.]op.value,...` (comma = AND) into postgrest-filter.mjs nodes, as Realtime refuses. */
function parseFilters(filter) {
  if (filter.trim() === '') return [];
  const fail = (what) => new SubscriptionParamsError(`Error parsing \`filter\` params: ${what}`);
  return splitTopLevel(filter.trim()).map((segment) => {
    const seg = segment.trim();
    if (seg === '') throw fail('filter must not contain empty segments (check for extra commas)');
    const eq = seg.indexOf('=');
    if (eq < 0) throw fail(`[${inspect(seg)}]`);
    try {
      return parse(seg.slice(0, eq), seg.slice(eq + 1), { quoted: true });
    } catch (err) {
      if (!(err instanceof FilterError)) throw err;
      if (err.parts?.[0] === 'in') throw fail('`in` filter value must be wrapped by parentheses');
      throw fail(`[${err.parts.map(inspect).join(', ')}]`);
    }
  });
}

/** Realtime's log form of a binding, quoted in its error messages. */
function paramsToLog({ action, schema, table, filters, select }) {
  const f = filters.map((x) => {
    const value = x.op === 'in' ? `{${x.values.join(',')}}` : x.value;
    return `{${inspect(x.column)}, ${inspect(x.op)}, ${inspect(value)}, ${x.negate}}`;
  });
  const s = select ? `[${select.map(inspect).join(', ')}]` : 'nil';
  return `event: ${action}, schema: ${schema}, table: ${table}, filters: [${
    f.join(', ')
  }], select: ${s}`;
}

const CONDITION_NAMES = {
  P0001: 'raise_exception',
  '22P02': 'invalid_text_representation',
  22007: 'invalid_datetime_format',
  22008: 'datetime_field_overflow',
  22003: 'numeric_value_out_of_range',
  42704: 'undefined_object',
  42804: 'datatype_mismatch',
  42883: 'undefined_function',
};

/** A Postgres error as Postgrex's Exception.message renders it (Realtime quotes it verbatim). */
function postgrexMessage(err) {
  if (!err?.code) return String(err?.message ?? err);
  const name = CONDITION_NAMES[err.code];
  return `ERROR ${err.code}${name ? ` (${name})` : ''} ${err.message}`;
}

const raise = (message) => Object.assign(new Error(message), { code: 'P0001' });
const literal = (v) => `'${String(v).replaceAll("'", "''")}'`;
const arrayLiteral = (values) =>
  `{${values.map((v) => `"${v.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;

/** The filters as SQL over (x.spool_r), their values inlined as literals (apply_rls runs them). */
function filterSql(filters) {
  const { sql, params } = compile(filters, { column: (c) => `(x.spool_r).${quoteIdent(c)}` });
  return sql.replace(/"(?:[^"]|"")*"|\$(\d+)/g, (m, n) => {
    if (!n) return m;
    const v = params[n - 1];
    return literal(Array.isArray(v) ? arrayLiteral(v) : v);
  });
}

/** Drops the slots of gateways that died without dropping them (ours are temporary: stale if inactive). */
export async function dropStaleSlots(db) {
  const { rows } = await db.query(
    `select slot_name, pg_catalog.pg_drop_replication_slot(slot_name) is null as dropped
       from pg_catalog.pg_replication_slots where slot_name like $1 and not active`,
    [`${SLOT_PREFIX}%`],
  );
  return rows.map((r) => r.slot_name);
}

/**
 * One slot, many subscriptions. options: { connection (pg.Client config of a superuser),
 * adminPool, log, pollMs, idlePollMs, stopAfterMs, onChange([{ data, subs }]) }.
 */
export class ChangeFeed {
  constructor(options) {
    this.options = options;
    this.log = options.log ?? (() => {});
    this.subs = new Map(); // id -> subscription
    this.nextId = 1;
    this.subsJson = null; // the subscriptions as spool_apply_rls takes them (null: rebuild)
    this.client = null;
    this.slot = null;
    this.starting = null;
    this.poll = Promise.resolve();
    this.lastActivity = 0;
    this.closed = false;
    this.stats = { polls: 0, changes: 0 };
  }

  /**
   * Validates and registers one channel's bindings as a unit, as Realtime's Subscriptions.create:
   * all or none. specs: [{ params (parsed), claims, ...carried }]; returns the subscriptions,
   * live once this resolves. Throws SubscriptionError.
   */
  async subscribe(specs) {
    const made = [];
    for (const spec of specs) made.push(...(await this.prepare(spec)));
    await this.ensureRunning();
    for (const sub of made) this.subs.set(sub.id, sub);
    this.changed();
    await this.poll.catch(() => {}); // a poll under way read its changes without these
    return made;
  }

  unsubscribe(subs) {
    for (const sub of subs) this.subs.delete(sub.id);
    this.changed();
  }

  /** The subscriptions' claims or set changed. */
  changed() {
    this.subsJson = null;
    clearTimeout(this.stopTimer);
    if (this.subs.size === 0 && this.client) {
      this.stopTimer = setTimeout(
        () => this.subs.size === 0 && this.stop(),
        this.options.stopAfterMs ?? 10_000,
      );
      this.stopTimer.unref?.();
    }
  }

  /** realtime.subscription_check_filters per published table the binding names. */
  async prepare({ params, claims, ...carried }) {
    const role = typeof claims?.role === 'string' ? claims.role : '';
    const db = this.options.adminPool;
    const unable = 'Unable to subscribe to changes with given parameters.';
    const logged = paramsToLog(params);
    try {
      // Realtime's own query: LIKE patterns, so '*' means any and '_' any character.
      const { rows: tables } = await db.query(
        `select format('%I.%I', schemaname, tablename)::regclass::oid::int8 as relid, schemaname, tablename
           from pg_catalog.pg_publication_tables
          where pubname = $1 and schemaname like (case $2 when '*' then '%' else $2 end) escape ''
            and tablename like (case $3 when '*' then '%' else $3 end) escape ''`,
        [PUBLICATION, params.schema, params.table],
      );
      if (tables.length === 0) {
        throw new SubscriptionError(
          `${unable} Please check Realtime is enabled for the given connect parameters: [${logged}]`,
        );
      }
      const filter = filterSql(params.filters);
      const made = [];
      for (const t of tables) {
        const { rows } = await db.query(
          `select array_agg(attname::text) as cols from pg_catalog.pg_attribute
            where attrelid = $1::oid and attnum > 0 and not attisdropped
              and pg_catalog.has_column_privilege($2, attrelid, attnum, 'SELECT')`,
          [t.relid, role],
        );
        for (const f of params.filters) {
          if (!(rows[0].cols ?? []).includes(f.column)) {
            throw raise(`invalid column for filter ${f.column}`);
          }
          if (f.op === 'in' && f.values.length > 100) {
            throw raise('too many values for `in` filter. Maximum 100');
          }
        }
        const rel = `${quoteIdent(t.schemaname)}.${quoteIdent(t.tablename)}`;
        await db.query(`select ${filter} from (select null::${rel} as spool_r) x`); // casts the values
        made.push({
          ...carried,
          id: this.nextId++,
          relid: Number(t.relid),
          table: [t.schemaname, t.tablename].map((n) => n.replace(/[\\,.* ]/g, '\\$&')).join('.'),
          role,
          claims,
          action: params.action,
          select: params.select ?? undefined,
          filter,
        });
      }
      return made;
    } catch (err) {
      if (err instanceof SubscriptionError) throw err;
      throw new SubscriptionError(
        `${unable} An exception happened so please check your connect parameters: [${logged}]. Exception: ${
          postgrexMessage(err)
        }`,
      );
    }
  }

  /** Creates the slot and starts polling, once; concurrent callers share the start. */
  ensureRunning() {
    if (this.closed) return Promise.reject(new SubscriptionError('Realtime is shutting down'));
    if (this.client) return Promise.resolve();
    this.starting ??= this.start().finally(() => (this.starting = null));
    return this.starting;
  }

  async start() {
    const client = new pg.Client({
      ...this.options.connection,
      application_name: 'spool-realtime',
      // to_jsonb renders in this session: fix how values come out.
      options:
        '-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=1',
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
    const slot = `${SLOT_PREFIX}${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
    try {
      await dropStaleSlots(client);
      await client.query(
        `select pg_catalog.pg_create_logical_replication_slot($1, 'wal2json', true)`,
        [slot],
      );
      await client.query(SETUP_SQL);
    } catch (err) {
      await client.end().catch(() => {});
      throw new SubscriptionError(`Realtime could not start replication: ${postgrexMessage(err)}`);
    }
    Object.assign(this, { client, slot, lastActivity: Date.now() });
    this.log({ level: 'info', msg: 'realtime replication started', slot });
    this.loop(client);
  }

  async loop(client) {
    const { pollMs = 25, idlePollMs = 50 } = this.options;
    let failures = 0;
    while (this.client === client) {
      let got = 0;
      this.poll = this.pollOnce(client);
      try {
        got = await this.poll;
        failures = 0;
      } catch (err) {
        if (this.client !== client) break;
        this.log({ level: 'error', msg: 'realtime replication poll failed', error: err.message });
        if (++failures >= 5 || client._ending || client._connectionError) {
          // The connection (and with it the temporary slot) is gone: start over.
          this.client = null;
          await client.end().catch(() => {});
          if (this.subs.size > 0) {
            setTimeout(() => this.ensureRunning().catch(() => {}), 500).unref?.();
          }
          return;
        }
      }
      if (got >= MAX_CHANGES_PER_POLL) continue;
      if (got > 0) this.lastActivity = Date.now();
      await new Promise((r) =>
        setTimeout(r, Date.now() - this.lastActivity < 2000 ? pollMs : idlePollMs)
      );
    }
  }

  /** One poll: the changes since the last one, checked and built in SQL; returns their count. */
  async pollOnce(client) {
    this.stats.polls++;
    if (this.subs.size === 0) {
      await client.query(
        'select pg_catalog.pg_replication_slot_advance($1, pg_catalog.pg_current_wal_flush_lsn())',
        [this.slot],
      );
      return 0;
    }
    const subs = [...this.subs.values()];
    this.subsJson ??= JSON.stringify(
      subs.map(({ id, relid, role, claims, action, select, filter }) => ({
        id,
        relid,
        role,
        claims,
        action,
        select,
        filter,
      })),
    );
    const { rows } = await client.query(
      `with w as materialized (
         select data from pg_catalog.pg_logical_slot_get_changes($1, null, $2, 'format-version', '2',
           'include-pk', '1', 'include-timestamp', '1', 'include-transaction', '0',
           'actions', 'insert,update,delete', 'add-tables', $3))
       select count(*)::int as n, null::jsonb as data, null::int[] as ids from w
       union all
       select null, r.data, r.ids from w, pg_temp.spool_apply_rls(w.data::jsonb, $4::jsonb, $5) r`,
      [
        this.slot,
        MAX_CHANGES_PER_POLL,
        [...new Set(subs.map((s) => s.table))].join(','),
        this.subsJson,
        MAX_RECORD_BYTES,
      ],
    );
    const n = rows[0].n;
    this.stats.changes += n;
    const out = rows.slice(1).map((r) => ({
      data: r.data,
      subs: r.ids.map((id) => this.subs.get(id)).filter(Boolean),
    }));
    if (out.length) this.options.onChange(out);
    return n;
  }

  async stop() {
    await this.starting?.catch(() => {});
    const { client, slot } = this;
    if (!client) return;
    this.client = null;
    await this.poll.catch(() => {});
    await client.query('select pg_catalog.pg_drop_replication_slot($1)', [slot]).catch(() => {});
    await client.end().catch(() => {});
    this.log({ level: 'info', msg: 'realtime replication stopped', slot });
  }

  async close() {
    this.closed = true;
    clearTimeout(this.stopTimer);
    this.subs.clear();
    await this.stop();
  }
}
