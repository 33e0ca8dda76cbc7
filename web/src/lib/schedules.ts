// A user's schedules (recurring jobs; README "Schedules: recurring jobs"):
//   create   POST /functions/v1/schedules (the schedule creator: the input is checked as the
//            kind's creator checks a job, so creating is not a direct RPC: create_schedule is
//            service_role's)
//   list     public.schedules under RLS (owners see their own rows)
//   pause, resume, delete, preview   the RPCs pause_schedule, resume_schedule, delete_schedule,
//            preview_schedule, as the signed-in user
// Every failure is an ApiError, as in lib/jobs.ts: the SQL API's PT<status> errors carry their
// stable code in `hint` (supabase/functions/_shared/http.ts fromApiError reads them the same way).
import type { Json } from '../../../supabase/functions/_shared/database.types.ts';
import { ApiError, toApiError } from './api-error.ts';
import { everyText, type Recurrence, type Schedule } from './schedule-words.ts';
import { supabase } from './supabase.ts';

export * from './schedule-words.ts';

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
