// A job's run detail (public.get_job_run, read with the user's session through the Data API) and
// the words the run view uses for it: where a pending job stands in line, what each attempt's
// outcome means, the settings it ran with (labelled by its kind's form fields) and every field of
// its output report. Pure apart from getJobRun.
import type { Json } from '../../../supabase/functions/_shared/database.types.ts';
import { ApiError } from './api-error.ts';
import type { Job, RetriedRun } from './jobs.ts';
import { type Field, fieldsOf, formatValue, type JobKind } from './kinds.ts';
import { supabase } from './supabase.ts';

/** How an attempt ended (public.job_attempts.outcome); null while it is open. */
export type AttemptOutcome = 'done' | 'failed' | 'lease_expired' | 'timed_out' | 'cancelled';

export interface RunStep {
  step: string;
  progress: number;
  at: string;
}

export interface Attempt {
  attempt: number;
  run: number;
  /** A stable label of the worker ("worker 1a2b3c"; admins get its id). */
  worker: string | null;
  claimed_at: string;
  /** When work began; null while (or if it only ever) waited for a media slot. */
  started_at: string | null;
  ended_at: string | null;
  outcome: AttemptOutcome | null;
  /** The job went back to pending for another attempt after this one. */
  retried: boolean | null;
  error: { code?: string; message?: string; [k: string]: Json | undefined } | null;
  steps: RunStep[];
  queued_ms: number;
  waiting_for_slot_ms: number;
  running_ms: number;
}

export interface JobPosition {
  /** 1 = the next claim takes it; null when it is not in line (not pending, or not runnable yet). */
  position: number | null;
  ahead: number | null;
  /** The count of jobs ahead stopped at 1000. */
  more_ahead: boolean;
  /** About how long until a worker takes it. */
  start_ms: number | null;
  /** About how long until it is done; null when unknown. */
  estimate_ms: number | null;
  basis: string;
}

export interface RunTimings {
  queued_ms: number;
  waiting_for_slot_ms: number;
  running_ms: number;
  total_ms: number;
}

export interface JobRun {
  job: Job;
  attempts: Attempt[];
  runs: RetriedRun[];
  timings: RunTimings;
  position: JobPosition | null;
}

/** get_job_run for the signed-in user: their own jobs only (404 job_not_found otherwise). */
export async function getJobRun(id: string): Promise<JobRun> {
  let result;
  try {
    result = await supabase.rpc('get_job_run', { p_id: id });
  } catch (err) {
    throw new ApiError(
      'network',
      String(err),
      "Can't reach Spool. Check your connection and try again.",
    );
  }
  const { data, error } = result;
  if (error) {
    // spool.throw: SQLSTATE PT<status>, the stable code in the hint.
    const code = error.hint || error.code || 'unknown';
    const friendly = code === 'job_not_found'
      ? 'That job does not exist, or it is not yours.'
      : 'The run details could not be loaded. Try again in a moment.';
    throw new ApiError(
      code,
      error.message,
      friendly,
      /^PT\d{3}$/.test(error.code) ? Number(error.code.slice(2)) : null,
    );
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    throw new ApiError(
      'bad_response',
      'unexpected get_job_run answer',
      'Spool answered in a way this page does not understand. Reload and try again.',
    );
  }
  return data as unknown as JobRun;
}

// Words ----------------------------------------------------------------------------------------

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13
    ? 'th'
    : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  return `${n.toLocaleString('en')}${suffix}`;
}

