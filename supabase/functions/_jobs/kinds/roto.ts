// roto: an alpha matte keyed on a colour (green screen) or on brightness, or by AI segmentation.
// PNG and JPEG up to MATTE_LIMITS are keyed in the function; ai mode, WebP and video need
// Replicate (SPOOL_REPLICATE_ROTO_VERSION). Handler: job-worker/handlers/roto.ts.
import { z } from '../../_shared/deps.ts';
import {
  among,
  IMAGE_TYPES,
  INPUT_MAX_BYTES,
  InputName,
  InputPath,
  OTHER_IMAGE_TYPES,
  providerNotConfigured,
  replicateOr,
  routeImage,
  unsupported,
  VIDEO_TYPES,
} from '../files.ts';
import { defineKind } from '../kind.ts';
import { MATTE_LIMITS } from '../media/limits.ts';

const HexColor = z.string().regex(/^#[0-9a-f]{6}$/i, 'must be a colour like #00b140');
const keyed = { field: 'mode', not_in: ['ai'] };

export const RotoInput = z.object({
  input_path: InputPath,
  input_name: InputName,
  mode: z.enum(['color', 'luma', 'ai']).default('color').meta({
    title: 'Key on',
    'x-widget': 'select',
    'x-options': [
      { value: 'color', label: 'A colour (green/blue screen)' },
      { value: 'luma', label: 'Brightness (dark background)' },
      { value: 'ai', label: 'AI segmentation (needs Replicate)' },
    ],
  }),
  key_color: HexColor.default('#00b140').meta({
    title: 'Key colour',
    'x-widget': 'color',
    'x-when': { field: 'mode', in: ['color'] },
  }),
  tolerance: z.number().min(0).max(1).default(0.3).meta({
    title: 'Tolerance',
    'x-widget': 'range',
    'x-step': 0.01,
    'x-format': 'fixed2',
    'x-when': keyed,
  }),
  feather: z.number().min(0).max(50).default(2).meta({
    title: 'Feather',
    'x-widget': 'range',
    'x-step': 1,
    'x-format': 'px',
    'x-when': keyed,
  }),
  invert: z.boolean().default(false).meta({ title: 'Invert the matte', 'x-widget': 'checkbox' }),
}).strict();
export type RotoInput = z.infer<typeof RotoInput>;

const CONTENT_TYPES = [...IMAGE_TYPES, ...OTHER_IMAGE_TYPES, ...VIDEO_TYPES];

export default defineKind<RotoInput>({
  type: 'roto',
  label: 'Cut out (roto)',
  summary: 'An alpha matte keyed on a colour (green screen) or on brightness.',
  schema: RotoInput,
  replicateVersionVar: 'SPOOL_REPLICATE_ROTO_VERSION',
  file: {
    field: 'input_path',
    maxBytes: INPUT_MAX_BYTES,
    contentTypes: CONTENT_TYPES,
    facts: {
      summary: `PNG or JPEG up to ${MATTE_LIMITS.maxMegapixels} megapixels`,
      inFunction: IMAGE_TYPES,
      provider: 'replicate',
      limits: { max_megapixels: MATTE_LIMITS.maxMegapixels },
    },
    path: (input) => input.input_path,
    async route(file, input, providers) {
      const type = 'roto';
      const isImage = among(IMAGE_TYPES, file.contentType);
      const isOther = among(OTHER_IMAGE_TYPES, file.contentType) ||
        among(VIDEO_TYPES, file.contentType);
      if (!isImage && !isOther) return unsupported(type, file.contentType, CONTENT_TYPES);
      if (input.mode === 'ai') {
        return replicateOr(type, providers, providerNotConfigured('replicate', 'roto in ai mode'));
      }
      if (isOther) {
        return replicateOr(
          type,
          providers,
          providerNotConfigured('replicate', `roto of ${file.contentType}`),
        );
      }
      return await routeImage(type, file, providers, MATTE_LIMITS.maxMegapixels);
    },
  },
});
