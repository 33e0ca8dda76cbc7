// The user's notifications (public.notifications: one row per job of theirs that ended), for the
// inbox: listed newest first with a select under RLS, counted and marked read through the SQL API
// (supabase/migrations/20261204120000_inbox.sql: count_unread_notifications,
// mark_notifications_read), never by PATCHing the table. Failures are ApiErrors.
import type { JobState } from './job-states.ts';
import { ApiError } from './api-error.ts';
import { supabase } from './supabase.ts';

export interface Notification {
  id: string;
  job_id: string;
  job_type: string;
  status: JobState;
  message: string;
  created_at: string;
  read_at: string | null;
}

/** How many notifications the inbox lists (the newest; the unread count covers all of them). */
export const INBOX_LIMIT = 50;

function failed(what: string, error: { message?: string; code?: string } | null): ApiError {
  return new ApiError(
    error?.code ?? 'inbox_error',
    `${what}: ${error?.message ?? 'failed'}`,
    `Could not ${what}. Try again in a moment.`,
  );
}

/** The newest notifications (INBOX_LIMIT), newest first. */
export async function listNotifications(limit = INBOX_LIMIT): Promise<Notification[]> {
  const { data, error } = await supabase
    .from('notifications')
    .select('id, job_id, job_type, status, message, created_at, read_at')
    .order('created_at', { ascending: false })
    .order('id', { ascending: false })
    .limit(limit);
  if (error || !data) throw failed('load your notifications', error);
  return data as Notification[];
}

/** All of the user's unread notifications, counted in SQL. */
export async function countUnread(): Promise<number> {
  const { data, error } = await supabase.rpc('count_unread_notifications');
  if (error || typeof data !== 'number') throw failed('count your notifications', error);
  return data;
}

/** Marks these notifications read (all of the user's unread ones when `ids` is null). */
export async function markRead(ids: string[] | null): Promise<number> {
  const { data, error } = await supabase.rpc('mark_notifications_read', ids ? { p_ids: ids } : {});
  if (error || typeof data !== 'number') throw failed('mark your notifications read', error);
  return data;
}
