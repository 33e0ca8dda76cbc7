// image: generates images with the OpenAI Images API through the official SDK and saves each as a
// PNG under outputs/<user>/<job>/image-<n>.png.
//
// Model: SPOOL_OPENAI_IMAGE_MODEL (default gpt-image-1), key and endpoint OPENAI_API_KEY and
// OPENAI_BASE_URL (tests point it at a local fake), all from ctx.providers (job-worker/openai.ts).
// The SDK retries once itself (maxRetries 1); beyond that the queue's backoff retries the job.
// Errors:
//   429, 5xx, network failures, timeouts    retryable ('rate_limited', 'provider_unavailable')
//   a prompt refused by the safety system   permanent 'content_policy', with OpenAI's message
//   other 4xx (bad request, auth, model)    permanent 'provider_rejected', with OpenAI's message
import { type Handler, JobError, type OutputFile } from '../../_jobs/kind.ts';
import type { ImageInput } from '../../_jobs/kinds/image.ts';
import { decodeImage, encodePng, imageInfo, sniffImageFormat } from '../../_jobs/media/image.ts';
import { openaiClient, openaiFailure } from '../openai.ts';

export { openaiFailure } from '../openai.ts';

function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The image as PNG bytes: PNGs as they are, JPEGs re-encoded. */
function asPng(bytes: Uint8Array): Uint8Array {
  const format = sniffImageFormat(bytes);
  if (format === 'png') return bytes;
  if (format === 'jpeg') return encodePng(decodeImage(bytes, 'image/jpeg'));
  throw new JobError(
    'provider_bad_output',
    `OpenAI returned an image in a format Spool cannot read (${format ?? 'unknown'})`,
    true,
  );
}

const handler: Handler<ImageInput> = async (ctx) => {
  const { prompt, size, quality, n } = ctx.input;
  const sdk = openaiClient(ctx.providers);
  const model = ctx.providers.openaiImageModel;
  await ctx.progress(5, 'generating');
  let response;
  try {
    response = await sdk.images.generate({ model, prompt, size, quality, n }, {
      signal: ctx.signal,
    });
  } catch (err) {
    throw openaiFailure(err);
  }
  const images = response.data ?? [];
  if (images.length === 0) {
    throw new JobError('provider_bad_output', 'OpenAI returned no images', true);
  }

  await ctx.progress(70, 'uploading');
  const files: OutputFile[] = [];
  const revised: string[] = [];
  for (const [i, image] of images.entries()) {
    let bytes: Uint8Array;
    if (image.b64_json) {
      bytes = base64ToBytes(image.b64_json);
    } else if (image.url) {
      const res = await fetch(image.url, { signal: ctx.signal });
      if (!res.ok) {
        throw new JobError(
          'provider_unavailable',
          `downloading the image answered ${res.status}`,
          true,
        );
      }
      bytes = new Uint8Array(await res.arrayBuffer());
    } else {
      throw new JobError('provider_bad_output', 'OpenAI returned an image without data', true);
    }
    const png = asPng(bytes);
    const { width, height } = imageInfo(png, 'image/png');
    const path = await ctx.writeOutput(`image-${i + 1}.png`, png, 'image/png');
    files.push({ path, content_type: 'image/png', size: png.length, width, height });
    if (image.revised_prompt) revised.push(image.revised_prompt);
    await ctx.progress(70 + Math.round((25 * (i + 1)) / images.length), 'uploading');
  }
  const output: Record<string, unknown> & { files: OutputFile[] } = {
    files,
    model,
    size,
    quality,
  };
  if (revised.length > 0) output.revised_prompts = revised;
  if (response.usage) output.usage = response.usage;
  return { output };
};

export default handler;
