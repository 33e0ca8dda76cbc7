/**
 * Colour grading of RGBA8 images, done in linear light where it matters.
 *
 * Per pixel (straight alpha, untouched):
 *   1. sRGB byte -> linear, times per-channel white-balance gains (temperature, tint) and the
 *      exposure gain, then a soft highlight shoulder (knee 0.55–0.8) that brings the channel's
 *      largest possible value to exactly 1, so +stops roll highlights off instead of clipping.
 *      Step 1 is one 256-entry lookup table per channel.
 *   2. Saturation around Rec.709 luminance (luma-preserving), or exact greyscale for `noir`.
 *   3. Split toning by luminance (teal shadows / orange highlights), luminance-preserving.
 *   4. Linear -> sRGB with the contrast S-curve around mid-grey applied on the perceptual value:
 *      one 65,536-entry table indexed by the linear value, shared by R, G and B (so equal
 *      linear values give equal bytes: greyscale stays exactly R = G = B).
 */
import { checkRange, MediaError } from './errors.ts';
import type { RgbaImage } from './image.ts';

export { MediaError } from './errors.ts';
export { GRADE_LIMITS } from './limits.ts';

export type PresetName = 'none' | 'warm' | 'cool' | 'noir' | 'teal-orange';

/**
 * Grading parameters. Every field is optional; the preset (default 'none') sets base values and
 * the explicit numbers are ADDED to them (the sum is clamped to the range), so `{preset: 'warm',
 * temperature: 0.2}` is warmer than plain 'warm' and `{preset: 'warm', temperature: -0.3}` has
 * neutral white balance. Values outside the ranges are refused with MediaError('invalid_params').
 */
export type GradeParams = {
  preset?: PresetName;
  /** Exposure in stops, -3..3 (+1 doubles linear light). */
  exposure?: number;
  /** Contrast, -1..1: S-curve around mid-grey (18% linear); negative flattens. */
  contrast?: number;
  /** Saturation, -1..1: -1 greyscale, 0 unchanged, +1 twice the chroma. Luminance-preserving. */
  saturation?: number;
  /** Temperature, -1..1: + warmer (more red, less blue), - cooler; ±1 moves R/B by 2^±1.5. */
  temperature?: number;
  /** Tint, -1..1: + magenta (less green), - green. */
  tint?: number;
};

/** Documented ranges of the numeric GradeParams, for the handler's request validation. */
export const GRADE_PARAM_RANGES = {
  exposure: [-3, 3],
  contrast: [-1, 1],
  saturation: [-1, 1],
  temperature: [-1, 1],
  tint: [-1, 1],
} as const;

type NumericParam = keyof typeof GRADE_PARAM_RANGES;

export interface Preset {
  exposure: number;
  contrast: number;
  saturation: number;
  temperature: number;
  tint: number;
  /** Exact greyscale output (R = G = B), whatever the saturation. */
  monochrome: boolean;
  /** Luminance-driven split toning; strength 0..1 and linear-light tone colours. */
  splitTone: {
    strength: number;
    shadows: [number, number, number];
    highlights: [number, number, number];
  } | null;
}

const BASE: Preset = {
  exposure: 0,
  contrast: 0,
  saturation: 0,
  temperature: 0,
  tint: 0,
  monochrome: false,
  splitTone: null,
};

export const PRESETS: Readonly<Record<PresetName, Readonly<Preset>>> = {
  none: BASE,
  warm: { ...BASE, temperature: 0.3, tint: 0.05, saturation: 0.1, contrast: 0.1 },
  cool: { ...BASE, temperature: -0.3, tint: -0.03, saturation: -0.05, contrast: 0.05 },
  noir: { ...BASE, monochrome: true, contrast: 0.55, exposure: 0.1 },
  'teal-orange': {
    ...BASE,
    contrast: 0.2,
    saturation: 0.1,
    splitTone: { strength: 0.55, shadows: [0.05, 0.45, 0.55], highlights: [1.0, 0.55, 0.25] },
  },
};

