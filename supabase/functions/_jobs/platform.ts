// The platform as the code that runs jobs sees it (job-worker, job-callback): the SQL API and
// Storage through supabase-js with the secret key, and JSON log lines. Failures of Storage are
// JobErrors, so a handler's outcome says whether to retry.
import type { Db } from '../_shared/clients.ts';
import type { ApiError } from '../_shared/http.ts';
import { JobError } from './kind.ts';
import type { SettleDeps, WaitingJob } from './replicate.ts';

/** What supabase-js `rpc` resolves to. */
export interface RpcResult {
  data: unknown;
  error: ApiError | null;
}
export type Rpc = (fn: string, args: Record<string, unknown>) => PromiseLike<RpcResult>;

/** Storage as the worker uses it. Implementations throw JobError for failures. */
export interface WorkerStorage {
  download(bucket: string, path: string): Promise<{ bytes: Uint8Array; contentType: string }>;
  /** Writes (or overwrites: a retried attempt replaces its earlier outputs). */
  upload(bucket: string, path: string, bytes: Uint8Array, contentType: string): Promise<void>;
  signedUrl(bucket: string, path: string, expiresInSeconds: number): Promise<string>;
}

export type Log = (line: Record<string, unknown>) => void;

/** A logger writing one JSON line per call, tagged with the function's name. */
export function jsonLog(fn: string): Log {
  return (line) => console.log(JSON.stringify({ at: new Date().toISOString(), fn, ...line }));
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

/** What settlePrediction needs, on the real platform. */
export function settleDepsOf(db: Db, log: Log): SettleDeps {
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
