import assert from 'node:assert/strict';
import {
  GRADE_LIMITS,
  GRADE_PARAM_RANGES,
  gradeImage,
  MediaError,
  PRESETS,
  resolveGrade,
} from '../../_jobs/media/grade.ts';
import { decodeImage, encodeJpeg, encodePng, type RgbaImage } from '../../_jobs/media/image.ts';
import { colourCard, fillRect, linearLuminance, meanRB, SKIN, solid } from './_media.ts';

function differs(a: RgbaImage, b: RgbaImage): number {
  let n = 0;
  for (let i = 0; i < a.data.length; i += 4) {
    if (
      a.data[i] !== b.data[i] || a.data[i + 1] !== b.data[i + 1] || a.data[i + 2] !== b.data[i + 2]
    ) {
      n++;
    }
  }
  return n / (a.width * a.height);
}

function meanLuma(img: RgbaImage, x0: number, y0: number, w: number, h: number) {
  let s = 0, n = 0;
  for (let y = y0; y < y0 + h; y++) {
    for (let x = x0; x < x0 + w; x++) {
      const i = (y * img.width + x) * 4;
      s += linearLuminance(img.data[i], img.data[i + 1], img.data[i + 2]);
      n++;
    }
  }
  return s / n;
}

Deno.test('noir output is true greyscale and differs from the input', () => {
  const img = colourCard();
  const out = gradeImage(img, { preset: 'noir' });
  for (let i = 0; i < out.data.length; i += 4) {
    assert.ok(out.data[i] === out.data[i + 1] && out.data[i] === out.data[i + 2], `pixel ${i / 4}`);
  }
  assert.ok(differs(img, out) > 0.9);
  // Explicit saturation cannot bring colour back into noir.
  const satd = gradeImage(img, { preset: 'noir', saturation: 1 });
  for (let i = 0; i < satd.data.length; i += 4) {
    assert.ok(satd.data[i] === satd.data[i + 1] && satd.data[i] === satd.data[i + 2]);
  }
});

Deno.test('noir has more contrast than a plain desaturation', () => {
  const img = colourCard();
  const plain = gradeImage(img, { saturation: -1 });
  const noir = gradeImage(img, { preset: 'noir' });
  const spread = (im: RgbaImage) => {
    const v: number[] = [];
    for (let i = 0; i < im.data.length; i += 4) v.push(im.data[i]);
    const m = v.reduce((a, b) => a + b) / v.length;
    return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
  };
  assert.ok(spread(noir) > spread(plain) * 1.1, `${spread(noir)} vs ${spread(plain)}`);
});

Deno.test('warm raises the mean R/B ratio and cool lowers it', () => {
  const img = colourCard();
  const base = meanRB(img);
  const warm = meanRB(gradeImage(img, { preset: 'warm' }));
  const cool = meanRB(gradeImage(img, { preset: 'cool' }));
  assert.ok(warm > base * 1.1, `warm ${warm} vs ${base}`);
  assert.ok(cool < base / 1.1, `cool ${cool} vs ${base}`);
  // Explicit temperature adds to the preset.
  assert.ok(meanRB(gradeImage(img, { preset: 'warm', temperature: 0.3 })) > warm);
  assert.ok(meanRB(gradeImage(img, { temperature: 0.5 })) > base);
});

Deno.test('white balance keeps a neutral grey at its brightness', () => {
  const grey = solid(8, 8, [118, 118, 118]);
  const out = gradeImage(grey, { temperature: 0.6, tint: 0.4 });
  const before = linearLuminance(118, 118, 118);
  const after = linearLuminance(out.data[0], out.data[1], out.data[2]);
  assert.ok(Math.abs(after / before - 1) < 0.03, `${after} vs ${before}`);
  assert.ok(out.data[0] > out.data[2], 'warm grey is redder than blue');
});

Deno.test('tint moves towards magenta (+) or green (-)', () => {
  const img = solid(4, 4, [128, 128, 128]);
  const mag = gradeImage(img, { tint: 0.8 }).data;
  const grn = gradeImage(img, { tint: -0.8 }).data;
  assert.ok(mag[1] < mag[0] && mag[1] < mag[2], `magenta ${mag.slice(0, 3)}`);
  assert.ok(grn[1] > grn[0] && grn[1] > grn[2], `green ${grn.slice(0, 3)}`);
});

Deno.test('exposure +1 roughly doubles the linear luminance of mid-tones', () => {
  const img = solid(32, 8, [0, 0, 0]);
  const levels = [60, 80, 100, 118, 140]; // linear 0.045 .. 0.26
  levels.forEach((v, k) => fillRect(img, k * 6, 0, 6, 8, [v, v, v]));
  fillRect(img, 30, 0, 2, 8, [150, 100, 80]); // a coloured mid-tone
  const out = gradeImage(img, { exposure: 1 });
  for (let k = 0; k < levels.length; k++) {
    const ratio = meanLuma(out, k * 6, 0, 6, 8) / meanLuma(img, k * 6, 0, 6, 8);
    assert.ok(ratio > 1.85 && ratio < 2.15, `level ${levels[k]}: ratio ${ratio}`);
  }
  const cr = meanLuma(out, 30, 0, 2, 8) / meanLuma(img, 30, 0, 2, 8);
  assert.ok(cr > 1.85 && cr < 2.15, `coloured ratio ${cr}`);
  const down = meanLuma(gradeImage(img, { exposure: -1 }), 18, 0, 6, 8) /
    meanLuma(img, 18, 0, 6, 8);
  assert.ok(down > 0.45 && down < 0.55, `-1 stop ratio ${down}`);
});

