// A complete pack as one card: the parent's status (it waits for its children and ends once they
// all have), its seven children in the pack's order (lib/pack.ts packSlots), each with its live
// status and its result (the image's thumbnail through the jobs API's signed URL, the A+ text as
// headline and modules), and Cancel / Retry for the whole pack (cancel_job / retry_job on the
// parent: the children follow in SQL) and for each child. The parent is live through useJob, the
// children through useFlowChildren (one channel on parent_id): the same Realtime approach.
import { useEffect, useRef, useState } from 'react';
import { type JobHandle, useFlowChildren, useJob } from '../hooks/useJob.ts';
import { type ApiError, cancelJob, type Job, type JobDetail, retryJob, toApiError } from '../lib/jobs.ts';
import { canCancel, canRetry, isTerminal, retryBlocker } from '../lib/job-states.ts';
import { aplusOf, packSlots, packTally } from '../lib/pack.ts';
import { inputName } from './JobCard.tsx';
import { ProgressBar, StatusBadge, Time } from './ui.tsx';

type Busy = { id: string; what: 'cancel' | 'retry' } | null;

function ChildResult({ job, detail, label }: { job: Job; detail: JobDetail | undefined; label: string }) {
  if (job.status === 'failed') {
    const message = job.error && typeof job.error.message === 'string' ? job.error.message : 'It failed.';
    return <p className="error pack-child__error" data-testid="pack-child-error">{message}</p>;
  }
  if (job.status !== 'done') return null;
  if (job.type === 'text') {
    const aplus = aplusOf(job);
    if (!aplus) return <p className="muted">Done, but the text is not in the A+ shape.</p>;
    return (
      <div className="pack-aplus" data-testid="pack-aplus">
        <p className="pack-aplus__headline"><strong>{aplus.headline}</strong></p>
        <ul className="pack-aplus__modules">
          {aplus.modules.map((m, i) => (
            <li key={i}><strong>{m.title}</strong>: {m.body}</li>
          ))}
        </ul>
        {aplus.closing && <p className="muted">{aplus.closing}</p>}
      </div>
    );
  }
  const file = detail?.output_files.find((f) => f.url && f.content_type.startsWith('image/'));
  if (!file) return <p className="muted">Loading the image…</p>;
  return (
    <a href={file.url!} target="_blank" rel="noreferrer" className="pack-child__thumb">
      <img src={file.url!} alt={`${label} view`} data-testid="pack-thumb" loading="lazy" />
    </a>
  );
}

interface Props {
  parent: JobHandle;
  headingLevel?: 2 | 3;
  /** In the history list: the title links to the pack's own page. */
  compact?: boolean;
}

