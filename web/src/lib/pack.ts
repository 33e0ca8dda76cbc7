// The complete pack in the browser: the form's kind, derived from the `image` kind the server
// lists (a pack is six image jobs and one text job, so it needs what `image` needs: OpenAI), and
// the card's seven slots, each child in its place. No imports but types: unit-tested in Deno
// (web/tests/pack.test.ts), and web/tests/pack.contract.test.ts checks PACK_VIEW_HINTS against
// the server's supabase/functions/_jobs/pack.ts.
import type { JobState } from './job-states.ts';
import type { JobKind } from './kinds.ts';

/**
 * What this module reads of a job (lib/jobs.ts Job has all of it). Declared here rather than
 * imported: jobs.ts loads the Supabase client, which the Deno tests of this module do without.
 */
export interface PackJob {
  id: string;
  type: string;
  status: JobState;
  input: { [key: string]: unknown } | null;
  output: unknown;
  created_at: string;
}
type Job = PackJob;

/**
 * The views of a pack, in the order the pack lists them, and the hint the pack creator appends
 * to the prompt of each view's image job (`<prompt>. Show <hint>.`). A running pack's children
 * carry no index the owner may read (the flow's order is server-side until the parent ends and
 * its output lists them), so an image child is placed by its hint.
 */
export const PACK_VIEW_HINTS: readonly { view: string; hint: string }[] = [
  { view: 'main', hint: 'the product alone on a pure white background, centred, studio light' },
  { view: 'lifestyle', hint: 'the product in use in a real, attractive everyday setting' },
  { view: 'detail', hint: "a close-up of the product's materials, texture and finish" },
  { view: 'scale', hint: 'the product beside everyday objects that show its size' },
  { view: 'features', hint: 'the product with its key features made visible, clean layout' },
  { view: 'packaging', hint: 'the product with its packaging, as the customer receives it' },
];

export const APLUS_LABEL = 'A+ content';

/**
 * The pack's form as a job kind, from the image kind GET /jobs/kinds lists: a product prompt,
 * and the image's size and quality (its `n` is the pack's business: one image per view).
 * Available exactly when `image` is; without it, null (the pack cannot be offered at all).
 */
export function packKindOf(kinds: readonly JobKind[]): JobKind | null {
  const image = kinds.find((k) => k.type === 'image');
  if (!image) return null;
  const p = image.input_schema.properties;
  const properties: JobKind['input_schema']['properties'] = {
    prompt: {
      ...p.prompt,
      title: 'Product',
      description: 'what the product is, in a sentence or two',
      maxLength: 2000,
      'x-placeholder': 'A hand-thrown stoneware mug, speckled glaze, 350 ml',
    },
  };
  if (p.size) properties.size = p.size;
  if (p.quality) properties.quality = p.quality;
  return {
    type: 'pack',
    label: 'Complete pack',
    summary: 'Six product photos (main, lifestyle, detail, scale, features, packaging) and the ' +
      'A+ content text, from one prompt.',
    available: image.available,
    unavailable: image.available ? null : {
      code: image.unavailable?.code ?? 'provider_not_configured',
      message: `the complete pack needs OpenAI for its images and its text${
        image.unavailable?.message ? ` (${image.unavailable.message})` : ''
      }`,
    },
    input_schema: { type: 'object', properties, required: ['prompt'], additionalProperties: false },
    file: null,
  };
}

/** One place of the pack's card: its label and the child in it (null until it is known). */
export interface PackSlot<J extends PackJob = PackJob> {
  /** 'Main', …, or 'A+ content'. */
  label: string;
  /** 'image' or 'text'. */
  type: string;
  job: J | null;
}

/** A view's name as the card shows it: "main" -> "Main". */
export function viewLabel(view: string): string {
  return view.charAt(0).toUpperCase() + view.slice(1);
}

function viewsOf(parent: Pick<Job, 'input'>): string[] {
  const views = parent.input?.views;
  if (Array.isArray(views) && views.every((v) => typeof v === 'string')) return views as string[];
  return PACK_VIEW_HINTS.map((v) => v.view);
}

