// The real dependencies of the drain loop and the Replicate poll: the SQL API and Storage through
// supabase-js with the secret key, the doorbell as an HTTP POST to job-worker itself, and JSON logs.
import type { Db } from '../_shared/clients.ts';
import type { SupabaseEnv } from '../_shared/env.ts';
import { JobError } from '../_shared/job-kinds.ts';
import type { SettleDeps, WaitingJob } from '../_shared/replicate.ts';
import type { Rpc, WorkerStorage } from './run.ts';

export function log(line: Record<string, unknown>): void {
  console.log(JSON.stringify({ at: new Date().toISOString(), fn: 'job-worker', ...line }));
}

export function rpcOf(db: Db): Rpc {
  // The generated types know each function's arguments; the loop passes them by name.
  // deno-lint-ignore no-explicit-any
  return (fn, args) => (db.rpc as any)(fn, args);
}

interface StorageFailure {
  message?: string;
  status?: number;
  statusCode?: string;
}

function storageError(err: StorageFailure, what: string, path: string): JobError {
  const status = Number(err.statusCode ?? err.status ?? 0);
  const notFound = status === 404 || /not.?found/i.test(err.message ?? '');
  if (notFound && what === 'download') {
    return new JobError('input_not_found', `the input file ${path} does not exist`, false);
  }
  const message = `Storage ${what} of ${path} failed: ${err.message ?? 'unknown error'}`;
  // 4xx other than 408/429 will fail the same way again; anything else may not.
  const permanent = status >= 400 && status < 500 && status !== 408 && status !== 429 && !notFound;
  return new JobError(permanent ? 'storage_refused' : 'storage_unavailable', message, !permanent);
}

export function storageOf(db: Db): WorkerStorage {
  return {
    async download(bucket, path) {
      const { data, error } = await db.storage.from(bucket).download(path);
      if (error || !data) throw storageError(error ?? {}, 'download', path);
      return { bytes: new Uint8Array(await data.arrayBuffer()), contentType: data.type };
    },
    async upload(bucket, path, bytes, contentType) {
      const { error } = await db.storage.from(bucket).upload(path, bytes, {
        contentType,
        upsert: true,
      });
      if (error) throw storageError(error, 'upload', path);
    },
    async signedUrl(bucket, path, expiresIn) {
      const { data, error } = await db.storage.from(bucket).createSignedUrl(path, expiresIn);
      if (error || !data) throw storageError(error ?? {}, 'signing', path);
      return data.signedUrl;
    },
  };
}

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

/** What settlePrediction needs, on the real platform. */
export function settleDepsOf(db: Db): SettleDeps {
  const storage = storageOf(db);
  return {
    rpc: rpcOf(db),
    async findJob(provider, externalId) {
      const { data, error } = await db.from('jobs')
        .select('id, user_id, type, status')
        .eq('external_provider', provider)
        .eq('external_id', externalId)
        .maybeSingle();
      if (error) throw new Error(`looking up the job failed: ${error.message}`);
      return data as WaitingJob | null;
    },
    upload: (path, bytes, contentType) => storage.upload('outputs', path, bytes, contentType),
    log,
  };
}
