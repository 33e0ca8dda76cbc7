// How schedules are told to people and checked before they are sent: pure functions, no
// imports but types (web/tests/schedules.test.ts runs this file in Deno). lib/schedules.ts
// re-exports them beside the calls.
import type { Database } from '../../../supabase/functions/_shared/database.types.ts';

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

/** An existing schedule's recurrence, to preview its next runs. */
export function recurrenceOf(s: Schedule): Recurrence {
  const every = s.every ? parseInterval(s.every) : null;
  return s.cron
    ? { mode: 'cron', cron: s.cron, count: 1, unit: 'days', timezone: s.timezone }
    : { mode: 'every', cron: '', count: Math.max(1, Math.round((every ?? 60) / 60)), unit: 'minutes', timezone: s.timezone };
}

/** The interval text create_schedule and preview_schedule take ("15 minutes"). */
export function everyText(r: Pick<Recurrence, 'count' | 'unit'>): string {
  return `${r.count} ${r.unit}`;
}

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