/** The view an image child was made for, read from its prompt's hint; null if none matches. */
export function viewOfChild(child: Pick<Job, 'input'>): string | null {
  const prompt = child.input?.prompt;
  if (typeof prompt !== 'string') return null;
  return PACK_VIEW_HINTS.find((v) => prompt.endsWith(`Show ${v.hint}.`))?.view ?? null;
}

/**
 * The pack's slots in its order: one per view of the parent's input.views (image), then the A+
 * content (text), each with its child. Once the parent has ended its output lists the children
 * by index: that order is the truth. Before, an image child goes to the view its prompt names,
 * the text child to the A+ content, and any child left over (a flow made otherwise) to the first
 * free slot of its type, oldest first; a child of no slot's type gets a slot of its own at the
 * end. Never places a child twice.
 */
export function packSlots<J extends PackJob>(
  parent: Pick<PackJob, 'input' | 'output'>,
  children: readonly J[],
): PackSlot<J>[] {
  const slots: PackSlot<J>[] = [
    ...viewsOf(parent).map((v) => ({ label: viewLabel(v), type: 'image', job: null as J | null })),
    { label: APLUS_LABEL, type: 'text', job: null },
  ];
  const views = viewsOf(parent);
  const placed = new Set<string>();
  const put = (i: number, job: J) => {
    if (i < 0 || i >= slots.length || slots[i].job || placed.has(job.id)) return false;
    slots[i].job = job;
    placed.add(job.id);
    return true;
  };
  const byId = new Map(children.map((c) => [c.id, c]));
  const listed = (parent.output as { children?: unknown } | null)?.children;
  if (Array.isArray(listed)) {
    for (const entry of listed as { index?: unknown; id?: unknown }[]) {
      const job = typeof entry?.id === 'string' ? byId.get(entry.id) : undefined;
      if (job && typeof entry.index === 'number') put(entry.index, job);
    }
  }
  const rest = [...children].sort((a, b) =>
    a.created_at === b.created_at ? (a.id < b.id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1
  );
  for (const job of rest) {
    if (placed.has(job.id)) continue;
    if (job.type === 'text') put(slots.length - 1, job);
    else if (job.type === 'image') {
      const view = viewOfChild(job);
      if (view !== null) put(views.indexOf(view), job);
    }
  }
  for (const job of rest) {
    if (placed.has(job.id)) continue;
    const free = slots.findIndex((s) => s.type === job.type && !s.job);
    if (free >= 0) put(free, job);
    else {
      slots.push({ label: job.type, type: job.type, job });
      placed.add(job.id);
    }
  }
  return slots;
}

/** The A+ content of a done text child (output.result), or null if it is not that shape. */
export function aplusOf(job: Pick<Job, 'output'>): {
  headline: string;
  modules: { title: string; body: string }[];
  closing: string | null;
} | null {
  const result = (job.output as { result?: unknown } | null)?.result as
    | { headline?: unknown; modules?: unknown; closing?: unknown }
    | undefined;
  if (!result || typeof result.headline !== 'string') return null;
  const modules = Array.isArray(result.modules)
    ? (result.modules as { title?: unknown; body?: unknown }[])
      .filter((m) => m && typeof m.title === 'string' && typeof m.body === 'string')
      .map((m) => ({ title: m.title as string, body: m.body as string }))
    : [];
  return { headline: result.headline, modules, closing: typeof result.closing === 'string' ? result.closing : null };
}

/** "3 of 7 done · 1 failed · 1 cancelled": the children's tally for the card's header. */
export function packTally(children: readonly Pick<Job, 'status'>[], total: number): string {
  const n = (s: string) => children.filter((c) => c.status === s).length;
  const parts = [`${n('done')} of ${total} done`];
  if (n('failed')) parts.push(`${n('failed')} failed`);
  if (n('cancelled')) parts.push(`${n('cancelled')} cancelled`);
  return parts.join(' · ');
}
