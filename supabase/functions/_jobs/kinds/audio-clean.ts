// audio-clean: DC removal, high-pass, noise reduction and loudness normalisation of a voice track.
// WAV within AUDIO_LIMITS is cleaned in the function; longer audio and compressed formats go to
// Replicate when SPOOL_REPLICATE_AUDIO_CLEAN_VERSION is set. Handler: job-worker/handlers/audio-clean.ts.
import { z } from '../../_shared/deps.ts';
import {
  among,
  INPUT_MAX_BYTES,
  InputName,
  InputPath,
  OTHER_AUDIO_TYPES,
  replicateOr,
  routeWav,
  unsupported,
  WAV_TYPES,
} from '../files.ts';
import { defineKind } from '../kind.ts';
import { AUDIO_LIMITS } from '../media/limits.ts';

export const AudioCleanInput = z.object({
  input_path: InputPath,
  input_name: InputName,
  target_lufs: z.number().min(-30).max(-10).default(-16).meta({
    title: 'Target loudness',
    description: '-16 for podcasts, -23 for broadcast',
    'x-widget': 'range',
    'x-step': 1,
    'x-format': 'lufs',
  }),
  noise_reduction: z.number().min(0).max(1).default(0.5).meta({
    title: 'Noise reduction',
    'x-widget': 'range',
    'x-step': 0.05,
    'x-format': 'percent',
  }),
  highpass_hz: z.number().min(20).max(300).default(80).meta({
    title: 'High-pass filter',
    'x-widget': 'range',
    'x-step': 5,
    'x-format': 'hz',
  }),
}).strict();
export type AudioCleanInput = z.infer<typeof AudioCleanInput>;

const CONTENT_TYPES = [...WAV_TYPES, ...OTHER_AUDIO_TYPES];
const stereoSeconds = AUDIO_LIMITS.maxSamples / (48_000 * 2);

export default defineKind<AudioCleanInput>({
  type: 'audio-clean',
  label: 'Clean up audio',
  summary: 'DC removal, high-pass, noise reduction and loudness normalisation.',
  schema: AudioCleanInput,
  replicateVersionVar: 'SPOOL_REPLICATE_AUDIO_CLEAN_VERSION',
  file: {
    field: 'input_path',
    maxBytes: INPUT_MAX_BYTES,
    contentTypes: CONTENT_TYPES,
    facts: {
      summary: `WAV up to ${stereoSeconds} s of 48 kHz stereo`,
      inFunction: WAV_TYPES,
      provider: 'replicate',
      limits: { max_seconds: AUDIO_LIMITS.maxSeconds, max_samples: AUDIO_LIMITS.maxSamples },
    },
    path: (input) => input.input_path,
    async route(file, _input, providers) {
      const type = 'audio-clean';
      if (among(WAV_TYPES, file.contentType)) return await routeWav(type, file, providers);
      if (among(OTHER_AUDIO_TYPES, file.contentType)) {
        return replicateOr(type, providers, {
          ...unsupported(type, file.contentType, WAV_TYPES),
          message: `${file.contentType} needs a provider, and none is configured: send a WAV file`,
        });
      }
      return unsupported(type, file.contentType, CONTENT_TYPES);
    },
  },
});