Deno.test('exposure rolls highlights off instead of clipping them flat', () => {
  const img = solid(2, 1, [200, 200, 200]);
  img.data.set([230, 230, 230, 255], 4);
  const out = gradeImage(img, { exposure: 2 }).data;
  assert.ok(out[0] < out[4], `${out[0]} < ${out[4]}`);
  assert.ok(out[4] < 255 || out[0] < 255);
});

Deno.test('contrast steepens around mid-grey and keeps mid-grey in place', () => {
  const img = solid(3, 1, [118, 118, 118]); // sRGB 118 ~ 18% grey
  img.data.set([60, 60, 60, 255], 4);
  img.data.set([200, 200, 200, 255], 8);
  const hi = gradeImage(img, { contrast: 0.8 }).data;
  const lo = gradeImage(img, { contrast: -0.8 }).data;
  assert.ok(Math.abs(hi[0] - 118) <= 2, `mid-grey moved to ${hi[0]}`);
  assert.ok(hi[4] < 60 && hi[8] > 200, `shadows ${hi[4]}, highlights ${hi[8]}`);
  assert.ok(lo[4] > 60 && lo[8] < 200, `flattened ${lo[4]}, ${lo[8]}`);
});

Deno.test('saturation changes chroma and preserves luminance', () => {
  const img = solid(4, 4, [200, 90, 60]);
  const before = linearLuminance(200, 90, 60);
  for (const s of [-1, -0.5, 0.5]) {
    const d = gradeImage(img, { saturation: s }).data;
    const after = linearLuminance(d[0], d[1], d[2]);
    assert.ok(Math.abs(after / before - 1) < 0.03, `sat ${s}: ${after} vs ${before}`);
    const chroma = Math.max(d[0], d[1], d[2]) - Math.min(d[0], d[1], d[2]);
    if (s < 0) assert.ok(chroma < 140, `sat ${s} chroma ${chroma}`);
    else assert.ok(chroma > 140, `sat ${s} chroma ${chroma}`);
  }
  const grey = gradeImage(img, { saturation: -1 }).data;
  assert.ok(grey[0] === grey[1] && grey[1] === grey[2]);
});

Deno.test('teal-orange pushes shadows to teal and skin/highlights to orange', () => {
  const img = solid(2, 2, [40, 40, 40]); // shadow grey
  fillRect(img, 1, 0, 1, 2, SKIN);
  const out = gradeImage(img, { preset: 'teal-orange' }).data;
  const [sr, sg, sb] = out.subarray(0, 3);
  assert.ok(sb > sr && sg > sr, `shadow ${sr},${sg},${sb} should be teal`);
  const [kr, , kb] = out.subarray(4, 7);
  assert.ok(kr / kb > SKIN[0] / SKIN[2], `skin R/B ${kr / kb} vs ${SKIN[0] / SKIN[2]}`);
});

Deno.test('none with no params returns the image unchanged', () => {
  const img = colourCard(50, 30);
  assert.ok(differs(img, gradeImage(img, {})) === 0);
  assert.ok(differs(img, gradeImage(img, { preset: 'none' })) === 0);
});

Deno.test('alpha is preserved by grading and by PNG output', () => {
  const img = colourCard(40, 30);
  for (let i = 3; i < img.data.length; i += 4) img.data[i] = (i * 7) & 255;
  const out = gradeImage(img, { preset: 'teal-orange', exposure: 0.5 });
  for (let i = 3; i < img.data.length; i += 4) assert.equal(out.data[i], img.data[i]);
  const back = decodeImage(encodePng(out));
  assert.deepEqual(back.data, out.data);
});

Deno.test('PNG and JPEG inputs go through decode, grade and encode', () => {
  const src = colourCard(160, 100);
  for (
    const [bytes, type] of [[encodePng(src), 'image/png'], [
      encodeJpeg(src, 95),
      'image/jpeg',
    ]] as const
  ) {
    const decoded = decodeImage(bytes, type);
    const graded = gradeImage(decoded, { preset: 'warm', exposure: 0.3 });
    for (const out of [encodePng(graded), encodeJpeg(graded, 90)]) {
      const again = decodeImage(out);
      assert.equal(again.width, 160);
      assert.equal(again.height, 100);
      assert.ok(meanRB(again) > meanRB(src) * 1.05, `${type} graded output is warmer`);
    }
  }
});

Deno.test('grade params out of range or unknown presets are refused', () => {
  const img = solid(2, 2, [1, 2, 3]);
  const bad = [
    { exposure: 4 },
    { contrast: -1.5 },
    { saturation: Number.NaN },
    { temperature: 2 },
    { tint: -3 },
    { preset: 'sepia' },
  ];
  for (const p of bad) {
    assert.throws(
      () => gradeImage(img, p as never),
      (e: unknown) => e instanceof MediaError && e.code === 'invalid_params',
      JSON.stringify(p),
    );
  }
});

Deno.test('presets set defaults that explicit params adjust, clamped to the ranges', () => {
  assert.equal(resolveGrade({ preset: 'warm' }).temperature, PRESETS.warm.temperature);
  assert.equal(
    resolveGrade({ preset: 'warm', temperature: -PRESETS.warm.temperature }).temperature,
    0,
  );
  assert.equal(resolveGrade({ preset: 'warm', temperature: 1 }).temperature, 1);
  assert.deepEqual(Object.keys(PRESETS).sort(), ['cool', 'noir', 'none', 'teal-orange', 'warm']);
  assert.deepEqual(GRADE_PARAM_RANGES.exposure, [-3, 3]);
  assert.ok(GRADE_LIMITS.maxMegapixels > 0);
});
