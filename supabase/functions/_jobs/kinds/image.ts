// image: pictures from a text prompt, by the OpenAI Images API (SPOOL_OPENAI_IMAGE_MODEL).
// Handler: job-worker/handlers/image.ts.
import { z } from '../../_shared/deps.ts';
import { defineKind } from '../kind.ts';

export const ImageInput = z.object({
  prompt: z.string().trim().min(1).max(4000).meta({
    title: 'Prompt',
    'x-widget': 'textarea',
    'x-placeholder': 'A lighthouse at dusk, watercolour',
  }),
  size: z.enum(['1024x1024', '1024x1536', '1536x1024', 'auto']).default('1024x1024').meta({
    title: 'Size',
    'x-widget': 'select',
    'x-options': [
      { value: '1024x1024', label: 'Square (1024×1024)' },
      { value: '1024x1536', label: 'Portrait (1024×1536)' },
      { value: '1536x1024', label: 'Landscape (1536×1024)' },
      { value: 'auto', label: 'Automatic' },
    ],
  }),
  quality: z.enum(['low', 'medium', 'high', 'auto']).default('auto').meta({
    title: 'Quality',
    'x-widget': 'select',
    'x-options': [
      { value: 'auto', label: 'Automatic' },
      { value: 'low', label: 'Low (fastest)' },
      { value: 'medium', label: 'Medium' },
      { value: 'high', label: 'High' },
    ],
  }),
  n: z.number().int().min(1).max(4).default(1).meta({
    title: 'How many',
    'x-widget': 'select',
    'x-options': [1, 2, 3, 4].map((n) => ({ value: n, label: String(n) })),
  }),
}).strict();
export type ImageInput = z.infer<typeof ImageInput>;

export default defineKind<ImageInput>({
  type: 'image',
  label: 'Generate an image',
  summary: 'A picture from a text prompt (OpenAI Images). No upload needed.',
  schema: ImageInput,
  provider: 'openai',
});
