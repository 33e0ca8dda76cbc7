// audio-clean: cleans a WAV in the function (media/audio.ts: DC, high-pass, noise reduction,
// loudness to the target, true-peak limiter), or hands long audio and compressed formats to the
// Replicate model configured for audio-clean.
// Steps: downloading → decoding → cleaning → encoding → uploading.
import type { Handler } from '../../_jobs/kind.ts';
import type { AudioCleanInput } from '../../_jobs/kinds/audio-clean.ts';
import {
  AUDIO_LIMITS,
  checkAudioLimits,
  cleanAudio,
  type CleanReport,
} from '../../_jobs/media/audio.ts';
import { decodeWav, encodeWav, wavInfo } from '../../_jobs/media/wav.ts';
import {
  cpuStage,
  fetchInput,
  handOff,
  mediaFailure,
  stem,
  withMediaSlot,
} from '../handler-kit.ts';

/** JSON has no infinities: silence measures -Infinity LUFS. */
const finite = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : null);

function reportJson(r: CleanReport) {
  return {
    input_lufs: finite(r.inputLufs),
    output_lufs: finite(r.outputLufs),
    gain_db: finite(r.gainDb),
    limiter_db: finite(r.limiterDb),
    peak_dbtp: finite(r.peakDb),
    noise_floor_db: finite(r.noiseFloorDb),
    output_noise_floor_db: finite(r.outputNoiseFloorDb),
    noise_reduction: r.noiseReduction,
    dc_offset: r.dcOffset.map((x) => Math.round(x * 1e6) / 1e6),
  };
}

const handler: Handler<AudioCleanInput> = (ctx) =>
  withMediaSlot(ctx, async () => {
    const input = ctx.input;
    const { bytes, route } = await fetchInput(ctx, 'audio-clean');
    if (route.provider === 'replicate') {
      return await handOff(ctx, 'audio-clean', 'audio', {
        target_lufs: input.target_lufs,
        noise_reduction: input.noise_reduction,
        highpass_hz: input.highpass_hz,
      });
    }

    await ctx.progress(15, 'decoding');
    let encoded: Uint8Array;
    let report: CleanReport;
    let durationSeconds: number;
    let sampleRate: number;
    let channels: number;
    try {
      // Each synchronous stage is charged to the isolate's CPU budget as it returns.
      const audio = cpuStage(ctx, () => {
        checkAudioLimits(wavInfo(bytes));
        return decodeWav(bytes, { maxSamples: AUDIO_LIMITS.maxSamples });
      });
      ({ sampleRate } = audio);
      channels = audio.channels.length;
      durationSeconds = (audio.channels[0]?.length ?? 0) / sampleRate;
      await ctx.progress(20, 'cleaning');
      // cleanAudio is synchronous: these reports are sent once it yields, the last one wins.
      let reported = 20;
      const result = cpuStage(ctx, () =>
        cleanAudio(audio, {
          highpassHz: input.highpass_hz,
          noiseReduction: input.noise_reduction,
          targetLufs: input.target_lufs,
        }, (fraction) => {
          const percent = 20 + Math.floor(fraction * 60);
          if (percent >= reported + 10) {
            reported = percent;
            ctx.progress(percent, 'cleaning').catch(() => {});
          }
        }));
      report = result.report;
      await ctx.progress(80, 'encoding');
      encoded = cpuStage(ctx, () => encodeWav(result.audio));
    } catch (err) {
      mediaFailure(err);
    }

    await ctx.progress(90, 'uploading');
    const path = await ctx.writeOutput(`${stem(input.input_path)}-clean.wav`, encoded, 'audio/wav');
    return {
      output: {
        files: [{
          path,
          content_type: 'audio/wav',
          size: encoded.length,
          duration_seconds: Math.round(durationSeconds * 1000) / 1000,
          sample_rate: sampleRate,
          channels,
        }],
        target_lufs: input.target_lufs,
        loudness: { input_lufs: finite(report.inputLufs), output_lufs: finite(report.outputLufs) },
        report: reportJson(report),
      },
    };
  });

export default handler;
