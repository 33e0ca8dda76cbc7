// One job, live: status, progress and step (a pending job's place in line, a claimed job that
// waits for a worker slot as such, never as Running), before/after, download, cancel and retry;
// on the job page (`detailed`) also its run view (RunDetail). A pack (a flow parent of type
// `pack`) is shown as its PackCard, with its children.
import { useEffect, useRef, useState } from 'react';
import { useJob, useJobRun } from '../hooks/useJob.ts';
import { useKinds } from '../hooks/useKinds.ts';
import { type ApiError, cancelJob, type Job, retryJob, toApiError } from '../lib/jobs.ts';
import { canCancel, canRetry, isTerminal, isWaitingForSlot, noResultCaption, retryBlocker, shownState } from '../lib/job-states.ts';
import { formatBytes, type JobKind, kindLabel } from '../lib/kinds.ts';
import { downloadName, downloadUrl } from '../lib/upload.ts';
import { positionText } from '../lib/run.ts';
import { PackCard } from './PackCard.tsx';
import { Preview } from './Preview.tsx';
import { RunDetail } from './RunDetail.tsx';
import { formatDuration, ProgressBar, StatusBadge, Time } from './ui.tsx';

/** A job's title: its kind's label (the fetched kinds), or its type while they are not here. */
export function jobTitle(job: Pick<Job, 'type'>, kinds: readonly JobKind[] | null): string {
  return kindLabel(kinds, job.type);
}

export function inputName(job: Job): string {
  const p = job.input?.input_path;
  if (typeof p === 'string') return p.split('/').pop()!.replace(/^[0-9a-z]{6,12}-/, '');
  const prompt = job.input?.prompt;
  if (typeof prompt === 'string') return `“${prompt.length > 60 ? `${prompt.slice(0, 57)}…` : prompt}”`;
  return '';
}

interface Props {
  id: string;
  initial?: Job | null;
  /** Called with the job whenever this card learns a newer state of it. */
  onChange?: (job: Job) => void;
  headingLevel?: 2 | 3;
  /** The job page: show the run view (attempts, steps, timings, settings, report). */
  detailed?: boolean;
}

