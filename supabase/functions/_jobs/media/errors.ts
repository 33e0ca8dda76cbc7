/**
 * Typed errors for the media modules. Handlers map `code` to a job failure reason; the message is
 * meant for people (it never contains the input bytes).
 */
export type MediaErrorCode =
  /** The bytes are not a format this module reads (GIF, WebP, 8-bit WAV, MP3, ...). */
  | 'unsupported_format'
  /**
   * The bytes claim to be a supported image format but cannot be decoded, including files cut
   * short: the header promises more data than the file holds (the message starts "truncated").
   */
  | 'corrupt_image'
  /**
   * The bytes claim to be a WAV file but its structure is broken, including a data chunk whose
   * declared size runs past the end of the file (the message starts "truncated").
   */
  | 'corrupt_audio'
  /**
   * Compressed data that expands past what the file's own header declares (a PNG whose IDAT
   * inflates beyond its IHDR's rows, a JPEG structure needing far more memory or passes than its
   * frame size allows). Detected while decoding, before the excess is held in memory.
   */
  | 'decompression_bomb'
  /** The input is larger than the module's limits (megapixels, seconds, samples). */
  | 'too_large'
  /** A parameter is missing, not a finite number, or out of its documented range. */
  | 'invalid_params';

export class MediaError extends Error {
  readonly code: MediaErrorCode;
  /** Facts for the job's error details (sizes declared and found); never input bytes. */
  readonly details?: Record<string, unknown>;

  constructor(
    code: MediaErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options);
    this.name = 'MediaError';
    this.code = code;
    if (options?.details) this.details = options.details;
  }
}

/** Throws invalid_params unless `value` is a finite number within [min, max]. */
export function checkRange(name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new MediaError('invalid_params', `${name} must be a number in [${min}, ${max}]`);
  }
  return value;
}
