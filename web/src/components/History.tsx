// "My jobs": the user's jobs newest first, a page at a time, live (useJobList in App). A pack is
// one card with its children (PackItem); a child whose parent is listed is shown only there.
import type { JobListHandle } from '../hooks/useJob.ts';
import { useKinds } from '../hooks/useKinds.ts';
import { isTerminal } from '../lib/job-states.ts';
import { inputName, jobTitle } from './JobCard.tsx';
import { PackItem } from './PackCard.tsx';
import { ProgressBar, StatusBadge, Time } from './ui.tsx';

export function History({ list }: { list: JobListHandle }) {
  const { jobs, loading, error, nextCursor, loadMore, loadingMore } = list;
  const { kinds } = useKinds();
  const listed = new Set(jobs.map((j) => j.id));
  const shown = jobs.filter((j) => !(j.parent_id && listed.has(j.parent_id)));
  return (
    <section className="card history" aria-labelledby="history-title">
      <div className="history__head">
        <h2 id="history-title">My jobs</h2>
        <a className="button button--quiet" href="#/">New job</a>
      </div>
      {error && <p className="error" role="alert">{error.friendly}</p>}
      {loading && jobs.length === 0 && <p className="muted">Loading your jobs…</p>}
      {!loading && jobs.length === 0 && !error && (
        <p className="muted" data-testid="history-empty">No jobs yet. <a href="#/">Start one</a>.</p>
      )}
      {jobs.length > 0 && (
        <ul className="history__list" data-testid="history-list">
          {shown.map((job) => job.type === 'pack' ? (
            <li key={job.id} className="history__item history__item--pack" data-testid="history-item" data-status={job.status} data-job-id={job.id}>
              <PackItem job={job} onChange={list.apply} />
            </li>
          ) : (
            <li key={job.id} className="history__item" data-testid="history-item" data-status={job.status} data-job-id={job.id}>
              <a className="history__link" href={`#/jobs/${job.id}`}>
                <span className="history__title">{jobTitle(job, kinds)}</span>
                <span className="history__sub">
                  {inputName(job)}
                  {inputName(job) && ' · '}
                  <Time iso={job.created_at} />
                </span>
              </a>
              <div className="history__state">
                <StatusBadge status={job.status} />
                {!isTerminal(job.status) && (
                  <ProgressBar
                    value={job.progress}
                    label={`${jobTitle(job, kinds)} progress`}
                    indeterminate={job.status !== 'running'}
                  />
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
      {nextCursor && (
        <button type="button" className="button" onClick={() => void loadMore()} disabled={loadingMore}>
          {loadingMore ? 'Loading…' : 'Load more'}
        </button>
      )}
    </section>
  );
}
