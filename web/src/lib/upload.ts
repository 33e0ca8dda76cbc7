// Input files: uploads into the caller's own folder of the private `inputs` bucket
// (inputs/<user id>/<name>, as the storage policies require) with progress, and signed URLs to
// show an input again. storage-js has no progress events, so the upload is an XMLHttpRequest
// POST to the same Storage endpoint supabase-js uses (/storage/v1/object/<bucket>/<path>), with
// the user's access token.
import { supabase, supabaseAnonKey, supabaseUrl } from './supabase.ts';

export const INPUTS_BUCKET = 'inputs';

export class UploadError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'UploadError';
  }
}

/** A file name safe for a storage key and the creators' input_path rule: [A-Za-z0-9._-]. */
export function safeName(name: string): string {
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 ? name.slice(dot + 1).toLowerCase().replace(/[^a-z0-9]/g, '') : '';
  const stem = (dot > 0 ? name.slice(0, dot) : name)
    .normalize('NFKD')
    .replace(/[^\w.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 80) || 'file';
  return ext ? `${stem}.${ext.slice(0, 8)}` : stem;
}

function storageMessage(status: number, body: string): UploadError {
  let parsed: { statusCode?: string; error?: string; message?: string } = {};
  try {
    parsed = JSON.parse(body);
  } catch {
    // not JSON
  }
  const code = parsed.statusCode ?? String(status);
  const text = (() => {
    switch (code) {
      case '413':
        return 'The file is larger than the upload limit.';
      case '415':
        return 'That file type cannot be uploaded here.';
      case '409':
        return 'A file with that name is already there. Try again.';
      case '403':
      case '401':
        return 'You are not allowed to upload there. Reload the page to sign in again.';
      default:
        return `The upload failed (${parsed.message ?? `HTTP ${status}`}).`;
    }
  })();
  return new UploadError(text, code);
}

export interface Upload {
  /** Resolves to the object path inside the bucket: "<user id>/<name>". */
  done: Promise<string>;
  abort(): void;
}

/**
 * Uploads `file` to inputs/<userId>/<unique prefix>-<safe name>, stored as `contentType` (the
 * media type the job kind's checks accepted: lib/kinds.ts mediaTypeOf). `onProgress` gets 0..1.
 */
export function uploadInput(
  file: File,
  userId: string,
  accessToken: string,
  contentType: string,
  onProgress: (fraction: number) => void,
): Upload {
  const xhr = new XMLHttpRequest();
  const path = `${userId}/${Date.now().toString(36)}-${safeName(file.name)}`;
  const url = `${supabaseUrl}/storage/v1/object/${INPUTS_BUCKET}/${
    path.split('/').map(encodeURIComponent).join('/')
  }`;
  const done = new Promise<string>((resolve, reject) => {
    xhr.open('POST', url);
    xhr.setRequestHeader('apikey', supabaseAnonKey);
    xhr.setRequestHeader('authorization', `Bearer ${accessToken}`);
    xhr.setRequestHeader('content-type', contentType || 'application/octet-stream');
    xhr.setRequestHeader('cache-control', 'max-age=3600');
    xhr.setRequestHeader('x-upsert', 'false');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(path);
      } else {
        reject(storageMessage(xhr.status, xhr.responseText));
      }
    };
    xhr.onerror = () =>
      reject(new UploadError("The upload failed: can't reach Spool's storage.", 'network'));
    xhr.onabort = () => reject(new UploadError('The upload was cancelled.', 'aborted'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

const signedCache = new Map<string, { url: string; until: number }>();

/** A signed URL (1 hour) for one of the user's input files; cached for 50 minutes. */
export async function signedInputUrl(path: string): Promise<string | null> {
  const hit = signedCache.get(path);
  if (hit && hit.until > Date.now()) return hit.url;
  const { data, error } = await supabase.storage.from(INPUTS_BUCKET).createSignedUrl(path, 3600);
  if (error || !data) return null;
  signedCache.set(path, { url: data.signedUrl, until: Date.now() + 50 * 60_000 });
  return data.signedUrl;
}

/**
 * Removes one of the user's own input files (a refused job's upload: the creator removes it too;
 * this is the fallback). Failures are ignored: the file is then only left behind, as before.
 */
export async function removeInput(path: string): Promise<void> {
  try {
    await supabase.storage.from(INPUTS_BUCKET).remove([path]);
  } catch {
    // left behind
  }
}

/**
 * The name a job's output downloads under: the user's own file name (input.input_name, kept at
 * creation; else the upload's name without its unique prefix) in place of the upload's stored
 * name inside the output's: "Beach day.JPG", uploaded as "mx5snp22-Beach-day.jpg" and graded to
 * "mx5snp22-Beach-day-graded.png", downloads as "Beach day-graded.png". An output that does not
 * carry the upload's name gets it in front ("Beach day-matte.png"); a job without an input file
 * (a prompt's image) keeps the stored name.
 */
export function downloadName(input: Record<string, unknown> | null | undefined, outputPath: string): string {
  const stored = outputPath.split('/').pop() || 'download';
  const uploaded = typeof input?.input_path === 'string' ? input.input_path.split('/').pop()! : null;
  if (!uploaded) return stored;
  const stemOf = (n: string) => (n.lastIndexOf('.') > 0 ? n.slice(0, n.lastIndexOf('.')) : n);
  const own = typeof input?.input_name === 'string' && input.input_name.trim()
    ? stemOf(input.input_name.trim())
    : stemOf(uploaded).replace(/^[0-9a-z]{6,12}-/, '');
  const uploadStem = stemOf(uploaded);
  if (stored.startsWith(uploadStem)) return own + stored.slice(uploadStem.length);
  return `${own}-${stored.replace(/^[0-9a-z]{6,12}-/, '')}`;
}

/** The same URL, asking Storage to send it as an attachment named `name`. */
export function downloadUrl(signedUrl: string, name: string): string {
  return `${signedUrl}${signedUrl.includes('?') ? '&' : '?'}download=${encodeURIComponent(name)}`;
}
