// Helpers for job-worker's integration tests against the throwaway stack (see api-stack.ts):
// enqueueing as the service role, waiting for a job to settle, and running the worker in this
// process with its real code, real SQL API and Storage, and a test's own provider settings (fake
// OpenAI and Replicate endpoints), on jobs only it runs (see own-jobs.ts).
import type { JobRow } from '../../_shared/clients.ts';
import { REPLICATE_VERSION_VARS } from '../../_jobs/kinds/index.ts';
import { type ProviderConfig, readProviderConfig } from '../../_jobs/providers.ts';
import { EnvReader } from '../../_shared/env.ts';
import type { WorkerConfig } from '../../job-worker/config.ts';
import { runnableKind } from '../../job-worker/kinds.ts';
import { drain, type DrainSummary } from '../../job-worker/run.ts';
import { rpcOf, storageOf } from '../../_jobs/platform.ts';
import { serviceDb, sql, transaction } from './api-stack.ts';
import { OWN_TIME, ownRpc } from './own-jobs.ts';

async function createJob(args: Record<string, unknown>): Promise<JobRow> {
  // deno-lint-ignore no-explicit-any
  const { data, error } = await (serviceDb().rpc as any)('create_job', args);
  if (error) throw new Error(`create_job failed: ${error.message}`);
  return data as JobRow;
}

/** create_job as the job creators call it (service role): runnable now, so it rings the doorbell. */
export function enqueue(
  userId: string,
  type: string,
  input: Record<string, unknown>,
): Promise<JobRow> {
  return createJob({ p_user_id: userId, p_type: type, p_input: input });
}

/** The test's own jobs that may still be active (see cancelOwnJobs). */
const ownJobs = new Set<string>();

/**
 * Enqueues one of the test's own jobs (own-jobs.ts): runnable at OWN_TIME, so only a worker of
 * this test (runWorker, worker-process.ts) ever claims it.
 */
export async function enqueueOwn(
  userId: string,
  type: string,
  input: Record<string, unknown>,
  { maxAttempts }: { maxAttempts?: number } = {},
): Promise<JobRow> {
  const args: Record<string, unknown> = {
    p_user_id: userId,
    p_type: type,
    p_input: input,
    p_run_at: OWN_TIME.toISOString(),
  };
  if (maxAttempts) args.p_max_attempts = maxAttempts;
  const row = await createJob(args);
  ownJobs.add(row.id);
  return row;
}

/**
 * Cancels the own jobs enqueued so far that have not ended: a retry a test left pending (due on
 * the real clock after a long backoff) must not be claimed by later tests moving spool.now ahead.
 */
export async function cancelOwnJobs(): Promise<void> {
  const ids = [...ownJobs];
  ownJobs.clear();
  await transaction([
    ['set local role service_role'],
    [
      `select public.cancel_job(j.id) from public.jobs j
        where j.id = any ($1::uuid[]) and j.status in ('pending', 'running', 'waiting')`,
      [ids],
    ],
  ]);
}

export async function job(id: string): Promise<JobRow> {
  const [row] = await sql<JobRow>('select * from public.jobs where id = $1', [id]);
  if (!row) throw new Error(`no job ${id}`);
  return row;
}

/** Polls the job until its status is one of `statuses`; returns it. */
export async function waitForStatus(
  id: string,
  statuses: string[],
  timeoutMs = 20_000,
): Promise<JobRow> {
  const until = Date.now() + timeoutMs;
  while (true) {
    const row = await job(id);
    if (statuses.includes(row.status)) return row;
    if (Date.now() > until) {
      throw new Error(
        `job ${id} is ${row.status} after ${timeoutMs} ms (wanted ${statuses.join('|')}): ${
          JSON.stringify(row.error)
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function downloadOutput(path: string): Promise<Uint8Array> {
  const { data, error } = await serviceDb().storage.from('outputs').download(path);
  if (error || !data) throw new Error(`download of outputs/${path} failed: ${error?.message}`);
  return new Uint8Array(await data.arrayBuffer());
}

/**
 * Sets provider variables in this process's environment (runWorker reads the providers'
 * configuration from it, as job-worker does at load); returns a function that restores them.
 */
export function useEnv(vars: Record<string, string>): () => void {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  return () => {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  };
}

export const TEST_WORKER_CONFIG: WorkerConfig = {
  batchSize: 10,
  concurrency: 4,
  leaseSeconds: 30,
  heartbeatMs: 10_000,
  budgetMs: 30_000,
  drainMs: 5_000,
  // One claim: a test's own jobs are all runnable (as of OWN_TIME) when its worker starts, and an
  // invocation that lingered would run a retry again or not, depending on timing.
  lingerMs: 0,
  idlePollMs: 10,
  jobLogs: true,
  types: null,
  mediaConcurrency: 2,
  // No isolate CPU budget: this process is no Edge isolate (its meter adds up every test's media
  // work), and budgeted media claims are sized one job at a time, so a test's worker would claim
  // again after a retry (runnable at once as of OWN_TIME). The budget has its own unit tests
  // (job-worker.run.test.ts) and the local Edge Runtime runs it for real.
  mediaBudgetMs: 0,
  callCpuMs: 0,
};

/**
 * Runs one job-worker invocation in this process (real handlers, SQL API and Storage) that claims
 * only the jobs in `own`, as of `at` (default OWN_TIME; see own-jobs.ts), each at most once: a
 * retry is due at once as of OWN_TIME, and the worker claims again after every finish, so without
 * this one invocation would run a retried job's next attempts too (a test runs the worker again
 * for each attempt it means). Throws if the invocation stopped on a database error, with the
 * error log lines.
 */
export async function runWorker(
  own: string[],
  config: Partial<WorkerConfig> = {},
  options: { noop?: boolean; logs?: Record<string, unknown>[]; at?: Date | string } = {},
): Promise<DrainSummary> {
  const db = serviceDb();
  const reader = new EnvReader();
  const read = readProviderConfig(reader, REPLICATE_VERSION_VARS, Deno.env.get('SUPABASE_URL'));
  reader.done();
  const config_: ProviderConfig = { ...read, noop: options.noop ?? false };
  const errors: Record<string, unknown>[] = [];
  const unclaimed = [...own];
  const picker = ownRpc(rpcOf(db), unclaimed, options.at ?? OWN_TIME);
  const summary = await drain({
    rpc: async (fn, args) => {
      const result = await picker(fn, args);
      if (fn === 'claim_jobs' && Array.isArray(result.data)) {
        for (const row of result.data as JobRow[]) {
          const i = unclaimed.indexOf(row.id);
          if (i >= 0) unclaimed.splice(i, 1);
        }
      }
      return result;
    },
    storage: storageOf(db),
    kindOf: (type) => runnableKind(type, config_),
    providers: config_,
    config: { ...TEST_WORKER_CONFIG, ...config },
    workerId: `jw-test-${crypto.randomUUID().slice(0, 6)}`,
    ring: () => Promise.resolve(),
    log: (line) => {
      options.logs?.push(line);
      if (line.level === 'error') errors.push(line);
    },
  }, 'test');
  if (summary.stop === 'error') {
    throw new Error(`the test's worker stopped on an error: ${JSON.stringify(errors)}`);
  }
  return summary;
}
