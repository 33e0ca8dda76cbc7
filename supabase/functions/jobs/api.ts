// The client API over a user's jobs. Routes (the path after /functions/v1):
//
//   GET  /jobs?status=&type=&from=&to=&q=&parent=&limit=&cursor=
//                                             my jobs, newest first, a page at a time (list_jobs:
//                                             keyset cursor); status and type are comma lists,
//                                             from/to an ISO date-time range of created_at (to
//                                             exclusive), q a search of the input's file name or
//                                             prompt, parent=<id> keeps a flow's children
//   POST /jobs/bulk {action, filter, dry_run} cancel_jobs / retry_jobs as me: action "cancel" or
//                                             "retry", filter the list's parameters (status, type,
//                                             from, to, q, parent) -> {matched, changed, refused,
//                                             reasons}; dry_run: only count (for a confirmation)
//   GET  /jobs/<id>                           one of my jobs, with signed URLs of its outputs
//   POST /jobs/<id>/cancel                    cancel_job as me
//   POST /jobs/<id>/retry                     retry_job as me: 409 not_retryable for a permanent
//                                             failure (unless its input file was replaced since),
//                                             429 quota_rate / quota_active_jobs like a new job
//                                             (see job-view.ts retryRefusal)
//   GET  /jobs/kinds                          the job kinds a user may start: labels, input
//                                             JSON Schema, file rules, provider availability
//                                             (_jobs/capabilities.ts)
//   GET  /jobs/health                         get_queue_stats and job_type_stats: secret key or
//                                             an admin user
//   The operations console, for the secret key or an admin user (as health):
//   GET  /jobs/admin?minutes=60               {series: job_series, diagnosis: queue_diagnosis
//                                             with the providers this function knows merged in,
//                                             job_types: job_type_stats, stats: get_queue_stats}
//   GET  /jobs/admin/jobs?...&user=<id>       every user's jobs (list_jobs as service_role), the
//                                             list's filters plus one owner; rows carry user_id
//   POST /jobs/admin/bulk {action, filter}    cancel_jobs / retry_jobs over every user's jobs
//                                             (filter.user: one owner's)
//
// Reads and cancel/retry run as the caller (their JWT, so RLS and auth.uid() decide); only the
// health check and the console use the secret key, after checking who asks. Errors use the one
// error shape.
import { type Caller, requireCaller, requireUser } from '../_shared/auth.ts';
import { adminClient, type Db, userClient } from '../_shared/clients.ts';
import type { SupabaseEnv } from '../_shared/env.ts';
import {
  fromApiError,
  handle,
  type Handler,
  HttpError,
  json,
  readJsonObject,
  unstorableTextPath,
} from '../_shared/http.ts';
import { capabilitiesOf, type KindCapabilities } from '../_jobs/capabilities.ts';
import { JOB_STATES, type JobOutput, type JobState, type OutputFile } from '../_jobs/kind.ts';
import { KINDS } from '../_jobs/kinds/index.ts';
import type { ProviderConfig } from '../_jobs/providers.ts';
import { PUBLIC_JOB_COLUMNS, type PublicJob, toPublicJob } from '../_shared/job-view.ts';

export const OUTPUTS_BUCKET = 'outputs';
/** How long a signed download URL stays valid. */
export const SIGNED_URL_SECONDS = 3600;
export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 100;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TYPE = /^[a-z][a-z0-9-]{0,62}$/;
/** Timestamps as PostgREST writes timestamptz in JSON: 2026-11-22T12:42:05.123456+00:00. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}(:\d{2})?)$/;

// Routing ----------------------------------------------------------------------------------------

export type Route =
  | { name: 'list' }
  | { name: 'bulk' }
  | { name: 'kinds' }
  | { name: 'health' }
  | { name: 'console' }
  | { name: 'admin-list' }
  | { name: 'admin-bulk' }
  | { name: 'get'; id: string }
  | { name: 'cancel' | 'retry'; id: string };

const METHODS: Record<Route['name'], string> = {
  list: 'GET',
  bulk: 'POST',
  kinds: 'GET',
  health: 'GET',
  console: 'GET',
  'admin-list': 'GET',
  'admin-bulk': 'POST',
  get: 'GET',
  cancel: 'POST',
  retry: 'POST',
};

/** The fixed paths under /jobs (anything else of one segment is a job id). */
const FIXED: Record<string, Route> = {
  'health': { name: 'health' },
  'kinds': { name: 'kinds' },
  'bulk': { name: 'bulk' },
  'admin': { name: 'console' },
  'admin/jobs': { name: 'admin-list' },
  'admin/bulk': { name: 'admin-bulk' },
};

