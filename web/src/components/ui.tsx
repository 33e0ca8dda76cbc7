// Small shared pieces: status badge, progress bar, relative times.
import { type JobState, shownState } from '../lib/job-states.ts';

/** A job's state badge, in shownState's words (a job waiting for a media slot is not "Running"). */
export function StatusBadge(
  { job, testId }: { job: { status: JobState; step: string | null }; testId?: string },
) {
  const info = shownState(job);
  return (
    <span className={`badge badge--${info.tone}`} title={info.description} data-status={job.status} data-testid={testId}>
      {info.label}
    </span>
  );
}

export function ProgressBar(
  { value, label, indeterminate = false }: { value: number; label: string; indeterminate?: boolean },
) {
  const pct = Math.max(0, Math.min(100, Math.round(value)));
  return (
    <div
      className={`progress${indeterminate ? ' progress--indeterminate' : ''}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={indeterminate ? undefined : pct}
      aria-valuetext={indeterminate ? 'waiting' : `${pct}%`}
    >
      <div className="progress__fill" style={{ width: indeterminate ? undefined : `${pct}%` }} />
    </div>
  );
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function relativeTime(iso: string, now = Date.now()): string {
  const s = Math.round((Date.parse(iso) - now) / 1000);
  const abs = Math.abs(s);
  if (abs < 45) return rtf.format(s, 'second');
  if (abs < 45 * 60) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 22 * 3600) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}

export function Time({ iso }: { iso: string }) {
  return (
    <time dateTime={iso} title={new Date(iso).toLocaleString()}>
      {relativeTime(iso)}
    </time>
  );
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}
