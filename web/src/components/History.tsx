// "My jobs": the user's jobs newest first, a page at a time. Without a filter it is the live list
// (useJobList in App); with one (status, type, a date range, a search of file names and prompts)
// it pages through GET /jobs by that filter (keyset cursor), rows it shows are kept up to date
// from the live list, and a job created meanwhile makes it fetch its pages again. Each row says how long the job ran (or has been queued) and the settings
// that tell it from its siblings. Bulk actions work on the whole filter, not the page: "Cancel all
// queued" and "Retry all failed" first count what they would touch (a dry run) and ask, then say
// what happened, refusals and why included. A pack is one card with its children (PackItem).
// FilterBar, BulkBar, JobRow and useFilteredJobs serve the console's list of every user's jobs too.
import { useCallback, useEffect, useId, useRef, useState } from 'react';
import type { JobListHandle } from '../hooks/useJob.ts';
import { useKinds } from '../hooks/useKinds.ts';
import {
  type BulkAction,
  type BulkResult,
  bulkJobs,
  bulkStates,
  describeBulk,
  durationOf,
  isFiltered,
  type JobFilter,
  listJobsBy,
  NO_FILTER,
  settingsOf,
} from '../lib/history.ts';
import { type ApiError, type Job, toApiError } from '../lib/jobs.ts';
import { isTerminal, JOB_STATES, STATE_INFO } from '../lib/job-states.ts';
import type { JobKind } from '../lib/kinds.ts';
import { inputName, jobTitle } from './JobCard.tsx';
import { PackItem } from './PackCard.tsx';
import { ProgressBar, StatusBadge, Time } from './ui.tsx';
import './history-console.css';

const FILTER_KEY = 'spool.historyFilter';
const PAGE = 10;

function savedFilter(): JobFilter {
  try {
    const raw = sessionStorage.getItem(FILTER_KEY);
    return raw ? { ...NO_FILTER, ...JSON.parse(raw) } : NO_FILTER;
  } catch {
    return NO_FILTER;
  }
}

/** Re-renders every `ms` while `active` (for "queued 12 s"). */
export function useNow(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [active, ms]);
  return now;
}

export interface FilteredJobs<J extends Job> {
  jobs: J[];
  nextCursor: string | null;
  loading: boolean;
  loadingMore: boolean;
  error: ApiError | null;
  loadMore: () => Promise<void>;
  refresh: () => Promise<void>;
}

/**
 * The jobs matching `filter` (null: none fetched), a page at a time along the cursor. Rows are
 * replaced by newer versions of the same job from `live` (the live list's), so states move.
 */