/**
 * Matches a request path to a route: 404 not_found for other paths, 400 invalid_id for a job id
 * that is not a UUID, 405 for the wrong method. The path may or may not keep /functions/v1.
 */
export function matchRoute(method: string, pathname: string): Route {
  const match = /^(?:\/functions\/v1)?\/jobs(?:\/(.*))?$/.exec(pathname);
  if (!match) throw new HttpError(404, 'not_found', `no such endpoint: ${pathname}`);
  const parts = (match[1] ?? '').split('/').filter((p) => p !== '');
  let route: Route | null = null;
  if (parts.length === 0) route = { name: 'list' };
  else if (Object.hasOwn(FIXED, parts.join('/'))) route = FIXED[parts.join('/')];
  else if (parts[0] === 'admin') route = null;
  else if (parts.length === 1) route = { name: 'get', id: parts[0] };
  else if (parts.length === 2 && (parts[1] === 'cancel' || parts[1] === 'retry')) {
    route = { name: parts[1], id: parts[0] };
  }
  if (!route) throw new HttpError(404, 'not_found', `no such endpoint: ${pathname}`);
  if ('id' in route && !UUID.test(route.id)) {
    throw new HttpError(400, 'invalid_id', 'a job id is a UUID');
  }
  const allowed = METHODS[route.name];
  if (method !== allowed) {
    throw new HttpError(405, 'method_not_allowed', `use ${allowed}`, undefined, { allow: allowed });
  }
  return route;
}

// Listing ----------------------------------------------------------------------------------------

export interface Cursor {
  createdAt: string;
  id: string;
}

/** Which jobs: the filter of the list, of the bulk actions and of the console (list_jobs). */
export interface JobFilter {
  statuses: JobState[] | null;
  types: string[] | null;
  /** created_at from (inclusive) and before (exclusive), ISO date-times, or null. */
  from: string | null;
  to: string | null;
  /** A search of the input's file name or prompt (spool.search_text), or null. */
  search: string | null;
  /** Only the children of this flow parent (jobs.parent_id), or null for every job. */
  parent: string | null;
  /** One owner's jobs: the console only (allowUser), else always null. */
  user: string | null;
}

export interface ListQuery extends JobFilter {
  limit: number;
  cursor: Cursor | null;
}

/** The longest search the list accepts (list_jobs' own bound). */
const MAX_SEARCH = 200;
/** ISO 8601 date-times as Date.parse reads them, with a zone (or Z). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$/;

/** An opaque page cursor: the (created_at, id) of the last job on the page. */
export function encodeCursor(c: Cursor): string {
  const bytes = new TextEncoder().encode(JSON.stringify([c.createdAt, c.id]));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(
    /=+$/,
    '',
  );
}

/** Decodes a cursor; null when it is not one this API made. */
export function decodeCursor(text: string): Cursor | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return null;
  try {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const value = JSON.parse(
      new TextDecoder().decode(Uint8Array.from(raw, (ch) => ch.charCodeAt(0))),
    );
    if (
      Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' &&
      typeof value[1] === 'string' && TIMESTAMP.test(value[0]) && UUID.test(value[1]) &&
      !Number.isNaN(Date.parse(value[0]))
    ) {
      return { createdAt: value[0], id: value[1] };
    }
  } catch {
    // fall through: not a cursor
  }
  return null;
}

/** The filter's parameters (forceFunctionRegion is added by supabase-js regions). */
const FILTER_PARAMS = ['status', 'type', 'from', 'to', 'q', 'parent'];
const LIST_PARAMS = new Set([...FILTER_PARAMS, 'limit', 'cursor', 'forceFunctionRegion']);

type Problem = { param: string; message: string };

/**
 * Reads a job filter from `get` (a query string's or a JSON body's values, as strings): status
 * and type are comma-separated lists (any of them), from and to ISO date-times with a zone (to
 * exclusive, after from), q a search of 1..200 characters (blank: none), parent one job id, user
 * one user id (only when allowUser). Problems are pushed to `problems`.
 */
