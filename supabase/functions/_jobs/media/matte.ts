/**
 * Alpha mattes for still images: chroma keying (green/blue screen) and luma keying, with a soft
 * edge, spill suppression and a feathered (Gaussian-blurred) alpha.
 *
 * Colour key: each pixel's chroma (Cb, Cr of full-range BT.601 YCbCr) is rescaled to the key's
 * luma, i.e. compared by chromaticity, so the shadowed and the brightly lit parts of the same
 * screen key alike, while near-black and near-white pixels (little chroma) stay opaque. The
 * distance to the key's chroma, relative to the key's own saturation, gives alpha:
 *   d <= tolerance             -> 0 (transparent)
 *   d >= tolerance + softness  -> 1 (opaque), linear in between.
 * Spill: in kept pixels the key's dominant channel (G for a green screen) is limited to the mean
 * of the other two, which removes the green fringe/cast without touching non-green colours.
 */
import { checkRange, MediaError } from './errors.ts';
import type { RgbaImage } from './image.ts';

export { MediaError } from './errors.ts';
export { MATTE_LIMITS } from './limits.ts';

export interface MatteOptions {
  /** 'color': chroma key against keyColor; 'luma': key out pixels darker than lumaThreshold. */
  mode: 'color' | 'luma';
  /** Key colour, sRGB bytes (default [0, 177, 64], chroma-key green). */
  keyColor?: [number, number, number];
  /**
   * 0..1. Colour mode: chroma distance (relative to the key's saturation) still keyed out;
   * about 0.3–0.45 suits a real screen. Luma mode: width of the soft ramp around the threshold.
   */
  tolerance: number;
  /** Colour mode, 0..1 (default 0.15): width of the soft edge beyond the tolerance. */
  softness?: number;
  /** Gaussian feather of the alpha, radius in px 0..50 (sigma = radius / 2); 0 = none. */
  feather: number;
  /** Swap transparent and opaque. */
  invert?: boolean;
  /** Luma mode, 0..1 (default 0.25): luma (Rec.709, of the sRGB values) at the middle of the ramp. */
  lumaThreshold?: number;
  /** Colour mode, 0..1 (default 1): spill suppression strength. */
  spill?: number;
}

export const DEFAULT_KEY_COLOR: [number, number, number] = [0, 177, 64];

function chroma(r: number, g: number, b: number): [number, number, number] {
  const y = 0.299 * r + 0.587 * g + 0.114 * b;
  const cb = -0.168736 * r - 0.331264 * g + 0.5 * b;
  const cr = 0.5 * r - 0.418688 * g - 0.081312 * b;
  return [y, cb, cr];
}

/** Luma below which chroma is not rescaled (noise in near-black pixels would be amplified). */
const LUMA_FLOOR = 24;
/** Keys with less chroma than this (greys) are compared against this radius instead. */
const MIN_KEY_CHROMA = 40;

export function pullMatte(img: RgbaImage, opts: MatteOptions): RgbaImage {
  const { width: w, height: h, data } = img;
  if (!(data instanceof Uint8ClampedArray) || data.length !== w * h * 4) {
    throw new MediaError('invalid_params', 'image must be {width, height, data: RGBA8 array}');
  }
  if (!opts || (opts.mode !== 'color' && opts.mode !== 'luma')) {
    throw new MediaError('invalid_params', "mode must be 'color' or 'luma'");
  }
  const tolerance = checkRange('tolerance', opts.tolerance, 0, 1);
  const feather = checkRange('feather', opts.feather ?? 0, 0, 50);
  const n = w * h;
  const alpha = new Float32Array(n);
  const out = new Uint8ClampedArray(data);

  if (opts.mode === 'luma') {
    const th = checkRange('lumaThreshold', opts.lumaThreshold ?? 0.25, 0, 1) * 255;
    const half = (tolerance * 255) / 2;
    const lo = th - half, hi = th + half;
    for (let i = 0, p = 0; p < n; i += 4, p++) {
      const y = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
      alpha[p] = hi - lo < 1e-6 ? (y >= th ? 1 : 0) : smoothstep(lo, hi, y);
    }
  } else {
    const key = opts.keyColor ?? DEFAULT_KEY_COLOR;
    if (!Array.isArray(key) || key.length !== 3) {
      throw new MediaError('invalid_params', 'keyColor must be [r, g, b]');
    }
    key.forEach((c, k) => checkRange(`keyColor[${k}]`, c, 0, 255));
    const softness = checkRange('softness', opts.softness ?? 0.15, 0, 1);
    const spill = checkRange('spill', opts.spill ?? 1, 0, 1);
    const [ky, kcb, kcr] = chroma(key[0], key[1], key[2]);
    const keyY = Math.max(ky, LUMA_FLOOR);
    const base = Math.max(Math.hypot(kcb, kcr), MIN_KEY_CHROMA);
    const r0 = tolerance * base;
    const r1 = r0 + Math.max(softness * base, 1);
    const inv = 1 / (r1 - r0);
    // Spill: the key's dominant channel, if it clearly dominates.
    const sorted = [0, 1, 2].sort((a, b) => key[b] - key[a]);
    const dom = sorted[0];
    const doSpill = spill > 0 && key[sorted[0]] - key[sorted[1]] >= 40;
    const o1 = (dom + 1) % 3, o2 = (dom + 2) % 3;
    for (let i = 0, p = 0; p < n; i += 4, p++) {
      const r = data[i], g = data[i + 1], b = data[i + 2];
      const y = 0.299 * r + 0.587 * g + 0.114 * b;
      const s = keyY / (y > LUMA_FLOOR ? y : LUMA_FLOOR);
      const dcb = (-0.168736 * r - 0.331264 * g + 0.5 * b) * s - kcb;
      const dcr = (0.5 * r - 0.418688 * g - 0.081312 * b) * s - kcr;
      const d = Math.sqrt(dcb * dcb + dcr * dcr);
      const a = d <= r0 ? 0 : d >= r1 ? 1 : (d - r0) * inv;
      alpha[p] = a;
      if (doSpill && a > 0) {
        const limit = (data[i + o1] + data[i + o2]) / 2;
        const v = data[i + dom];
        if (v > limit) out[i + dom] = v - spill * (v - limit);
      }
    }
  }

  if (opts.invert) { for (let p = 0; p < n; p++) alpha[p] = 1 - alpha[p]; }
  if (feather > 0) gaussianBlur(alpha, w, h, feather / 2);
  for (let i = 3, p = 0; p < n; i += 4, p++) {
    out[i] = Math.round(alpha[p] * data[i]);
  }
  return { width: w, height: h, data: out };
}

