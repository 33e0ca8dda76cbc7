/**
 * Typed errors for the media modules. Handlers map `code` to a job failure reason; the message is
 * meant for people (it never contains the input bytes).
 */
export type MediaErrorCode =
  /** The bytes are not a format this module reads (GIF, WebP, 8-bit WAV, MP3, ...). */
  | 'unsupported_format'
  /** The bytes claim to be a supported image format but cannot be decoded. */
  | 'corrupt_image'
  /** The bytes claim to be a WAV file but its structure is broken. */
  | 'corrupt_audio'
  /** The input is larger than the module's limits (megapixels, seconds, samples). */
  | 'too_large'
  /** A parameter is missing, not a finite number, or out of its documented range. */
  | 'invalid_params';

export class MediaError extends Error {
  readonly code: MediaErrorCode;

  constructor(code: MediaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MediaError';
    this.code = code;
  }
}

/** Throws invalid_params unless `value` is a finite number within [min, max]. */
export function checkRange(name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new MediaError('invalid_params', `${name} must be a number in [${min}, ${max}]`);
  }
  return value;
}