export function useFilteredJobs<J extends Job = Job>(
  filter: JobFilter | null,
  { live = [], admin = false }: { live?: readonly Job[]; admin?: boolean } = {},
): FilteredJobs<J> {
  const [jobs, setJobs] = useState<J[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const seq = useRef(0);
  const pages = useRef(1);
  const key = filter ? JSON.stringify(filter) : null;

  const refresh = useCallback(async () => {
    if (!filter) return;
    const mine = ++seq.current;
    setLoading(true);
    try {
      const page = await listJobsBy<J>(filter, { limit: Math.min(100, PAGE * pages.current), admin });
      if (mine !== seq.current) return;
      setJobs(page.jobs);
      setNextCursor(page.next_cursor);
      setError(null);
    } catch (err) {
      if (mine === seq.current) setError(await toApiError(err));
    } finally {
      if (mine === seq.current) setLoading(false);
    }
    // key stands for filter
  }, [key, admin]);

  useEffect(() => {
    pages.current = 1;
    setJobs([]);
    setNextCursor(null);
    void refresh();
  }, [refresh]);

  const loadMore = useCallback(async () => {
    if (!filter || !nextCursor) return;
    const mine = seq.current;
    setLoadingMore(true);
    try {
      const page = await listJobsBy<J>(filter, { cursor: nextCursor, limit: PAGE, admin });
      if (mine !== seq.current) return;
      pages.current += 1;
      setJobs((prev) => [...prev, ...page.jobs.filter((j) => !prev.some((p) => p.id === j.id))]);
      setNextCursor(page.next_cursor);
      setError(null);
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setLoadingMore(false);
    }
  }, [key, nextCursor, admin]);

  // A job created since (the live list's newest is newer than before): fetch the first pages again,
  // so a new job that matches the filter shows up.
  const newest = live.reduce((m, j) => (j.created_at > m ? j.created_at : m), '');
  const seenNewest = useRef(newest);
  useEffect(() => {
    if (newest > seenNewest.current) {
      seenNewest.current = newest;
      void refresh();
    }
  }, [newest, refresh]);

  useEffect(() => {
    if (live.length === 0) return;
    setJobs((prev) => {
      let changed = false;
      const next = prev.map((j) => {
        const l = live.find((x) => x.id === j.id);
        if (l && Date.parse(l.updated_at) > Date.parse(j.updated_at)) {
          changed = true;
          return { ...j, ...l };
        }
        return j;
      });
      return changed ? next : prev;
    });
  }, [live]);

  return { jobs, nextCursor, loading, loadingMore, error, loadMore, refresh };
}

/** The filter's fields; `withUser` adds the console's owner field. */
export function FilterBar(
  { filter, onChange, kinds, withUser = false }: {
    filter: JobFilter;
    onChange: (f: JobFilter) => void;
    kinds: readonly JobKind[] | null;
    withUser?: boolean;
  },
) {
  const id = useId();
  // The search box commits a moment after typing stops, so each keystroke is not a request.
  const [q, setQ] = useState(filter.q);
  const latest = useRef(filter);
  latest.current = filter;
  useEffect(() => setQ(filter.q), [filter.q]);
  useEffect(() => {
    if (q === latest.current.q) return;
    const timer = setTimeout(() => onChange({ ...latest.current, q }), 300);
    return () => clearTimeout(timer);
  }, [q]);
  const set = (patch: Partial<JobFilter>) => onChange({ ...filter, ...patch });
  return (
    <form className="filters" role="search" aria-label="Filter jobs" onSubmit={(e) => {
      e.preventDefault();
      onChange({ ...filter, q });
    }}>
      <div className="filters__field filters__search">
        <label htmlFor={`${id}-q`}>Search</label>
        <input id={`${id}-q`} type="search" value={q} placeholder="File name or prompt" maxLength={200}
          onChange={(e) => setQ(e.target.value)} data-testid="filter-search" />
      </div>
      <div className="filters__field">
        <label htmlFor={`${id}-s`}>Status</label>
        <select id={`${id}-s`} value={filter.status} onChange={(e) => set({ status: e.target.value as JobFilter['status'] })}>
          <option value="">Any status</option>
          {JOB_STATES.map((s) => <option key={s} value={s}>{STATE_INFO[s].label}</option>)}
        </select>
      </div>
      <div className="filters__field">
        <label htmlFor={`${id}-t`}>Type</label>
        <select id={`${id}-t`} value={filter.type} onChange={(e) => set({ type: e.target.value })}>
          <option value="">Any type</option>
          {(kinds ?? []).map((k) => <option key={k.type} value={k.type}>{k.label}</option>)}
          {filter.type && !(kinds ?? []).some((k) => k.type === filter.type) && <option value={filter.type}>{filter.type}</option>}
        </select>
      </div>
      <div className="filters__field">
        <label htmlFor={`${id}-f`}>From</label>
        <input id={`${id}-f`} type="date" value={filter.from} max={filter.to || undefined} onChange={(e) => set({ from: e.target.value })} />
      </div>
      <div className="filters__field">
        <label htmlFor={`${id}-to`}>To</label>
        <input id={`${id}-to`} type="date" value={filter.to} min={filter.from || undefined} onChange={(e) => set({ to: e.target.value })} />
      </div>
      {withUser && (
        <div className="filters__field">
          <label htmlFor={`${id}-u`}>Owner (user id)</label>
          <input id={`${id}-u`} value={filter.user ?? ''} spellCheck={false} pattern="[0-9a-fA-F-]{36}"
            onChange={(e) => set({ user: e.target.value.trim() })} placeholder="any" />
        </div>
      )}
      {isFiltered(filter) && (
        <button type="button" className="button button--quiet filters__clear" onClick={() => {
          setQ('');
          onChange({ ...NO_FILTER });
        }}>
          Clear filters
        </button>
      )}
    </form>
  );
}

const ACTION_WORDS: Record<BulkAction, { button: string; noun: string; verb: string }> = {
  cancel: { button: 'Cancel all queued', noun: 'queued', verb: 'Cancel' },
  retry: { button: 'Retry all failed', noun: 'failed', verb: 'Retry' },
};

/**
 * "Cancel all queued" and "Retry all failed" over the whole filter: a dry run counts the jobs,
 * a confirmation states the count, and a result line says what changed and what was refused.
 */
export function BulkBar(
  { filter, admin = false, onDone }: { filter: JobFilter; admin?: boolean; onDone: () => void },
) {
  const id = useId();
  const [asking, setAsking] = useState<{ action: BulkAction; matched: number } | null>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ action: BulkAction; result: BulkResult } | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const confirm = useRef<HTMLButtonElement>(null);
  const scope = isFiltered(filter) ? ' matching this filter' : '';

  useEffect(() => {
    setAsking(null);
  }, [JSON.stringify(filter)]);
  useEffect(() => {
    if (asking && asking.matched > 0) confirm.current?.focus();
  }, [asking]);

  const ask = async (action: BulkAction) => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const dry = await bulkJobs(action, filter, { dryRun: true, admin });
      setAsking({ action, matched: dry.matched });
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setBusy(false);
    }
  };
  const run = async () => {
    if (!asking) return;
    setBusy(true);
    try {
      const r = await bulkJobs(asking.action, filter, { admin });
      setResult({ action: asking.action, result: r });
      setAsking(null);
      onDone();
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="bulk" data-testid="bulk">
      <div className="bulk__buttons">
        {(['cancel', 'retry'] as const).map((action) => (
          <button key={action} type="button" className="button button--quiet"
            disabled={busy || bulkStates(action, filter).length === 0} onClick={() => void ask(action)}>
            {ACTION_WORDS[action].button}
          </button>
        ))}
      </div>
      {asking && (
        <div className="bulk__confirm" role="alertdialog" aria-labelledby={`${id}-q`} data-testid="bulk-confirm">
          {asking.matched === 0
            ? (
              <>
                <p id={`${id}-q`}>No {ACTION_WORDS[asking.action].noun} jobs{scope}.</p>
                <button type="button" className="button button--quiet" onClick={() => setAsking(null)}>OK</button>
              </>
            )
            : (
              <>
                <p id={`${id}-q`}>
                  {ACTION_WORDS[asking.action].verb} {asking.matched} {ACTION_WORDS[asking.action].noun} job
                  {asking.matched === 1 ? '' : 's'}{scope}?
                </p>
                <button ref={confirm} type="button" className="button" disabled={busy} onClick={() => void run()}>
                  {ACTION_WORDS[asking.action].verb} {asking.matched} job{asking.matched === 1 ? '' : 's'}
                </button>
                <button type="button" className="button button--quiet" onClick={() => setAsking(null)}>Keep them</button>
              </>
            )}
        </div>
      )}
      {error && <p className="error" role="alert">{error.friendly}</p>}
      <p className="bulk__result" role="status" data-testid="bulk-result">
        {result ? describeBulk(result.action, result.result) : ''}
      </p>
    </div>
  );
}

