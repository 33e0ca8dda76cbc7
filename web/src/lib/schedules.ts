// A user's schedules (recurring jobs; README "Schedules: recurring jobs"):
//   create   POST /functions/v1/schedules (the schedule creator: the input is checked as the
//            kind's creator checks a job, so creating is not a direct RPC: create_schedule is
//            service_role's)
//   list     public.schedules under RLS (owners see their own rows)
//   pause, resume, delete, preview   the RPCs pause_schedule, resume_schedule, delete_schedule,
//            preview_schedule, as the signed-in user
// Every failure is an ApiError, as in lib/jobs.ts: the SQL API's PT<status> errors carry their
// stable code in `hint` (supabase/functions/_shared/http.ts fromApiError reads them the same way).
import type { Database, Json } from '../../../supabase/functions/_shared/database.types.ts';
import { ApiError, toApiError } from './api-error.ts';
import { supabase } from './supabase.ts';

export type Schedule = Database['public']['Tables']['schedules']['Row'];

/** How a schedule recurs, as the form holds it. */
export interface Recurrence {
  mode: 'cron' | 'every';
  /** 5-field cron, the wall clock of `timezone`. */
  cron: string;
  /** every: a whole number of `unit`s. */
  count: number;
  unit: 'minutes' | 'hours' | 'days';
  /** An IANA zone name ("Europe/Paris", "UTC"). */
  timezone: string;
}

/** What is wrong with a recurrence before it is sent (the server checks it again), or null. */
export function recurrenceProblem(r: Recurrence): string | null {
  if (r.mode === 'cron') {
    const fields = r.cron.trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) return 'Write a cron expression, like 0 9 * * * (every day at 9:00).';
    if (!r.cron.trim().startsWith('@') && fields.length !== 5) {
      return `A cron expression has 5 fields (minute hour day month weekday); this one has ${fields.length}.`;
    }
  } else if (!Number.isInteger(r.count) || r.count < 1) {
    return 'Repeat every 1 or more minutes, hours or days.';
  } else if (r.unit === 'minutes' ? r.count > 366 * 1440 : r.unit === 'hours' ? r.count > 366 * 24 : r.count > 366) {
    return 'Repeat at least once a year (366 days at most).';
  }
  if (!r.timezone.trim()) return 'Give a time zone, like UTC or Europe/Paris.';
  return null;
}

/** The interval text create_schedule and preview_schedule take ("15 minutes"). */
export function everyText(r: Pick<Recurrence, 'count' | 'unit'>): string {
  return `${r.count} ${r.unit}`;
}

/** The RPC and function arguments of a recurrence: cron or every, and the zone. */
function recurrenceArgs(r: Recurrence) {
  return r.mode === 'cron'
    ? { cron: r.cron.trim(), timezone: r.timezone.trim() }
    : { every: everyText(r), timezone: r.timezone.trim() };
}

/** A PostgREST error (supabase-js `error` of .from() / .rpc()) as an ApiError. */
export function fromPostgrestError(
  error: { code?: string; message?: string; details?: string | null; hint?: string | null },
): ApiError {
  const status = /^PT(\d{3})$/.exec(error.code ?? '')?.[1];
  const code = status ? error.hint || 'error' : error.code || 'error';
  const message = error.message || 'the request failed';
  let friendly: string;
  switch (code) {
    case 'schedule_not_found':
      friendly = 'That schedule does not exist any more, or it is not yours.';
      break;
    case 'schedule_project_wide':
      friendly = 'This schedule is set by the project: only an admin can change it.';
      break;
    case 'PGRST301':
    case '401':
      friendly = 'Your session has expired. Reload the page to sign in again.';
      break;
    default:
      friendly = status && Number(status) < 500
        ? message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? '' : '.')
        : 'Something went wrong on our side. Try again in a moment.';
  }
  return new ApiError(code, message, friendly, status ? Number(status) : null, error.details ?? undefined);
}

/** The signed-in user's schedules, newest first. */
export async function listSchedules(): Promise<Schedule[]> {
  const { data, error } = await supabase.from('schedules').select('*')
    .order('created_at', { ascending: false })
    .order('id', { ascending: false });
  if (error) throw fromPostgrestError(error);
  return data ?? [];
}

async function change(fn: 'pause_schedule' | 'resume_schedule' | 'delete_schedule', id: string) {
  const { data, error } = await supabase.rpc(fn, { p_id: id });
  if (error) throw fromPostgrestError(error);
  return data as Schedule;
}

