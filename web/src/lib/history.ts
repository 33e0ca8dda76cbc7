// The history and the operations console talk to the jobs function here (lib/jobs.ts call):
//   GET  /jobs?status=&type=&from=&to=&q=&limit=&cursor=   my jobs by filter (list_jobs)
//   POST /jobs/bulk {action, filter, dry_run}               cancel all queued / retry all failed
//   GET  /jobs/admin?minutes=                               series, stall diagnosis, limits
//   GET  /jobs/admin/jobs?...&user=                         every user's jobs (admins)
//   POST /jobs/admin/bulk {action, filter, dry_run}         bulk actions across users (admins)
// and the pure parts the views share: what a filter sends, a row's duration and settings.
import type { Json } from '../../../supabase/functions/_shared/database.types.ts';
import type { JobState } from './job-states.ts';
import { call, type Job, type JobTypeStats, type QueueStats } from './jobs.ts';
import { formatValue, type JobKind, type PropertySchema } from './kinds.ts';

/** Which jobs. Dates are the <input type="date"> values (local days, `to` inclusive). */
export interface JobFilter {
  status: JobState | '';
  type: string;
  from: string;
  to: string;
  q: string;
  /** The console only: one owner's jobs. */
  user?: string;
}

export const NO_FILTER: JobFilter = { status: '', type: '', from: '', to: '', q: '' };

export const isFiltered = (f: JobFilter) =>
  f.status !== '' || f.type !== '' || f.from !== '' || f.to !== '' || f.q.trim() !== '' ||
  (f.user ?? '').trim() !== '';

/** The start of a local day (YYYY-MM-DD) as an ISO instant; `plusDays` later for an inclusive end. */
export function dayStart(day: string, plusDays = 0): string {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d + plusDays).toISOString();
}

/** The filter as the API's parameters (status may be narrowed to a bulk action's states). */
export function filterParams(f: JobFilter, statuses?: readonly JobState[]): Record<string, string> {
  const p: Record<string, string> = {};
  const status = statuses ? statuses.join(',') : f.status;
  if (status) p.status = status;
  if (f.type) p.type = f.type;
  if (f.from) p.from = dayStart(f.from);
  if (f.to) p.to = dayStart(f.to, 1);
  if (f.q.trim()) p.q = f.q.trim();
  if (f.user?.trim()) p.user = f.user.trim();
  return p;
}

export interface JobPage<J = Job> {
  jobs: J[];
  next_cursor: string | null;
}

/** A job in the console: whose it is too. */
export type OwnedJob = Job & { user_id: string };

/** One page of my jobs matching the filter (admin: every user's, with user_id). */
export async function listJobsBy<J = Job>(
  f: JobFilter,
  { cursor = null, limit = 10, admin = false }: { cursor?: string | null; limit?: number; admin?: boolean } = {},
): Promise<JobPage<J>> {
  const q = new URLSearchParams(filterParams(f));
  q.set('limit', String(limit));
  if (cursor) q.set('cursor', cursor);
  return await call<JobPage<J>>(`jobs${admin ? '/admin/jobs' : ''}?${q}`, { method: 'GET' });
}

export type BulkAction = 'cancel' | 'retry';

/** What a bulk action did (cancel_jobs / retry_jobs). */
export interface BulkResult {
  matched: number;
  changed: number;
  refused: Record<string, number>;
  reasons: Record<string, string>;
}

/** The states each bulk action takes: "cancel all queued", "retry all failed". */
const BULK_STATES: Record<BulkAction, readonly JobState[]> = {
  cancel: ['pending'],
  retry: ['failed'],
};

/**
 * The states a bulk action would take under a filter: the action's own, narrowed by the filter's
 * status (a filter on "done" leaves nothing to cancel).
 */
export function bulkStates(action: BulkAction, f: JobFilter): JobState[] {
  return BULK_STATES[action].filter((s) => f.status === '' || f.status === s);
}

/** Runs (or with dryRun only counts) a bulk action over the filter's jobs. */
export async function bulkJobs(
  action: BulkAction,
  f: JobFilter,
  { dryRun = false, admin = false }: { dryRun?: boolean; admin?: boolean } = {},
): Promise<BulkResult> {
  const states = bulkStates(action, f);
  if (states.length === 0) return { matched: 0, changed: 0, refused: {}, reasons: {} };
  return await call<BulkResult>(admin ? 'jobs/admin/bulk' : 'jobs/bulk', {
    body: { action, filter: filterParams(f, states), dry_run: dryRun },
  });
}

const REFUSALS: Record<string, string> = {
  quota_rate: 'the jobs-per-minute limit was reached',
  quota_active_jobs: 'too many active jobs',
  not_retryable: 'they failed permanently (start new ones instead)',
  invalid_transition: 'they had ended or changed meanwhile',
  busy: 'a worker was writing them at that moment',
  dependency_failed: 'a job they depend on failed',
  limit: 'past the 1,000 per call: run it again',
};

