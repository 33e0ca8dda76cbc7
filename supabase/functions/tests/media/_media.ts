/**
 * Generated test media (no binary fixtures): images, audio and small measuring helpers shared by
 * the media tests and the media benchmark.
 */
import type { RgbaImage } from '../../_jobs/media/image.ts';

/** Deterministic PRNG (mulberry32), uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const SKIN: [number, number, number] = [224, 172, 140];

/**
 * A colour test card: horizontal hue sweep, vertical brightness ramp, a grey ramp along the
 * bottom, a skin-tone patch in the middle and mild noise (like a photo's texture).
 */
export function colourCard(width = 192, height = 128, seed = 1): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  const rand = rng(seed);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const hue = (x / width) * 6;
      const v = 0.15 + 0.85 * (1 - y / height);
      const c = 0.6 * v;
      const xx = c * (1 - Math.abs((hue % 2) - 1));
      const [r1, g1, b1] = hue < 1
        ? [c, xx, 0]
        : hue < 2
        ? [xx, c, 0]
        : hue < 3
        ? [0, c, xx]
        : hue < 4
        ? [0, xx, c]
        : hue < 5
        ? [xx, 0, c]
        : [c, 0, xx];
      const m = v - c;
      const n = (rand() - 0.5) * 6;
      data[i] = (r1 + m) * 255 + n;
      data[i + 1] = (g1 + m) * 255 + n;
      data[i + 2] = (b1 + m) * 255 + n;
      data[i + 3] = 255;
    }
  }
  // Grey ramp (bottom eighth).
  for (let y = Math.floor(height * 0.875); y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const g = (x / (width - 1)) * 255;
      data[i] = data[i + 1] = data[i + 2] = g;
    }
  }
  // Skin patch.
  fillRect({ width, height, data }, width * 0.4, height * 0.35, width * 0.2, height * 0.3, SKIN);
  return { width, height, data };
}

export function fillRect(
  img: RgbaImage,
  x0: number,
  y0: number,
  w: number,
  h: number,
  rgb: [number, number, number],
  alpha = 255,
): void {
  for (let y = Math.floor(y0); y < Math.floor(y0 + h); y++) {
    for (let x = Math.floor(x0); x < Math.floor(x0 + w); x++) {
      const i = (y * img.width + x) * 4;
      img.data[i] = rgb[0];
      img.data[i + 1] = rgb[1];
      img.data[i + 2] = rgb[2];
      img.data[i + 3] = alpha;
    }
  }
}

export function solid(width: number, height: number, rgb: [number, number, number]): RgbaImage {
  const img = { width, height, data: new Uint8ClampedArray(width * height * 4) };
  fillRect(img, 0, 0, width, height, rgb);
  return img;
}

/**
 * A green-screen shot: an unevenly lit chroma-green background (with noise) and a subject (a
 * skin-tone face disc over a red torso). `subjectMask[p]` is true inside the subject.
 */
export function greenScreen(width = 160, height = 120, seed = 2): {
  img: RgbaImage;
  subjectMask: Uint8Array;
} {
  const data = new Uint8ClampedArray(width * height * 4);
  const mask = new Uint8Array(width * height);
  const rand = rng(seed);
  const cx = width / 2, cy = height * 0.35, rFace = height * 0.18;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const p = y * width + x;
      const light = 0.75 + 0.35 * (x / width) - 0.15 * (y / height); // uneven lighting
      const n = (rand() - 0.5) * 10;
      let rgb: [number, number, number] = [0 * light + n, 177 * light + n, 64 * light + n];
      const inFace = (x - cx) ** 2 + (y - cy) ** 2 < rFace * rFace;
      const inTorso = y > height * 0.55 && Math.abs(x - cx) < width * 0.22;
      if (inFace) rgb = [SKIN[0] + n, SKIN[1] + n, SKIN[2] + n];
      else if (inTorso) rgb = [190 + n, 35 + n, 40 + n];
      if (inFace || inTorso) mask[p] = 1;
      data[i] = rgb[0];
      data[i + 1] = rgb[1];
      data[i + 2] = rgb[2];
      data[i + 3] = 255;
    }
  }
  return { img: { width, height, data }, subjectMask: mask };
}

const toLinear = (v: number) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
};

/** Rec.709 luminance of an sRGB pixel, linear light. */
export function linearLuminance(r: number, g: number, b: number): number {
  return 0.2126 * toLinear(r) + 0.7152 * toLinear(g) + 0.0722 * toLinear(b);
}

/** Mean of R / B over pixels whose channels are all in a usable range. */
export function meanRB(img: RgbaImage): number {
  let s = 0, n = 0;
  for (let i = 0; i < img.data.length; i += 4) {
    const r = img.data[i], b = img.data[i + 2];
    if (r > 10 && b > 10 && r < 250 && b < 250) {
      s += r / b;
      n++;
    }
  }
  return s / n;
}

// ---------------------------------------------------------------------------------------------
// Audio

export function sine(freq: number, dbfs: number, seconds: number, fs: number, phase = 0) {
  const a = Math.pow(10, dbfs / 20);
  const x = new Float32Array(Math.round(seconds * fs));
  for (let i = 0; i < x.length; i++) x[i] = a * Math.sin((2 * Math.PI * freq * i) / fs + phase);
  return x;
}