export const pauseSchedule = (id: string) => change('pause_schedule', id);
export const resumeSchedule = (id: string) => change('resume_schedule', id);
export const deleteSchedule = (id: string) => change('delete_schedule', id);

/**
 * The next `count` slots of a recurrence (preview_schedule: the same checks and messages as
 * create_schedule), or of an existing schedule when `startsAt` is its starts_at.
 */
export async function previewSchedule(
  r: Recurrence,
  { count = 3, startsAt }: { count?: number; startsAt?: string } = {},
): Promise<string[]> {
  const a = recurrenceArgs(r);
  const { data, error } = await supabase.rpc('preview_schedule', {
    ...('cron' in a ? { p_cron: a.cron } : { p_every: a.every }),
    p_timezone: a.timezone,
    p_count: count,
    ...(startsAt ? { p_start_at: startsAt } : {}),
  });
  if (error) throw fromPostgrestError(error);
  return data ?? [];
}

/** An existing schedule's recurrence, to preview its next runs. */
export function recurrenceOf(s: Schedule): Recurrence {
  const every = s.every ? parseInterval(s.every) : null;
  return s.cron
    ? { mode: 'cron', cron: s.cron, count: 1, unit: 'days', timezone: s.timezone }
    : { mode: 'every', cron: '', count: Math.max(1, Math.round((every ?? 60) / 60)), unit: 'minutes', timezone: s.timezone };
}

/**
 * Creates a schedule of `type` with `input` (a creator's request body: lib/kinds.ts
 * requestBody) through the schedule creator function; resolves to the new row.
 */
export async function createSchedule(
  type: string,
  input: Record<string, unknown>,
  r: Recurrence,
  name?: string,
): Promise<Schedule> {
  let result;
  try {
    result = await supabase.functions.invoke<{ schedule: Schedule }>('schedules', {
      method: 'POST',
      body: { type, input: input as Json, ...recurrenceArgs(r), ...(name?.trim() ? { name: name.trim() } : {}) },
    });
  } catch (err) {
    throw await toApiError(err);
  }
  if (result.error) {
    const err = await toApiError(result.error);
    if (err.code === 'quota_schedules') {
      throw new ApiError(err.code, err.message, 'You have as many schedules as you may. Delete one first.', err.status, err.details);
    }
    throw err;
  }
  const schedule = (result.data as { schedule?: Schedule } | null)?.schedule;
  if (!schedule || typeof schedule.id !== 'string') {
    throw new ApiError('bad_response', 'unexpected response from schedules', 'Spool answered in a way this page does not understand. Reload and try again.');
  }
  return schedule;
}

// Words ----------------------------------------------------------------------------------------

/**
 * Seconds in a Postgres interval as PostgREST writes it ("00:15:00", "1 day", "2 days 03:00:00",
 * "1 day 00:00:30"); null for anything else.
 */
export function parseInterval(text: string): number | null {
  const m = /^(?:(\d+) days?)?\s*(?:(\d+):(\d{2}):(\d{2})(?:\.\d+)?)?$/.exec(text.trim());
  if (!m || (!m[1] && !m[2])) return null;
  return Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
}

/** "every 15 minutes", "every day", "every 1 day 2 hours": how often an interval schedule runs. */
export function describeEvery(text: string): string {
  const seconds = parseInterval(text);
  if (seconds === null) return `every ${text}`;
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n} ${unit}${n === 1 ? '' : 's'}`);
  }
  if (parts.length === 1 && parts[0].startsWith('1 ')) return `every ${parts[0].slice(2)}`;
  return `every ${parts.join(' ')}`;
}

/** How a schedule recurs, in words: "cron 0 9 * * * (Europe/Paris)" or "every 15 minutes". */
export function describeRecurrence(s: Pick<Schedule, 'cron' | 'every' | 'timezone'>): string {
  if (s.cron) return `cron ${s.cron} (${s.timezone})`;
  return describeEvery(s.every ?? '');
}

/**
 * An instant on the wall clock of `timezone`, naming the zone ("Dec 4, 2026, 9:00 AM Europe/Paris");
 * on the browser's own clock if it does not know the zone.
 */
export function formatSlot(iso: string, timezone: string): string {
  const date = new Date(iso);
  const options: Intl.DateTimeFormatOptions = { dateStyle: 'medium', timeStyle: 'short' };
  try {
    return `${date.toLocaleString(undefined, { ...options, timeZone: timezone })} ${timezone}`;
  } catch {
    return date.toLocaleString(undefined, options);
  }
}

/** The browser's time zone, the default of a new schedule. */
export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
