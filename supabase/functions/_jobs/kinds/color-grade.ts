// color-grade: a look preset plus exposure, contrast, saturation and white balance on a photo.
// PNG and JPEG up to GRADE_LIMITS are graded in the function; larger images, WebP and video go to
// Replicate when SPOOL_REPLICATE_COLOR_GRADE_VERSION is set. Handler: job-worker/handlers/color-grade.ts.
import { z } from '../../_shared/deps.ts';
import {
  among,
  IMAGE_TYPES,
  INPUT_MAX_BYTES,
  InputName,
  InputPath,
  OTHER_IMAGE_TYPES,
  replicateOr,
  routeImage,
  unsupported,
  VIDEO_TYPES,
} from '../files.ts';
import { defineKind } from '../kind.ts';
import { GRADE_LIMITS } from '../media/limits.ts';

const unit = (title: string, description?: string) =>
  z.number().min(-1).max(1).default(0).meta({
    title,
    ...(description ? { description } : {}),
    'x-widget': 'range',
    'x-step': 0.05,
    'x-format': 'signed',
  });

export const ColorGradeInput = z.object({
  input_path: InputPath,
  input_name: InputName,
  preset: z.enum(['none', 'warm', 'cool', 'noir', 'teal-orange']).default('none').meta({
    title: 'Preset',
    'x-widget': 'select',
    'x-options': [
      { value: 'none', label: 'None' },
      { value: 'warm', label: 'Warm' },
      { value: 'cool', label: 'Cool' },
      { value: 'noir', label: 'Noir (black & white)' },
      { value: 'teal-orange', label: 'Teal & orange' },
    ],
  }),
  exposure: z.number().min(-3).max(3).default(0).meta({
    title: 'Exposure',
    'x-widget': 'range',
    'x-step': 0.1,
    'x-format': 'stops',
  }),
  contrast: unit('Contrast'),
  saturation: unit('Saturation'),
  temperature: unit('Temperature', 'cooler ← → warmer'),
  tint: unit('Tint', 'green ← → magenta'),
  output_format: z.enum(['png', 'jpeg']).optional().meta({
    title: 'Output format',
    description: 'Default: the same format as the input',
    'x-widget': 'select',
    'x-options': [
      { value: 'png', label: 'PNG (lossless)' },
      { value: 'jpeg', label: 'JPEG (smaller)' },
    ],
  }),
}).strict();
export type ColorGradeInput = z.infer<typeof ColorGradeInput>;

const CONTENT_TYPES = [...IMAGE_TYPES, ...OTHER_IMAGE_TYPES, ...VIDEO_TYPES];

export default defineKind<ColorGradeInput>({
  type: 'color-grade',
  label: 'Colour grade',
  summary: 'A look preset plus exposure, contrast, saturation and white balance.',
  schema: ColorGradeInput,
  replicateVersionVar: 'SPOOL_REPLICATE_COLOR_GRADE_VERSION',
  file: {
    field: 'input_path',
    maxBytes: INPUT_MAX_BYTES,
    contentTypes: CONTENT_TYPES,
    facts: {
      summary: `PNG or JPEG up to ${GRADE_LIMITS.maxMegapixels} megapixels`,
      inFunction: IMAGE_TYPES,
      provider: 'replicate',
      limits: { max_megapixels: GRADE_LIMITS.maxMegapixels },
    },
    path: (input) => input.input_path,
    async route(file, _input, providers) {
      const type = 'color-grade';
      if (among(IMAGE_TYPES, file.contentType)) {
        return await routeImage(type, file, providers, GRADE_LIMITS.maxMegapixels);
      }
      if (among(OTHER_IMAGE_TYPES, file.contentType) || among(VIDEO_TYPES, file.contentType)) {
        return replicateOr(type, providers, {
          ...unsupported(type, file.contentType, IMAGE_TYPES),
          message:
            `${file.contentType} needs a provider, and none is configured: send a PNG or JPEG`,
        });
      }
      return unsupported(type, file.contentType, CONTENT_TYPES);
    },
  },
});
