// The one place that owns Realtime channels for jobs.
//
// useLiveJobs(): a postgres_changes subscription on public.jobs (filter `id=eq.<id>` for one job,
// or `user_id=eq.<uid>` for a user's history, plus that user's new notifications), with what
// Realtime does not promise made up for here:
//   - events are not replayed across a reconnect or while a tab sleeps, so the state is fetched
//     again from the jobs API on every SUBSCRIBED (the first join and each rejoin after a
//     reconnect) and when the tab becomes visible again;
//   - while the channel is not joined (connecting, CHANNEL_ERROR, TIMED_OUT, CLOSED) the jobs API
//     is polled every `pollMs`;
//   - the channel is removed with supabase.removeChannel on unmount.
// useJob(id), useJobList(uid) and useFlowChildren(parent) (filter `parent_id=eq.<id>`) build on it;
// useJobRun(job, { live }) follows a job's run detail (get_job_run): on every row change for the run
// view, on state changes for a card.
import { useCallback, useEffect, useRef, useState } from 'react';
import {
  ApiError,
  getJob,
  type Job,
  type JobDetail,
  listJobs,
  toApiError,
  toJob,
} from '../lib/jobs.ts';
import { isJobState, isTerminal, type JobState, TERMINAL_STATES } from '../lib/job-states.ts';
import { getJobRun, type JobRun } from '../lib/run.ts';
import { supabase } from '../lib/supabase.ts';

export type LiveMode = 'connecting' | 'live' | 'polling';

export const POLL_MS = 3000;

export interface NotificationRow {
  id: string;
  job_id: string;
  job_type: string;
  status: JobState;
  message: string;
  created_at: string;
}

interface LiveOptions {
  /** Channel name prefix; null disables the subscription (and polling). */
  name: string | null;
  /** postgres_changes filter on public.jobs: `id=eq.<id>` or `user_id=eq.<uid>`. */
  filter: string;
  /** Also deliver this user's new notifications rows. */
  notificationsFor?: string;
  /** Loads the current state from the jobs API. */
  refetch: () => Promise<void>;
  onJob: (job: Job, event: 'INSERT' | 'UPDATE' | 'DELETE') => void;
  onNotification?: (row: NotificationRow) => void;
  pollMs?: number;
}

let channelSeq = 0;

/** Subscribes as described above; returns whether updates are live or polled. */
export function useLiveJobs(opts: LiveOptions): LiveMode {
  const [mode, setMode] = useState<LiveMode>('connecting');
  // The latest callbacks, so a parent's re-render never re-subscribes.
  const latest = useRef(opts);
  latest.current = opts;
  const { name, filter, notificationsFor, pollMs = POLL_MS } = opts;

  useEffect(() => {
    if (!name) return;
    let alive = true;
    let timer: ReturnType<typeof setInterval> | null = null;

    const refetch = () => {
      if (alive) latest.current.refetch().catch(() => {/* the hook's owner shows errors */});
    };
    const startPolling = () => {
      if (timer === null) timer = setInterval(() => !document.hidden && refetch(), pollMs);
    };
    const stopPolling = () => {
      if (timer !== null) clearInterval(timer);
      timer = null;
    };

    // A unique name per subscriber: supabase.channel() hands back an existing channel of the
    // same name, and two owners must never share (or remove) one channel.
    const channel = supabase.channel(`${name}:${++channelSeq}`);
    channel.on(
      'postgres_changes',
      { event: '*', schema: 'public', table: 'jobs', filter },
      (payload) => {
        const row = (payload.eventType === 'DELETE' ? payload.old : payload.new) as Record<
          string,
          unknown
        >;
        if (!row || typeof row.id !== 'string') return;
        if (payload.eventType !== 'DELETE' && !isJobState(row.status)) return;
        latest.current.onJob(toJob(row), payload.eventType);
      },
    );
    if (notificationsFor) {
      channel.on(
        'postgres_changes',
        {
          event: 'INSERT',
          schema: 'public',
          table: 'notifications',
          filter: `user_id=eq.${notificationsFor}`,
        },
        (payload) => latest.current.onNotification?.(payload.new as NotificationRow),
      );
    }
    channel.subscribe((status) => {
      if (!alive) return;
      if (status === 'SUBSCRIBED') {
        setMode('live');
        stopPolling();
        refetch(); // whatever changed before the join, or while disconnected
      } else {
        // CHANNEL_ERROR, TIMED_OUT, CLOSED: Realtime is down; realtime-js keeps rejoining and a
        // later SUBSCRIBED switches back.
        setMode('polling');
        startPolling();
      }
    });

    refetch();
    startPolling(); // until the first SUBSCRIBED

    const onVisible = () => {
      if (!document.hidden) refetch();
    };
    document.addEventListener('visibilitychange', onVisible);
    window.addEventListener('online', refetch);

    return () => {
      alive = false;
      stopPolling();
      document.removeEventListener('visibilitychange', onVisible);
      window.removeEventListener('online', refetch);
      void supabase.removeChannel(channel);
    };
  }, [name, filter, notificationsFor, pollMs]);

  return name ? mode : 'connecting';
}