function readFilter(
  get: (name: string) => string | null,
  problems: Problem[],
  allowUser: boolean,
): JobFilter {
  const list = (name: string) => {
    const raw = get(name);
    if (raw === null) return null;
    return raw.split(',').map((v) => v.trim());
  };

  const statuses = list('status');
  for (const s of statuses ?? []) {
    if (!(JOB_STATES as readonly string[]).includes(s)) {
      problems.push({ param: 'status', message: `"${s}" is not one of ${JOB_STATES.join(', ')}` });
    }
  }
  const types = list('type');
  for (const t of types ?? []) {
    if (!TYPE.test(t)) problems.push({ param: 'type', message: `"${t}" is not a job type` });
  }
  const parent = get('parent');
  if (parent !== null && !UUID.test(parent)) {
    problems.push({ param: 'parent', message: 'a job id is a UUID' });
  }
  const user = allowUser ? get('user') : null;
  if (user !== null && !UUID.test(user)) {
    problems.push({ param: 'user', message: 'a user id is a UUID' });
  }
  const date = (name: 'from' | 'to') => {
    const raw = get(name);
    if (raw === null) return null;
    if (!DATE_TIME.test(raw) || Number.isNaN(Date.parse(raw))) {
      problems.push({
        param: name,
        message: 'an ISO date-time with a zone, e.g. 2026-12-03T00:00:00Z',
      });
      return null;
    }
    return new Date(Date.parse(raw)).toISOString();
  };
  const from = date('from');
  const to = date('to');
  if (from && to && Date.parse(to) <= Date.parse(from)) {
    problems.push({ param: 'to', message: 'must be after from' });
  }
  const rawSearch = get('q');
  const search = rawSearch === null || rawSearch.trim() === '' ? null : rawSearch.trim();
  if (search !== null && search.length > MAX_SEARCH) {
    problems.push({ param: 'q', message: `at most ${MAX_SEARCH} characters` });
  }
  // Postgres text holds no NUL and no lone surrogate (see unstorableTextPath).
  if (search !== null && unstorableTextPath(search) !== null) {
    problems.push({
      param: 'q',
      message: 'text must not contain NUL characters or unpaired surrogates',
    });
  }
  return {
    statuses: statuses ? [...new Set(statuses)] as JobState[] : null,
    types: types ? [...new Set(types)] : null,
    from,
    to,
    search,
    parent: parent === null ? null : parent.toLowerCase(),
    user: user === null ? null : user.toLowerCase(),
  };
}

/**
 * Validates the list's query string: the filter (readFilter: status, type, from, to, q, parent,
 * and user when allowUser, the console's), limit 1..100 (default 20), cursor a next_cursor from a
 * previous page. 400 invalid_query lists every problem.
 */
export function parseListQuery(params: URLSearchParams, { allowUser = false } = {}): ListQuery {
  const problems: Problem[] = [];
  const known = allowUser ? new Set([...LIST_PARAMS, 'user']) : LIST_PARAMS;
  for (const name of new Set(params.keys())) {
    if (!known.has(name)) problems.push({ param: name, message: 'unknown parameter' });
    else if (params.getAll(name).length > 1) {
      problems.push({ param: name, message: 'give it once (use commas for several values)' });
    }
  }
  const filter = readFilter((name) => params.get(name), problems, allowUser);
  let limit = DEFAULT_LIMIT;
  const rawLimit = params.get('limit');
  if (rawLimit !== null) {
    limit = /^\d{1,4}$/.test(rawLimit) ? Number(rawLimit) : NaN;
    if (!(limit >= 1 && limit <= MAX_LIMIT)) {
      problems.push({ param: 'limit', message: `must be an integer from 1 to ${MAX_LIMIT}` });
    }
  }
  let cursor: Cursor | null = null;
  const rawCursor = params.get('cursor');
  if (rawCursor !== null) {
    cursor = decodeCursor(rawCursor);
    if (!cursor) problems.push({ param: 'cursor', message: 'not a cursor from this API' });
  }
  if (problems.length > 0) {
    throw new HttpError(400, 'invalid_query', 'the query parameters are invalid', problems);
  }
  return { ...filter, limit, cursor };
}

export type BulkAction = 'cancel' | 'retry';

/**
 * Validates a bulk action's body: {"action": "cancel" | "retry", "filter": {...}} where the
 * filter holds the list's parameters (strings, or arrays of strings for status and type; user
 * only when allowUser). 400 invalid_body lists every problem.
 */
