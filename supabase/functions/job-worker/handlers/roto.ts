// roto: pulls an alpha matte from a still image in the function (media/matte.ts: chroma or luma
// key, spill suppression, feather) and saves the cut-out as a PNG with transparency; AI mattes,
// video and large images go to the Replicate model configured for roto.
// Steps: downloading → decoding → keying → encoding → uploading.
import type { Handler } from '../../_jobs/kind.ts';
import type { RotoInput } from '../../_jobs/kinds/roto.ts';
import { decodeImage, encodePng } from '../../_jobs/media/image.ts';
import { MATTE_LIMITS, matteStats, pullMatte } from '../../_jobs/media/matte.ts';
import {
  cpuStage,
  fetchInput,
  handOff,
  mediaFailure,
  stem,
  withMediaSlot,
} from '../handler-kit.ts';

/** "#00b140" → [0, 177, 64] (the schema guarantees the form). */
export function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const handler: Handler<RotoInput> = (ctx) =>
  withMediaSlot(ctx, async () => {
    const input = ctx.input;
    const { bytes, contentType, route } = await fetchInput(ctx, 'roto');
    if (route.provider === 'replicate' || input.mode === 'ai') {
      return await handOff(ctx, 'roto', contentType.startsWith('video/') ? 'video' : 'image', {
        mode: input.mode,
        key_color: input.key_color,
        tolerance: input.tolerance,
        feather: input.feather,
        invert: input.invert,
      });
    }

    await ctx.progress(20, 'decoding');
    let encoded: Uint8Array;
    let width: number;
    let height: number;
    let coverage: { transparent: number; opaque: number };
    try {
      // Each synchronous stage is charged to the isolate's CPU budget as it returns.
      const image = cpuStage(
        ctx,
        () => decodeImage(bytes, contentType, { maxMegapixels: MATTE_LIMITS.maxMegapixels }),
      );
      ({ width, height } = image);
      await ctx.progress(40, 'keying');
      const mode = input.mode; // narrowed above: not 'ai'
      const [cutout, stats] = cpuStage(ctx, () => {
        const matte = pullMatte(image, {
          mode,
          keyColor: hexToRgb(input.key_color),
          tolerance: input.tolerance,
          feather: input.feather,
          invert: input.invert,
        });
        return [matte, matteStats(matte)] as const;
      });
      coverage = stats;
      await ctx.progress(70, 'encoding');
      encoded = cpuStage(ctx, () => encodePng(cutout));
    } catch (err) {
      mediaFailure(err);
    }

    await ctx.progress(85, 'uploading');
    const path = await ctx.writeOutput(`${stem(input.input_path)}-matte.png`, encoded, 'image/png');
    const round = (x: number) => Math.round(x * 10000) / 10000;
    return {
      output: {
        files: [{ path, content_type: 'image/png', size: encoded.length, width, height }],
        matte: {
          mode: input.mode,
          transparent: round(coverage.transparent),
          opaque: round(coverage.opaque),
          partial: round(1 - coverage.transparent - coverage.opaque),
        },
      },
    };
  });

export default handler;