/** Whether `next` is at least as recent as `prev` (events and fetches may arrive out of order). */
function newer(prev: Job | undefined | null, next: Job): boolean {
  return !prev || Date.parse(next.updated_at) >= Date.parse(prev.updated_at);
}

export interface JobHandle {
  detail: JobDetail | null;
  job: Job | null;
  error: ApiError | null;
  live: LiveMode;
  refresh: () => Promise<void>;
  /** Applies a job returned by an action (cancel, retry) at once. */
  apply: (job: Job) => void;
}

/** One job, live: GET /jobs/<id> (signed output URLs) plus its own Realtime channel. */
export function useJob(id: string | null, initial?: Job | null): JobHandle {
  const [detail, setDetail] = useState<JobDetail | null>(
    initial && initial.id === id ? { job: initial, output_url: null, output_files: [] } : null,
  );
  const [error, setError] = useState<ApiError | null>(null);
  const current = useRef<JobDetail | null>(detail);
  current.current = detail;

  useEffect(() => {
    setDetail(initial && initial.id === id ? { job: initial, output_url: null, output_files: [] } : null);
    setError(null);
    // Only a new id starts over; `initial` is read at that moment.
  }, [id]);

  const refresh = useCallback(async () => {
    if (!id) return;
    try {
      const next = await getJob(id);
      setError(null);
      setDetail((prev) => (prev && prev.job.id === id && !newer(prev.job, next.job) ? prev : next));
    } catch (err) {
      setError(await toApiError(err));
    }
  }, [id]);

  const apply = useCallback((job: Job) => {
    setDetail((prev) =>
      prev && prev.job.id === job.id && !newer(prev.job, job)
        ? prev
        : { job, output_url: null, output_files: [] }
    );
    if (job.status === 'done') void refresh();
  }, [refresh]);

  const live = useLiveJobs({
    name: id ? `job:${id}` : null,
    filter: `id=eq.${id}`,
    refetch: refresh,
    onJob: (job) => {
      if (job.id !== id) return;
      const prev = current.current?.job;
      if (!newer(prev, job)) return;
      // A finished job's download URLs are signed by the jobs API: fetch it once it is done.
      if (job.status === 'done') void refresh();
      setDetail((d) => ({ job, output_url: d?.output_url ?? null, output_files: d?.output_files ?? [] }));
    },
  });

  return { detail, job: detail?.job ?? null, error, live, refresh, apply };
}

export interface JobListHandle {
  jobs: Job[];
  nextCursor: string | null;
  loading: boolean;
  loadingMore: boolean;
  error: ApiError | null;
  live: LiveMode;
  loadMore: () => Promise<void>;
  refresh: () => Promise<void>;
  /** Puts a job the user just started (or changed) into the list at once. */
  apply: (job: Job) => void;
}

const PAGE = 10;

/**
 * The user's jobs, newest first, a page at a time (GET /jobs with a cursor), kept live by one
 * channel on `user_id=eq.<uid>`. `onEnded` is called once per job that reaches a terminal state
 * while watched (from Realtime, a notification or a poll), for toasts.
 */