export function parseBulkBody(
  body: Record<string, unknown>,
  { allowUser = false } = {},
): { action: BulkAction; filter: JobFilter; dryRun: boolean } {
  const problems: Problem[] = [];
  for (const key of Object.keys(body)) {
    if (key !== 'action' && key !== 'filter' && key !== 'dry_run') {
      problems.push({ param: key, message: 'unknown field' });
    }
  }
  const dryRun = body.dry_run ?? false;
  if (typeof dryRun !== 'boolean') {
    problems.push({ param: 'dry_run', message: 'must be a boolean' });
  }
  const action = body.action;
  if (action !== 'cancel' && action !== 'retry') {
    problems.push({ param: 'action', message: 'must be "cancel" or "retry"' });
  }
  const raw = body.filter ?? {};
  let filter: JobFilter | null = null;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push({ param: 'filter', message: 'must be an object' });
  } else {
    const values = raw as Record<string, unknown>;
    const names = allowUser ? [...FILTER_PARAMS, 'user'] : FILTER_PARAMS;
    for (const key of Object.keys(values)) {
      if (!names.includes(key)) problems.push({ param: `filter.${key}`, message: 'unknown field' });
    }
    const get = (name: string): string | null => {
      const v = values[name];
      if (v === undefined || v === null) return null;
      if (
        Array.isArray(v) && (name === 'status' || name === 'type') && v.length > 0 &&
        v.every((x) => typeof x === 'string')
      ) return v.join(',');
      if (typeof v === 'string') return v;
      problems.push({ param: `filter.${name}`, message: 'must be a string' });
      return null;
    };
    const before = problems.length;
    filter = readFilter(get, problems, allowUser);
    for (const p of problems.slice(before)) {
      if (!p.param.startsWith('filter.')) p.param = `filter.${p.param}`;
    }
  }
  if (problems.length > 0 || !filter) {
    throw new HttpError(400, 'invalid_body', 'the request body is invalid', problems);
  }
  return { action: action as BulkAction, filter, dryRun: dryRun === true };
}

/** list_jobs' / cancel_jobs' / retry_jobs' arguments for a filter. */
function filterArgs(f: JobFilter) {
  return {
    p_statuses: f.statuses ?? undefined,
    p_types: f.types ?? undefined,
    p_created_from: f.from ?? undefined,
    p_created_before: f.to ?? undefined,
    p_search: f.search ?? undefined,
    p_parent_id: f.parent ?? undefined,
    p_user_id: f.user ?? undefined,
  };
}

/** A job in the console's list: the public view plus whose it is. */
/**
 * One page of jobs (list_jobs: keyset on (created_at, id), both descending) as the db's caller
 * sees them: a user their own, service_role everyone's. withOwner adds user_id to each job.
 */
async function listJobs(db: Db, query: ListQuery, withOwner = false) {
  const { data, error } = await db.rpc('list_jobs', {
    ...filterArgs(query),
    p_cursor_created_at: query.cursor?.createdAt,
    p_cursor_id: query.cursor?.id,
    p_limit: query.limit + 1,
  });
  if (error) throw fromApiError(error);
  const rows = (data ?? []) as (PublicJob & { user_id: string })[];
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    jobs: page.map((row) =>
      withOwner ? { ...toPublicJob(row), user_id: row.user_id } : toPublicJob(row)
    ),
    next_cursor: rows.length > query.limit && last
      ? encodeCursor({ createdAt: last.created_at, id: last.id })
      : null,
  };
}

export interface BulkResult {
  matched: number;
  changed: number;
  refused: Record<string, number>;
  reasons: Record<string, string>;
}

async function bulk(
  db: Db,
  { action, filter, dryRun }: { action: BulkAction; filter: JobFilter; dryRun: boolean },
): Promise<BulkResult> {
  const { data, error } = await db.rpc(action === 'cancel' ? 'cancel_jobs' : 'retry_jobs', {
    ...filterArgs(filter),
    p_dry_run: dryRun,
  });
  if (error) throw fromApiError(error);
  return data as unknown as BulkResult;
}

// One job ----------------------------------------------------------------------------------------

/** The output files a finished job lists (see OutputFile in _jobs/kind.ts); [] for anything else. */
export function outputFilesOf(output: unknown): OutputFile[] {
  const files = (output as Partial<JobOutput> | null)?.files;
  if (!Array.isArray(files)) return [];
  return files.filter((f): f is OutputFile =>
    typeof f === 'object' && f !== null && typeof (f as OutputFile).path === 'string'
  );
}

/**
 * The object path of an output inside the outputs bucket. Handlers record paths without the
 * bucket; a leading "outputs/" before the owner's folder is tolerated.
 */
