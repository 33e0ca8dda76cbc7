import assert from 'node:assert/strict';
import { decodeImage, encodePng, type RgbaImage } from '../../_jobs/media/image.ts';
import { MATTE_LIMITS, matteStats, MediaError, pullMatte } from '../../_jobs/media/matte.ts';
import { fillRect, greenScreen, solid } from './_media.ts';

const alphaAt = (img: RgbaImage, p: number) => img.data[p * 4 + 3];

/** Pixels at least `d` px away from the subject boundary, inside or outside. */
function awayFromEdge(mask: Uint8Array, w: number, h: number, d: number): Uint8Array {
  const out = new Uint8Array(w * h);
  for (let y = d; y < h - d; y++) {
    for (let x = d; x < w - d; x++) {
      const v = mask[y * w + x];
      let same = true;
      for (let dy = -d; dy <= d && same; dy++) {
        for (let dx = -d; dx <= d && same; dx++) {
          if (mask[(y + dy) * w + x + dx] !== v) same = false;
        }
      }
      out[y * w + x] = same ? 1 : 0;
    }
  }
  return out;
}

Deno.test('green-screen key makes the background transparent and the subject opaque', () => {
  const { img, subjectMask } = greenScreen();
  const out = pullMatte(img, { mode: 'color', tolerance: 0.35, feather: 0 });
  const stats = matteStats(out);
  assert.ok(stats.transparent > 0.3, `transparent ${stats.transparent}`);
  assert.ok(stats.opaque > 0.2, `opaque ${stats.opaque}`);
  const safe = awayFromEdge(subjectMask, img.width, img.height, 2);
  let wrongBg = 0, wrongFg = 0, bg = 0, fg = 0;
  for (let p = 0; p < subjectMask.length; p++) {
    if (!safe[p]) continue;
    if (subjectMask[p]) {
      fg++;
      if (alphaAt(out, p) !== 255) wrongFg++;
    } else {
      bg++;
      if (alphaAt(out, p) !== 0) wrongBg++;
    }
  }
  assert.equal(wrongFg, 0, `${wrongFg}/${fg} subject pixels not opaque`);
  assert.equal(wrongBg, 0, `${wrongBg}/${bg} background pixels not transparent`);
});

Deno.test('colour key keeps RGB of the subject and survives a PNG round trip', () => {
  const { img, subjectMask } = greenScreen();
  const out = pullMatte(img, { mode: 'color', tolerance: 0.35, feather: 2 });
  const p = subjectMask.findIndex((v, i) => v === 1 && i > img.width * 40);
  assert.deepEqual([...out.data.subarray(p * 4, p * 4 + 3)], [
    ...img.data.subarray(p * 4, p * 4 + 3),
  ]);
  assert.deepEqual(decodeImage(encodePng(out)).data, out.data);
});

Deno.test('spill suppression removes the green cast from edge pixels', () => {
  // A skin-tone/green 50:50 mix, as found along a subject's edge.
  const img = solid(4, 4, [112, 175, 102]);
  fillRect(img, 0, 0, 1, 1, [0, 177, 64]);
  const out = pullMatte(img, { mode: 'color', tolerance: 0.3, softness: 0.9, feather: 0 });
  const [r, g, b, a] = out.data.subarray(4, 8);
  assert.ok(a > 0, 'edge pixel kept');
  assert.ok(g <= Math.max(r, b) + 1, `green limited: ${r},${g},${b}`);
  const noSpill = pullMatte(img, {
    mode: 'color',
    tolerance: 0.3,
    softness: 0.9,
    feather: 0,
    spill: 0,
  });
  assert.equal(noSpill.data[5], 175);
});

Deno.test('feather produces intermediate alpha at the edges only', () => {
  const { img, subjectMask } = greenScreen();
  const hard = pullMatte(img, { mode: 'color', tolerance: 0.35, feather: 0 });
  const soft = pullMatte(img, { mode: 'color', tolerance: 0.35, feather: 6 });
  const partial = (im: RgbaImage) => {
    let n = 0;
    for (let p = 0; p < im.width * im.height; p++) {
      const a = alphaAt(im, p);
      if (a > 0 && a < 255) n++;
    }
    return n;
  };
  assert.ok(partial(soft) > partial(hard) * 3 + 50, `${partial(soft)} vs ${partial(hard)}`);
  const far = awayFromEdge(subjectMask, img.width, img.height, 10);
  for (let p = 0; p < subjectMask.length; p++) {
    if (!far[p]) continue;
    assert.equal(alphaAt(soft, p), subjectMask[p] ? 255 : 0, `pixel ${p}`);
  }
  const s = matteStats(soft);
  assert.ok(s.transparent > 0.2 && s.opaque > 0.1);
});

Deno.test('luma key removes a dark background and invert swaps it', () => {
  const img = solid(40, 30, [12, 10, 14]);
  fillRect(img, 10, 8, 20, 14, [230, 220, 200]);
  const out = pullMatte(img, { mode: 'luma', tolerance: 0.1, feather: 0 });
  assert.equal(out.data[3], 0, 'background transparent');
  assert.equal(alphaAt(out, 15 * 40 + 20), 255, 'subject opaque');
  const inv = pullMatte(img, { mode: 'luma', tolerance: 0.1, feather: 0, invert: true });
  assert.equal(inv.data[3], 255);
  assert.equal(alphaAt(inv, 15 * 40 + 20), 0);
  // A threshold above the subject's luma keys everything out.
  const all = pullMatte(img, { mode: 'luma', tolerance: 0, lumaThreshold: 0.95, feather: 0 });
  assert.equal(matteStats(all).transparent, 1);
});

Deno.test('an existing alpha channel is multiplied, never raised', () => {
  const img = solid(4, 4, [220, 40, 40]);
  for (let i = 3; i < img.data.length; i += 4) img.data[i] = 100;
  const out = pullMatte(img, { mode: 'color', tolerance: 0.3, feather: 0 });
  assert.equal(out.data[3], 100);
});

Deno.test('invalid matte options are refused with invalid_params', () => {
  const img = solid(4, 4, [0, 0, 0]);
  const bad = [
    { mode: 'chroma', tolerance: 0.3, feather: 0 },
    { mode: 'color', tolerance: 1.5, feather: 0 },
    { mode: 'color', tolerance: 0.3, feather: 80 },
    { mode: 'color', tolerance: 0.3, feather: 0, keyColor: [0, 300, 0] },
    { mode: 'luma', tolerance: 0.3, feather: 0, lumaThreshold: -0.1 },
  ];
  for (const opts of bad) {
    assert.throws(
      () => pullMatte(img, opts as never),
      (e: unknown) => e instanceof MediaError && e.code === 'invalid_params',
      JSON.stringify(opts),
    );
  }
  assert.ok(MATTE_LIMITS.maxMegapixels > 0);
});