/** "about 20 s", "about 3 min", "a moment". */
function roughly(ms: number): string {
  if (ms < 1500) return 'a moment';
  if (ms < 60_000) return `about ${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `about ${Math.round(ms / 60_000)} min`;
  return `about ${Math.round(ms / 3_600_000)} h`;
}

/**
 * A pending job's place in line as the card says it: "3rd in line · about 20 s",
 * "Next in line · about 2 s", "More than 1,000 jobs ahead", or, for a job that is not runnable
 * yet (a delay or a retry's backoff), "Starts again in about 4 s".
 */
export function positionText(p: JobPosition | null | undefined): string {
  if (!p) return 'Queued: waiting for a worker…';
  if (p.position === null) {
    return p.start_ms !== null ? `Joins the line in ${roughly(p.start_ms)}` : 'Queued';
  }
  const place = p.more_ahead
    ? 'More than 1,000 jobs ahead'
    : p.position === 1
    ? 'Next in line'
    : `${ordinal(p.position)} in line`;
  return p.estimate_ms !== null ? `${place} · done in ${roughly(p.estimate_ms)}` : place;
}

const OUTCOME_LABEL: Record<AttemptOutcome, string> = {
  done: 'Done',
  failed: 'Failed',
  lease_expired: 'Worker lost',
  timed_out: 'Timed out',
  cancelled: 'Cancelled',
};

/** "Failed · retried", "Worker lost · retried", "Failed · gave up", "Running", "Waiting for a slot". */
export function attemptSummary(a: Attempt, job: Pick<Job, 'status' | 'step'>): string {
  if (!a.outcome) {
    if (job.status === 'waiting') return 'With the provider';
    return a.started_at === null ? 'Waiting for a free worker slot' : 'Running';
  }
  const label = OUTCOME_LABEL[a.outcome];
  if (a.outcome === 'done' || a.outcome === 'cancelled') return label;
  return `${label} · ${a.retried ? 'retried' : 'gave up'}`;
}

// Settings and report --------------------------------------------------------------------------

export interface Row {
  key: string;
  label: string;
  value: string;
}

/** A key as words: "noise_floor_db" -> "Noise floor db" (known units are put right below). */
function words(key: string): string {
  const s = key.replace(/_/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function plain(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? 'Yes' : 'No';
  if (typeof v === 'number') {
    return Number.isInteger(v) ? v.toLocaleString('en') : String(Math.round(v * 1e6) / 1e6);
  }
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) {
    return v.map(plain).join(', ');
  }
  return JSON.stringify(v);
}

/**
 * The settings a job ran with: each input property in its kind's form order, labelled as the
 * form labels it (option labels for selects, range formats), then any property the form does not
 * show (the uploaded file as its name). Without the kind, the raw keys.
 */
export function settingsRows(input: Record<string, unknown> | null, kind: JobKind | null): Row[] {
  if (!input) return [];
  const rows: Row[] = [];
  const done = new Set<string>();
  const fields: Field[] = kind ? fieldsOf(kind) : [];
  if (kind?.file && typeof input[kind.file.field] === 'string') {
    const path = input[kind.file.field] as string;
    rows.push({
      key: kind.file.field,
      label: 'File',
      value: path.split('/').pop()!.replace(/^[0-9a-z]{6,12}-/, ''),
    });
    done.add(kind.file.field);
  }
  for (const f of fields) {
    if (!(f.name in input)) continue;
    done.add(f.name);
    const v = input[f.name];
    let value: string;
    if (f.widget === 'select') {
      value = f.options.find((o) => o.value === v || String(o.value) === String(v))?.label ??
        plain(v);
    } else if (f.widget === 'range' && typeof v === 'number') {
      value = formatValue(f.format, v);
    } else {
      value = plain(v);
    }
    rows.push({ key: f.name, label: f.label, value });
  }
  for (const [k, v] of Object.entries(input)) {
    if (done.has(k)) continue;
    const isPath = typeof v === 'string' && k.endsWith('_path');
    rows.push({
      key: k,
      label: isPath ? 'File' : words(k),
      value: isPath ? (v as string).split('/').pop()!.replace(/^[0-9a-z]{6,12}-/, '') : plain(v),
    });
  }
  return rows;
}

const UNITS: readonly [RegExp, string, string][] = [
  [/_dbtp$/, '', 'dBTP'],
  [/_db$/, '', 'dB'],
  [/_lufs$/, ' loudness', 'LUFS'],
  [/_hz$/, '', 'Hz'],
  [/_ms$/, '', 'ms'],
  [/_seconds$/, '', 's'],
];

const REPORT_LABELS: Readonly<Record<string, string>> = {
  peak_dbtp: 'True peak',
  dc_offset: 'DC offset (per channel)',
  noise_floor_db: 'Noise floor (input)',
  output_noise_floor_db: 'Noise floor (output)',
  gain_db: 'Gain',
  limiter_db: 'Limiter reduction',
  noise_reduction: 'Noise reduction',
};

/** Known fields first, in reading order (in, out, what was done); jsonb keeps keys in its own. */
const REPORT_ORDER: readonly string[] = [
  'input_lufs',
  'output_lufs',
  'gain_db',
  'limiter_db',
  'peak_dbtp',
  'noise_floor_db',
  'output_noise_floor_db',
  'noise_reduction',
  'dc_offset',
];

const rank = (k: string) => {
  const i = REPORT_ORDER.indexOf(k);
  return i < 0 ? REPORT_ORDER.length : i;
};

/**
 * Every field of an output report: the known ones in reading order, then the rest as they come;
 * labelled, with the unit its key names (_db, _dbtp, _lufs, _hz, _ms, _seconds), arrays listed,
 * nulls shown as "not measurable".
 */
export function reportRows(report: unknown): Row[] {
  if (!report || typeof report !== 'object' || Array.isArray(report)) return [];
  const entries = Object.entries(report as Record<string, unknown>);
  entries.sort((a, b) => rank(a[0]) - rank(b[0]));
  return entries.map(([k, v]) => {
    const unit = UNITS.find(([re]) => re.test(k));
    const base = unit ? k.replace(unit[0], '') : k;
    const label = REPORT_LABELS[k] ?? (unit ? words(base) + unit[1] : words(k));
    const value = v === null
      ? 'not measurable'
      : unit && (typeof v === 'number' || Array.isArray(v))
      ? `${plain(v)} ${unit[2]}`
      : plain(v);
    return { key: k, label, value };
  });
}