export function outputObjectPath(path: string): string {
  return /^outputs\/[0-9a-f-]{36}\//i.test(path) ? path.slice('outputs/'.length) : path;
}

export interface SignedOutputFile extends OutputFile {
  /** A signed download URL valid for SIGNED_URL_SECONDS, or null if it could not be signed. */
  url: string | null;
  expires_at: string | null;
}

async function signOutputs(db: Db, job: PublicJob, now = Date.now()): Promise<SignedOutputFile[]> {
  if (job.status !== 'done') return [];
  const expiresAt = new Date(now + SIGNED_URL_SECONDS * 1000).toISOString();
  return await Promise.all(
    outputFilesOf(job.output).map(async (file) => {
      const { data, error } = await db.storage.from(OUTPUTS_BUCKET)
        .createSignedUrl(outputObjectPath(file.path), SIGNED_URL_SECONDS);
      if (error || !data) {
        console.error(JSON.stringify({
          level: 'warn',
          function: 'jobs',
          msg: 'could not sign an output',
          job_id: job.id,
          path: file.path,
          error: error?.message,
        }));
        return { ...file, url: null, expires_at: null };
      }
      return { ...file, url: data.signedUrl, expires_at: expiresAt };
    }),
  );
}

async function getJob(db: Db, id: string) {
  const { data, error } = await db.from('jobs').select(PUBLIC_JOB_COLUMNS).eq('id', id)
    .maybeSingle();
  if (error) throw fromApiError(error);
  if (!data) throw new HttpError(404, 'job_not_found', 'job not found');
  const job = toPublicJob(data as PublicJob);
  const files = await signOutputs(db, job);
  return { job, output_url: files[0]?.url ?? null, output_files: files };
}

async function changeJob(db: Db, fn: 'cancel_job' | 'retry_job', id: string) {
  const { data, error } = await db.rpc(fn, { p_id: id });
  if (error) throw fromApiError(error);
  return { job: toPublicJob(data) };
}

// Health -----------------------------------------------------------------------------------------

/** Whether a caller may read the queue's health: the secret key, or an admin user. */
export function mayReadHealth(caller: Caller): boolean {
  return caller.kind === 'secret' || caller.isAdmin;
}

async function health(env: SupabaseEnv, params: URLSearchParams) {
  const raw = params.get('window_seconds');
  let window: string | undefined;
  if (raw !== null) {
    const seconds = /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
    if (!(seconds >= 60 && seconds <= 30 * 86400)) {
      throw new HttpError(400, 'invalid_query', 'window_seconds must be from 60 to 2592000', [
        { param: 'window_seconds', message: 'must be an integer from 60 to 2592000' },
      ]);
    }
    window = `${seconds} seconds`;
  }
  const admin = adminClient(env);
  const [stats, types] = await Promise.all([
    admin.rpc('get_queue_stats', window ? { p_window: window } : {}),
    admin.rpc('job_type_stats'),
  ]);
  if (stats.error) throw fromApiError(stats.error);
  if (types.error) throw fromApiError(types.error);
  return { stats: stats.data, job_types: types.data };
}

// The operations console -------------------------------------------------------------------------

/** A reason the queue is held back (queue_diagnosis' reasons, and the providers' below). */
export interface StallReason {
  code: string;
  count: number;
  message: string;
  [k: string]: unknown;
}

interface Diagnosis {
  due_by_type: { type: string; due: number }[];
  waiting: { providers: { provider: string; count: number }[] };
  reasons: StallReason[];
  [k: string]: unknown;
}

/**
 * Adds what only this function knows to queue_diagnosis: due jobs of a kind whose provider is
 * not configured here (capabilitiesOf: they cannot run as they are), and jobs waiting for a
 * provider no kind is configured for (no callback or poll will come). Provider reasons come
 * first: they are the ones no wait cures.
 */
export function withProviderFacts(
  diagnosis: Diagnosis,
  kinds: readonly KindCapabilities[],
  providers: Pick<ProviderConfig, 'openai' | 'replicate'>,
): Diagnosis {
  const extra: StallReason[] = [];
  for (const { type, due } of diagnosis.due_by_type) {
    const kind = kinds.find((k) => k.type === type);
    if (kind && !kind.available && due > 0) {
      extra.push({
        code: 'provider_not_configured',
        count: due,
        type,
        message: `${kind.label}: ${due} due, but ${
          kind.unavailable?.message ?? 'its provider is not configured'
        }`,
      });
    }
  }
  for (const { provider, count } of diagnosis.waiting.providers) {
    const configured = provider === 'openai'
      ? providers.openai
      : provider === 'replicate'
      ? kinds.some((k) => providers.replicate(k.type))
      : true;
    if (!configured) {
      extra.push({
        code: 'provider_not_configured',
        count,
        provider,
        message:
          `${count} job(s) wait for ${provider}, which is not configured here: no poll will finish them`,
      });
    }
  }
  return { ...diagnosis, reasons: [...extra, ...diagnosis.reasons] };
}

