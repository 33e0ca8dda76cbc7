// A test's own jobs: jobs a test hands to a worker it runs itself (in this process, or in a child
// process it controls), never to the stack's job-worker in the local Edge Runtime.
//
// They are scheduled at OWN_TIME, far in the future, so they are not runnable for anyone reading
// the real clock: their insert rings no doorbell, the pg_cron sweep does not ring for them, and
// the stack's worker never claims them. The test's worker claims them through ownRpc, which runs
// the clock-reading pickers of the SQL API (claim_jobs, claim_waiting_polls) over SQL as of a
// time the test chooses (spool.now), seeing only the test's jobs (asOf). Everything else the
// worker does (heartbeat_job, complete_jobs, fail_job, await_job, resume_job) goes through
// PostgREST with the real clock, as in production.
//
// Consequences a test has to mind: a claim as of OWN_TIME leases until OWN_TIME + the lease, so
// an orphaned job is rescued only when the test calls rescue_jobs as of a later time; and a retry
// (fail_job, resume_job) is scheduled on the real clock, so tests that retry set a backoff long
// enough (withSettings) that the retry is never due for the stack's worker while they run. It is
// due at once for the test's worker, whose clock is OWN_TIME.
import type { Rpc } from '../../job-worker/run.ts';
import { asOf } from './api-stack.ts';

/** When a test's own jobs become runnable, and the clock their worker claims them by. */
export const OWN_TIME = new Date('2100-01-01T00:00:00Z');

/**
 * `seconds` after `at` (a row's timestamp: pg gives Date, PostgREST text). Postgres keeps
 * microseconds and Date keeps milliseconds, so "just after" a row's time is a whole second after.
 */
export function secondsAfter(at: Date | string, seconds: number): Date {
  return new Date(new Date(at).getTime() + seconds * 1000);
}

/** The SQL API functions that pick jobs by spool.now. */
const PICKERS = new Set(['claim_jobs', 'claim_waiting_polls']);

/** An error Postgres sent (pg's DatabaseError), as opposed to a connection failure. */
interface PgError extends Error {
  code: string;
  severity: string;
  hint?: string;
  detail?: string;
}

function isPgError(err: unknown): err is PgError {
  return err instanceof Error && 'severity' in err && typeof (err as PgError).code === 'string';
}

/**
 * `rpc`, except that claim_jobs and claim_waiting_polls run as of `at` (spool.now) and can take
 * only the jobs in `own` (see asOf). Answers as PostgREST does: the rows as JSON, or the API's
 * error (code PT<status>, the machine code in hint).
 */
export function ownRpc(rpc: Rpc, own: string[], at: Date | string = OWN_TIME): Rpc {
  return async (fn, args) => {
    if (!PICKERS.has(fn)) return await rpc(fn, args);
    const names = Object.keys(args);
    const bad = names.find((n) => !/^p_[a-z_]+$/.test(n));
    if (bad) throw new Error(`ownRpc: unexpected argument name ${bad} for ${fn}`);
    // Named arguments, as PostgREST calls the function.
    const call = `public.${fn}(${names.map((n, i) => `${n} => $${i + 1}`).join(', ')})`;
    try {
      const [{ data }] = await asOf<{ data: unknown }>(
        at,
        own,
        `select coalesce(jsonb_agg(r), '[]') as data from ${call} r`,
        names.map((n) => args[n]),
      );
      return { data, error: null };
    } catch (err) {
      if (!isPgError(err)) return { data: null, error: { message: String(err) } };
      return {
        data: null,
        error: {
          code: err.code,
          message: err.message,
          hint: err.hint ?? null,
          details: err.detail ?? null,
        },
      };
    }
  };
}
