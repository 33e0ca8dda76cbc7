// color-grade: grades a PNG or JPEG in the function (media/grade.ts), or hands large images and
// other formats to the Replicate model configured for color-grade.
// Steps: downloading → decoding → grading → encoding → uploading.
import type { Handler } from '../../_jobs/kind.ts';
import type { ColorGradeInput } from '../../_jobs/kinds/color-grade.ts';
import { GRADE_LIMITS, gradeImage } from '../../_jobs/media/grade.ts';
import { decodeImage, encodeJpeg, encodePng, imageInfo } from '../../_jobs/media/image.ts';
import {
  cpuStage,
  fetchInput,
  handOff,
  mediaFailure,
  stem,
  withMediaSlot,
} from '../handler-kit.ts';

const handler: Handler<ColorGradeInput> = (ctx) =>
  withMediaSlot(ctx, async () => {
    const input = ctx.input;
    const params = {
      preset: input.preset,
      exposure: input.exposure,
      contrast: input.contrast,
      saturation: input.saturation,
      temperature: input.temperature,
      tint: input.tint,
    };
    const { bytes, contentType, route } = await fetchInput(ctx, 'color-grade');
    if (route.provider === 'replicate') {
      const field = contentType.startsWith('video/') ? 'video' : 'image';
      return await handOff(ctx, 'color-grade', field, {
        ...params,
        output_format: input.output_format,
      });
    }

    await ctx.progress(20, 'decoding');
    let encoded: Uint8Array;
    let width: number;
    let height: number;
    let format: 'png' | 'jpeg';
    try {
      // Each synchronous stage is charged to the isolate's CPU budget as it returns.
      const [image, info] = cpuStage(ctx, () => {
        const info = imageInfo(bytes, contentType);
        const image = decodeImage(bytes, contentType, {
          maxMegapixels: GRADE_LIMITS.maxMegapixels,
        });
        return [image, info] as const;
      });
      const fmt = input.output_format ?? info.format;
      format = fmt;
      ({ width, height } = image);
      await ctx.progress(40, 'grading');
      const graded = cpuStage(ctx, () => gradeImage(image, params));
      await ctx.progress(70, 'encoding');
      encoded = cpuStage(ctx, () => fmt === 'png' ? encodePng(graded) : encodeJpeg(graded, 90));
    } catch (err) {
      mediaFailure(err);
    }

    await ctx.progress(85, 'uploading');
    const type = format === 'png' ? 'image/png' : 'image/jpeg';
    const name = `${stem(input.input_path)}-graded.${format === 'png' ? 'png' : 'jpg'}`;
    const path = await ctx.writeOutput(name, encoded, type);
    return {
      output: {
        files: [{ path, content_type: type, size: encoded.length, width, height }],
        grade: params,
      },
    };
  });

export default handler;
