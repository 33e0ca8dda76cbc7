// The run view of one job (the job page, #/jobs/<id>): where its time went (queued, waiting for a
// worker slot, running: waiting never counts as work), each attempt with its worker, start, end,
// outcome, error and steps, grouped by run when the job was retried, the settings it ran with
// (labelled as its kind's form labels them) and every field of its output report.
import type { Job } from '../lib/jobs.ts';
import type { JobKind } from '../lib/kinds.ts';
import { type Attempt, attemptSummary, type JobRun, reportRows, settingsRows } from '../lib/run.ts';
import { formatDuration, Time } from './ui.tsx';

function clock(iso: string): string {
  return new Date(iso).toLocaleTimeString(undefined, {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

/** "+1.2 s" after the attempt's claim. */
function offset(iso: string, from: string): string {
  return `+${formatDuration(Math.max(0, Date.parse(iso) - Date.parse(from)))}`;
}

function outcomeTone(a: Attempt): string {
  if (!a.outcome) return 'active';
  if (a.outcome === 'done') return 'success';
  if (a.outcome === 'cancelled') return 'muted';
  return 'danger';
}

function AttemptItem({ a, job }: { a: Attempt; job: Job }) {
  const errorText = a.error && typeof a.error.message === 'string' ? a.error.message : null;
  return (
    <li className='attempt' data-testid='attempt' data-outcome={a.outcome ?? 'open'}>
      <div className='attempt__head'>
        <strong>Attempt {a.attempt}</strong>
        <span className={`badge badge--${outcomeTone(a)}`} data-testid='attempt-outcome'>
          {attemptSummary(a, job)}
        </span>
      </div>
      <dl className='attempt__facts'>
        <div>
          <dt>Worker</dt>
          <dd>{a.worker ?? '—'}</dd>
        </div>
        <div>
          <dt>Claimed</dt>
          <dd>
            <time dateTime={a.claimed_at}>{clock(a.claimed_at)}</time>
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>
            {a.started_at
              ? <time dateTime={a.started_at}>{clock(a.started_at)}</time>
              : a.outcome
              ? 'never (it waited for a slot)'
              : 'not yet'}
          </dd>
        </div>
        <div>
          <dt>Ended</dt>
          <dd>{a.ended_at ? <time dateTime={a.ended_at}>{clock(a.ended_at)}</time> : '—'}</dd>
        </div>
        <div>
          <dt>Time</dt>
          <dd>
            {a.waiting_for_slot_ms > 0 &&
              `${formatDuration(a.waiting_for_slot_ms)} waiting for a slot, `}
            {formatDuration(a.running_ms)} running
          </dd>
        </div>
      </dl>
      {errorText && (
        <p className='error attempt__error' data-testid='attempt-error'>
          {errorText}
          {a.error?.code && <span className='muted'> ({String(a.error.code)})</span>}
        </p>
      )}
      {a.steps.length > 0 && (
        <ol className='attempt__steps' aria-label={`Steps of attempt ${a.attempt}`}>
          {a.steps.map((s, i) => (
            <li key={i} data-testid='attempt-step'>
              <time dateTime={s.at}>{offset(s.at, a.claimed_at)}</time>{' '}
              {s.step === 'queued' ? 'waiting for a free worker slot' : s.step}
              <span className='muted'>· {s.progress}%</span>
            </li>
          ))}
        </ol>
      )}
    </li>
  );
}

export function RunDetail({ run, job, kind }: { run: JobRun; job: Job; kind: JobKind | null }) {
  const t = run.timings;
  const runs = [...new Set(run.attempts.map((a) => a.run))];
  const settings = settingsRows(job.input as Record<string, unknown>, kind);
  const output = job.output && typeof job.output === 'object' && !Array.isArray(job.output)
    ? (job.output as Record<string, unknown>)
    : null;
  const report = reportRows(output?.report);

  return (
    <section className='run' aria-labelledby={`run-${job.id}-title`} data-testid='run-detail'>
      <h3 id={`run-${job.id}-title`} className='run__title'>Run details</h3>

      <dl className='run__timings' data-testid='run-timings'>
        <div>
          <dt>Queued</dt>
          <dd data-testid='timing-queued'>{formatDuration(t.queued_ms)}</dd>
        </div>
        <div>
          <dt>Waiting for a slot</dt>
          <dd data-testid='timing-slot'>{formatDuration(t.waiting_for_slot_ms)}</dd>
        </div>
        <div>
          <dt>Running</dt>
          <dd data-testid='timing-running'>{formatDuration(t.running_ms)}</dd>
        </div>
        <div>
          <dt>Total</dt>
          <dd data-testid='timing-total'>{formatDuration(t.total_ms)}</dd>
        </div>
      </dl>

      <h4>Attempts</h4>
      {run.attempts.length === 0
        ? <p className='muted'>No worker has taken it yet.</p>
        : runs.map((r) => {
          const earlier = run.runs[r - 1];
          return (
            <div key={r} className='run__run'>
              {runs.length > 1 || run.runs.length > 0
                ? (
                  <p className='run__run-title'>
                    Run {r}
                    {earlier && (
                      <span className='muted'>
                        {' '}· ended {earlier.status}, retried <Time iso={earlier.retried_at} />
                      </span>
                    )}
                  </p>
                )
                : null}
              <ol className='attempts'>
                {run.attempts.filter((a) => a.run === r).map((a) => (
                  <AttemptItem key={a.attempt} a={a} job={job} />
                ))}
              </ol>
            </div>
          );
        })}

      <h4>Settings</h4>
      {settings.length === 0
        ? <p className='muted'>Defaults only.</p>
        : (
          <dl className='run__table' data-testid='run-settings'>
            {settings.map((s) => (
              <div key={s.key}>
                <dt>{s.label}</dt>
                <dd>{s.value}</dd>
              </div>
            ))}
          </dl>
        )}

      {report.length > 0 && (
        <>
          <h4>Report</h4>
          <dl className='run__table' data-testid='run-report'>
            {report.map((s) => (
              <div key={s.key} data-key={s.key}>
                <dt>{s.label}</dt>
                <dd>{s.value}</dd>
              </div>
            ))}
          </dl>
        </>
      )}
    </section>
  );
}
