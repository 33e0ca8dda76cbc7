// "Schedules": the user's recurring jobs (public.schedules under RLS), each with how it recurs,
// its next runs, its last run and last error, and Pause / Resume / Delete (the owner's RPCs).
// A project-wide schedule (set by the project for this user) is shown but cannot be changed
// here. New schedules come from the new-job form's "Run on a schedule".
import { useCallback, useEffect, useState } from 'react';
import { useKinds } from '../hooks/useKinds.ts';
import type { ApiError } from '../lib/api-error.ts';
import { kindLabel } from '../lib/kinds.ts';
import {
  deleteSchedule,
  describeRecurrence,
  formatSlot,
  listSchedules,
  pauseSchedule,
  previewSchedule,
  recurrenceOf,
  resumeSchedule,
  type Schedule,
} from '../lib/schedules.ts';
import { Time } from './ui.tsx';

type Load =
  | { state: 'loading'; schedules: Schedule[] }
  | { state: 'ready'; schedules: Schedule[] }
  | { state: 'error'; schedules: Schedule[]; error: ApiError };

export function Schedules() {
  const [load, setLoad] = useState<Load>({ state: 'loading', schedules: [] });
  const { kinds } = useKinds();

  const refresh = useCallback(async () => {
    setLoad((l) => ({ state: 'loading', schedules: l.schedules }));
    try {
      setLoad({ state: 'ready', schedules: await listSchedules() });
    } catch (err) {
      setLoad((l) => ({ state: 'error', schedules: l.schedules, error: err as ApiError }));
    }
  }, []);
  useEffect(() => {
    void refresh();
  }, [refresh]);

  const replace = (next: Schedule) =>
    setLoad((l) => ({ ...l, schedules: l.schedules.map((s) => (s.id === next.id ? next : s)) }));
  const remove = (id: string) => setLoad((l) => ({ ...l, schedules: l.schedules.filter((s) => s.id !== id) }));

  const { schedules } = load;
  return (
    <section className="card history" aria-labelledby="schedules-title" aria-busy={load.state === 'loading'}>
      <div className="history__head">
        <h2 id="schedules-title">Schedules</h2>
        <div className="actions">
          <button type="button" className="button button--quiet" onClick={() => void refresh()} disabled={load.state === 'loading'}>
            Refresh
          </button>
          <a className="button button--quiet" href="#/">New schedule</a>
        </div>
      </div>
      <p className="muted">
        Jobs that run by themselves, on a cron expression or at a fixed interval. A paused schedule skips its runs until you
        resume it; a resumed one starts again from now, without catching up.
      </p>
      {load.state === 'error' && <p className="error" role="alert">{load.error.friendly}</p>}
      {load.state === 'loading' && schedules.length === 0 && <p className="muted">Loading your schedules…</p>}
      {load.state === 'ready' && schedules.length === 0 && (
        <p className="muted" data-testid="schedules-empty">
          No schedules yet. On <a href="#/">New job</a>, choose a job that needs no upload and tick “Run on a schedule”.
        </p>
      )}
      {schedules.length > 0 && (
        <ul className="history__list" data-testid="schedule-list">
          {schedules.map((s) => (
            <ScheduleItem
              key={s.id}
              schedule={s}
              label={kindLabel(kinds, s.type)}
              onChange={replace}
              onDeleted={remove}
            />
          ))}
        </ul>
      )}
    </section>
  );
}

/** What went wrong with the last slot (schedules.last_error {code, message, slot, at}). */
function lastErrorText(error: Schedule['last_error']): string | null {
  if (!error || typeof error !== 'object' || Array.isArray(error)) return null;
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && message ? message : 'the last run could not be created';
}