/** The card for a pack whose parent is already live (JobCard hands over its useJob). */
export function PackCard({ parent, headingLevel = 2, compact = false }: Props) {
  const job = parent.job!;
  const flow = useFlowChildren(job.id);
  const [busy, setBusy] = useState<Busy>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  // A change of the parent (it ended, or was retried) may come before its children's: ask again.
  const lastStatus = useRef(job.status);
  useEffect(() => {
    if (lastStatus.current !== job.status) void flow.refresh();
    lastStatus.current = job.status;
  }, [job.status]);

  const act = async (target: Job, what: 'cancel' | 'retry') => {
    setBusy({ id: target.id, what });
    setActionError(null);
    try {
      const changed = await (what === 'cancel' ? cancelJob(target.id) : retryJob(target.id));
      if (target.id === job.id) {
        parent.apply(changed);
        await flow.refresh(); // the cascade changed the children in the same transaction
      } else {
        flow.apply(changed);
        await parent.refresh(); // a retried child puts an ended pack back to waiting
      }
    } catch (err) {
      setActionError(await toApiError(err));
    } finally {
      setBusy(null);
    }
  };

  const slots = packSlots(job, flow.children);
  const known = slots.filter((s) => s.job).map((s) => s.job!);
  const H = headingLevel === 2 ? 'h2' : 'h3';
  const title = 'Complete pack';
  const blocker = retryBlocker(job);
  const live = parent.live === 'live' && flow.live === 'live'
    ? 'live'
    : parent.live === 'polling' || flow.live === 'polling'
    ? 'polling'
    : 'connecting';

  return (
    <article
      className={`card job-card pack-card${compact ? ' pack-card--compact' : ''}`}
      aria-labelledby={`pack-${job.id}-title`}
      data-testid="pack-card"
      data-status={job.status}
      data-job-id={job.id}
    >
      <header className="job-card__header">
        <div>
          <H id={`pack-${job.id}-title`} className="job-card__title">
            {compact ? <a href={`#/jobs/${job.id}`}>{title}</a> : title}
          </H>
          <p className="job-card__meta">
            {inputName(job)}
            {inputName(job) && ' · '}created <Time iso={job.created_at} />
            {' · '}
            <span data-testid="pack-tally">{packTally(known, slots.length)}</span>
          </p>
        </div>
        <StatusBadge job={job} />
      </header>
      <p className="visually-hidden" aria-live="polite">
        {`${title}: ${job.status === 'waiting' ? 'in progress' : job.status}, ${packTally(known, slots.length)}`}
      </p>

      {job.status === 'waiting' && (
        <p className="muted" data-testid="pack-waiting">Waiting for its {slots.length} jobs to end.</p>
      )}
      {job.status === 'failed' && (
        <p className="error" data-testid="job-error">
          {job.error && typeof job.error.message === 'string' ? job.error.message : 'The pack failed.'}
        </p>
      )}
      {flow.error && <p className="error" role="alert">{flow.error.friendly}</p>}
      {actionError && <p className="error" role="alert">{actionError.friendly}</p>}

      <ol className="pack-children" data-testid="pack-children" aria-busy={flow.loading}>
        {slots.map((slot, i) => {
          const child = slot.job;
          return (
            <li
              key={child?.id ?? `slot-${i}`}
              className="pack-child"
              data-testid="pack-child"
              data-view={slot.label}
              data-status={child?.status ?? 'unknown'}
              data-job-id={child?.id}
            >
              <div className="pack-child__head">
                <span className="pack-child__label">{slot.label}</span>
                {child ? <StatusBadge job={child} /> : <span className="muted">…</span>}
              </div>
              {child && child.status === 'running' && (
                <ProgressBar value={child.progress} label={`${slot.label} progress`} />
              )}
              {child && <ChildResult job={child} detail={flow.details[child.id]} label={slot.label} />}
              {child && (canCancel(child.status) || canRetry(child.status)) && (
                <div className="pack-child__actions">
                  {canCancel(child.status) && (
                    <button
                      type="button"
                      className="button button--quiet"
                      onClick={() => act(child, 'cancel')}
                      disabled={busy !== null}
                      aria-label={`Cancel ${slot.label}`}
                    >
                      {busy?.id === child.id && busy.what === 'cancel' ? 'Cancelling…' : 'Cancel'}
                    </button>
                  )}
                  {canRetry(child.status) && (
                    <button
                      type="button"
                      className="button button--quiet"
                      onClick={() => act(child, 'retry')}
                      disabled={busy !== null || retryBlocker(child)?.possible === false}
                      aria-label={`Retry ${slot.label}`}
                    >
                      {busy?.id === child.id && busy.what === 'retry' ? 'Retrying…' : 'Retry'}
                    </button>
                  )}
                </div>
              )}
            </li>
          );
        })}
      </ol>

      {blocker && <p className="muted" data-testid="retry-note">{blocker.note}</p>}
      <div className="actions">
        {canCancel(job.status) && (
          <button type="button" className="button" onClick={() => act(job, 'cancel')} disabled={busy !== null}>
            {busy?.id === job.id && busy.what === 'cancel' ? 'Cancelling…' : 'Cancel the pack'}
          </button>
        )}
        {canRetry(job.status) && (
          <button
            type="button"
            className="button"
            onClick={() => act(job, 'retry')}
            disabled={busy !== null || blocker?.possible === false}
          >
            {busy?.id === job.id && busy.what === 'retry' ? 'Retrying…' : 'Retry the failed jobs'}
          </button>
        )}
      </div>
      {!compact && (
        <p className="live-note">
          <span className={`dot dot--${live}`} aria-hidden="true" />
          {live === 'live' ? 'Live updates' : live === 'polling' ? 'Realtime unavailable: checking every 3 s' : 'Connecting…'}
        </p>
      )}
      {isTerminal(job.status) && job.finished_at && (
        <p className="muted">Ended <Time iso={job.finished_at} /></p>
      )}
    </article>
  );
}

/** A pack in the history list: its own live parent and children. */
export function PackItem({ job, onChange }: { job: Job; onChange?: (job: Job) => void }) {
  const handle = useJob(job.id, job);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  useEffect(() => {
    if (handle.job) onChangeRef.current?.(handle.job);
  }, [handle.job]);
  if (!handle.job) return null;
  return <PackCard parent={handle} headingLevel={3} compact />;
}
