// The operations console (admins only; App checks GET /jobs/health answers them). Everything
// comes from SQL through the jobs function, so the last hour shows at once and survives a reload:
//   GET /jobs/admin        job_series (finished jobs per minute, per type and outcome, run-time
//                          p50/p95 and queue-wait p50), queue_diagnosis (why pending jobs do not
//                          run, with the providers the function knows), job_type_stats (limits)
//   GET /jobs/admin/jobs   every user's jobs with the history's filters (the failed ones with
//                          their errors, and the list with bulk actions)
// It is fetched again every REFRESH_MS while the tab is visible; nothing is sampled here.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { useKinds } from '../hooks/useKinds.ts';
import {
  type ConsoleOverview,
  type Diagnosis,
  getConsole,
  isFiltered,
  type JobFilter,
  minutesOf,
  NO_FILTER,
  type OwnedJob,
  type SeriesRow,
} from '../lib/history.ts';
import { type ApiError, type JobTypeStats, toApiError } from '../lib/jobs.ts';
import type { JobState } from '../lib/job-states.ts';
import { kindLabel } from '../lib/kinds.ts';
import { LineChart, type Series } from './charts.tsx';
import { BulkBar, FilterBar, JobRow, useFilteredJobs, useNow } from './History.tsx';
import { formatDuration, Time } from './ui.tsx';
import './history-console.css';

export const REFRESH_MS = 15_000;
const MINUTES = 60;

export const STATE_COLORS: Record<JobState, string> = {
  pending: '#64748b',
  running: '#2f5bd3',
  waiting: '#b45309',
  done: '#15803d',
  failed: '#c2410c',
  cancelled: '#7c3aed',
};
const TYPE_COLORS = ['#2f5bd3', '#15803d', '#b45309', '#7c3aed', '#c2410c', '#0e7490', '#64748b'];

/** A series over every minute of the window from job_series rows (missing minutes: `empty`). */
function seriesOf(
  rows: readonly SeriesRow[],
  minutes: number[],
  pick: (r: SeriesRow) => boolean,
  value: (rs: SeriesRow[]) => number | null,
  empty: number | null,
): { t: number; v: number | null }[] {
  const by = new Map<number, SeriesRow[]>();
  for (const r of rows) {
    if (!pick(r)) continue;
    const t = Math.floor(Date.parse(r.minute) / 60_000) * 60_000;
    by.set(t, [...(by.get(t) ?? []), r]);
  }
  return minutes.map((t) => ({ t, v: by.has(t) ? value(by.get(t)!) : empty }));
}

const sum = (rs: SeriesRow[]) => rs.reduce((a, r) => a + r.finished, 0);
const total = (s: Series) => s.points.reduce((a, p) => a + (p.v ?? 0), 0);
const lastValue = (s: Series) => [...s.points].reverse().find((p) => p.v !== null)?.v ?? null;

/**
 * The operations console. `userId` is the admin's own: only their own jobs link to the run view,
 * which shows the signed-in user's jobs alone.
 */
