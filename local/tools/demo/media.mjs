// Sample media for `npm run demo`, generated on the spot (the repository ships no binary
// fixtures): a photo-like PNG with a skin-tone subject, a green-screen PNG with a subject to cut
// out, and a voice-like WAV with the problems audio-clean fixes (hiss, 50 Hz mains hum and a DC
// offset). Plain Node, no dependencies: a small PNG writer over node:zlib (the fake OpenAI's too)
// and a PCM WAV writer.
// Deterministic for a given seed, and fast (well under a second for the default sizes).
//
//   import { makeSampleMedia } from './local/tools/demo/media.mjs';
//   const { photo, greenScreen, voice } = makeSampleMedia();   // { name, contentType, bytes, ... }

import zlib from 'node:zlib';

/** Deterministic PRNG (mulberry32), uniform in [0, 1). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const clamp01 = (x) => (x < 0 ? 0 : x > 1 ? 1 : x);
/** 0 outside, 1 inside, a linear ramp `w` pixels wide across the edge of a signed distance. */
const cover = (signedDistance, w = 1.5) => clamp01(0.5 - signedDistance / w);
const mix = (a, b, t) => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];

/** Signed distance to an ellipse (approximate: exact on circles, good enough for soft edges). */
function ellipseDistance(x, y, cx, cy, rx, ry) {
  const nx = (x - cx) / rx;
  const ny = (y - cy) / ry;
  const k = Math.sqrt(nx * nx + ny * ny);
  return (k - 1) * Math.min(rx, ry);
}

/** Signed distance to a rounded rectangle given by its centre, half sizes and corner radius. */
function roundedRectDistance(x, y, cx, cy, hw, hh, r) {
  const qx = Math.abs(x - cx) - hw + r;
  const qy = Math.abs(y - cy) - hh + r;
  const ox = Math.max(qx, 0);
  const oy = Math.max(qy, 0);
  const outside = Math.sqrt(ox * ox + oy * oy);
  return outside + Math.min(Math.max(qx, qy), 0) - r;
}

// ---------------------------------------------------------------------------------------------
// PNG

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes, crc = 0xffffffff) {
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE((crc32(out.subarray(4, 8 + data.length)) ^ 0xffffffff) >>> 0, 8 + data.length);
  return out;
}

/**
 * Encodes 8-bit RGB pixels, row-major, as a PNG. Every row uses the Paeth filter, which suits
 * photographs and gradients.
 */