/**
 * One row: title, file or prompt, settings, when, how long it ran (or is queued), state. Linked to
 * the job's run view unless `linked` is false (the console's rows of other users' jobs: the run
 * view is the owner's, and would answer "not found").
 */
export function JobRow(
  { job, kinds, now, owner, linked = true }: {
    job: Job;
    kinds: readonly JobKind[] | null;
    now: number;
    owner?: string;
    linked?: boolean;
  },
) {
  const name = inputName(job);
  const settings = settingsOf(job, kinds);
  const Head = linked ? 'a' : 'div';
  return (
    <>
      <Head className="history__link" {...(linked ? { href: `#/jobs/${job.id}` } : {})}>
        <span className="history__title">{jobTitle(job, kinds)}</span>
        <span className="history__sub">
          {[name, settings].filter(Boolean).join(' · ')}
          {(name || settings) && ' · '}
          <Time iso={job.created_at} />
          {owner && <> · <span className="history__owner" title={owner}>{owner.slice(0, 8)}</span></>}
        </span>
      </Head>
      <div className="history__state">
        <span className="history__duration" data-testid="history-duration">{durationOf(job, now)}</span>
        <StatusBadge job={job} />
        {!isTerminal(job.status) && (
          <ProgressBar
            value={job.progress}
            label={`${jobTitle(job, kinds)} progress`}
            indeterminate={job.status !== 'running'}
          />
        )}
      </div>
    </>
  );
}