/** Effective settings after adding the explicit params to the preset. */
export function resolveGrade(params: GradeParams = {}): Preset {
  const presetName = params.preset ?? 'none';
  const preset = PRESETS[presetName as PresetName];
  if (!preset) {
    throw new MediaError(
      'invalid_params',
      `unknown preset ${JSON.stringify(presetName)} (${Object.keys(PRESETS).join(', ')})`,
    );
  }
  const out: Preset = { ...preset };
  for (const key of Object.keys(GRADE_PARAM_RANGES) as NumericParam[]) {
    const v = params[key];
    if (v === undefined) continue;
    const [lo, hi] = GRADE_PARAM_RANGES[key];
    checkRange(key, v, lo, hi);
    out[key] = Math.max(lo, Math.min(hi, preset[key] + v));
  }
  return out;
}

const KR = 0.2126, KG = 0.7152, KB = 0.0722; // Rec.709 / sRGB luminance
const MID_GREY_LINEAR = 0.18;
const SHOULDER = 0.8;
const OUT_LUT_SIZE = 65536;

function srgbToLinear(v: number): number {
  return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
}

function linearToSrgb(v: number): number {
  return v <= 0.0031308 ? v * 12.92 : 1.055 * Math.pow(v, 1 / 2.4) - 0.055;
}

/**
 * Highlight shoulder for a channel whose largest possible value is `max` (its gain): identity up to
 * a knee, then a rational roll-off t(1+c)/(t+c) that reaches exactly 1 at `max` with slope 1 at
 * the knee (no kink). The knee drops from 0.8 towards 0.55 as the gain grows, leaving room to
 * grade the compressed highlights. With max <= 1 it is the identity, so a neutral grade is exact.
 */
function makeShoulder(max: number): (x: number) => number {
  if (max <= 1) return (x) => x;
  const k = Math.max(0.55, SHOULDER - 0.1 * Math.log2(max));
  const span = max - k;
  const c = (1 - k) / (max - 1);
  return (x) => {
    if (x <= k) return x;
    const t = (x - k) / span;
    return k + ((1 - k) * t * (1 + c)) / (t + c);
  };
}

/**
 * Contrast S-curve on a perceptual value v in [0,1], pivot at mid-grey. Two power segments meet at
 * the pivot with slope g; g = 2.5^contrast (0.4 .. 2.5). Monotone, fixes 0, pivot and 1.
 */
function contrastCurve(v: number, contrast: number, pivot: number): number {
  if (contrast === 0) return v;
  const g = Math.pow(2.5, contrast);
  if (v <= pivot) return pivot * Math.pow(v / pivot, g);
  return 1 - (1 - pivot) * Math.pow((1 - v) / (1 - pivot), g);
}

/** White-balance gains (linear), luminance-normalised so a neutral grey keeps its brightness. */
export function whiteBalanceGains(temperature: number, tint: number): [number, number, number] {
  const r = Math.pow(2, 0.75 * temperature);
  const b = Math.pow(2, -0.75 * temperature);
  const g = Math.pow(2, -0.45 * tint);
  const rr = r * Math.pow(2, 0.15 * tint);
  const bb = b * Math.pow(2, 0.15 * tint);
  const y = KR * rr + KG * g + KB * bb;
  return [rr / y, g / y, bb / y];
}

let cachedOutLut: { contrast: number; lut: Uint8Array } | null = null;

function outputLut(contrast: number): Uint8Array {
  if (cachedOutLut && cachedOutLut.contrast === contrast) return cachedOutLut.lut;
  const lut = new Uint8Array(OUT_LUT_SIZE);
  const pivot = linearToSrgb(MID_GREY_LINEAR);
  for (let i = 0; i < OUT_LUT_SIZE; i++) {
    const v = contrastCurve(linearToSrgb(i / (OUT_LUT_SIZE - 1)), contrast, pivot);
    lut[i] = Math.round(Math.max(0, Math.min(1, v)) * 255);
  }
  cachedOutLut = { contrast, lut };
  return lut;
}