export function encodePng({ width, height, data }) {
  const channels = 3;
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    const out = y * (stride + 1);
    raw[out] = 4; // Paeth
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? data[row + i - channels] : 0;
      const b = y > 0 ? data[row - stride + i] : 0;
      const c = y > 0 && i >= channels ? data[row - stride + i - channels] : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      const pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      raw[out + 1 + i] = (data[row + i] - pred) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw, { level: 6 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Images

const SKIN = [224, 172, 140];
const CHROMA_GREEN = [0, 177, 64];

/** Smooth value noise in about [-0.5, 0.5] with a `cell`-pixel lattice. */
function valueNoise(width, height, cell, rand) {
  const gw = Math.ceil(width / cell) + 2;
  const gh = Math.ceil(height / cell) + 2;
  const grid = new Float32Array(gw * gh).map(() => rand() - 0.5);
  return (x, y) => {
    const fx = x / cell;
    const fy = y / cell;
    const ix = Math.floor(fx);
    const iy = Math.floor(fy);
    const tx = fx - ix;
    const ty = fy - iy;
    const sx = tx * tx * (3 - 2 * tx);
    const sy = ty * ty * (3 - 2 * ty);
    const g = (i, j) => grid[j * gw + i];
    const top = g(ix, iy) + (g(ix + 1, iy) - g(ix, iy)) * sx;
    const bottom = g(ix, iy + 1) + (g(ix + 1, iy + 1) - g(ix, iy + 1)) * sx;
    return top + (bottom - top) * sy;
  };
}

/**
 * A person drawn over `base(x, y) -> [r, g, b]`: hair, a skin-tone face lit from the left, a
 * neck and a shirt, with soft (anti-aliased) edges. Returns [r, g, b] and how much of the pixel
 * the subject covers (0..1).
 */
function person(x, y, { cx, cy, scale, shirt }) {
  const s = scale;
  if (Math.abs(x - cx) > 1.6 * s + 2 || y < cy - 1.2 * s || y > cy + 4 * s) return { rgb: null, alpha: 0 };
  const face = cover(ellipseDistance(x, y, cx, cy, 0.78 * s, s));
  const hair = cover(ellipseDistance(x, y, cx, cy - 0.28 * s, 0.9 * s, 0.85 * s)) *
    (y < cy - 0.05 * s ? 1 : cover(Math.abs(x - cx) - 0.7 * s));
  const neck = cover(roundedRectDistance(x, y, cx, cy + 1.05 * s, 0.3 * s, 0.35 * s, 0.1 * s));
  const torso = cover(roundedRectDistance(x, y, cx, cy + 2.6 * s, 1.55 * s, 1.35 * s, 0.6 * s));
  // Face and neck shading: light from the upper left, a little warmer on the cheeks.
  const light = 0.78 + 0.3 * clamp01(0.5 - (x - cx) / (2.2 * s)) - 0.12 * clamp01((y - cy) / (1.6 * s));
  const cheek = Math.exp(-(((Math.abs(x - cx) - 0.42 * s) / (0.2 * s)) ** 2) - (((y - cy - 0.25 * s) / (0.18 * s)) ** 2));
  const skin = [SKIN[0] * light + 14 * cheek, SKIN[1] * light - 6 * cheek, SKIN[2] * light - 4 * cheek];
  const eye = Math.max(
    cover(ellipseDistance(x, y, cx - 0.3 * s, cy - 0.1 * s, 0.1 * s, 0.06 * s)),
    cover(ellipseDistance(x, y, cx + 0.3 * s, cy - 0.1 * s, 0.1 * s, 0.06 * s)),
  );
  const mouth = cover(ellipseDistance(x, y, cx, cy + 0.5 * s, 0.22 * s, 0.05 * s));
  const fold = 0.85 + 0.15 * Math.cos((x - cx) / (0.35 * s)); // shirt folds
  let rgb = [0, 0, 0];
  let a = 0;
  // Painter's order, back to front, with "over" compositing of the soft edges.
  const over = (c, alpha) => {
    if (alpha <= 0) return;
    const next = alpha + a * (1 - alpha);
    rgb = rgb.map((v, i) => (c[i] * alpha + v * a * (1 - alpha)) / next);
    a = next;
  };
  over(shirt.map((v) => v * fold), torso);
  over(skin.map((v) => v * 0.85), neck);
  over([46, 30, 22], hair);
  over(mix(mix(skin, [40, 28, 24], eye * 0.85), [150, 60, 60], mouth * 0.5), face);
  return { rgb, alpha: a };
}

/**
 * A photo-like RGB image: a sky gradient with a low sun, layered hills with texture, a few
 * out-of-focus highlights, a person (skin-tone face) in the foreground, vignetting and sensor
 * grain. Shaped so that colour grades have something to work on: skin, sky, shadows, highlights.
 */
function photoScene(width = 960, height = 640, seed = 7) {
  const rand = rng(seed);
  const n1 = valueNoise(width, height, 48, rand);
  const n2 = valueNoise(width, height, 9, rand);
  const data = new Uint8Array(width * height * 3);
  const horizon = height * 0.55;
  const sun = { x: width * 0.28, y: horizon - height * 0.08, r: height * 0.06 };
  const hill = (x, amp, freq, phase, base) =>
    base - amp * (Math.sin(x * freq + phase) * 0.6 + Math.sin(x * freq * 2.3 + phase * 1.7) * 0.4);
  const bokeh = Array.from({ length: 9 }, () => ({
    x: rand() * width,
    y: horizon + rand() * height * 0.12,
    r: height * (0.012 + rand() * 0.02),
  }));
  const subject = { cx: width * 0.66, cy: height * 0.45, scale: height * 0.11, shirt: [38, 74, 140] };
  const farLine = Float32Array.from({ length: width }, (_, x) => hill(x, height * 0.05, 0.006, 1.3, horizon + height * 0.02));
  const nearLine = Float32Array.from({ length: width }, (_, x) => hill(x, height * 0.04, 0.011, 0.2, horizon + height * 0.12));
  let r = 0;
  let g = 0;
  let b = 0;
  /** Blends the pixel being drawn toward (cr, cg, cb) by t. */
  const toward = (cr, cg, cb, t) => {
    r += (cr - r) * t;
    g += (cg - g) * t;
    b += (cb - b) * t;
  };
  for (let y = 0; y < height; y++) {
    const sky = clamp01(y / horizon) ** 2;
    for (let x = 0; x < width; x++) {
      // Sky: deep blue at the top to a warm horizon, a glow around the sun.
      r = 38 + 212 * sky;
      g = 78 + 98 * sky;
      b = 160 - 40 * sky;
      const ds = Math.sqrt((x - sun.x) ** 2 + (y - sun.y) ** 2);
      toward(255, 236, 196, Math.exp(-ds / (height * 0.12)) * 0.8);
      toward(255, 250, 235, cover(ds - sun.r, 2));
      // Far and near hills, textured, darker toward the bottom.
      const far = farLine[x];
      if (y > far - 2) {
        const haze = clamp01((y - far) / (height * 0.1));
        toward(120 - 50 * haze, 128 - 36 * haze, 150 - 70 * haze, cover(far - y, 1.5));
      }
      const near = nearLine[x];
      if (y > near - 2) {
        const depth = clamp01((y - near) / (height - near));
        const tex = 1 + 0.35 * n1(x, y) + 0.25 * n2(x, y);
        toward((88 - 54 * depth) * tex, (128 - 70 * depth) * tex, (52 - 26 * depth) * tex, cover(near - y, 1.5));
      }
      for (const o of bokeh) {
        if (Math.abs(x - o.x) > o.r + 2 || Math.abs(y - o.y) > o.r + 2) continue;
        toward(255, 226, 170, cover(Math.sqrt((x - o.x) ** 2 + (y - o.y) ** 2) - o.r, 2) * 0.45);
      }
      const p = person(x, y, subject);
      if (p.alpha > 0) toward(p.rgb[0], p.rgb[1], p.rgb[2], p.alpha);
      // Vignette and grain.
      const vx = x / width - 0.5;
      const vy = y / height - 0.5;
      const vignette = 1 - 0.45 * (vx * vx + vy * vy);
      const grain = (rand() + rand() - 1) * 7;
      const i = (y * width + x) * 3;
      data[i] = Math.max(0, Math.min(255, Math.round(r * vignette + grain)));
      data[i + 1] = Math.max(0, Math.min(255, Math.round(g * vignette + grain)));
      data[i + 2] = Math.max(0, Math.min(255, Math.round(b * vignette + grain)));
    }
  }
  return { width, height, data };
}

/**
 * A green-screen shot: an unevenly lit chroma-green backdrop (#00b140, brighter on the right,
 * darker at the bottom) with noise, and a person (skin-tone face, hair, red shirt) with soft
 * edges. `subjectFraction` is the share of pixels the subject covers, for checking a matte.
 */
function greenScreenScene(width = 800, height = 600, seed = 2) {
  const rand = rng(seed);
  const data = new Uint8Array(width * height * 3);
  const subject = { cx: width * 0.5, cy: height * 0.33, scale: height * 0.13, shirt: [176, 40, 46] };
  let covered = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const light = 0.78 + 0.3 * (x / width) - 0.16 * (y / height);
      const n = (rand() - 0.5) * 10;
      let rgb = CHROMA_GREEN.map((v) => v * light + n);
      const p = person(x, y, subject);
      if (p.alpha > 0) {
        rgb = mix(rgb, p.rgb.map((v) => v + n), p.alpha);
        covered += p.alpha;
      }
      const i = (y * width + x) * 3;
      data[i] = Math.max(0, Math.min(255, Math.round(rgb[0])));
      data[i + 1] = Math.max(0, Math.min(255, Math.round(rgb[1])));
      data[i + 2] = Math.max(0, Math.min(255, Math.round(rgb[2])));
    }
  }
  return { width, height, data, subjectFraction: covered / (width * height) };
}

