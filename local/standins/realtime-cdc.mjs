// Change capture for the Realtime stand-in (realtime.mjs) as Supabase Realtime's postgres_cdc_rls
// does it (realtime.list_changes, apply_rls): a logical slot read with wal2json, each change
// checked per subscriber in SQL.
//
//   slot      a TEMPORARY wal2json slot (it dies with its session), made for the first
//             subscription, dropped 10 s after the last; polled for the subscribed tables only. If a
//             poll fails, replication ends with every subscription (onLost): realtime.mjs errors
//             their channels, and their rejoins start it again.
//   checks    per poll, ONE query over the batch in a second session (pg_temp.spool_apply_rls): per
//             table and distinct role + claims of the subscribers, as that role, every subscriber's
//             filter on the row and (INSERT/UPDATE on an RLS table) that the role sees the row.
//             DELETE bypasses RLS; its filters see the replica identity. Records as apply_rls
//             builds them: to_jsonb values of the columns the role may SELECT, unchanged TOAST
//             values from the identity, "Error 400" (no primary key), "Error 401" (primary key
//             not selectable), "Error 413" over 1 MB (values up to 64 bytes kept); the DELETE of
//             an RLS table shows only the primary key.
//   filters   postgrest-filter.mjs's grammar (`col=[not.]op.value`, comma = AND) compiled to SQL
//             over the WAL row, checked at subscribe time as subscription_check_filters does
//             (columns the role may select, values cast to the column, at most 100 for `in`).

import crypto from 'node:crypto';
import pg from 'pg';
import { compile, FilterError, parse, quoteIdent, splitTopLevel } from './postgrest-filter.mjs';

const MAX_CHANGES_PER_POLL = 2000;
const MAX_RECORD_BYTES = 1024 * 1024; // Realtime's poll_max_record_bytes

