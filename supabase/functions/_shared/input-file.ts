// Input files, seen as the calling user sees them. A creator never reads Storage with the secret
// key on a user's behalf: the lookup and the head download carry the user's JWT, so Storage's RLS
// (users read only inputs/<their uid>/...) decides, and an object the user cannot see is simply
// not found.
import { userClient } from './clients.ts';
import type { SupabaseEnv } from './env.ts';
import { HttpError, mediaType } from './http.ts';

export const INPUTS_BUCKET = 'inputs';

/** What a creator knows about the input file before enqueueing. */
export interface InputFile {
  path: string;
  size: number;
  /** The media type Storage holds for the object, lowercased, without parameters. */
  contentType: string;
  /**
   * The file's first bytes (INPUT_HEAD_BYTES, or the whole file when smaller), enough for PNG,
   * JPEG and WAV headers. The worker may pass the whole file.
   */
  head?: Uint8Array;
}

/** How many leading bytes of an input file a creator reads to route it. */
export const INPUT_HEAD_BYTES = 256 * 1024;

/** True when `path` ("<folder>/...") lies in the user's own folder of a bucket. */
export function inFolderOf(path: string, userId: string): boolean {
  const folder = path.split('/')[0] ?? '';
  return folder.toLowerCase() === userId.toLowerCase() && path.length > folder.length + 1;
}

interface StorageErrorLike {
  name?: string;
  message?: string;
  status?: number;
  statusCode?: string;
  code?: string;
}

function isNotFound(err: StorageErrorLike): boolean {
  return err.code === 'NoSuchKey' || err.statusCode === '404' || err.status === 404;
}

const notFound = (path: string) =>
  new HttpError(404, 'input_not_found', `no input file "${path}" in your inputs folder`, {
    bucket: INPUTS_BUCKET,
    path,
  });

function storageFailure(what: string, detail: unknown): HttpError {
  console.error(JSON.stringify({ level: 'error', msg: `storage ${what} failed`, detail }));
  return new HttpError(502, 'storage_error', 'Storage did not answer as expected, try again');
}

/**
 * Looks the input file up as the user: its size and media type from Storage, and its first bytes
 * (INPUT_HEAD_BYTES, or all of it when smaller). 404 input_not_found when the user cannot see it,
 * 413 file_too_large above `maxBytes`, 422 empty_file for an empty object.
 */
export async function inspectInput(
  env: SupabaseEnv,
  jwt: string,
  path: string,
  maxBytes: number,
): Promise<InputFile> {
  const { data, error } = await userClient(env, jwt).storage.from(INPUTS_BUCKET).info(path);
  if (error) {
    if (isNotFound(error as StorageErrorLike)) throw notFound(path);
    throw storageFailure('info', { path, error: String(error.message ?? error) });
  }
  const meta = (data.metadata ?? {}) as Record<string, unknown>;
  const size = Number(data.size ?? meta.size);
  const contentType = mediaType(String(data.contentType ?? meta.mimetype ?? ''));
  if (!Number.isFinite(size) || size < 0) {
    throw storageFailure('info', { path, reason: 'no size in the object info' });
  }
  if (size > maxBytes) {
    throw new HttpError(413, 'file_too_large', `the input file must be at most ${maxBytes} bytes`, {
      size,
      max_bytes: maxBytes,
    });
  }
  if (size === 0) throw new HttpError(422, 'empty_file', 'the input file is empty');
  const head = await readHead(env, jwt, path, Math.min(size, INPUT_HEAD_BYTES));
  return { path, size, contentType, head };
}

/**
 * Downloads the first `n` bytes of an input as the user. Asks for a byte range; a server that
 * ignores Range and sends the whole object is read only as far as needed.
 */
export async function readHead(
  env: SupabaseEnv,
  jwt: string,
  path: string,
  n: number,
): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(`${env.url}/storage/v1/object/${INPUTS_BUCKET}/${path}`, {
      headers: { apikey: env.anonKey, authorization: `Bearer ${jwt}`, range: `bytes=0-${n - 1}` },
    });
  } catch (err) {
    throw storageFailure('download', { path, error: String(err) });
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    // Storage answers 400 with statusCode "404" for objects that are missing or hidden by RLS.
    if (res.status === 404 || (res.status === 400 && /"statusCode"\s*:\s*"404"/.test(text))) {
      throw notFound(path);
    }
    throw storageFailure('download', { path, status: res.status, body: text.slice(0, 200) });
  }
  const head = new Uint8Array(n);
  let filled = 0;
  const reader = res.body?.getReader();
  if (reader) {
    while (filled < n) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = Math.min(value.byteLength, n - filled);
      head.set(value.subarray(0, take), filled);
      filled += take;
    }
    await reader.cancel().catch(() => {});
  }
  return head.subarray(0, filled);
}