// ---------------------------------------------------------------------------------------------
// Audio

/**
 * Encodes channels of Float32 samples in [-1, 1] as a 24-bit PCM WAV, rounding to nearest and
 * clipping.
 */
function encodeWav({ sampleRate, channels }) {
  const bitsPerSample = 24;
  const frames = channels[0].length;
  const bytesPerSample = bitsPerSample / 8;
  const blockAlign = bytesPerSample * channels.length;
  const dataBytes = frames * blockAlign;
  const out = Buffer.alloc(44 + dataBytes);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + dataBytes, 4);
  out.write('WAVE', 8, 'latin1');
  out.write('fmt ', 12, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(channels.length, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * blockAlign, 28);
  out.writeUInt16LE(blockAlign, 32);
  out.writeUInt16LE(bitsPerSample, 34);
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(dataBytes, 40);
  const max = 2 ** (bitsPerSample - 1);
  let o = 44;
  for (let f = 0; f < frames; f++) {
    for (const ch of channels) {
      const v = Math.max(-max, Math.min(max - 1, Math.round(ch[f] * max)));
      out.writeIntLE(v, o, 3);
      o += bytesPerSample;
    }
  }
  return out;
}

/**
 * A voice-like mono track with problems: phrases of a gliding 110–170 Hz voice whose harmonics
 * pass through moving vowel formants, syllables at ~4.5 Hz and pauses between phrases; plus
 * white hiss, 50 Hz mains hum with its 100 and 150 Hz harmonics, and a DC offset. The levels are
 * those of a quiet, badly recorded voice: the clean-up should remove the DC offset, lower hum and
 * hiss and bring the loudness up to the target.
 */