export function concat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Voice-like test signal: 1.3 s "phrases" every 2 s (harmonics of a gliding 120–180 Hz
 * fundamental, 4 Hz syllable envelope), white noise, a DC offset and 30 Hz rumble.
 * `speech[i]` marks samples inside phrases (the gaps are the rest).
 */
export function noisyVoice(seconds: number, fs: number, opts: {
  voiceAmp?: number;
  noiseAmp?: number;
  dc?: number;
  rumbleAmp?: number;
  seed?: number;
} = {}): { x: Float32Array; speech: Uint8Array } {
  const { voiceAmp = 0.12, noiseAmp = 0.006, dc = 0.05, rumbleAmp = 0.05, seed = 3 } = opts;
  const rand = rng(seed);
  const n = Math.round(seconds * fs);
  const x = new Float32Array(n);
  const speech = new Uint8Array(n);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const t = i / fs;
    const inPhrase = t % 2 < 1.3;
    const f0 = 150 + 30 * Math.sin(2 * Math.PI * 0.7 * t);
    phase += (2 * Math.PI * f0) / fs;
    let v = 0;
    if (inPhrase) {
      const env = Math.pow(Math.sin((Math.PI * (t % 2)) / 1.3), 0.5) *
        (0.55 + 0.45 * Math.sin(2 * Math.PI * 4 * t));
      for (let h = 1; h <= 12; h++) v += (Math.sin(h * phase) / h) * (h === 3 || h === 4 ? 1.6 : 1);
      v *= env * voiceAmp;
      speech[i] = 1;
    }
    const noise = (rand() + rand() + rand() - 1.5) * 2 * noiseAmp; // ~Gaussian
    x[i] = v + noise + dc + rumbleAmp * Math.sin(2 * Math.PI * 30 * t);
  }
  return { x, speech };
}

/** Power of the signal at one frequency (Goertzel), normalised like a mean square. */
export function goertzelPower(x: Float32Array, freq: number, fs: number): number {
  const w = (2 * Math.PI * freq) / fs;
  const coeff = 2 * Math.cos(w);
  let s1 = 0, s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s = x[i] + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return (2 * power) / (x.length * x.length);
}

/** Mean square over samples where sel[i] === want, skipping `margin` samples around changes. */
export function meanSquare(x: Float32Array, sel: Uint8Array, want: number, margin = 0): number {
  let s = 0, n = 0;
  for (let i = margin; i < x.length - margin; i++) {
    if (sel[i] !== want || sel[i - margin] !== want || sel[i + margin] !== want) continue;
    s += x[i] * x[i];
    n++;
  }
  return s / n;
}

export const dB = (power: number) => 10 * Math.log10(power);

/**
 * A photo-like image for codec benchmarks: smooth colour gradients, multi-octave texture (value
 * noise at 64/16/4 px), hard-edged shapes and sensor-like grain. Compresses like a real photo
 * (PNG ~ 2-3 bytes/pixel, JPEG q90 ~ 0.3-0.5 bytes/pixel) rather than like a flat test card.
 */
export function photoLike(width: number, height: number, seed = 7): RgbaImage {
  const rand = rng(seed);
  const data = new Uint8ClampedArray(width * height * 4);
  const octaves = [64, 16, 4].map((cell) => {
    const gw = Math.ceil(width / cell) + 2, gh = Math.ceil(height / cell) + 2;
    const grid = new Float32Array(gw * gh).map(() => rand() - 0.5);
    return { cell, gw, grid };
  });
  const amp = [60, 25, 10];
  const shapes = Array.from({ length: 12 }, () => ({
    x: rand() * width,
    y: rand() * height,
    r: (0.05 + rand() * 0.15) * Math.min(width, height),
    c: [rand() * 255, rand() * 255, rand() * 255],
  }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let t = 0;
      octaves.forEach(({ cell, gw, grid }, k) => {
        const fx = x / cell, fy = y / cell;
        const ix = Math.floor(fx), iy = Math.floor(fy);
        const ax = fx - ix, ay = fy - iy;
        const g = (xx: number, yy: number) => grid[yy * gw + xx];
        const v = g(ix, iy) * (1 - ax) * (1 - ay) + g(ix + 1, iy) * ax * (1 - ay) +
          g(ix, iy + 1) * (1 - ax) * ay + g(ix + 1, iy + 1) * ax * ay;
        t += v * amp[k];
      });
      let r = 90 + 100 * (x / width) + t, g = 110 + 60 * (y / height) + t * 0.8;
      let b = 160 - 90 * (x / width) + t * 0.6;
      for (const s of shapes) {
        if ((x - s.x) ** 2 + (y - s.y) ** 2 < s.r * s.r) {
          r = s.c[0] + t * 0.5;
          g = s.c[1] + t * 0.5;
          b = s.c[2] + t * 0.5;
        }
      }
      const i = (y * width + x) * 4;
      const n = (rand() - 0.5) * 8;
      data[i] = r + n;
      data[i + 1] = g + n;
      data[i + 2] = b + n;
      data[i + 3] = 255;
    }
  }
  return { width, height, data };
}