// Made in the checking session: the row literal "(v1,...)" of `attrs` from {column: text} (absent:
// NULL), and realtime.apply_rls over a batch of wal2json changes for the subscriptions as JSON:
// [{id, relid, role, claims, action, filter (SQL over (x.spool_r))}].
const SETUP_SQL = String.raw`
create function pg_temp.spool_row(attrs text[], vals jsonb) returns text language sql immutable as $$
  select '(' || string_agg(coalesce('"' || replace(replace(vals ->> n, '\', '\\'), '"', '\"') || '"', ''), ',' order by o)
         || ')' from unnest(attrs) with ordinality a(n, o) $$;
create function pg_temp.spool_apply_rls(changes jsonb, subs jsonb, max_bytes int)
  returns table (data jsonb, ids int[]) language plpgsql as $$
declare
  chs jsonb; e record; g record; got jsonb; pk text[]; vis jsonb := '{}'; -- change index -> ids seeing it
  vals jsonb := '{}'; -- change index -> {new, old}: the row and the identity as to_jsonb renders them
  cols jsonb := '{}'; -- entity|role -> {columns, names, error} for that role's subscribers
begin
  perform set_config('role', null, true);
  -- Each change with its values (text) and row literals: rt, the row the filters see (the new
  -- row, unchanged TOAST values from the identity; on DELETE the identity), and ot, the identity.
  select jsonb_agg(to_jsonb(x) - 'attrs' || jsonb_build_object(
           'rt', pg_temp.spool_row(x.attrs, case when x.act = 'DELETE' then x.ov else x.ov || x.nv end),
           'ot', case when x.act <> 'INSERT' then pg_temp.spool_row(x.attrs, x.ov) end) order by x.i) into chs
    from (select j.i, m.ent, m.rls, m.attrs, w ->> 'schema' as schema, w ->> 'table' as tbl,
                 w ->> 'timestamp' as ts, octet_length(w::text) > max_bytes as too_large,
                 array(select p ->> 'name' from jsonb_array_elements(w -> 'pk') p) as pk,
                 case w ->> 'action' when 'I' then 'INSERT' when 'U' then 'UPDATE' else 'DELETE' end as act,
                 coalesce((select jsonb_object_agg(v ->> 'name', (v -> 'value') #>> '{}')
                             from jsonb_array_elements(w -> 'columns') v), '{}') as nv,
                 coalesce((select jsonb_object_agg(v ->> 'name', (v -> 'value') #>> '{}')
                             from jsonb_array_elements(w -> 'identity') v), '{}') as ov
            from jsonb_array_elements(changes) with ordinality j(w, i)
            join (select t.s, t.t, r.oid as ent, r.relrowsecurity as rls,
                         array(select a.attname::text from pg_catalog.pg_attribute a
                                where a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as attrs
                    from (select distinct w ->> 'schema' as s, w ->> 'table' as t from jsonb_array_elements(changes) w) t
                    join pg_catalog.pg_class r on r.oid = pg_catalog.format('%I.%I', t.s, t.t)::regclass) m
              on m.s = w ->> 'schema' and m.t = w ->> 'table') x;
  -- Per table: values as to_jsonb renders them; per distinct role and claims, the columns the role
  -- gets (none: "Error 400" without a primary key, "Error 401" if it may not select it), then in
  -- one statement as that role, which subscribers' filters pass and (INSERT/UPDATE with RLS)
  -- whether the role sees the row by its primary key.
  for e in
    select (v ->> 'ent')::oid::regclass as ent, bool_or((v ->> 'rls')::boolean) as rls, (array_agg(v -> 'pk'))[1] as pk,
           array_agg((v ->> 'i')::int) as idx, array_agg(v ->> 'act') as acts,
           array_agg(v ->> 'rt') as rts, array_agg(v ->> 'ot') as ots
      from jsonb_array_elements(chs) v group by 1
  loop
    pk := array(select jsonb_array_elements_text(e.pk));
    execute format('select jsonb_object_agg(u.i, jsonb_build_object(''new'', to_jsonb(u.r::%1$s), ''old'', to_jsonb(u.o::%1$s)))
                      from unnest($1::int[], $2::text[], $3::text[]) u(i, r, o)', e.ent)
      into got using e.idx, e.rts, e.ots;
    vals := vals || got;
    for g in
      select s ->> 'role' as role, s -> 'claims' as claims,
             string_agg(format('case when %L in (''*'', u.a) and %s then %s end', s ->> 'action', s ->> 'filter',
                               s ->> 'id'), ',') as tests
        from jsonb_array_elements(subs) s where (s ->> 'relid')::oid = e.ent group by 1, 2
    loop
      begin
        got := (select coalesce(jsonb_agg(jsonb_build_object('name', a.attname, 'type', t.typname) order by a.attnum), '[]')
                  from pg_catalog.pg_attribute a join pg_catalog.pg_type t on t.oid = a.atttypid
                 where a.attrelid = e.ent and a.attnum > 0 and not a.attisdropped
                   and has_column_privilege(g.role, e.ent, a.attnum, 'SELECT'));
        cols := cols || jsonb_build_object(concat_ws('|', e.ent::oid, g.role), jsonb_build_object(
          'columns', got, 'names', jsonb_path_query_array(got, '$[*].name'),
          'error', case when pk = '{}' then 'Error 400: Bad Request, no primary key'
                        when exists (select from unnest(pk) k where not has_column_privilege(g.role, e.ent, k, 'SELECT'))
                        then 'Error 401: Unauthorized' end));
        perform set_config('role', g.role, true), set_config('request.jwt.claims', g.claims::text, true);
        execute format('select jsonb_object_agg(u.i, array_remove(array[%s]::int[], null))
                          from unnest($1::int[], $2::text[], $3::text[]) u(i, a, r),
                               lateral (select u.r::%s as spool_r) x where u.a = ''DELETE'' or %s',
                       g.tests, e.ent, case when cols #>> array[concat_ws('|', e.ent::oid, g.role), 'error'] is not null
                         then 'false' when not e.rls then 'true'
                         else format('exists (select 1 from %s t where %s)', e.ent,
                                     (select string_agg(format('t.%I = (x.spool_r).%I', k, k), ' and ') from unnest(pk) k)) end)
          into got using e.idx, e.acts, e.rts;
        perform set_config('role', null, true);
        vis := vis || coalesce((select jsonb_object_agg(k, coalesce(vis -> k, '[]') || v) from jsonb_each(got) t(k, v)), '{}');
      exception when others then
        raise warning 'spool realtime: the check as % failed: %', g.role, sqlerrm;
      end;
    end loop;
  end loop;
  -- In commit order, one record per change and distinct role.
  return query
  select jsonb_build_object('schema', ch.schema, 'table', ch.tbl, 'type', ch.act,
           'columns', case when gc.error then '[]' else gc.v -> 'columns' end,
           'commit_timestamp', case when not gc.error
             then to_char(ch.ts::timestamptz at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') end,
           'errors', case when gc.error then jsonb_build_array(gc.v ->> 'error')
                          when ch.too_large then '["Error 413: Payload Too Large"]' end)
         || case when ch.act = 'DELETE' then '{}' else jsonb_build_object('record', (
              select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(vals -> ch.i::text -> 'new')
               where not gc.error and gc.v -> 'names' ? key and (ch.nv ? key or ch.ov ? key)
                 and (not ch.too_large or octet_length(value::text) <= 64))) end
         || case when ch.act = 'INSERT' then '{}' else jsonb_build_object('old_record', (
              select coalesce(jsonb_object_agg(key, value), '{}') from jsonb_each(vals -> ch.i::text -> 'old')
               where not gc.error and gc.v -> 'names' ? key and ch.ov ? key
                 and (not ch.too_large or octet_length(value::text) <= 64)
                 and (ch.act = 'UPDATE' or not ch.rls or ch.pk ? key))) end,
         case when gc.error then gr.members else gc.seen end
    from jsonb_to_recordset(chs) as ch(i int, ent oid, act text, schema text, tbl text, ts text, too_large boolean,
                                       rls boolean, pk jsonb, nv jsonb, ov jsonb)
    cross join lateral (
      select s ->> 'role' as role, array_agg((s ->> 'id')::int) as members
        from jsonb_array_elements(subs) s
       where (s ->> 'relid')::oid = ch.ent and s ->> 'action' in ('*', ch.act) group by 1) gr
    cross join lateral (
      select cols -> concat_ws('|', ch.ent, gr.role) as v,
             ch.act <> 'DELETE' and cols -> concat_ws('|', ch.ent, gr.role) ->> 'error' is not null as error,
             array(select unnest(gr.members) intersect
                   select jsonb_array_elements_text(vis -> ch.i::text)::int) as seen) gc
   where gc.error or gc.seen <> '{}'
   order by ch.i;
  perform set_config('role', null, true);
end
$$;`;