export function History({ list }: { list: JobListHandle }) {
  const { kinds } = useKinds();
  const [filter, setFilterState] = useState<JobFilter>(savedFilter);
  const setFilter = (f: JobFilter) => {
    setFilterState(f);
    sessionStorage.setItem(FILTER_KEY, JSON.stringify(f));
  };
  const filtered = isFiltered(filter);
  const search = useFilteredJobs(filtered ? filter : null, { live: list.jobs });
  const jobs = filtered ? search.jobs : list.jobs;
  const loading = filtered ? search.loading : list.loading;
  const error = filtered ? search.error : list.error;
  const nextCursor = filtered ? search.nextCursor : list.nextCursor;
  const loadingMore = filtered ? search.loadingMore : list.loadingMore;
  const now = useNow(jobs.some((j) => !isTerminal(j.status)));
  const listed = new Set(jobs.map((j) => j.id));
  const shown = jobs.filter((j) => !(j.parent_id && listed.has(j.parent_id)));
  return (
    <section className="card history" aria-labelledby="history-title">
      <div className="history__head">
        <h2 id="history-title">My jobs</h2>
        <a className="button button--quiet" href="#/">New job</a>
      </div>
      <FilterBar filter={filter} onChange={setFilter} kinds={kinds} />
      <BulkBar filter={filter} onDone={() => void (filtered ? search.refresh() : list.refresh())} />
      {error && <p className="error" role="alert">{error.friendly}</p>}
      {loading && jobs.length === 0 && <p className="muted">Loading your jobs…</p>}
      {!loading && jobs.length === 0 && !error && (filtered
        ? <p className="muted" data-testid="history-none">No jobs match this filter.</p>
        : <p className="muted" data-testid="history-empty">No jobs yet. <a href="#/">Start one</a>.</p>)}
      {jobs.length > 0 && (
        <ul className="history__list" data-testid="history-list" aria-busy={loading}>
          {shown.map((job) => job.type === 'pack' ? (
            <li key={job.id} className="history__item history__item--pack" data-testid="history-item" data-status={job.status} data-job-id={job.id}>
              <PackItem job={job} onChange={list.apply} />
            </li>
          ) : (
            <li key={job.id} className="history__item" data-testid="history-item" data-status={job.status} data-job-id={job.id}>
              <JobRow job={job} kinds={kinds} now={now} />
            </li>
          ))}
        </ul>
      )}
      {nextCursor && (
        <button type="button" className="button" onClick={() => void (filtered ? search.loadMore() : list.loadMore())} disabled={loadingMore}>
          {loadingMore ? 'Loading…' : 'Load more'}
        </button>
      )}
    </section>
  );
}
