// The complete pack: one prompt becomes a flow (create_flow) of six `image` children, the views a
// product listing shows, and one `text` child, the listing's A+ content. The parent, of type
// `pack`, is never claimed: it waits for its children and is done when they have all ended
// (policy `partial`: it finishes with the children that succeeded and a report of those that did
// not; it fails only if none did). Its output lists the seven in this order: the views of
// PACK_VIEWS (the parent's input names them), then the text.
import { z } from '../_shared/deps.ts';
import { ImageInput } from './kinds/image.ts';
import { TextInput } from './kinds/text.ts';

/** The six views, in the order the pack lists them (the seeds' "six images"). */
export const PACK_VIEWS = [
  { view: 'main', hint: 'the product alone on a pure white background, centred, studio light' },
  { view: 'lifestyle', hint: 'the product in use in a real, attractive everyday setting' },
  { view: 'detail', hint: "a close-up of the product's materials, texture and finish" },
  { view: 'scale', hint: 'the product beside everyday objects that show its size' },
  { view: 'features', hint: 'the product with its key features made visible, clean layout' },
  { view: 'packaging', hint: 'the product with its packaging, as the customer receives it' },
] as const;

/** The A+ content's shape: a headline, a few feature modules, and a closing line. */
export const APLUS_SCHEMA = {
  type: 'object',
  properties: {
    headline: { type: 'string' },
    modules: {
      type: 'array',
      items: {
        type: 'object',
        properties: { title: { type: 'string' }, body: { type: 'string' } },
        required: ['title', 'body'],
        additionalProperties: false,
      },
    },
    closing: { type: 'string' },
  },
  required: ['headline', 'modules', 'closing'],
  additionalProperties: false,
};

export const PackInput = z.object({
  prompt: z.string().trim().min(1).max(2000).meta({
    title: 'Product',
    description: 'what the product is, in a sentence or two',
    'x-widget': 'textarea',
  }),
  size: ImageInput.shape.size,
  quality: ImageInput.shape.quality,
}).strict();
export type PackInput = z.infer<typeof PackInput>;

export interface PackChild {
  type: 'image' | 'text';
  input: Record<string, unknown>;
  route: 'openai';
}

/** The seven children of a pack, each input parsed by its kind's schema (defaults filled in). */
export function packChildren(pack: PackInput): PackChild[] {
  const images = PACK_VIEWS.map(({ hint }) => ({
    type: 'image' as const,
    input: ImageInput.parse({
      prompt: `${pack.prompt}. Show ${hint}.`.slice(0, 4000),
      size: pack.size,
      quality: pack.quality,
      n: 1,
    }),
    route: 'openai' as const,
  }));
  const text = {
    type: 'text' as const,
    input: TextInput.parse({
      prompt:
        `Write the A+ content (the rich description below the photos) for this product: ${pack.prompt}`,
      instructions:
        'You write e-commerce listing copy: concrete, benefit-led, no claims you cannot support. ' +
        'Three to five modules of two or three sentences each.',
      output_schema: APLUS_SCHEMA,
      max_output_tokens: 1200,
    }),
    route: 'openai' as const,
  };
  return [...images, text];
}