/** Realtime refuses the subscription's parameters; `message` is what it pushes as the system error. */
export class SubscriptionError extends Error {}

const inspect = (s) => JSON.stringify(s);
const refusal = (message) => new SubscriptionError(message);

/**
 * One postgres_changes binding ({event, schema, table, filter}) as Realtime's
 * Subscriptions.parse_subscription_params reads it: { action, schema, table, filters }, or
 * SubscriptionError with Realtime's message (`select`, which Spool does not use, is refused).
 */
export function parseSubscriptionParams(params) {
  const p = params !== null && typeof params === 'object' ? params : {};
  const has = (k) => Object.hasOwn(p, k);
  const str = (k) => typeof p[k] === 'string';
  const up = typeof p.event === 'string' ? p.event.toUpperCase() : '*';
  const action = ['INSERT', 'UPDATE', 'DELETE'].includes(up) ? up : '*';
  if (has('select')) throw refusal('Error parsing `select` params: column selection is not supported here');
  let [schema, table, filters] = [p.schema, p.table, []];
  if (str('schema') && str('table') && str('filter')) filters = parseFilters(p.filter);
  else if (str('schema') && !has('filter') && (str('table') || !has('table'))) table ??= '*';
  else if (str('table') && !has('schema') && !has('filter')) schema = 'public';
  else {
    const shown = Object.entries(p).map(([k, v]) => `${inspect(k)} => ${inspect(v)}`).join(', ');
    const e = 'Please provide at least a `schema` or `table` to subscribe to';
    throw refusal(`No subscription params provided. ${e}: %{${shown}}`);
  }
  return { action, schema, table, filters };
}

