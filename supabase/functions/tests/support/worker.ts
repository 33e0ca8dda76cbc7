// Helpers for job-worker's integration tests against the throwaway stack (see api-stack.ts):
// enqueueing as the service role, waiting for a job to settle, a quiet stack, and running the
// worker in this process with its real code, real SQL API and Storage, and a test's own
// provider settings (fake OpenAI and Replicate endpoints).
import type { JobRow } from '../../_shared/clients.ts';
import { kindOf, type ProviderConfig } from '../../_shared/job-kinds.ts';
import type { WorkerConfig } from '../../job-worker/config.ts';
import { providers, resetProviders } from '../../job-worker/handler-kit.ts';
import { resetClient } from '../../job-worker/handlers/image.ts';
import { drain, type DrainSummary } from '../../job-worker/run.ts';
import { rpcOf, storageOf } from '../../job-worker/wiring.ts';
import { serviceDb, sql } from './api-stack.ts';

/** create_job as the job creators call it (service role); returns the job row. */
export async function enqueue(
  userId: string,
  type: string,
  input: Record<string, unknown>,
  { runInMs = 0, maxAttempts }: { runInMs?: number; maxAttempts?: number } = {},
): Promise<JobRow> {
  const args: Record<string, unknown> = { p_user_id: userId, p_type: type, p_input: input };
  // Delayed jobs ring no doorbell: only a worker that is already polling picks them up.
  if (runInMs > 0) args.p_run_at = new Date(Date.now() + runInMs).toISOString();
  if (maxAttempts) args.p_max_attempts = maxAttempts;
  // deno-lint-ignore no-explicit-any
  const { data, error } = await (serviceDb().rpc as any)('create_job', args);
  if (error) throw new Error(`create_job failed: ${error.message}`);
  return data as JobRow;
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

/**
 * Waits until no doorbell rang for `ms`: the stack's own job-worker lingers ~1.5 s after a ring,
 * so after this a delayed job is picked up only by a worker the test runs itself.
 */
export async function quietStack(ms = 2_500): Promise<void> {
  while (true) {
    const [{ quiet_ms }] = await sql<{ quiet_ms: number }>(
      `select coalesce(extract(epoch from clock_timestamp() - rung_at) * 1000, 1e9)::float8 as quiet_ms
         from spool.doorbell`,
    );
    if (quiet_ms >= ms) return;
    await new Promise((r) => setTimeout(r, Math.min(500, ms - quiet_ms + 10)));
  }
}

export async function downloadOutput(path: string): Promise<Uint8Array> {
  const { data, error } = await serviceDb().storage.from('outputs').download(path);
  if (error || !data) throw new Error(`download of outputs/${path} failed: ${error?.message}`);
  return new Uint8Array(await data.arrayBuffer());
}

/**
 * Sets provider variables in this process's environment (the handlers read them) and forgets
 * cached clients; returns a function that restores the previous values.
 */
export function useEnv(vars: Record<string, string>): () => void {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  resetProviders();
  resetClient();
  return () => {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
    resetProviders();
    resetClient();
  };
}

export const TEST_WORKER_CONFIG: WorkerConfig = {
  batchSize: 10,
  concurrency: 4,
  leaseSeconds: 30,
  heartbeatMs: 10_000,
  budgetMs: 30_000,
  drainMs: 5_000,
  lingerMs: 1_500,
  idlePollMs: 10,
  jobLogs: true,
  types: null,
  mediaConcurrency: 2,
  mediaBudgetMs: 1_500,
};

/** Runs one job-worker invocation in this process (real handlers, SQL API and Storage). */
export async function runWorker(
  config: Partial<WorkerConfig> = {},
  options: { noop?: boolean; logs?: Record<string, unknown>[] } = {},
): Promise<DrainSummary> {
  const db = serviceDb();
  const config_: ProviderConfig = { ...providers(), noop: options.noop ?? false };
  return await drain({
    rpc: rpcOf(db),
    storage: storageOf(db),
    clock: performance,
    kindOf: (type) => kindOf(type, config_),
    config: { ...TEST_WORKER_CONFIG, ...config },
    workerId: `jw-test-${crypto.randomUUID().slice(0, 6)}`,
    ring: () => Promise.resolve(),
    log: (line) => options.logs?.push(line),
  }, 'test');
}
