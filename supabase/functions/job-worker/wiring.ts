// job-worker's own wiring: its log, and the doorbell it rings itself (an HTTP POST to job-worker,
// with the secret key) when work remains past its budget.
import type { SupabaseEnv } from '../_shared/env.ts';
import { jsonLog } from '../_jobs/platform.ts';

export const log = jsonLog('job-worker');

/** Rings job-worker directly (the database's doorbell lives in schema spool, not exposed). */
export function ringerOf(env: SupabaseEnv, workerId: string): (reason: string) => Promise<void> {
  return async (reason) => {
    try {
      const res = await fetch(`${env.url}/functions/v1/job-worker`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          apikey: env.secretKey,
          authorization: `Bearer ${env.secretKey}`,
        },
        body: JSON.stringify({ reason, rung_by: workerId }),
        signal: AbortSignal.timeout(5000),
      });
      await res.body?.cancel();
      if (!res.ok) {
        log({ level: 'warn', msg: 'ring refused', worker_id: workerId, status: res.status });
      }
    } catch (err) {
      log({ level: 'warn', msg: 'ring failed', worker_id: workerId, error: String(err) });
    }
  };
}
