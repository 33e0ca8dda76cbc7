// The admin view: samples GET /jobs/health (get_queue_stats over the last minute) every few
// seconds and charts the series: depth by state over time, depth by type now, throughput and
// failures per minute, and durations; and a table of the job types' limits and activity now
// (the response's job_types, absent from a server older than per-type limits: no table then).
// Only shown to admins (App checks the endpoint answers).
import { useEffect, useRef, useState } from 'react';
import { useKinds } from '../hooks/useKinds.ts';
import { type ApiError, getHealth, type JobTypeStats, type QueueStats, toApiError } from '../lib/jobs.ts';
import { type JobState, STATE_INFO } from '../lib/job-states.ts';
import { kindLabel } from '../lib/kinds.ts';
import { LineChart, StackedBars } from './charts.tsx';
import { formatDuration } from './ui.tsx';

export const SAMPLE_MS = 5000;
const KEEP = 120; // 10 minutes of samples
const WINDOW_SECONDS = 60;

export const STATE_COLORS: Record<JobState, string> = {
  pending: '#64748b',
  running: '#2f5bd3',
  waiting: '#b45309',
  done: '#15803d',
  failed: '#c2410c',
  cancelled: '#7c3aed',
};

interface Sample {
  t: number;
  stats: QueueStats;
}

function depthOf(stats: QueueStats, status: JobState): number {
  return stats.depth.filter((d) => d.status === status).reduce((a, d) => a + d.count, 0);
}

const INTERVALS = [2000, 5000, 15000];

