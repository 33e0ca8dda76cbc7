// The client API over a user's jobs. Routes (the path after /functions/v1):
//
//   GET  /jobs?status=&type=&parent=&limit=&cursor=
//                                             my jobs, newest first, a page at a time; parent=<id>
//                                             keeps a flow's children (jobs.parent_id)
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
//
// Reads and cancel/retry run as the caller (their JWT, so RLS and auth.uid() decide); only the
// health check uses the secret key, after checking who asks. Errors use the one error shape.
import { type Caller, requireCaller, requireUser, type UserCaller } from '../_shared/auth.ts';
import { adminClient, type Db, userClient } from '../_shared/clients.ts';
import type { SupabaseEnv } from '../_shared/env.ts';
import { fromApiError, handle, type Handler, HttpError, json } from '../_shared/http.ts';
import { capabilitiesOf } from '../_jobs/capabilities.ts';
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
  | { name: 'kinds' }
  | { name: 'health' }
  | { name: 'get'; id: string }
  | { name: 'cancel' | 'retry'; id: string };

const METHODS: Record<Route['name'], string> = {
  list: 'GET',
  kinds: 'GET',
  health: 'GET',
  get: 'GET',
  cancel: 'POST',
  retry: 'POST',
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
  else if (parts.length === 1 && parts[0] === 'health') route = { name: 'health' };
  else if (parts.length === 1 && parts[0] === 'kinds') route = { name: 'kinds' };
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

export interface ListQuery {
  statuses: JobState[] | null;
  types: string[] | null;
  /** Only the children of this flow parent (jobs.parent_id), or null for every job. */
  parent: string | null;
  limit: number;
  cursor: Cursor | null;
}

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

/** Query parameters the list accepts (forceFunctionRegion is added by supabase-js regions). */
const LIST_PARAMS = new Set(['status', 'type', 'parent', 'limit', 'cursor', 'forceFunctionRegion']);

/**
 * Validates the list's query string: status and type are comma-separated lists (any of them),
 * parent is one job id (a flow's children), limit is 1..100 (default 20), cursor is a
 * next_cursor from a previous page. 400 invalid_query lists every problem.
 */
export function parseListQuery(params: URLSearchParams): ListQuery {
  const problems: { param: string; message: string }[] = [];
  for (const name of new Set(params.keys())) {
    if (!LIST_PARAMS.has(name)) problems.push({ param: name, message: 'unknown parameter' });
    else if (params.getAll(name).length > 1) {
      problems.push({ param: name, message: 'give it once (use commas for several values)' });
    }
  }
  const list = (name: string) => {
    const raw = params.get(name);
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
  const parent = params.get('parent');
  if (parent !== null && !UUID.test(parent)) {
    problems.push({ param: 'parent', message: 'a job id is a UUID' });
  }
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
  return {
    statuses: statuses ? [...new Set(statuses)] as JobState[] : null,
    types: types ? [...new Set(types)] : null,
    parent: parent === null ? null : parent.toLowerCase(),
    limit,
    cursor,
  };
}

async function listJobs(db: Db, caller: UserCaller, query: ListQuery) {
  let q = db.from('jobs').select(PUBLIC_JOB_COLUMNS).eq('user_id', caller.userId);
  if (query.statuses) {
    q = query.statuses.length === 1
      ? q.eq('status', query.statuses[0])
      : q.in('status', query.statuses);
  }
  if (query.types) {
    q = query.types.length === 1 ? q.eq('type', query.types[0]) : q.in('type', query.types);
  }
  // parent_id is a public column since 20261203180000_parent_visible.sql.
  if (query.parent) q = q.eq('parent_id', query.parent);
  if (query.cursor) {
    // Keyset pagination on (created_at, id), both descending. Timestamps are quoted: they hold
    // characters PostgREST's logic trees reserve ('.' and ':').
    const { createdAt, id } = query.cursor;
    q = q.or(`created_at.lt."${createdAt}",and(created_at.eq."${createdAt}",id.lt.${id})`);
  }
  const { data, error } = await q
    .order('created_at', { ascending: false })
    .order('id', { ascending: false })
    .limit(query.limit + 1);
  if (error) throw fromApiError(error);
  const rows = data as PublicJob[];
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    jobs: page.map(toPublicJob),
    next_cursor: rows.length > query.limit && last
      ? encodeCursor({ createdAt: last.created_at, id: last.id })
      : null,
  };
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

// The handler ------------------------------------------------------------------------------------

/** The jobs function's Request handler. */
export function jobsHandler(env: SupabaseEnv, providers: ProviderConfig): Handler {
  // The kinds and the providers are fixed for the life of the function: answer from one copy.
  const kinds = { kinds: capabilitiesOf(KINDS, providers) };
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
    const caller = await requireUser(req, env);
    if (route.name === 'kinds') return json(kinds);
    const db = userClient(env, caller.jwt);
    switch (route.name) {
      case 'list':
        return json(await listJobs(db, caller, parseListQuery(url.searchParams)));
      case 'get':
        return json(await getJob(db, route.id));
      case 'cancel':
        return json(await changeJob(db, 'cancel_job', route.id));
      case 'retry':
        return json(await changeJob(db, 'retry_job', route.id));
    }
  });
}