/** `col=[not.]op.value,...` (comma = AND) as postgrest-filter.mjs nodes, refused as Realtime does. */
function parseFilters(filter) {
  if (filter.trim() === '') return [];
  const fail = (what) => refusal(`Error parsing \`filter\` params: ${what}`);
  return splitTopLevel(filter.trim()).map((segment) => {
    const seg = segment.trim();
    if (seg === '') throw fail('filter must not contain empty segments (check for extra commas)');
    const eq = seg.indexOf('=');
    if (eq < 0) throw fail(`[${inspect(seg)}]`);
    try {
      return parse(seg.slice(0, eq), seg.slice(eq + 1), { quoted: true });
    } catch (err) {
      if (!(err instanceof FilterError)) throw err;
      if (err.parts[0] === 'in') throw fail('`in` filter value must be wrapped by parentheses');
      throw fail(`[${err.parts.map(inspect).join(', ')}]`);
    }
  });
}

/** Realtime's log form of a binding, quoted in its error messages. */
function paramsToLog({ action, schema, table, filters }) {
  const f = filters.map(({ column, op, value, values, negate }) =>
    `{${inspect(column)}, ${inspect(op)}, ${inspect(values ? `{${values}}` : value)}, ${negate}}`);
  return `event: ${action}, schema: ${schema}, table: ${table}, filters: [${f.join(', ')}], select: nil`;
}

/** A Postgres error as Postgrex's Exception.message renders it (Realtime quotes it verbatim). */
function postgrexMessage(err) {
  const names = { P0001: 'raise_exception', '22P02': 'invalid_text_representation', 22007: 'invalid_datetime_format',
    22003: 'numeric_value_out_of_range', 42704: 'undefined_object', 42804: 'datatype_mismatch' };
  if (!err?.code) return String(err?.message ?? err);
  return `ERROR ${err.code}${names[err.code] ? ` (${names[err.code]})` : ''} ${err.message}`;
}

const esc = (name) => name.replace(/[\\,.* ]/g, '\\$&');
const raise = (message) => Object.assign(new Error(message), { code: 'P0001' });
const literal = (v) => `'${String(v).replaceAll("'", "''")}'`;

/** The filters as SQL over (x.spool_r), their values inlined as literals (apply_rls runs them). */
function filterSql(filters) {
  const { sql, params } = compile(filters, { column: (c) => `(x.spool_r).${quoteIdent(c)}` });
  const array = (v) => `{${v.map((x) => `"${x.replace(/[\\"]/g, '\\$&')}"`)}}`;
  const value = (v) => literal(Array.isArray(v) ? array(v) : v);
  return sql.replace(/"(?:[^"]|"")*"|\$(\d+)/g, (m, n) => (n ? value(params[n - 1]) : m));
}

/**
 * One slot, many subscriptions. options: { dbPort, adminPool, log, onChange(data, subs),
 * onLost(subs, err) (replication failed and ended these subscriptions) }.
 */
export class ChangeFeed {
  constructor(options) {
    Object.assign(this, { options, log: options.log, subs: new Map(), nextId: 1, poll: null });
  }