export function Admin({ userId }: { userId: string | null }) {
  const { kinds } = useKinds();
  const labelOf = (type: string) => kindLabel(kinds, type);
  const [data, setData] = useState<ConsoleOverview | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [filter, setFilter] = useState<JobFilter>(NO_FILTER);
  const failedFilter = useMemo<JobFilter>(() => ({ ...NO_FILTER, status: 'failed' }), []);
  const failed = useFilteredJobs<OwnedJob>(failedFilter, { admin: true });
  const all = useFilteredJobs<OwnedJob>(filter, { admin: true });
  const now = useNow(all.jobs.some((j) => j.status === 'pending' || j.status === 'running'));

  const load = useCallback(async () => {
    try {
      setData(await getConsole(MINUTES));
      setError(null);
    } catch (err) {
      setError(await toApiError(err));
    }
  }, []);
  useEffect(() => {
    void load();
    const timer = setInterval(() => {
      if (document.hidden) return;
      void load();
      void failed.refresh();
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [load, failed.refresh]);

  const minutes = data ? minutesOf(data.diagnosis.at, data.minutes) : [];
  const rows = data?.series ?? [];
  const outcomes = (['done', 'failed', 'cancelled'] as const).map((status): Series => ({
    name: { done: 'Done', failed: 'Failed', cancelled: 'Cancelled' }[status],
    color: STATE_COLORS[status],
    points: seriesOf(rows, minutes, (r) => r.type === null && r.status === status, sum, 0),
  }));
  const done = (r: SeriesRow) => r.type === null && r.status === 'done';
  const timing: Series[] = [
    { name: 'Run time p50', color: STATE_COLORS.running, points: seriesOf(rows, minutes, done, (rs) => rs[0].run_p50_ms, null) },
    { name: 'Run time p95', color: STATE_COLORS.cancelled, points: seriesOf(rows, minutes, done, (rs) => rs[0].run_p95_ms, null) },
    { name: 'Queue wait p50', color: STATE_COLORS.waiting, points: seriesOf(rows, minutes, done, (rs) => rs[0].wait_p50_ms, null) },
  ];
  const types = [...new Set(rows.filter((r) => r.type !== null).map((r) => r.type!))].sort();
  const byType: Series[] = types.map((type, i) => ({
    name: labelOf(type),
    color: TYPE_COLORS[i % TYPE_COLORS.length],
    points: seriesOf(rows, minutes, (r) => r.type === type, sum, 0),
  }));
  const finishedHour = outcomes.reduce((a, s) => a + total(s), 0);
  const failedHour = total(outcomes[1]);

  return (
    <section className="admin" aria-labelledby="admin-title">
      <div className="card">
        <h2 id="admin-title">Operations console</h2>
        <p className="muted">
          The last hour from SQL (<code>job_series</code>, <code>queue_diagnosis</code>), fetched again every{' '}
          {REFRESH_MS / 1000} s{data && <> · as of <Time iso={data.diagnosis.at} /></>}.
        </p>
        {error && <p className="error" role="alert">{error.friendly}</p>}
        {data && (
          <dl className="kpis" data-testid="kpis">
            <div><dt>Queued</dt><dd>{data.diagnosis.pending}</dd></div>
            <div><dt>Due now</dt><dd>{data.diagnosis.due}</dd></div>
            <div><dt>Running</dt><dd>{data.diagnosis.running}</dd></div>
            <div><dt>Waiting</dt><dd>{data.stats.waiting}</dd></div>
            <div><dt>Finished, last hour</dt><dd data-testid="finished-hour">{finishedHour}</dd></div>
            <div><dt>Failed, last hour</dt><dd>{failedHour}</dd></div>
          </dl>
        )}
      </div>
      {data && <Stall diagnosis={data.diagnosis} />}
      {data && (
        <div className="charts">
          <div className="card">
            <LineChart
              title="Jobs finished per minute"
              series={outcomes}
              description={`Last ${data.minutes} minutes: ${outcomes.map((s) => `${total(s)} ${s.name.toLowerCase()}`).join(', ')}`}
            />
          </div>
          <div className="card">
            <LineChart
              title="Run time and queue wait of done jobs (ms)"
              series={timing}
              description={timing.map((s) => `${s.name}: ${lastValue(s) === null ? 'no data' : formatDuration(lastValue(s)!)} in the latest minute with jobs`).join('; ')}
            />
          </div>
          <div className="card">
            {byType.length > 0
              ? (
                <LineChart
                  title="Finished per minute by type"
                  series={byType}
                  description={byType.map((s) => `${s.name}: ${total(s)} in the last ${data.minutes} minutes`).join('; ')}
                />
              )
              : (
                <>
                  <h3 className="chart__title">Finished per minute by type</h3>
                  <p className="muted">No job finished in the last {data.minutes} minutes.</p>
                </>
              )}
          </div>
        </div>
      )}
      {data && <JobTypes rows={data.job_types} labelOf={labelOf} />}
      <div className="card" data-testid="failed-jobs">
        <h3 className="chart__title">Failed jobs</h3>
        {failed.error && <p className="error" role="alert">{failed.error.friendly}</p>}
        {failed.jobs.length === 0
          ? <p className="muted">{failed.loading ? 'Loading…' : 'No failed jobs.'}</p>
          : (
            <ul className="errors-list">
              {failed.jobs.map((j) => (
                <li key={j.id} data-job-id={j.id}>
                  <span>
                    {j.user_id === userId ? <a href={`#/jobs/${j.id}`}>{labelOf(j.type)}</a> : labelOf(j.type)}{' '}
                    <code>{j.error?.code ?? 'error'}</code>: {j.error?.message ?? 'no message'}
                  </span>
                  <span className="muted">
                    attempt {typeof j.error?.attempt === 'number' ? j.error.attempt : j.attempts} of {j.max_attempts}
                    {' · '}{j.finished_at ? <Time iso={j.finished_at} /> : '—'}
                    {' · '}user <code title={j.user_id}>{j.user_id.slice(0, 8)}</code>
                    {j.error?.retryable === false ? ' · permanent' : ''}
                  </span>
                </li>
              ))}
            </ul>
          )}
        {failed.nextCursor && (
          <button type="button" className="button button--quiet" onClick={() => void failed.loadMore()} disabled={failed.loadingMore}>
            More failed jobs
          </button>
        )}
      </div>
      <div className="card history" data-testid="all-jobs">
        <h3 className="chart__title" id="all-jobs-title">All users' jobs</h3>
        <FilterBar filter={filter} onChange={setFilter} kinds={kinds} withUser />
        <BulkBar filter={filter} admin onDone={() => {
          void all.refresh();
          void failed.refresh();
          void load();
        }} />
        {all.error && <p className="error" role="alert">{all.error.friendly}</p>}
        {!all.loading && all.jobs.length === 0 && !all.error && (
          <p className="muted">{isFiltered(filter) ? 'No jobs match this filter.' : 'No jobs.'}</p>
        )}
        {all.jobs.length > 0 && (
          <ul className="history__list" aria-labelledby="all-jobs-title">
            {all.jobs.map((job) => (
              <li key={job.id} className="history__item" data-testid="console-item" data-status={job.status} data-job-id={job.id}>
                <JobRow job={job} kinds={kinds} now={now} owner={job.user_id} linked={job.user_id === userId} />
              </li>
            ))}
          </ul>
        )}
        {all.nextCursor && (
          <button type="button" className="button" onClick={() => void all.loadMore()} disabled={all.loadingMore}>
            {all.loadingMore ? 'Loading…' : 'Load more'}
          </button>
        )}
      </div>
    </section>
  );
}

const clock = (iso: string) => new Date(iso).toLocaleTimeString();

/** Is the queue moving, and if not, why (queue_diagnosis' reasons). */
function Stall({ diagnosis: d }: { diagnosis: Diagnosis }) {
  const stalled = d.due > 0 && d.running === 0;
  const headline = d.pending === 0
    ? 'Nothing is queued.'
    : stalled
    ? `Stalled: ${d.due} job${d.due === 1 ? ' is' : 's are'} due and nothing is running.`
    : d.due > 0
    ? `${d.due} due, ${d.running} running.`
    : `${d.pending} queued, none due yet.`;
  return (
    <div className={`card stall ${stalled ? 'stall--stalled' : 'stall--moving'}`} data-testid="stall" data-stalled={stalled}>
      <h3 className="chart__title">Queue</h3>
      <p><strong>{headline}</strong></p>
      {d.reasons.length > 0 && (
        <>
          <p className="muted">What holds jobs back:</p>
          <ul data-testid="stall-reasons">
            {d.reasons.map((r, i) => (
              <li key={`${r.code}-${i}`} data-code={r.code}>{r.message}</li>
            ))}
          </ul>
        </>
      )}
      <p className="muted" data-testid="next-sweep">
        {d.sweep
          ? d.sweep.active && d.sweep.next_run_at
            ? <>Next safety-net sweep at {clock(d.sweep.next_run_at)} (pg_cron, every {d.sweep.schedule === '* * * * *' ? 'minute' : d.sweep.schedule}).</>
            : 'The safety-net sweep (pg_cron spool-sweep) is not active.'
          : 'No safety-net sweep is scheduled (pg_cron spool-sweep).'}
      </p>
    </div>
  );
}

/** A limit as the table shows it: a null limit is no limit. */
const limit = (v: number | null, unit = '') => (v === null ? 'none' : `${v}${unit}`);

/**
 * The job types' limits (spool.job_types, as claim and create apply them) and what each is doing
 * now. A table on wide screens; one block per type, each cell labelled, at 360 px.
 */
function JobTypes(
  { rows, labelOf }: { rows: readonly JobTypeStats[]; labelOf: (type: string) => string },
) {
  const columns: [string, (r: JobTypeStats) => string | number][] = [
    ['Running', (r) => r.running],
    ['Max running', (r) => limit(r.max_running)],
    ['Started / min', (r) => r.started_last_minute],
    ['Rate / min', (r) => limit(r.rate_per_minute)],
    ['Due', (r) => r.pending],
    ['Timeout', (r) => limit(r.timeout_seconds, ' s')],
    ['Attempts', (r) => limit(r.max_attempts)],
    ['Kept: done / failed', (r) => `${r.retention_done ?? 'default'} / ${r.retention_failed ?? 'default'}`],
  ];
  return (
    <div className="card" data-testid="job-types">
      <h3 className="chart__title" id="job-types-title">Job types</h3>
      {rows.length > 0
        ? (
          // Explicit roles: at 360 px the cells are laid out as blocks, which must not cost the
          // table its semantics.
          <table className="limits-table" role="table" aria-labelledby="job-types-title">
            <thead role="rowgroup">
              <tr role="row">
                <th scope="col" role="columnheader">Type</th>
                {columns.map(([name]) => <th key={name} scope="col" role="columnheader">{name}</th>)}
              </tr>
            </thead>
            <tbody role="rowgroup">
              {rows.map((r) => (
                <tr key={r.type} role="row">
                  <th scope="row" role="rowheader">{labelOf(r.type)}</th>
                  {columns.map(([name, value]) => <td key={name} role="cell" data-label={name}>{value(r)}</td>)}
                </tr>
              ))}
            </tbody>
          </table>
        )
        : <p className="muted">No job types are configured.</p>}
    </div>
  );
}
