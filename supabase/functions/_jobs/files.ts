// Input files for the kinds that take one: the path rule, the media types, the CPU estimate, the
// refusals, and routing an image or a WAV file to in-function work or to a provider.
//
// Header facts come from the media module's own parsers (media/image.ts, media/wav.ts), loaded
// lazily on the first file that needs them: one parser per format in the project, and a creator
// that never sees an image never loads image code.
import { z } from '../_shared/deps.ts';
import type { InputFile } from '../_shared/input-file.ts';
import type { Refusal, Route } from './kind.ts';
import { AUDIO_LIMITS } from './media/limits.ts';
import type { ProviderConfig } from './providers.ts';
import { replicateOr, truncatedFile, unreadable, unsupported } from './refusals.ts';

export { providerNotConfigured, replicateOr, unsupported } from './refusals.ts';

/**
 * A path in the caller's own folder of the private `inputs` bucket: "<user id>/<name>", with
 * optional subfolders. Characters are limited to ones Storage accepts in keys and that mean
 * nothing special in a URL path (no ?, # or %); empty, `.` and `..` segments are refused (no
 * traversal), and so are leading or trailing spaces in a segment. That the folder
 * is the caller's own is checked by the creator (403 forbidden_input), not here.
 */
export const InputPath = z.string().min(3).max(1024)
  .regex(
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\/[\w!$&'()*+,;=:@. \/-]+$/i,
    'must be "<your user id>/<file name>" in the inputs bucket (letters, digits, spaces and _-.!$&\'()*+,;=:@)',
  )
  .refine(
    (p) => !p.split('/').some((s) => s.trim() === '' || s === '..' || s === '.' || s !== s.trim()),
    'must not contain empty, blank-padded, . or .. segments',
  )
  .meta({ title: 'Input file', 'x-widget': 'file' });

/**
 * The input file's name as the user chose it ("Beach day.JPG"), kept with the job so its
 * downloads carry that name (a signed URL's download=<name>) instead of the storage key's. Any
 * text but control characters and slashes; never read by the handlers.
 */
export const InputName = z.string().min(1).max(255)
  .refine(
    (n) => ![...n].some((c) => c.charCodeAt(0) < 0x20 || c === '\x7f' || c === '/' || c === '\\'),
    'must not contain control characters or slashes',
  )
  .optional()
  .meta({ title: 'Original file name', 'x-widget': 'hidden' });

// Media types ------------------------------------------------------------------------------------

/** Decoded in the function (PNG and JPEG). */
export const IMAGE_TYPES = ['image/png', 'image/jpeg'] as const;
/** Images only a provider decodes. */
export const OTHER_IMAGE_TYPES = ['image/webp'] as const;
export const WAV_TYPES = ['audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave'] as const;
/** Compressed audio (mp3, m4a, flac): only a provider decodes it. */
export const OTHER_AUDIO_TYPES = ['audio/mpeg', 'audio/mp4', 'audio/flac'] as const;
export const VIDEO_TYPES = ['video/mp4', 'video/quicktime', 'video/webm'] as const;

const MiB = 1024 * 1024;
/** The inputs bucket's own cap (storage_buckets migration). */
export const INPUT_MAX_BYTES = 50 * MiB;

export const among = (list: readonly string[], type: string) => list.includes(type);

// CPU estimates ----------------------------------------------------------------------------------

/**
 * CPU of one media job at its kind's size limits, cold (README "Limits": measured for the
 * largest colour grade, matte and audio clean the function accepts).
 */
export const CPU_AT_LIMITS_MS = 1200;
/** What even a tiny media job costs: decoding set-up, buffers, a cold code path. */
const CPU_FLOOR_MS = 40;

/**
 * The CPU estimate of a media job whose input is `fraction` of its kind's size limit (pixels, or
 * audio samples): the work of decode, process and encode grows with the input, so linearly from
 * CPU_FLOOR_MS to CPU_AT_LIMITS_MS. Unknown size: the limit.
 */
export function cpuEstimateMs(fraction: number): number {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 1;
  return Math.ceil(CPU_FLOOR_MS + (CPU_AT_LIMITS_MS - CPU_FLOOR_MS) * f);
}

/** The media module's error code (MediaError.code), if `err` is one. */
function mediaCode(err: unknown): string | null {
  const code = (err as { name?: string; code?: unknown } | null)?.code;
  return (err as Error | null)?.name === 'MediaError' && typeof code === 'string' ? code : null;
}

// Routing ----------------------------------------------------------------------------------------

/**
 * PNG/JPEG that fits `maxMegapixels` is processed in the function; larger ones, and images the
 * function cannot decode, go to Replicate when it is configured for `type`; otherwise refused.
 */
export async function routeImage(
  type: string,
  file: InputFile,
  providers: ProviderConfig,
  maxMegapixels: number,
): Promise<Route | Refusal> {
  const image = await import('./media/image.ts');
  const head = file.head ?? new Uint8Array(0);
  let info;
  try {
    info = image.imageInfo(head, file.contentType);
  } catch (err) {
    if (mediaCode(err) === 'unsupported_format') {
      return replicateOr(type, providers, {
        ...unsupported(type, file.contentType, IMAGE_TYPES),
        message: `the file is not a PNG or JPEG image, whatever its type says (${
          (err as Error).message
        })`,
      });
    }
    // A JPEG's frame header may sit behind more metadata than the head holds: a file that starts
    // like a JPEG is then let through at the size limit's estimate; the worker's decoder checks
    // its size on the whole file.
    const jpegStart = head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
    if (jpegStart && head.length < file.size) {
      return { provider: 'in-function', cpuMs: CPU_AT_LIMITS_MS }; // its size is not known yet
    }
    return unreadable('PNG or JPEG image', err);
  }
  const megapixels = (info.width * info.height) / 1e6;
  if (megapixels <= maxMegapixels) {
    const cut = image.truncatedImage(head, file.size);
    if (cut) return truncatedFile(file, cut);
    return { provider: 'in-function', cpuMs: cpuEstimateMs(megapixels / maxMegapixels) };
  }
  return replicateOr(type, providers, {
    status: 413,
    code: 'image_too_large',
    message: `the image is ${info.width}x${info.height} (${
      megapixels.toFixed(1)
    } MP); at most ${maxMegapixels} MP can be processed here and no provider is configured for larger ones`,
    details: { width: info.width, height: info.height, max_megapixels: maxMegapixels },
  });
}

/**
 * A WAV file within AUDIO_LIMITS is processed in the function; longer audio and WAV variants the
 * function does not decode go to Replicate when it is configured for `type`; otherwise refused.
 */
export async function routeWav(
  type: string,
  file: InputFile,
  providers: ProviderConfig,
): Promise<Route | Refusal> {
  const [wav, limits] = await Promise.all([import('./media/wav.ts'), import('./media/limits.ts')]);
  let info;
  try {
    info = wav.wavInfo(file.head ?? new Uint8Array(0));
  } catch (err) {
    // A WAV variant the function does not decode (8-bit, A-law, ...) is still audio.
    if (mediaCode(err) === 'unsupported_format') {
      return replicateOr(type, providers, {
        ...unsupported(type, file.contentType, WAV_TYPES),
        message: `${(err as Error).message}, and no provider is configured for it`,
      });
    }
    return unreadable('WAV file', err);
  }
  try {
    limits.checkAudioLimits(info);
  } catch (err) {
    const why = (err as Error).message;
    if (mediaCode(err) !== 'too_large') {
      return replicateOr(type, providers, {
        ...unsupported(type, file.contentType, WAV_TYPES),
        message: `${why}, and no provider is configured for it`,
      });
    }
    return replicateOr(type, providers, {
      status: 413,
      code: 'audio_too_long',
      message: `${why}: longer audio needs a provider, and none is configured`,
      details: { duration_seconds: info.durationSeconds, max_seconds: AUDIO_LIMITS.maxSeconds },
    });
  }
  if (info.dataEnd !== null && info.dataEnd > file.size) {
    return truncatedFile(
      file,
      `truncated WAV: its data chunk ends at byte ${info.dataEnd}, the file has ${file.size}`,
    );
  }
  const samples = info.durationSeconds * info.sampleRate * info.channels;
  const fraction = Math.max(
    info.durationSeconds / AUDIO_LIMITS.maxSeconds,
    samples / AUDIO_LIMITS.maxSamples,
  );
  return { provider: 'in-function', cpuMs: cpuEstimateMs(fraction) };
}