  /**
   * Validates and registers one channel's bindings as a unit, as Realtime's Subscriptions.create
   * (all or none): specs [{ params (parsed), claims, ...carried }]. Resolves with the
   * subscriptions once they are live; throws SubscriptionError, or any error starting replication.
   */
  async subscribe(specs) {
    const made = [];
    for (const spec of specs) made.push(...(await this.prepare(spec)));
    if (this.closed) throw new Error('Realtime is shutting down');
    this.starting ??= this.client ? null : this.start().finally(() => (this.starting = null));
    await this.starting;
    if (!this.client) throw new Error('Realtime replication stopped meanwhile');
    for (const sub of made) this.subs.set(sub.id, sub);
    this.changed();
    await this.poll?.catch(() => {}); // a poll under way read its changes without these
    return made;
  }

  unsubscribe(subs) {
    for (const sub of subs) this.subs.delete(sub.id);
    this.changed();
  }

  /** The subscriptions changed; the slot goes 10 s after the last one. */
  changed() {
    this.subsJson = null;
    clearTimeout(this.stopTimer);
    if (this.subs.size > 0 || !this.client) return;
    this.stopTimer = setTimeout(() => this.subs.size === 0 && this.stop(), 10_000);
    this.stopTimer.unref?.();
  }

  /** realtime.subscription_check_filters, per published table the binding names. */
  async prepare({ params, claims, ...carried }) {
    const role = typeof claims?.role === 'string' ? claims.role : '';
    const db = this.options.adminPool;
    const unable = `Unable to subscribe to changes with given parameters.`;
    try {
      // Realtime's own query (LIKE patterns: '*' means any, '_' any character), with the columns
      // the role may select.
      const { rows: tables } = await db.query(
        `select r.oid::int8 as relid, t.schemaname, t.tablename,
                array(select a.attname::text from pg_catalog.pg_attribute a
                       where a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped
                         and pg_catalog.has_column_privilege($3, r.oid, a.attnum, 'SELECT')) as cols
           from pg_catalog.pg_publication_tables t
           join pg_catalog.pg_class r on r.oid = pg_catalog.format('%I.%I', t.schemaname, t.tablename)::regclass
          where t.pubname = 'supabase_realtime'
            and t.schemaname like (case $1 when '*' then '%' else $1 end) escape ''
            and t.tablename like (case $2 when '*' then '%' else $2 end) escape ''`,
        [params.schema, params.table, role],
      );
      if (tables.length === 0) {
        const e = 'Please check Realtime is enabled for the given connect parameters';
        throw new SubscriptionError(`${unable} ${e}: [${paramsToLog(params)}]`);
      }
      const filter = filterSql(params.filters);
      const made = [];
      for (const t of tables) {
        for (const f of params.filters) {
          if (!t.cols.includes(f.column)) throw raise(`invalid column for filter ${f.column}`);
          if (f.values?.length > 100) throw raise('too many values for `in` filter. Maximum 100');
        }
        const rel = `${quoteIdent(t.schemaname)}.${quoteIdent(t.tablename)}`;
        await db.query(`select ${filter} from (select null::${rel} as spool_r) x`); // casts values
        const table = `${esc(t.schemaname)}.${esc(t.tablename)}`; // as wal2json's add-tables
        const sub = { ...carried, id: this.nextId++, relid: Number(t.relid), table, role, claims };
        made.push({ ...sub, action: params.action, filter });
      }
      return made;
    } catch (err) {
      if (err instanceof SubscriptionError) throw err;
      const e = 'An exception happened so please check your connect parameters';
      throw new SubscriptionError(
        `${unable} ${e}: [${paramsToLog(params)}]. Exception: ${postgrexMessage(err)}`,
      );
    }
  }

