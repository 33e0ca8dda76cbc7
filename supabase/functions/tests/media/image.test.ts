import assert from 'node:assert/strict';
import { encode as encodePngLib } from 'npm:fast-png@8.0.0';
import { zlibSync } from 'npm:fflate@0.8.3';
import {
  decodeImage,
  encodeJpeg,
  encodePng,
  imageInfo,
  JPEG_MAX_SCANS,
  MediaError,
  orient,
  type RgbaImage,
  sniffImageFormat,
  truncatedImage,
} from '../../_jobs/media/image.ts';
import { colourCard, solid } from './_media.ts';
import { zerosZlib } from '../support/media-fixtures.ts';

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) {
    c ^= b[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Inserts a chunk before the first IDAT of a PNG. */
function insertPngChunk(png: Uint8Array, type: string, body: Uint8Array): Uint8Array {
  let i = 8;
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  while (String.fromCharCode(...png.subarray(i + 4, i + 8)) !== 'IDAT') i += 12 + dv.getUint32(i);
  const chunk = new Uint8Array(12 + body.length);
  const cv = new DataView(chunk.buffer);
  cv.setUint32(0, body.length);
  for (let k = 0; k < 4; k++) chunk[4 + k] = type.charCodeAt(k);
  chunk.set(body, 8);
  cv.setUint32(8 + body.length, crc32(chunk.subarray(4, 8 + body.length)));
  const out = new Uint8Array(png.length + chunk.length);
  out.set(png.subarray(0, i));
  out.set(chunk, i);
  out.set(png.subarray(i), i + chunk.length);
  return out;
}

/** Inserts an APP1/Exif segment with the given orientation right after SOI. */
function withExifOrientation(jpg: Uint8Array, orientation: number): Uint8Array {
  const tiff = [0x4d, 0x4d, 0, 0x2a, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1];
  const body = [...'Exif'].map((c) => c.charCodeAt(0)).concat(
    [0, 0],
    tiff,
    [0, orientation, 0, 0, 0, 0, 0, 0],
  );
  const len = body.length + 2;
  const seg = [0xff, 0xe1, len >> 8, len & 255, ...body];
  const out = new Uint8Array(jpg.length + seg.length);
  out.set(jpg.subarray(0, 2));
  out.set(seg, 2);
  out.set(jpg.subarray(2), 2 + seg.length);
  return out;
}

function px(img: RgbaImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 4;
  return [...img.data.subarray(i, i + 4)];
}

function meanAbsDiff(a: RgbaImage, b: RgbaImage): number {
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += Math.abs(a.data[i] - b.data[i]);
  return s / a.data.length;
}

function assertMediaError(fn: () => unknown, code: string) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MediaError, `expected MediaError, got ${err}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

Deno.test('PNG written by encodePng decodes back to the same RGBA pixels', () => {
  const img = colourCard(97, 61);
  const back = decodeImage(encodePng(img));
  assert.equal(back.width, 97);
  assert.equal(back.height, 61);
  assert.deepEqual(back.data, img.data);
});

Deno.test('encodePng keeps alpha and picks the smallest colour type', () => {
  const rgba = colourCard(64, 40);
  for (let i = 3; i < rgba.data.length; i += 4) rgba.data[i] = (i >> 2) % 256;
  const png = encodePng(rgba);
  assert.equal(png[25], 6); // RGBA
  assert.deepEqual(decodeImage(png).data, rgba.data);

  const grey = solid(10, 10, [77, 77, 77]);
  const greyPng = encodePng(grey);
  assert.equal(greyPng[25], 0); // greyscale
  assert.deepEqual(decodeImage(greyPng).data, grey.data);

  const opaque = colourCard(20, 20);
  assert.equal(encodePng(opaque)[25], 2); // RGB
});

Deno.test('decodeImage reads greyscale PNG at 1, 2, 4, 8 and 16 bits', () => {
  for (const depth of [1, 2, 4, 8, 16] as const) {
    const w = 7, h = 3, max = (1 << depth) - 1;
    const values = Array.from({ length: w * h }, (_, i) => (i * 5) % (max + 1));
    let data: Uint8Array | Uint16Array;
    if (depth === 16) data = Uint16Array.from(values);
    else if (depth === 8) data = Uint8Array.from(values);
    else {
      const stride = Math.ceil((w * depth) / 8);
      data = new Uint8Array(stride * h);
      values.forEach((v, p) => {
        const x = p % w, y = Math.floor(p / w), bit = x * depth;
        data[y * stride + (bit >> 3)] |= v << (8 - depth - (bit & 7));
      });
    }
    const img = decodeImage(encodePngLib({ width: w, height: h, data, channels: 1, depth }));
    values.forEach((v, p) => {
      const g = Math.round((v / max) * 255);
      assert.deepEqual(px(img, p % w, Math.floor(p / w)), [g, g, g, 255], `depth ${depth} px ${p}`);
    });
  }
});

Deno.test('decodeImage reads 16-bit RGBA and grey+alpha PNG', () => {
  const rgba16 = new Uint16Array([65535, 0, 32896, 65535, 0, 65535, 257, 0]);
  const a = decodeImage(
    encodePngLib({ width: 2, height: 1, data: rgba16, channels: 4, depth: 16 }),
  );
  assert.deepEqual([...a.data], [255, 0, 128, 255, 0, 255, 1, 0]);
  const ga = new Uint8Array([10, 20, 200, 255]);
  const b = decodeImage(encodePngLib({ width: 2, height: 1, data: ga, channels: 2, depth: 8 }));
  assert.deepEqual([...b.data], [10, 10, 10, 20, 200, 200, 200, 255]);
});

Deno.test('decodeImage reads palette PNG with tRNS transparency', () => {
  const palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]];
  const idx = new Uint8Array([0, 1, 2, 3, 3, 2]);
  let png = encodePngLib({ width: 3, height: 2, data: idx, channels: 1, depth: 8, palette });
  png = insertPngChunk(png, 'tRNS', new Uint8Array([255, 128, 0]));
  const img = decodeImage(png);
  assert.deepEqual(px(img, 0, 0), [255, 0, 0, 255]);
  assert.deepEqual(px(img, 1, 0), [0, 255, 0, 128]);
  assert.deepEqual(px(img, 2, 0), [0, 0, 255, 0]);
  assert.deepEqual(px(img, 0, 1), [9, 9, 9, 255]); // beyond tRNS: opaque
  assert.equal(imageInfo(png).hasAlpha, true);
});

Deno.test('decodeImage applies tRNS colour keys of RGB PNG', () => {
  const rgb = new Uint8Array([1, 2, 3, 4, 5, 6, 4, 5, 7, 4, 5, 6]);
  let png = encodePngLib({ width: 4, height: 1, data: rgb, channels: 3, depth: 8 });
  png = insertPngChunk(png, 'tRNS', new Uint8Array([0, 4, 0, 5, 0, 6]));
  const alpha = [...decodeImage(png).data].filter((_, i) => i % 4 === 3);
  assert.deepEqual(alpha, [255, 0, 255, 0]);
});

Deno.test('JPEG round trip stays close to the original', () => {
  const img = colourCard(120, 80);
  const jpg = encodeJpeg(img, 92);
  assert.equal(sniffImageFormat(jpg), 'jpeg');
  const back = decodeImage(jpg, 'image/jpeg');
  assert.equal(back.width, 120);
  assert.equal(back.height, 80);
  assert.ok(meanAbsDiff(img, back) < 4, `mean abs diff ${meanAbsDiff(img, back)}`);
  assert.ok(encodeJpeg(img, 30).length < jpg.length, 'lower quality is smaller');
});

Deno.test('encodeJpeg composites transparent pixels over the background', () => {
  const img = solid(16, 16, [0, 0, 0]);
  for (let i = 3; i < img.data.length; i += 4) img.data[i] = 0;
  const white = decodeImage(encodeJpeg(img));
  assert.ok(px(white, 8, 8)[0] > 245);
  const red = decodeImage(encodeJpeg(img, 90, { background: [255, 0, 0] }));
  const [r, g, b] = px(red, 8, 8);
  assert.ok(r > 240 && g < 15 && b < 15, `${r},${g},${b}`);
});

Deno.test('EXIF orientation is applied so the decoded JPEG is upright', () => {
  const img = solid(4, 2, [0, 0, 0]);
  img.data.set([255, 0, 0, 255], 0); // top-left red
  const jpg = withExifOrientation(encodeJpeg(img, 100), 6); // stored rotated: display 90° CW
  const info = imageInfo(jpg);
  assert.deepEqual([info.width, info.height, info.orientation], [2, 4, 6]);
  const out = decodeImage(jpg);
  assert.deepEqual([out.width, out.height], [2, 4]);
  assert.ok(px(out, 1, 0)[0] > 200, 'top-left moved to top-right');
  const raw = decodeImage(jpg, undefined, { applyOrientation: false });
  assert.deepEqual([raw.width, raw.height], [4, 2]);
});

Deno.test('orient handles all eight EXIF orientations', () => {
  const img = { width: 3, height: 2, data: new Uint8ClampedArray(24) };
  for (let p = 0; p < 6; p++) img.data[p * 4] = p; // red channel = index
  const order = (o: number) => {
    const r = orient(img, o);
    return [r.width, r.height, ...Array.from({ length: 6 }, (_, p) => r.data[p * 4])];
  };
  // Source 0 1 2 / 3 4 5
  assert.deepEqual(order(1), [3, 2, 0, 1, 2, 3, 4, 5]);
  assert.deepEqual(order(2), [3, 2, 2, 1, 0, 5, 4, 3]);
  assert.deepEqual(order(3), [3, 2, 5, 4, 3, 2, 1, 0]);
  assert.deepEqual(order(4), [3, 2, 3, 4, 5, 0, 1, 2]);
  assert.deepEqual(order(5), [2, 3, 0, 3, 1, 4, 2, 5]);
  assert.deepEqual(order(6), [2, 3, 3, 0, 4, 1, 5, 2]);
  assert.deepEqual(order(7), [2, 3, 5, 2, 4, 1, 3, 0]);
  assert.deepEqual(order(8), [2, 3, 2, 5, 1, 4, 0, 3]);
});

Deno.test('imageInfo reads format and size from the headers of a file prefix', () => {
  const img = colourCard(300, 200);
  const png = encodePng(img);
  assert.deepEqual(
    (({ format, width, height }) => ({ format, width, height }))(imageInfo(png.slice(0, 33))),
    { format: 'png', width: 300, height: 200 },
  );
  const jpg = encodeJpeg(img);
  const info = imageInfo(jpg.slice(0, 1024));
  assert.equal(info.format, 'jpeg');
  assert.equal(info.width, 300);
  assert.equal(info.height, 200);
  assert.equal(info.progressive, false);
  assert.ok(Math.abs(info.megapixels - 0.06) < 1e-9);
});

Deno.test('images above maxMegapixels are refused as too_large before decoding', () => {
  const png = encodePng(solid(1000, 1000, [1, 2, 3]));
  assertMediaError(() => decodeImage(png, 'image/png', { maxMegapixels: 0.5 }), 'too_large');
  // A forged header claiming 100000 x 100000 is refused from the header alone.
  const forged = png.slice();
  new DataView(forged.buffer).setUint32(16, 100000);
  new DataView(forged.buffer).setUint32(20, 100000);
  assertMediaError(() => decodeImage(forged), 'too_large');
});

Deno.test('unsupported formats are refused with unsupported_format', () => {
  const gif = new TextEncoder().encode('GIF89a\x01\x00\x01\x00\x00\x00\x00');
  assertMediaError(() => decodeImage(gif), 'unsupported_format');
  const webp = new TextEncoder().encode('RIFF\x10\x00\x00\x00WEBPVP8 ');
  assertMediaError(() => imageInfo(webp), 'unsupported_format');
  assertMediaError(
    () => decodeImage(new TextEncoder().encode('hello world')),
    'unsupported_format',
  );
  assertMediaError(() => decodeImage(new Uint8Array(0)), 'unsupported_format');
});

Deno.test('corrupt PNG and JPEG data are refused with corrupt_image', () => {
  const png = encodePng(colourCard(64, 64));
  assertMediaError(() => decodeImage(png.slice(0, 60)), 'corrupt_image'); // truncated IDAT
  const badIhdr = png.slice();
  badIhdr[25] = 7; // no colour type 7
  assertMediaError(() => decodeImage(badIhdr), 'corrupt_image');
  // Bytes that do not look like the declared type.
  assertMediaError(() => decodeImage(new Uint8Array(100), 'image/png'), 'corrupt_image');
  const jpg = encodeJpeg(colourCard(64, 64));
  assertMediaError(() => decodeImage(jpg.slice(0, 20)), 'corrupt_image'); // no frame header
  assertMediaError(() => decodeImage(jpg.slice(0, Math.floor(jpg.length * 0.7))), 'corrupt_image');
  const garbled = jpg.slice();
  garbled.fill(0x00, 4, 200); // segments after the first marker destroyed
  assertMediaError(() => decodeImage(garbled), 'corrupt_image');
});

Deno.test('arithmetic-coded and 12-bit JPEGs are refused as unsupported_format', () => {
  const jpg = encodeJpeg(colourCard(16, 16));
  // Find the SOF0 marker and turn it into SOF9 (arithmetic) / 12-bit precision.
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
  const arith = jpg.slice();
  arith[sof + 1] = 0xc9;
  assertMediaError(() => decodeImage(arith), 'unsupported_format');
  const twelve = jpg.slice();
  twelve[sof + 4] = 12;
  assertMediaError(() => decodeImage(twelve), 'unsupported_format');
});

// Hostile PNGs and JPEGs ------------------------------------------------------------------------

/** A PNG chunk with its CRC. */
function pngChunk(type: string, body: Uint8Array): Uint8Array {
  const chunk = new Uint8Array(12 + body.length);
  const v = new DataView(chunk.buffer);
  v.setUint32(0, body.length);
  for (let k = 0; k < 4; k++) chunk[4 + k] = type.charCodeAt(k);
  chunk.set(body, 8);
  v.setUint32(8 + body.length, crc32(chunk.subarray(4, 8 + body.length)));
  return chunk;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A PNG whose IHDR says width x height 8-bit RGBA and whose IDAT holds `zlib` as it is. */
function pngWithIdat(width: number, height: number, zlib: Uint8Array, iend = true): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 6, 0, 0, 0], 8);
  return concat(
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib),
    iend ? pngChunk('IEND', new Uint8Array(0)) : new Uint8Array(0),
  );
}

function mediaErrorOf(fn: () => unknown): MediaError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MediaError, `expected MediaError, got ${err}`);
    return err;
  }
  assert.fail('expected a MediaError');
}

Deno.test('a PNG bomb is refused as decompression_bomb once it inflates past its header, not after', () => {
  // 100x100 RGBA needs 100 x (1 + 400) = 40,100 inflated bytes; the 1 MB stream holds 1 GiB.
  const zlib = zerosZlib(1024);
  assert.ok(zlib.length < 1_100_000, `the bomb is small (${zlib.length} bytes)`);
  const bomb = pngWithIdat(100, 100, zlib);
  assert.equal(imageInfo(bomb).megapixels, 0.01, 'its header is harmless');
  const rss = Deno.memoryUsage().rss;
  const err = mediaErrorOf(() => decodeImage(bomb, 'image/png'));
  const grown = Deno.memoryUsage().rss - rss;
  assert.equal(err.code, 'decompression_bomb', err.message);
  assert.equal((err.details as { declared_bytes: number }).declared_bytes, 40_100);
  // zlib stopped on its output limit (the header's bound), not at the end of the stream ...
  assert.equal((err.cause as { code?: string }).code, 'ERR_BUFFER_TOO_LARGE');
  // ... so the process never held the gigabyte.
  assert.ok(grown < 128 * 2 ** 20, `the decode grew the process by ${grown} bytes`);
});

Deno.test('PNG image data one byte longer than its header declares is a bomb; exact is fine', () => {
  const rows = (extra: number) => {
    const raw = new Uint8Array(2 * (1 + 2 * 4) + extra); // 2x2 RGBA, filter 0
    return pngWithIdat(2, 2, zlibSync(raw));
  };
  assert.equal(decodeImage(rows(0)).data.length, 16);
  assertMediaError(() => decodeImage(rows(1)), 'decompression_bomb');
});

Deno.test('ancillary chunks are not inflated: an iCCP bomb next to valid pixels decodes', () => {
  const png = encodePng(colourCard(8, 8));
  const profile = concat(new TextEncoder().encode('icc\0\0'), zerosZlib(2048)); // 2 GiB
  const img = decodeImage(insertPngChunk(png, 'iCCP', profile));
  assert.deepEqual(img, decodeImage(png));
});

Deno.test('truncated PNGs are refused as corrupt_image, whichever part is missing', () => {
  const png = encodePng(colourCard(64, 64));
  const truncated = (bytes: Uint8Array) => {
    const err = mediaErrorOf(() => decodeImage(bytes));
    assert.equal(err.code, 'corrupt_image');
    assert.match(err.message, /^truncated PNG/);
  };
  truncated(png.slice(0, png.length - 12)); // no IEND
  truncated(png.slice(0, png.length - 40)); // IDAT cut: its length runs past the file
  truncated(png.slice(0, 33)); // header only
  // A well-formed chunk list whose zlib stream stops early, or holds too few rows.
  const raw = new Uint8Array(64 * (1 + 64 * 4)).map((_, i) => (i % 257 === 0 ? 0 : i * 7));
  const z = zlibSync(raw);
  truncated(pngWithIdat(64, 64, z.subarray(0, z.length >> 1)));
  truncated(pngWithIdat(64, 64, zlibSync(raw.subarray(0, raw.length - 257))));
  assert.equal(decodeImage(pngWithIdat(64, 64, z)).width, 64);
});

Deno.test('truncatedImage tells from a head what it can, and nothing more', () => {
  const png = encodePng(colourCard(64, 64));
  assert.equal(truncatedImage(png, png.length), null);
  assert.match(truncatedImage(png.slice(0, 60), 60) ?? '', /truncated PNG: chunk IDAT/);
  assert.match(truncatedImage(png.slice(0, png.length - 12), png.length - 12) ?? '', /IEND/);
  // A head of a longer file: only a chunk declared past the file's end counts.
  assert.equal(truncatedImage(png.slice(0, 60), png.length), null);
  assert.match(truncatedImage(png.slice(0, 60), png.length - 20) ?? '', /past the end/);
  const jpg = encodeJpeg(colourCard(64, 64));
  assert.equal(truncatedImage(jpg, jpg.length), null);
  const cut = jpg.slice(0, jpg.length - 100);
  assert.match(truncatedImage(cut, cut.length) ?? '', /truncated JPEG/);
  assert.equal(truncatedImage(cut, jpg.length), null, 'a head cannot show a missing EOI');
  assert.equal(truncatedImage(new TextEncoder().encode('hello'), 5), null);
});

Deno.test('a JPEG needing far more memory than its frame allows is a decompression_bomb', () => {
  // A 1024x1024 frame header claiming 255 full-resolution components: jpeg-js would allocate
  // coefficient blocks for each (255 x 4 MB) before finding out it cannot convert them.
  const jpg = encodeJpeg(colourCard(64, 64));
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
  const comps = 255;
  const body = [8, 0x04, 0x00, 0x04, 0x00, comps];
  for (let c = 0; c < comps; c++) body.push(c + 1, 0x11, 0);
  const len = body.length + 2;
  const sofLen = (jpg[sof + 2] << 8) | jpg[sof + 3];
  const forged = concat(
    jpg.subarray(0, sof),
    Uint8Array.from([0xff, 0xc0, len >> 8, len & 255, ...body]),
    jpg.subarray(sof + 2 + sofLen),
  );
  assert.equal(imageInfo(forged).megapixels, 1.048576, 'within the 2 MP limit');
  const err = mediaErrorOf(() => decodeImage(forged, 'image/jpeg', { maxMegapixels: 2 }));
  assert.equal(err.code, 'decompression_bomb', err.message);
});

Deno.test(`a JPEG with more than ${JPEG_MAX_SCANS} scans is refused before decoding`, () => {
  const jpg = encodeJpeg(colourCard(16, 16));
  const sos = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xda);
  const eoi = jpg.length - 2;
  const scan = jpg.subarray(sos, eoi); // SOS header + entropy data
  const many = concat(
    jpg.subarray(0, sos),
    ...Array(JPEG_MAX_SCANS + 1).fill(scan),
    jpg.subarray(eoi),
  );
  assertMediaError(() => decodeImage(many), 'decompression_bomb');
  const few = concat(jpg.subarray(0, sos), scan, scan, jpg.subarray(eoi));
  assert.equal(decodeImage(few).width, 16);
});