function ScheduleItem({ schedule: s, label, onChange, onDeleted }: {
  schedule: Schedule;
  label: string;
  onChange: (s: Schedule) => void;
  onDeleted: (id: string) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [upcoming, setUpcoming] = useState<string[] | null>(null);
  const title = s.name ?? label;
  const lastError = lastErrorText(s.last_error);

  // The next runs after the stored one, as the server computes them (paused: none).
  useEffect(() => {
    if (s.paused) return setUpcoming(null);
    let alive = true;
    previewSchedule(recurrenceOf(s), { count: 3, startsAt: s.starts_at }).then(
      (slots) => alive && setUpcoming(slots),
      () => alive && setUpcoming(null),
    );
    return () => {
      alive = false;
    };
  }, [s.id, s.paused, s.cron, s.every, s.timezone, s.starts_at, s.next_run_at]);

  const act = async (what: () => Promise<Schedule>, deleted = false) => {
    setBusy(true);
    setError(null);
    try {
      const next = await what();
      if (deleted) onDeleted(s.id);
      else onChange(next);
    } catch (err) {
      setError(err as ApiError);
      setBusy(false);
      return;
    }
    setBusy(false);
    setConfirming(false);
  };

  return (
    <li className="history__item" data-testid="schedule-item" data-schedule-id={s.id} data-paused={String(s.paused)}>
      <div className="history__link">
        <span className="history__title">{title}</span>
        <span className="history__sub">
          {s.name ? `${label} · ` : ''}
          <span data-testid="schedule-recurrence">{describeRecurrence(s)}</span>
        </span>
        <span className="history__sub" data-testid="schedule-next">
          {s.paused
            ? 'Paused: no runs until you resume it.'
            : s.next_run_at
            ? (
              <>
                Next run <Time iso={s.next_run_at} />{' '}
                <span className="muted-inline">({formatSlot(s.next_run_at, s.timezone)})</span>
              </>
            )
            : 'No next run.'}
        </span>
        {!s.paused && upcoming && upcoming.length > 1 && (
          <span className="history__sub">
            Then: {upcoming.filter((u) => u !== s.next_run_at).slice(0, 2).map((u) => formatSlot(u, s.timezone)).join('; ')}
          </span>
        )}
        <span className="history__sub" data-testid="schedule-last">
          {s.last_run_at
            ? (
              <>
                Last run <Time iso={s.last_run_at} />
                {s.last_job_id && <> · <a href={`#/jobs/${s.last_job_id}`}>its job</a></>}
              </>
            )
            : 'Not run yet.'}
        </span>
        {lastError && (
          <span className="history__sub error" data-testid="schedule-error">Last error: {lastError}</span>
        )}
        {error && <span className="history__sub error" role="alert">{error.friendly}</span>}
      </div>
      <div className="history__state">
        {s.paused
          ? <span className="badge badge--muted" data-testid="schedule-state">Paused</span>
          : <span className="badge badge--active" data-testid="schedule-state">Active</span>}
        {s.project_wide
          ? <span className="muted-inline">Set by the project</span>
          : (
            <div className="actions">
              {s.paused
                ? (
                  <button type="button" className="button" disabled={busy} aria-label={`Resume ${title}`} onClick={() => void act(() => resumeSchedule(s.id))}>
                    Resume
                  </button>
                )
                : (
                  <button type="button" className="button" disabled={busy} aria-label={`Pause ${title}`} onClick={() => void act(() => pauseSchedule(s.id))}>
                    Pause
                  </button>
                )}
              {confirming
                ? (
                  <>
                    <button type="button" className="button button--primary" disabled={busy} aria-label={`Really delete ${title}`} onClick={() => void act(() => deleteSchedule(s.id), true)}>
                      Delete for good
                    </button>
                    <button type="button" className="button button--quiet" disabled={busy} onClick={() => setConfirming(false)}>
                      Keep
                    </button>
                  </>
                )
                : (
                  <button type="button" className="button button--quiet" disabled={busy} aria-label={`Delete ${title}`} onClick={() => setConfirming(true)}>
                    Delete
                  </button>
                )}
            </div>
          )}
      </div>
    </li>
  );
}