/** Fractions of pixels that are fully transparent (alpha 0) and fully opaque (alpha 255). */
export function matteStats(img: RgbaImage): { transparent: number; opaque: number } {
  const n = img.width * img.height;
  let t = 0, o = 0;
  for (let i = 3; i < n * 4; i += 4) {
    const a = img.data[i];
    if (a === 0) t++;
    else if (a === 255) o++;
  }
  return { transparent: n ? t / n : 0, opaque: n ? o / n : 0 };
}

function smoothstep(e0: number, e1: number, x: number): number {
  const t = Math.max(0, Math.min(1, (x - e0) / (e1 - e0)));
  return t * t * (3 - 2 * t);
}

/** Box widths whose three successive passes approximate a Gaussian of the given sigma. */
function boxesForGauss(sigma: number): number[] {
  const n = 3;
  const wIdeal = Math.sqrt((12 * sigma * sigma) / n + 1);
  let wl = Math.floor(wIdeal);
  if (wl % 2 === 0) wl--;
  const wu = wl + 2;
  const mIdeal = (12 * sigma * sigma - n * wl * wl - 4 * n * wl - 3 * n) / (-4 * wl - 4);
  const m = Math.round(mIdeal);
  const sizes: number[] = [];
  for (let i = 0; i < n; i++) sizes.push(i < m ? wl : wu);
  return sizes;
}

/**
 * In-place separable Gaussian (3 box passes each way, running sums: O(1) per pixel whatever the
 * radius), edges clamped.
 */
export function gaussianBlur(a: Float32Array, w: number, h: number, sigma: number): void {
  if (sigma < 0.3) return;
  const tmp = new Float32Array(w);
  const line = new Float32Array(w);
  const copy = new Float32Array(a.length);
  const acc = new Float64Array(w);
  for (const size of boxesForGauss(sigma)) {
    const r = (size - 1) >> 1;
    if (r < 1) continue;
    for (let y = 0; y < h; y++) {
      const off = y * w;
      for (let x = 0; x < w; x++) line[x] = a[off + x];
      boxLine(line, tmp, w, r);
      for (let x = 0; x < w; x++) a[off + x] = tmp[x];
    }
    // Vertical pass row by row (cache-friendly): a running sum per column.
    copy.set(a);
    const norm = 1 / (2 * r + 1);
    const last = h - 1;
    acc.fill(0);
    for (let k = -r; k <= r; k++) {
      const off = (k < 0 ? 0 : k > last ? last : k) * w;
      for (let x = 0; x < w; x++) acc[x] += copy[off + x];
    }
    for (let y = 0; y < h; y++) {
      const off = y * w;
      for (let x = 0; x < w; x++) a[off + x] = acc[x] * norm;
      const add = y + r + 1, sub = y - r;
      const addOff = (add > last ? last : add) * w, subOff = (sub < 0 ? 0 : sub) * w;
      for (let x = 0; x < w; x++) acc[x] += copy[addOff + x] - copy[subOff + x];
    }
  }
}

function boxLine(src: Float32Array, dst: Float32Array, len: number, r: number): void {
  const norm = 1 / (2 * r + 1);
  const last = len - 1;
  let acc = 0;
  for (let k = -r; k <= r; k++) acc += src[k < 0 ? 0 : k > last ? last : k];
  for (let i = 0; i < len; i++) {
    dst[i] = acc * norm;
    const add = i + r + 1, sub = i - r;
    acc += src[add > last ? last : add] - src[sub < 0 ? 0 : sub];
  }
}
