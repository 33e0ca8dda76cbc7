// What the browser can measure of a file before uploading it, for lib/kinds.ts mediaProblem: an
// image's pixel size (decoded by the browser), a WAV file's rate, channels and duration (its
// header, read from the first 64 KiB: lib/kinds.ts wavFacts), other audio and video's duration (a
// media element's metadata). Nothing is uploaded; a file the browser cannot read measures as {}
// and is left to the server's checks.
import { type MediaFacts, wavFacts } from './kinds.ts';

const HEAD_BYTES = 64 * 1024;
/** A media element that never answers (an odd container) is given up on after this. */
const METADATA_MS = 5000;

function imageSize(file: Blob): Promise<MediaFacts> {
  const url = URL.createObjectURL(file);
  return new Promise<MediaFacts>((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve({});
    img.src = url;
  }).finally(() => URL.revokeObjectURL(url));
}

function mediaDuration(file: Blob, kind: 'audio' | 'video'): Promise<MediaFacts> {
  const url = URL.createObjectURL(file);
  return new Promise<MediaFacts>((resolve) => {
    const el = document.createElement(kind);
    const timer = setTimeout(() => resolve({}), METADATA_MS);
    const done = (facts: MediaFacts) => {
      clearTimeout(timer);
      el.removeAttribute('src');
      resolve(facts);
    };
    el.preload = 'metadata';
    el.onloadedmetadata = () =>
      done(Number.isFinite(el.duration) ? { durationSeconds: el.duration } : {});
    el.onerror = () => done({});
    el.src = url;
  }).finally(() => URL.revokeObjectURL(url));
}

/** The facts of `file` stored as `type` (the media type the kind's checks accepted). */
export async function probeFile(file: File, type: string): Promise<MediaFacts> {
  try {
    if (type.startsWith('image/')) return await imageSize(file);
    if (/^audio\/(x-)?(wav|wave|vnd\.wave)$/.test(type)) {
      const head = new Uint8Array(await file.slice(0, HEAD_BYTES).arrayBuffer());
      return wavFacts(head, file.size) ?? (await mediaDuration(file, 'audio'));
    }
    if (type.startsWith('audio/')) return await mediaDuration(file, 'audio');
    if (type.startsWith('video/')) return await mediaDuration(file, 'video');
  } catch {
    // unreadable here: the server's checks decide
  }
  return {};
}