/** Grades an image; returns a new image (the input is not modified). Alpha is copied as is. */
export function gradeImage(img: RgbaImage, params: GradeParams = {}): RgbaImage {
  const s = resolveGrade(params);
  const { width, height, data } = img;
  if (!(data instanceof Uint8ClampedArray) || data.length !== width * height * 4) {
    throw new MediaError('invalid_params', 'image must be {width, height, data: RGBA8 array}');
  }

  // 1. Input tables: byte -> linear * gain, with the highlight shoulder.
  const [wr, wg, wb] = whiteBalanceGains(s.temperature, s.tint);
  const ev = Math.pow(2, s.exposure);
  const inR = new Float32Array(256), inG = new Float32Array(256), inB = new Float32Array(256);
  const shR = makeShoulder(wr * ev), shG = makeShoulder(wg * ev), shB = makeShoulder(wb * ev);
  for (let v = 0; v < 256; v++) {
    const lin = srgbToLinear(v / 255);
    inR[v] = shR(lin * wr * ev);
    inG[v] = shG(lin * wg * ev);
    inB[v] = shB(lin * wb * ev);
  }
  const out = outputLut(s.contrast);
  const scale = OUT_LUT_SIZE - 1;
  const mono = s.monochrome;
  const sat = 1 + s.saturation;
  const doSat = !mono && sat !== 1;

  // 3. Split-toning gains, luminance-normalised: sum(K_c * gain_c) = 1.
  let st = false;
  let toSR = 0, toSG = 0, toSB = 0, toHR = 0, toHG = 0, toHB = 0;
  if (s.splitTone && s.splitTone.strength > 0 && !mono) {
    st = true;
    const { strength, shadows, highlights } = s.splitTone;
    const ls = KR * shadows[0] + KG * shadows[1] + KB * shadows[2];
    const lh = KR * highlights[0] + KG * highlights[1] + KB * highlights[2];
    toSR = strength * (shadows[0] / ls - 1);
    toSG = strength * (shadows[1] / ls - 1);
    toSB = strength * (shadows[2] / ls - 1);
    toHR = strength * (highlights[0] / lh - 1);
    toHG = strength * (highlights[1] / lh - 1);
    toHB = strength * (highlights[2] / lh - 1);
  }
  // Tone weights by perceptual luminance (table over linear Y in 1/1024 steps).
  const toneW = new Float32Array(1025 * 2);
  if (st) {
    for (let i = 0; i <= 1024; i++) {
      const l = linearToSrgb(i / 1024);
      toneW[i * 2] = 1 - smoothstep(0.1, 0.55, l); // shadows
      toneW[i * 2 + 1] = smoothstep(0.35, 0.85, l); // highlights
    }
  }

  const res = new Uint8ClampedArray(data.length);
  for (let i = 0; i < data.length; i += 4) {
    let r = inR[data[i]], g = inG[data[i + 1]], b = inB[data[i + 2]];
    const y = KR * r + KG * g + KB * b;
    if (mono) {
      r = g = b = y;
    } else {
      if (doSat) {
        r = y + sat * (r - y);
        g = y + sat * (g - y);
        b = y + sat * (b - y);
      }
      if (st) {
        const k = Math.round((y > 1 ? 1 : y) * 1024) * 2;
        const ws = toneW[k], wh = toneW[k + 1];
        r *= 1 + ws * toSR + wh * toHR;
        g *= 1 + ws * toSG + wh * toHG;
        b *= 1 + ws * toSB + wh * toHB;
      }
    }
    res[i] = out[r <= 0 ? 0 : r >= 1 ? scale : (r * scale + 0.5) | 0];
    res[i + 1] = out[g <= 0 ? 0 : g >= 1 ? scale : (g * scale + 0.5) | 0];
    res[i + 2] = out[b <= 0 ? 0 : b >= 1 ? scale : (b * scale + 0.5) | 0];
    res[i + 3] = data[i + 3];
  }
  return { width, height, data: res };
}

function smoothstep(e0: number, e1: number, x: number): number {
  const t = Math.max(0, Math.min(1, (x - e0) / (e1 - e0)));
  return t * t * (3 - 2 * t);
}
