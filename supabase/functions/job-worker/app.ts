// job-worker's HTTP surface: the doorbell (pg_net, pg_cron, a worker handing over) POSTs
// {"reason": "..."} with the secret key. The worker answers 202 {accepted, worker_id} at once
// and drains the queue in the background (EdgeRuntime.waitUntil), so the caller's timeout never
// matters. Without EdgeRuntime (unit tests, plain Deno) it drains before answering.
import { requireSecret } from '../_shared/auth.ts';
import { inBackground } from '../_shared/background.ts';
import type { SupabaseEnv } from '../_shared/env.ts';
import { handle, json } from '../_shared/http.ts';

export interface WorkerApp {
  env: SupabaseEnv;
  /** Starts one invocation's work; its promise settles when the work is done. */
  start(workerId: string, reason: string): Promise<unknown>;
}

async function reasonOf(req: Request): Promise<string> {
  try {
    const body = JSON.parse(await req.text());
    if (typeof body?.reason === 'string' && body.reason) return body.reason.slice(0, 50);
  } catch {
    // An empty or malformed body still rings the bell.
  }
  return 'unspecified';
}

export function newWorkerId(): string {
  return `jw-${crypto.randomUUID().slice(0, 8)}`;
}

export function createWorkerHandler(app: WorkerApp): (req: Request) => Promise<Response> {
  return handle('job-worker', ['POST'], async (req) => {
    requireSecret(req, app.env);
    const reason = await reasonOf(req);
    const workerId = newWorkerId();
    await inBackground(app.start(workerId, reason));
    return json({ accepted: true, worker_id: workerId }, 202);
  });
}
