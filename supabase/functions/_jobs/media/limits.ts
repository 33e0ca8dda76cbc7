// The in-function size limits of the media kinds, apart from the codecs and filters that need
// them, so a creator (and the browser's capabilities) can state and check them without loading
// any media code. Each limit is measured where it says.
import { MediaError } from './errors.ts';

/**
 * Largest image the grade job accepts, so that decode + grade + encode stays well inside the
 * Edge Function's 2 s CPU budget even on a cold isolate. Measured with bench/media.ts (fresh
 * process per run, photo-like input, teal-orange grade; CPU incl. GC threads, on a shared 2-core
 * dev machine): JPEG in/q90 out 0.57 / 0.93 / 1.17 / 1.48 s at 1 / 2 / 3 / 4 MP (~300 ms per MP
 * on top of ~270 ms of cold start), PNG in/out 0.49 / 0.78 / 1.07 / 1.30 s (~270 ms per MP).
 * 3 MP keeps the worst case near 1.2 s: ~40% headroom for Storage I/O and a slower host.
 */
export const GRADE_LIMITS = { maxMegapixels: 3 } as const;

/**
 * Largest image the matte job accepts: cold JPEG decode + colour key with feather 50 + RGBA PNG
 * encode measured 0.61 / 1.08 / 1.35 / 1.90 s CPU at 1 / 2 / 3 / 4 MP (bench/media.ts, ~430 ms
 * per MP), so 2 MP keeps it near 1.1 s, well inside the 2 s budget.
 */
export const MATTE_LIMITS = { maxMegapixels: 2 } as const;

/**
 * Largest input cleanAudio accepts. decodeWav + cleanAudio + encodeWav of 48 kHz stereo 24-bit
 * speech-like audio measured 0.67 / 0.98 / 1.26 / 1.65 s CPU for 15 / 30 / 45 / 60 s (cold
 * process, bench/media.ts): ~22 ms per second of audio (~0.23 µs per sample) on top of ~0.34 s of
 * cold start. maxSamples (channels x frames) is 30 s of 48 kHz stereo, ~1 s CPU; V8 heap + buffers
 * stay near 70 MB there.
 */
export const AUDIO_LIMITS = {
  /** Longest input at all (mono up to 48 kHz); more channels or a higher rate hit maxSamples. */
  maxSeconds: 60,
  /** frames x channels: 30 s of 48 kHz stereo (or 60 s of 48 kHz mono). */
  maxSamples: 30 * 48000 * 2,
  maxChannels: 8,
  minSampleRate: 8000,
  maxSampleRate: 192000,
} as const;

/** Throws MediaError('too_large' | 'unsupported_format') if the audio exceeds AUDIO_LIMITS. */
export function checkAudioLimits(
  info: { sampleRate: number; channels: number; durationSeconds: number },
): void {
  const { sampleRate, channels, durationSeconds } = info;
  if (sampleRate < AUDIO_LIMITS.minSampleRate || sampleRate > AUDIO_LIMITS.maxSampleRate) {
    throw new MediaError('unsupported_format', `sample rate ${sampleRate} Hz is not supported`);
  }
  if (channels > AUDIO_LIMITS.maxChannels) {
    throw new MediaError(
      'unsupported_format',
      `${channels} channels (max ${AUDIO_LIMITS.maxChannels})`,
    );
  }
  if (durationSeconds > AUDIO_LIMITS.maxSeconds) {
    throw new MediaError(
      'too_large',
      `audio is ${durationSeconds.toFixed(1)} s long, limit ${AUDIO_LIMITS.maxSeconds} s`,
    );
  }
  if (durationSeconds * sampleRate * channels > AUDIO_LIMITS.maxSamples) {
    throw new MediaError(
      'too_large',
      `audio has too many samples (${channels} ch at ${sampleRate} Hz for ${durationSeconds} s)`,
    );
  }
}