function parseMinutes(params: URLSearchParams): number {
  for (const name of params.keys()) {
    if (name !== 'minutes' && name !== 'forceFunctionRegion') {
      throw new HttpError(400, 'invalid_query', 'the query parameters are invalid', [
        { param: name, message: 'unknown parameter' },
      ]);
    }
  }
  const raw = params.get('minutes');
  if (raw === null) return 60;
  const minutes = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(minutes >= 1 && minutes <= 1440)) {
    throw new HttpError(400, 'invalid_query', 'minutes must be from 1 to 1440', [
      { param: 'minutes', message: 'must be an integer from 1 to 1440' },
    ]);
  }
  return minutes;
}

async function consoleOverview(
  env: SupabaseEnv,
  params: URLSearchParams,
  kinds: readonly KindCapabilities[],
  providers: ProviderConfig,
) {
  const minutes = parseMinutes(params);
  const admin = adminClient(env);
  const [series, diagnosis, types, stats] = await Promise.all([
    admin.rpc('job_series', { p_minutes: minutes }),
    admin.rpc('queue_diagnosis'),
    admin.rpc('job_type_stats'),
    admin.rpc('get_queue_stats', { p_window: '60 seconds' }),
  ]);
  for (const r of [series, diagnosis, types, stats]) if (r.error) throw fromApiError(r.error);
  return {
    minutes,
    series: series.data,
    diagnosis: withProviderFacts(diagnosis.data as unknown as Diagnosis, kinds, providers),
    job_types: types.data,
    stats: stats.data,
  };
}

/** The console is the health check's audience: the secret key, or an admin user; 403 otherwise. */
async function requireConsole(req: Request, env: SupabaseEnv): Promise<Caller> {
  const caller = await requireCaller(req, env);
  if (!mayReadHealth(caller)) {
    throw new HttpError(
      403,
      'forbidden',
      'the operations console is for admins and the secret key',
    );
  }
  return caller;
}

// The handler ------------------------------------------------------------------------------------

/** The jobs function's Request handler. */
export function jobsHandler(env: SupabaseEnv, providers: ProviderConfig): Handler {
  // The kinds and the providers are fixed for the life of the function: answer from one copy.
  const capabilities = capabilitiesOf(KINDS, providers);
  const kinds = { kinds: capabilities };
  return handle('jobs', ['GET', 'POST'], async (req) => {
    const url = new URL(req.url);
    const route = matchRoute(req.method, url.pathname);
    if (route.name === 'health') {
      // Whether a user is an admin is Auth's answer now (requireUser asks it), not the token's.
      const caller = await requireCaller(req, env);
      if (!mayReadHealth(caller)) {
        throw new HttpError(403, 'forbidden', 'queue health is for admins and the secret key');
      }
      return json(await health(env, url.searchParams));
    }
    if (route.name === 'console' || route.name === 'admin-list' || route.name === 'admin-bulk') {
      await requireConsole(req, env);
      const admin = adminClient(env);
      if (route.name === 'console') {
        return json(await consoleOverview(env, url.searchParams, capabilities, providers));
      }
      if (route.name === 'admin-list') {
        return json(
          await listJobs(admin, parseListQuery(url.searchParams, { allowUser: true }), true),
        );
      }
      return json(await bulk(admin, parseBulkBody(await readJsonObject(req), { allowUser: true })));
    }
    const caller = await requireUser(req, env);
    if (route.name === 'kinds') return json(kinds);
    const db = userClient(env, caller.jwt);
    switch (route.name) {
      case 'list':
        return json(await listJobs(db, parseListQuery(url.searchParams)));
      case 'bulk': {
        return json(await bulk(db, parseBulkBody(await readJsonObject(req))));
      }
      case 'get':
        return json(await getJob(db, route.id));
      case 'cancel':
        return json(await changeJob(db, 'cancel_job', route.id));
      case 'retry':
        return json(await changeJob(db, 'retry_job', route.id));
    }
  });
}