export function Admin() {
  const [sampleMs, setSampleMs] = useState(SAMPLE_MS);
  const [samples, setSamples] = useState<Sample[]>([]);
  const [jobTypes, setJobTypes] = useState<JobTypeStats[] | null>(null);
  const { kinds } = useKinds();
  const labelOf = (type: string) => kindLabel(kinds, type);
  const [error, setError] = useState<ApiError | null>(null);
  const inFlight = useRef(false);

  useEffect(() => {
    let alive = true;
    const sample = async () => {
      if (inFlight.current || document.hidden) return;
      inFlight.current = true;
      try {
        const { stats, job_types } = await getHealth(WINDOW_SECONDS);
        if (!alive) return;
        setError(null);
        setSamples((s) => [...s.slice(-(KEEP - 1)), { t: Date.now(), stats }]);
        setJobTypes(job_types);
      } catch (err) {
        if (alive) setError(await toApiError(err));
      } finally {
        inFlight.current = false;
      }
    };
    void sample();
    const timer = setInterval(sample, sampleMs);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [sampleMs]);

  const latest = samples[samples.length - 1]?.stats;
  const active: JobState[] = ['pending', 'running', 'waiting'];
  const perMinute = 60 / WINDOW_SECONDS;

  const depthSeries = active.map((status) => ({
    name: STATE_INFO[status].label,
    color: STATE_COLORS[status],
    points: samples.map((s) => ({ t: s.t, v: depthOf(s.stats, status) })),
  }));
  const throughput = (['done', 'failed', 'cancelled'] as const).map((status) => ({
    name: `${STATE_INFO[status].label} / min`,
    color: STATE_COLORS[status],
    points: samples.map((s) => ({ t: s.t, v: s.stats.window[status] * perMinute })),
  }));
  const failureRate = [{
    name: 'Failed, % of finished',
    color: STATE_COLORS.failed,
    points: samples.map((s) => ({
      t: s.t,
      v: s.stats.window.success_rate === null ? null : Math.round((1 - s.stats.window.success_rate) * 1000) / 10,
    })),
  }];
  const durations = [
    { name: 'p50', color: STATE_COLORS.running, points: samples.map((s) => ({ t: s.t, v: s.stats.window.p50_ms })) },
    { name: 'p95', color: STATE_COLORS.waiting, points: samples.map((s) => ({ t: s.t, v: s.stats.window.p95_ms })) },
  ];

  const types = latest ? [...new Set(latest.depth.map((d) => d.type))].sort() : [];
  const bars = latest
    ? types.map((type) => ({
      label: labelOf(type),
      parts: active.map((status) => ({
        name: STATE_INFO[status].label,
        color: STATE_COLORS[status],
        value: latest.depth.find((d) => d.type === type && d.status === status)?.count ?? 0,
      })),
    }))
    : [];

  const describeLatest = (name: string, unit: string, v: number | null | undefined) =>
    `${name}: ${v === null || v === undefined ? 'no data' : `${v}${unit}`} now`;

  return (
    <section className="admin" aria-labelledby="admin-title">
      <div className="card">
        <h2 id="admin-title">Queue health</h2>
        <div className="admin__head">
          <p className="muted">
            From <code>GET /functions/v1/jobs/health</code> (get_queue_stats over the last minute);{' '}
            <span data-testid="sample-count">{samples.length}</span> sample{samples.length === 1 ? '' : 's'} so far.
          </p>
          <label className="admin__interval">
            Sample every{' '}
            <select value={sampleMs} onChange={(e) => setSampleMs(Number(e.target.value))}>
              {INTERVALS.map((ms) => <option key={ms} value={ms}>{ms / 1000} s</option>)}
            </select>
          </label>
        </div>
        {error && <p className="error" role="alert">{error.friendly}</p>}
        {latest && (
          <dl className="kpis" data-testid="kpis">
            <div><dt>Queued</dt><dd>{latest.depth.filter((d) => d.status === 'pending').reduce((a, d) => a + d.count, 0)}</dd></div>
            <div><dt>Running</dt><dd>{latest.running}</dd></div>
            <div><dt>Waiting</dt><dd>{latest.waiting}</dd></div>
            <div>
              <dt>Oldest queued</dt>
              <dd>{latest.oldest_pending_seconds === null ? '—' : formatDuration(latest.oldest_pending_seconds * 1000)}</dd>
            </div>
            <div><dt>Finished / min</dt><dd>{latest.window.finished * perMinute}</dd></div>
            <div>
              <dt>Success rate</dt>
              <dd>{latest.window.success_rate === null ? '—' : `${(latest.window.success_rate * 100).toFixed(1)}%`}</dd>
            </div>
          </dl>
        )}
      </div>
      <div className="charts">
        <div className="card">
          <LineChart
            title="Queue depth by state"
            series={depthSeries}
            description={depthSeries.map((s) => describeLatest(s.name, '', s.points.at(-1)?.v)).join('; ')}
          />
        </div>
        <div className="card">
          <StackedBars
            title="Queue depth by type, now"
            rows={bars}
            empty="The queue is empty."
            description={bars.map((b) => `${b.label}: ${b.parts.map((p) => `${p.value} ${p.name.toLowerCase()}`).join(', ')}`).join('; ')}
          />
        </div>
        <div className="card">
          <LineChart
            title="Throughput (jobs finished per minute)"
            series={throughput}
            description={throughput.map((s) => describeLatest(s.name, '', s.points.at(-1)?.v)).join('; ')}
          />
        </div>
        <div className="card">
          <LineChart
            title="Failures (% of finished jobs that failed)"
            series={failureRate}
            unit="%"
            description={describeLatest('Failed share', '%', failureRate[0].points.at(-1)?.v)}
          />
        </div>
        <div className="card">
          <LineChart
            title="Run time of finished jobs (ms)"
            series={durations}
            description={durations.map((s) => describeLatest(s.name, ' ms', s.points.at(-1)?.v)).join('; ')}
          />
        </div>
        <div className="card">
          <h3 className="chart__title" id="by-type-title">Last minute by type</h3>
          {latest && latest.by_type.length > 0
            ? (
              <div className="table-scroll">
                <table className="stats-table" aria-labelledby="by-type-title">
                  <thead>
                    <tr><th scope="col">Type</th><th scope="col">Done</th><th scope="col">Failed</th><th scope="col">Cancelled</th><th scope="col">p50</th><th scope="col">p95</th></tr>
                  </thead>
                  <tbody>
                    {latest.by_type.map((r) => (
                      <tr key={r.type}>
                        <th scope="row">{labelOf(r.type)}</th>
                        <td>{r.done}</td>
                        <td>{r.failed}</td>
                        <td>{r.cancelled}</td>
                        <td>{r.p50_ms === null ? '—' : formatDuration(r.p50_ms)}</td>
                        <td>{r.p95_ms === null ? '—' : formatDuration(r.p95_ms)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
            : <p className="muted">No job finished in the last minute.</p>}
        </div>
      </div>
      {jobTypes && <JobTypes rows={jobTypes} labelOf={labelOf} />}
    </section>
  );
}

/** A limit as the table shows it: a null limit is no limit. */
const limit = (v: number | null, unit = '') => (v === null ? 'none' : `${v}${unit}`);

/**
 * The job types' limits (spool.job_types, as claim and create apply them) and what each is doing
 * now: running, started in the last minute (what its rate counts), pending and due.
 */
function JobTypes(
  { rows, labelOf }: { rows: readonly JobTypeStats[]; labelOf: (type: string) => string },
) {
  return (
    <div className="card" data-testid="job-types">
      <h3 className="chart__title" id="job-types-title">Job types</h3>
      {rows.length > 0
        ? (
          <div className="table-scroll">
            <table className="stats-table" aria-labelledby="job-types-title">
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">Running</th>
                  <th scope="col">Max running</th>
                  <th scope="col">Started / min</th>
                  <th scope="col">Rate / min</th>
                  <th scope="col">Pending</th>
                  <th scope="col">Timeout</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Priority</th>
                  <th scope="col">Kept: done / failed</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.type}>
                    <th scope="row">{labelOf(r.type)}</th>
                    <td>{r.running}</td>
                    <td>{limit(r.max_running)}</td>
                    <td>{r.started_last_minute}</td>
                    <td>{limit(r.rate_per_minute)}</td>
                    <td>{r.pending}</td>
                    <td>{limit(r.timeout_seconds, ' s')}</td>
                    <td>{limit(r.max_attempts)}</td>
                    <td>{limit(r.priority)}</td>
                    <td title="default: the project's retention (spool.settings)">
                      {r.retention_done ?? 'default'} / {r.retention_failed ?? 'default'}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
        : <p className="muted">No job types are configured.</p>}
    </div>
  );
}