  /** A superuser session rendering values as Realtime's does (TimeZone UTC, ISO dates). */
  async connect(name) {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: this.options.dbPort,
      database: 'postgres',
      user: 'supabase_admin',
      application_name: name,
      options: '-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres',
    });
    client.on('error', (err) => this.log({ level: 'warn', msg: `${name}: ${err.message}` }));
    await client.connect();
    return client;
  }

  /**
   * Makes the slot and starts polling. Two sessions: decoding resets its session's caches after
   * every call, so the checks run in a session of their own, where plans and caches stay warm.
   */
  async start() {
    const slot = `spool_realtime_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
    const sessions = [];
    try {
      for (const n of ['slot', 'rls']) sessions.push(await this.connect(`spool-realtime-${n}`));
      const make = `select pg_create_logical_replication_slot($1, 'wal2json', true)`;
      await sessions[0].query(make, [slot]);
      await sessions[1].query(SETUP_SQL);
    } catch (err) {
      await Promise.all(sessions.map((s) => s.end())).catch(() => {});
      throw new Error(`Realtime could not start replication: ${postgrexMessage(err)}`);
    }
    const [client, checker] = sessions;
    Object.assign(this, { client, checker, slot, lastActivity: Date.now() });
    this.log({ level: 'info', msg: 'realtime replication started', slot });
    this.loop(client);
  }

  /** Polls every 25 ms after recent activity, 50 ms when idle, at once while changes keep coming (Realtime: 100 ms). */
  async loop(client) {
    while (this.client === client) {
      let got;
      try {
        got = await (this.poll = this.pollOnce());
      } catch (err) {
        // Its changes are consumed: end replication and the subscriptions, whose clients rejoin.
        if (this.client !== client) return;
        this.log({ level: 'error', msg: 'realtime replication poll failed', error: err.message });
        const subs = [...this.subs.values()];
        this.subs.clear();
        await this.stop();
        return this.options.onLost(subs, err);
      }
      if (got >= MAX_CHANGES_PER_POLL) continue;
      if (got > 0) this.lastActivity = Date.now();
      const idle = Date.now() - this.lastActivity > 2000;
      await new Promise((r) => setTimeout(r, idle ? 50 : 25));
    }
  }

  /** One poll: the changes since the last, checked and built in one query; returns their count. */
  async pollOnce() {
    const { client, slot } = this;
    if (this.subs.size === 0) {
      await client.query('select pg_replication_slot_advance($1, pg_current_wal_flush_lsn())', [slot]);
      return 0;
    }
    const subs = [...this.subs.values()];
    const subsJson = this.subsJson ??= JSON.stringify(subs.map(({ channel: _, ...sub }) => sub));
    const tables = [...new Set(subs.map((s) => s.table))].join(',');
    const { rows } = await client.query({
      text: `select data from pg_logical_slot_get_changes($1, null, $2, 'format-version', '2',
               'include-pk', '1', 'include-timestamp', '1', 'include-transaction', '0',
               'actions', 'insert,update,delete', 'add-tables', $3)`,
      values: [slot, MAX_CHANGES_PER_POLL, tables],
      rowMode: 'array',
    });
    if (rows.length === 0) return 0;
    const { rows: out } = await this.checker.query(
      'select * from pg_temp.spool_apply_rls($1::jsonb, $2::jsonb, $3)',
      [`[${rows.map((r) => r[0]).join(',')}]`, subsJson, MAX_RECORD_BYTES],
    );
    for (const { data, ids } of out) {
      this.options.onChange(data, ids.map((id) => this.subs.get(id)).filter(Boolean));
    }
    return rows.length;
  }

  async stop() {
    const { client, checker, slot } = this;
    if (!client) return;
    this.client = null;
    await this.poll?.catch(() => {});
    await client.query('select pg_drop_replication_slot($1)', [slot]).catch(() => {});
    await Promise.all([client.end(), checker.end()]).catch(() => {});
    this.log({ level: 'info', msg: 'realtime replication stopped', slot });
  }

  async close() {
    this.closed = true;
    clearTimeout(this.stopTimer);
    this.subs.clear();
    await this.starting?.catch(() => {});
    await this.stop();
  }
}