export function useJobList(
  userId: string | null,
  onEnded?: (job: Pick<Job, 'id' | 'type' | 'status'> & { error?: Job['error'] }, message?: string) => void,
): JobListHandle {
  const [jobs, setJobs] = useState<Job[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const extraPages = useRef(0);
  /** Statuses seen per job, to notice transitions; and job:status pairs already announced. */
  const seen = useRef(new Map<string, JobState>());
  const announced = useRef(new Set<string>());
  const onEndedRef = useRef(onEnded);
  onEndedRef.current = onEnded;

  const observe = useCallback((job: Job) => {
    const before = seen.current.get(job.id);
    seen.current.set(job.id, job.status);
    if (!isTerminal(job.status)) {
      // Running again (a retry): its next ending is news again.
      for (const s of TERMINAL_STATES) announced.current.delete(`${job.id}:${s}`);
      return;
    }
    const key = `${job.id}:${job.status}`;
    if (before !== undefined && before !== job.status && !announced.current.has(key)) {
      announced.current.add(key);
      onEndedRef.current?.(job);
    }
  }, []);

  const merge = useCallback((incoming: Job[], replace: boolean) => {
    incoming.forEach(observe);
    setJobs((prev) => {
      const byId = new Map(prev.map((j) => [j.id, j]));
      for (const j of incoming) {
        const old = byId.get(j.id);
        if (newer(old, j)) byId.set(j.id, j);
      }
      let list = [...byId.values()];
      if (replace) {
        // A refetch of the first pages is the truth for their range: drop rows it no longer has
        // (pruned jobs) that are newer than its oldest row.
        const ids = new Set(incoming.map((j) => j.id));
        const oldest = incoming[incoming.length - 1]?.created_at;
        list = list.filter((j) => ids.has(j.id) || (oldest !== undefined && j.created_at < oldest));
      }
      return list.sort((a, b) =>
        a.created_at === b.created_at ? (a.id < b.id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1
      );
    });
  }, [observe]);

  const refresh = useCallback(async () => {
    if (!userId) return;
    try {
      const limit = Math.min(100, PAGE * (1 + extraPages.current));
      const page = await listJobs({ limit });
      setError(null);
      merge(page.jobs, true);
      setNextCursor(page.next_cursor);
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setLoading(false);
    }
  }, [userId, merge]);

  const loadMore = useCallback(async () => {
    if (!nextCursor) return;
    setLoadingMore(true);
    try {
      const page = await listJobs({ limit: PAGE, cursor: nextCursor });
      extraPages.current += 1;
      merge(page.jobs, false);
      setNextCursor(page.next_cursor);
      setError(null);
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setLoadingMore(false);
    }
  }, [nextCursor, merge]);

  const apply = useCallback((job: Job) => merge([job], false), [merge]);

  const live = useLiveJobs({
    name: userId ? `jobs:${userId}` : null,
    filter: `user_id=eq.${userId}`,
    notificationsFor: userId ?? undefined,
    refetch: refresh,
    onJob: (job, event) => {
      if (event === 'DELETE') {
        setJobs((prev) => prev.filter((j) => j.id !== job.id));
        return;
      }
      merge([job], false);
    },
    onNotification: (n) => {
      const key = `${n.job_id}:${n.status}`;
      if (announced.current.has(key)) return;
      announced.current.add(key);
      seen.current.set(n.job_id, n.status);
      onEndedRef.current?.({ id: n.job_id, type: n.job_type, status: n.status }, n.message);
    },
  });

  return { jobs, nextCursor, loading, loadingMore, error, live, loadMore, refresh, apply };
}

export interface FlowChildrenHandle {
  /** The children as last seen, in no particular order (lib/pack.ts packSlots places them). */
  children: Job[];
  /** Signed output URLs of the done children, by id (GET /jobs/<id>). */
  details: Record<string, JobDetail>;
  loading: boolean;
  error: ApiError | null;
  live: LiveMode;
  refresh: () => Promise<void>;
  /** Applies a child returned by an action (cancel, retry) at once. */
  apply: (job: Job) => void;
}

/**
 * A flow parent's children, live: GET /jobs?parent=<id> plus one channel on
 * `parent_id=eq.<id>` (children are rows of the same jobs table; parent_id is a column the owner
 * may read and filter on since 20261203180000_parent_visible.sql), refetched on SUBSCRIBED,
 * after a reconnect and by polling while Realtime is down, as useLiveJobs does for every job. A
 * child that is done is fetched once more by id for its signed output URLs.
 */
export function useFlowChildren(parentId: string | null): FlowChildrenHandle {
  const [children, setChildren] = useState<Job[]>([]);
  const [details, setDetails] = useState<Record<string, JobDetail>>({});
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  /** Done children whose detail was asked for (at `updated_at`), so each is signed once. */
  const signed = useRef(new Map<string, string>());

  useEffect(() => {
    setChildren([]);
    setDetails({});
    setLoading(true);
    setError(null);
    signed.current.clear();
  }, [parentId]);

  const sign = useCallback((job: Job) => {
    if (job.status !== 'done' || signed.current.get(job.id) === job.updated_at) return;
    signed.current.set(job.id, job.updated_at);
    getJob(job.id).then(
      (d) => setDetails((prev) => ({ ...prev, [job.id]: d })),
      () => signed.current.delete(job.id), // the next change or refetch asks again
    );
  }, []);

  const merge = useCallback((incoming: Job[]) => {
    incoming.forEach(sign);
    setChildren((prev) => {
      const byId = new Map(prev.map((j) => [j.id, j]));
      for (const j of incoming) if (newer(byId.get(j.id), j)) byId.set(j.id, j);
      return [...byId.values()];
    });
  }, [sign]);

  const refresh = useCallback(async () => {
    if (!parentId) return;
    try {
      // A flow of up to 100 children in one page (a pack has seven).
      const page = await listJobs({ parent: parentId, limit: 100 });
      setError(null);
      merge(page.jobs);
    } catch (err) {
      setError(await toApiError(err));
    } finally {
      setLoading(false);
    }
  }, [parentId, merge]);

  const live = useLiveJobs({
    name: parentId ? `flow:${parentId}` : null,
    filter: `parent_id=eq.${parentId}`,
    refetch: refresh,
    onJob: (job, event) => {
      if (event === 'DELETE') {
        setChildren((prev) => prev.filter((j) => j.id !== job.id));
        return;
      }
      merge([job]);
    },
  });

  const apply = useCallback((job: Job) => merge([job]), [merge]);

  return { children, details, loading, error, live, refresh, apply };
}

export interface JobRunHandle {
  run: JobRun | null;
  error: ApiError | null;
  refresh: () => Promise<void>;
}

/** How often a pending job's place in line is asked for again (others move it, not its row). */
const POSITION_POLL_MS = 4000;

/**
 * One job's run detail (public.get_job_run: attempts, steps, timings, and a pending job's place in
 * line). `live` (the run view): fetched again whenever the job's row changes (`job.updated_at`,
 * which useJob keeps live: every heartbeat). Otherwise only what a card shows: the place in line
 * while pending, the timings once done, fetched when the state changes. While the job is pending,
 * also every POSITION_POLL_MS: its position moves as other jobs are claimed, which changes no row
 * of its own.
 */
export function useJobRun(
  job: Pick<Job, 'id' | 'status' | 'updated_at'> | null,
  { live = true }: { live?: boolean } = {},
): JobRunHandle {
  const [run, setRun] = useState<JobRun | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const id = job?.id ?? null;
  const seq = useRef(0);

  useEffect(() => {
    setRun(null);
    setError(null);
  }, [id]);

  const refresh = useCallback(async () => {
    if (!id) return;
    const mine = ++seq.current;
    try {
      const next = await getJobRun(id);
      if (mine !== seq.current) return; // a later request was made: its answer wins
      setRun(next);
      setError(null);
    } catch (err) {
      if (mine === seq.current) setError(await toApiError(err));
    }
  }, [id]);

  const wanted = live || job?.status === 'pending' || job?.status === 'done';
  const changed = live ? job?.updated_at : job?.status;
  useEffect(() => {
    if (wanted) void refresh();
  }, [refresh, wanted, changed]);

  const pending = job?.status === 'pending';
  useEffect(() => {
    if (!pending) return;
    const timer = setInterval(() => !document.hidden && void refresh(), POSITION_POLL_MS);
    return () => clearInterval(timer);
  }, [pending, refresh]);

  return { run, error, refresh };
}