function noisyVoice({
  seconds = 6,
  sampleRate = 48000,
  seed = 3,
  voiceAmp = 0.2,
  hissAmp = 0.004,
  humAmp = 0.006,
  dc = 0.04,
} = {}) {
  const rand = rng(seed);
  const n = Math.round(seconds * sampleRate);
  const x = new Float32Array(n);
  // Vowel formants (F1, F2, F3 in Hz), one per syllable in turn.
  const vowels = [[730, 1090, 2440], [530, 1840, 2480], [300, 2290, 3010], [570, 840, 2410], [440, 1020, 2240]];
  const resonance = (f, formants) =>
    formants.reduce((s, fc, k) => s + (k === 0 ? 1 : 0.6 / k) / (1 + ((f - fc) / (80 + 0.08 * fc)) ** 2), 0.02);
  let phase = 0;
  const phrase = 1.6; // seconds of speech, then a pause
  const period = 2.2;
  for (let i = 0; i < n; i++) {
    const t = i / sampleRate;
    const tp = t % period;
    let v = 0;
    if (tp < phrase) {
      const f0 = 140 + 30 * Math.sin(2 * Math.PI * 0.6 * t) - 12 * (tp / phrase);
      phase += (2 * Math.PI * f0) / sampleRate;
      const syllable = Math.floor(t * 4.5);
      const vowel = vowels[syllable % vowels.length];
      const next = vowels[(syllable + 1) % vowels.length];
      const blend = (t * 4.5) % 1;
      const formants = vowel.map((f, k) => f + (next[k] - f) * blend * blend);
      const env = Math.sin(Math.PI * tp / phrase) ** 0.4 * (0.35 + 0.65 * Math.sin(Math.PI * ((t * 4.5) % 1)) ** 2);
      const harmonics = Math.min(30, Math.floor(4000 / f0));
      for (let h = 1; h <= harmonics; h++) v += (resonance(h * f0, formants) * Math.sin(h * phase)) / Math.sqrt(h);
      v *= env * voiceAmp * 0.5;
    }
    const hiss = (rand() + rand() + rand() - 1.5) * 2 * hissAmp;
    const hum = humAmp * (Math.sin(2 * Math.PI * 50 * t) + 0.5 * Math.sin(2 * Math.PI * 100 * t + 0.3) +
      0.25 * Math.sin(2 * Math.PI * 150 * t + 1.1));
    x[i] = v + hiss + hum + dc;
  }
  return { sampleRate, channels: [x] };
}

// ---------------------------------------------------------------------------------------------

/**
 * The demo's three inputs, encoded: { photo, greenScreen, voice }, each
 * { name, contentType, bytes, description, ...facts }. `scale` shrinks the images (1 = 960x640
 * photo and 800x600 green screen) and `voiceSeconds` sets the track's length; tests use small
 * ones.
 */
export function makeSampleMedia({ scale = 1, voiceSeconds = 6 } = {}) {
  const size = (w, h) => [Math.max(16, Math.round(w * scale)), Math.max(16, Math.round(h * scale))];
  const photo = photoScene(...size(960, 640));
  const screen = greenScreenScene(...size(800, 600));
  const voice = noisyVoice({ seconds: voiceSeconds });
  return {
    photo: {
      name: 'photo.png',
      contentType: 'image/png',
      bytes: encodePng(photo),
      width: photo.width,
      height: photo.height,
      description: `photo-like scene with a skin-tone subject, ${photo.width}x${photo.height} PNG`,
    },
    greenScreen: {
      name: 'greenscreen.png',
      contentType: 'image/png',
      bytes: encodePng(screen),
      width: screen.width,
      height: screen.height,
      subjectFraction: screen.subjectFraction,
      description: `green-screen shot with a subject (${Math.round(screen.subjectFraction * 100)}% of the frame), ${screen.width}x${screen.height} PNG`,
    },
    voice: {
      name: 'voice.wav',
      contentType: 'audio/wav',
      bytes: encodeWav(voice),
      seconds: voiceSeconds,
      sampleRate: voice.sampleRate,
      description: `voice-like track with hiss, 50 Hz hum and DC offset, ${voiceSeconds} s 48 kHz 24-bit mono WAV`,
    },
  };
}