/** A bulk result as one sentence: "3 retried; 2 refused: the jobs-per-minute limit was reached." */
export function describeBulk(action: BulkAction, r: BulkResult): string {
  const verb = action === 'cancel' ? 'cancelled' : 'retried';
  const parts = Object.entries(r.refused).filter(([, n]) => n > 0).map(([code, n]) =>
    `${n} ${REFUSALS[code] ? `because ${REFUSALS[code]}` : `(${code}${r.reasons[code] ? `: ${r.reasons[code]}` : ''})`}`
  );
  const refused = Object.values(r.refused).reduce((a, n) => a + n, 0);
  return `${r.changed} ${verb}` + (refused > 0 ? `; ${refused} refused: ${parts.join(', ')}.` : '.');
}

// A row's duration and settings ------------------------------------------------------------------

const seconds = (ms: number) =>
  ms < 1000 ? `${Math.max(0, Math.round(ms))} ms` : ms < 60_000 ? `${Math.round(ms / 100) / 10} s`
  : ms < 3_600_000 ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
  : `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;

/**
 * How long a job ran (finished_at - started_at: its last attempt from its claim, so a wait for a
 * media slot counts, the time queued does not), or for one that has not started how long it has
 * been queued ("queued 12 s", from when it became runnable), or while it runs how long so far.
 */
export function durationOf(
  job: Pick<Job, 'status' | 'created_at' | 'run_at' | 'started_at' | 'finished_at'>,
  now = Date.now(),
): string {
  const at = (iso: string | null) => (iso ? Date.parse(iso) : NaN);
  if (job.status === 'pending') {
    const since = Math.max(at(job.created_at), at(job.run_at) || 0);
    return since > now ? `scheduled in ${seconds(since - now)}` : `queued ${seconds(now - since)}`;
  }
  if (job.status === 'running') return `running ${seconds(now - at(job.started_at))}`;
  if (job.status === 'waiting') return job.started_at ? `waiting ${seconds(now - at(job.started_at))}` : 'waiting';
  if (job.started_at && job.finished_at) return `ran ${seconds(at(job.finished_at) - at(job.started_at))}`;
  return 'never ran';
}

/** A setting's value as words: an option's label, a range's formatted value, a flag's name. */
function settingWords(name: string, p: PropertySchema, value: Json | undefined): string | null {
  if (value === undefined || value === null || value === p.default) return null;
  const options = p['x-options'];
  if (options) {
    const label = options.find((o) => o.value === value)?.label ?? String(value);
    return label.replace(/\s*\(.*\)$/, '').toLowerCase();
  }
  if (Array.isArray(p.enum)) return String(value).toLowerCase();
  const title = (p.title ?? name).toLowerCase();
  if (typeof value === 'number') return `${title} ${formatValue(p['x-format'] as string | undefined, value)}`;
  if (typeof value === 'boolean') return value ? title : `no ${title}`;
  if (typeof value === 'string' && value.length <= 24) return value;
  return null;
}

/**
 * The settings that tell a job from others of its kind ("noir · jpeg", "noise reduction 90%"): its
 * input's values that differ from the kind's defaults, in form order, but the file, its name
 * (input_name) and the prompt, which are shown as the job's name; at most four.
 */
export function settingsOf(job: Pick<Job, 'type' | 'input'>, kinds: readonly JobKind[] | null): string {
  const kind = kinds?.find((k) => k.type === job.type);
  if (!kind) return '';
  const words: string[] = [];
  for (const [name, p] of Object.entries(kind.input_schema.properties)) {
    if (name === kind.file?.field || name === 'input_name' || name === 'prompt') continue;
    const w = settingWords(name, p, job.input?.[name]);
    if (w) words.push(w);
  }
  return words.slice(0, 4).join(' · ');
}

// The console ------------------------------------------------------------------------------------

/** One bucket of job_series: a minute's finished jobs of one type (null: all) and outcome. */
export interface SeriesRow {
  minute: string;
  type: string | null;
  status: 'done' | 'failed' | 'cancelled';
  finished: number;
  run_p50_ms: number | null;
  run_p95_ms: number | null;
  wait_p50_ms: number | null;
}

export interface StallReason {
  code: string;
  count: number;
  message: string;
}

/** queue_diagnosis, with the jobs function's provider facts merged into reasons. */
export interface Diagnosis {
  at: string;
  pending: number;
  due: number;
  claimable: number;
  running: number;
  scheduled: { count: number; next_run_at: string | null };
  user_cap: { limit: number; users: number; jobs: number; top: { user_id: string; running: number; due: number }[] };
  waiting: { dependencies: number; children: number; providers: { provider: string; count: number }[] };
  sweep: { schedule: string; active: boolean; last_run_at: string | null; next_run_at: string | null } | null;
  reasons: StallReason[];
}

export interface ConsoleOverview {
  minutes: number;
  series: SeriesRow[];
  diagnosis: Diagnosis;
  job_types: JobTypeStats[];
  stats: QueueStats;
}

export async function getConsole(minutes = 60): Promise<ConsoleOverview> {
  return await call<ConsoleOverview>(`jobs/admin?minutes=${minutes}`, { method: 'GET' });
}

/** The minutes of the window, oldest first, as epoch ms: every minute has a point (zero if none). */
export function minutesOf(at: string, minutes: number): number[] {
  const end = Math.floor(Date.parse(at) / 60_000) * 60_000;
  return Array.from({ length: minutes }, (_, i) => end - (minutes - 1 - i) * 60_000);
}