export function JobCard({ id, initial, onChange, headingLevel = 2, detailed = false }: Props) {
  const handle = useJob(id, initial);
  const { detail, job, error, live, apply } = handle;
  const { run } = useJobRun(job && job.type !== 'pack' ? job : null, { live: detailed === true });
  const { kinds } = useKinds();
  const [busy, setBusy] = useState<'cancel' | 'retry' | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  useEffect(() => {
    if (job) onChangeRef.current?.(job);
  }, [job]);

  if (!job) {
    return (
      <article className="card job-card" aria-busy="true">
        {error ? <p className="error" role="alert">{error.friendly}</p> : <p className="muted">Loading the job…</p>}
      </article>
    );
  }

  if (job.type === 'pack') return <PackCard parent={handle} headingLevel={headingLevel} />;

  const act = async (what: 'cancel' | 'retry') => {
    setBusy(what);
    setActionError(null);
    try {
      apply(await (what === 'cancel' ? cancelJob(job.id) : retryJob(job.id)));
    } catch (err) {
      setActionError(await toApiError(err));
    } finally {
      setBusy(null);
    }
  };

  const H = headingLevel === 2 ? 'h2' : 'h3';
  const info = shownState(job);
  const slotWait = isWaitingForSlot(job);
  const files = job.status === 'done' ? detail?.output_files ?? [] : [];
  // Times from the run detail: waiting (in line, for a slot) is never counted as work.
  const timings = run && run.job.id === job.id ? run.timings : null;
  const waitedMs = timings ? timings.queued_ms + timings.waiting_for_slot_ms : 0;
  const kind = kinds?.find((k) => k.type === job.type) ?? null;
  const errorText = job.error && typeof job.error.message === 'string' ? job.error.message : null;
  const blocker = retryBlocker(job);
  const runs = job.history?.length ?? 0;
  const stepText = job.status === 'pending'
    ? positionText(run?.position)
    : job.status === 'waiting'
    ? 'Waiting for the provider to call back…'
    : slotWait
    ? 'Waiting for a free worker slot'
    : `${job.step ? job.step.charAt(0).toUpperCase() + job.step.slice(1) : 'Starting'} · ${job.progress}%`;
  const announcement = `${jobTitle(job, kinds)}: ${info.label}${
    !isTerminal(job.status) && job.status !== 'pending' && job.step && !slotWait ? `, ${job.step}` : ''
  }`;

  return (
    <article className="card job-card" aria-labelledby={`job-${job.id}-title`} data-testid="job-card" data-status={job.status} data-job-id={job.id}>
      <header className="job-card__header">
        <div>
          <H id={`job-${job.id}-title`} className="job-card__title">{jobTitle(job, kinds)}</H>
          <p className="job-card__meta">
            {inputName(job)}
            {inputName(job) && ' · '}created <Time iso={job.created_at} />
            {job.attempts > 1 && ` · attempt ${job.attempts} of ${job.max_attempts}`}
            {runs > 0 && ` · retried ${runs === 1 ? 'once' : `${runs} times`}`}
          </p>
        </div>
        <StatusBadge job={job} testId="job-badge" />
      </header>

      <p className="visually-hidden" aria-live="polite" data-testid="job-announcement">{announcement}</p>

      {!isTerminal(job.status) && (
        <div className="job-card__progress">
          <ProgressBar
            value={job.progress}
            label={`${jobTitle(job, kinds)} progress`}
            indeterminate={job.status === 'pending' || job.status === 'waiting' || slotWait}
          />
          <p className="job-card__step" data-testid="job-step">{stepText}</p>
        </div>
      )}

      {job.status === 'failed' && (
        <p className="error" data-testid="job-error">
          {errorText ?? 'The job failed.'}
          {job.error?.code && <span className="muted"> ({String(job.error.code)})</span>}
        </p>
      )}
      {blocker && (
        <p className="muted" id={`job-${job.id}-retry-note`} data-testid="retry-note">{blocker.note}</p>
      )}
      {job.status === 'done' && (
        <p className="muted" data-testid="job-took">
          Finished <Time iso={job.finished_at!} />
          {timings && ` · ran ${formatDuration(timings.running_ms)}`}
          {timings && waitedMs >= 100 && `, after ${formatDuration(waitedMs)} waiting`}
        </p>
      )}
      {job.status === 'cancelled' && <p className="muted" data-testid="job-no-result">{noResultCaption('cancelled')}</p>}

      <Preview job={job} detail={detail} />
      {detailed && run && run.job.id === job.id && <RunDetail run={run} job={job} kind={kind} />}

      {actionError && <p className="error" role="alert">{actionError.friendly}</p>}
      <div className="actions">
        {files.filter((f) => f.url).map((f) => {
          const name = downloadName(job.input, f.path);
          return (
            <a key={f.path} className="button button--primary" href={downloadUrl(f.url!, name)} download={name} data-testid="download">
              Download {files.length > 1 ? name : ''}
              <span className="muted-inline"> ({formatBytes(f.size)})</span>
            </a>
          );
        })}
        {canCancel(job.status) && (
          <button type="button" className="button" onClick={() => act('cancel')} disabled={busy !== null}>
            {busy === 'cancel' ? 'Cancelling…' : 'Cancel job'}
          </button>
        )}
        {canRetry(job.status) && (
          <button
            type="button"
            className="button"
            onClick={() => act('retry')}
            disabled={busy !== null || (blocker !== null && !blocker.possible)}
            aria-describedby={blocker ? `job-${job.id}-retry-note` : undefined}
          >
            {busy === 'retry' ? 'Retrying…' : 'Retry'}
          </button>
        )}
      </div>
      <p className="live-note">
        <span className={`dot dot--${live}`} aria-hidden="true" />
        {live === 'live' ? 'Live updates' : live === 'polling' ? 'Realtime unavailable: checking every 3 s' : 'Connecting…'}
      </p>
    </article>
  );
}
