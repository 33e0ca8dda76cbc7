/**
 * Audio clean-up for spoken-word WAV: DC removal, high-pass, noise reduction, loudness
 * normalisation (ITU-R BS.1770-4 / EBU R128) and a true-peak limiter. Pure DSP on Float32 audio.
 *
 * Chain (per channel unless noted):
 *   1. DC: subtract the channel mean (reported as dcOffset).
 *   2. High-pass: 2nd-order Butterworth biquad at highpassHz (rumble, handling noise).
 *   3. Noise reduction: spectral gating. STFT (sqrt-Hann, 50% overlap, ~21 ms frames), noise
 *      power spectrum averaged over the quietest 15% of frames, per-bin Wiener-style gain with
 *      over-subtraction and a gain floor, smoothed over time and frequency (against "musical
 *      noise"), overlap-add; two real frames share one complex FFT. Chosen over a broadband
 *      expander because it also lowers the noise under speech and between the harmonics, at
 *      ~4 ms CPU per second of 48 kHz audio per channel, which the budget allows (AUDIO_LIMITS).
 *   4. Loudness: integrated loudness (K-weighting designed at the file's sample rate, 400 ms
 *      blocks every 100 ms, absolute gate -70 LUFS, relative gate -10 LU), one gain to the target.
 *   5. Limiter (all channels linked): 4x-oversampled true-peak detector, 5 ms look-ahead with a
 *      sliding minimum + box smoothing (the gain never exceeds what the peak needs), 80 ms
 *      release; loudness is re-measured and the gain corrected if limiting cost loudness (at most
 *      +6 dB more into the limiter: a very peaky input ends up quieter than the target rather
 *      than crushed; report.outputLufs says where it landed).
 */
import { checkRange, MediaError } from './errors.ts';
import type { Audio } from './wav.ts';

export { MediaError } from './errors.ts';
export { AUDIO_LIMITS, checkAudioLimits } from './limits.ts';
export type { Audio } from './wav.ts';

export interface CleanOptions {
  /** High-pass corner in Hz, 0..500 (default 80; 0 = off). */
  highpassHz?: number;
  /** Noise reduction strength 0..1 (default 0.5): 0 off; 0.5 up to 12 dB; 1 up to 24 dB. */
  noiseReduction?: number;
  /** Integrated loudness target in LUFS, -30..-10 (default -16, spoken word online). */
  targetLufs?: number;
  /** True-peak ceiling in dBTP, -9..0 (default -1). */
  truePeakDb?: number;
}

export interface CleanReport {
  /** Integrated loudness of the input (LUFS); -Infinity for silence (JSON: null). */
  inputLufs: number;
  outputLufs: number;
  /** Mean of each input channel (removed). */
  dcOffset: number[];
  /** RMS level of the quietest 15% of 21 ms frames after DC/high-pass, dBFS. */
  noiseFloorDb: number;
  /** The same frames in the output (after noise reduction and gain), dBFS. */
  outputNoiseFloorDb: number;
  /** Normalisation gain applied (dB), before the limiter. */
  gainDb: number;
  /** Largest gain reduction of the limiter (dB, >= 0). */
  limiterDb: number;
  /** Output true peak (dBTP, 4x oversampled). */
  peakDb: number;
  /** 'spectral-gate' or 'off' (strength 0, too short, or no quiet frames to learn noise from). */
  noiseReduction: 'spectral-gate' | 'off';
}

// -----------------------------------------------------------------------------------------------
// Filters

export interface Biquad {
  b0: number;
  b1: number;
  b2: number;
  a1: number;
  a2: number;
}

/** 2nd-order Butterworth high-pass (RBJ cookbook, Q = 1/sqrt 2). */
export function highpassCoefficients(fc: number, fs: number): Biquad {
  const w0 = (2 * Math.PI * fc) / fs;
  const cos = Math.cos(w0);
  const alpha = Math.sin(w0) / (2 * Math.SQRT1_2);
  const a0 = 1 + alpha;
  return {
    b0: (1 + cos) / 2 / a0,
    b1: -(1 + cos) / a0,
    b2: (1 + cos) / 2 / a0,
    a1: (-2 * cos) / a0,
    a2: (1 - alpha) / a0,
  };
}

/**
 * BS.1770 K-weighting at any sample rate: the "pre-filter" high shelf (+4 dB above ~1.7 kHz) and
 * the RLB high-pass, from the analogue prototypes' parameters (as libebur128 derives them). At
 * 48 kHz these reproduce the coefficients tabled in BS.1770-4.
 */
export function kWeightingCoefficients(fs: number): [Biquad, Biquad] {
  let f0 = 1681.974450955533;
  const G = 3.999843853973347;
  let Q = 0.7071752369554196;
  let K = Math.tan((Math.PI * f0) / fs);
  const Vh = Math.pow(10, G / 20);
  const Vb = Math.pow(Vh, 0.4996667741545416);
  let a0 = 1 + K / Q + K * K;
  const shelf: Biquad = {
    b0: (Vh + (Vb * K) / Q + K * K) / a0,
    b1: (2 * (K * K - Vh)) / a0,
    b2: (Vh - (Vb * K) / Q + K * K) / a0,
    a1: (2 * (K * K - 1)) / a0,
    a2: (1 - K / Q + K * K) / a0,
  };
  f0 = 38.13547087602444;
  Q = 0.5003270373238773;
  K = Math.tan((Math.PI * f0) / fs);
  a0 = 1 + K / Q + K * K;
  const hp: Biquad = {
    b0: 1,
    b1: -2,
    b2: 1,
    a1: (2 * (K * K - 1)) / a0,
    a2: (1 - K / Q + K * K) / a0,
  };
  return [shelf, hp];
}

/** Filters x in place (transposed direct form II, double-precision state). */
export function biquadInPlace(x: Float32Array, q: Biquad): void {
  const { b0, b1, b2, a1, a2 } = q;
  let z1 = 0, z2 = 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    const y = b0 * xi + z1;
    z1 = b1 * xi - a1 * y + z2;
    z2 = b2 * xi - a2 * y;
    x[i] = y;
  }
}

// -----------------------------------------------------------------------------------------------
// Loudness (BS.1770-4)

/** Channel weights: 1.0 for L, R, C; 1.41 for surrounds; LFE (4th of 6) excluded. */
function channelWeights(n: number): number[] {
  if (n === 5) return [1, 1, 1, 1.41, 1.41];
  if (n === 6) return [1, 1, 1, 0, 1.41, 1.41];
  return new Array(n).fill(1);
}

/** Mean square of the K-weighted signal in each 100 ms segment of one channel. */
function segmentPowers(x: Float32Array, fs: number, kw: [Biquad, Biquad]): Float64Array {
  const segLen = fs / 10;
  const nSeg = Math.floor(x.length / segLen);
  const sums = new Float64Array(nSeg);
  const [s, h] = kw;
  let s1 = 0, s2 = 0, h1 = 0, h2 = 0;
  let seg = 0;
  let end = Math.round(segLen);
  let acc = 0;
  const stop = Math.round(nSeg * segLen);
  for (let i = 0; i < stop; i++) {
    const xi = x[i];
    const y = s.b0 * xi + s1;
    s1 = s.b1 * xi - s.a1 * y + s2;
    s2 = s.b2 * xi - s.a2 * y;
    const z = h.b0 * y + h1;
    h1 = h.b1 * y - h.a1 * z + h2;
    h2 = h.b2 * y - h.a2 * z;
    acc += z * z;
    if (i + 1 === end) {
      sums[seg] = acc;
      acc = 0;
      seg++;
      end = Math.round((seg + 1) * segLen);
    }
  }
  return sums;
}

/**
 * Integrated loudness in LUFS (ITU-R BS.1770-4, EBU R128). -Infinity when the audio is shorter
 * than one 400 ms block or entirely below the absolute gate.
 */
export function measureLoudness(audio: Audio): number {
  checkAudio(audio);
  const fs = audio.sampleRate;
  const kw = kWeightingCoefficients(fs);
  const weights = channelWeights(audio.channels.length);
  const perChannel = audio.channels.map((ch) => segmentPowers(ch, fs, kw));
  return gatedLoudness(perChannel, weights, fs);
}

function gatedLoudness(segs: Float64Array[], weights: number[], fs: number): number {
  const nSeg = segs[0]?.length ?? 0;
  const nBlocks = nSeg - 3;
  if (nBlocks < 1) return -Infinity;
  const segLen = fs / 10;
  const blockZ = new Float64Array(nBlocks);
  for (let j = 0; j < nBlocks; j++) {
    // Exact sample count of segments j..j+3 (segment bounds are rounded).
    const count = Math.round((j + 4) * segLen) - Math.round(j * segLen);
    let z = 0;
    for (let c = 0; c < segs.length; c++) {
      const s = segs[c];
      z += (weights[c] * (s[j] + s[j + 1] + s[j + 2] + s[j + 3])) / count;
    }
    blockZ[j] = z;
  }
  const absGate = Math.pow(10, (-70 + 0.691) / 10);
  let sum = 0, n = 0;
  for (let j = 0; j < nBlocks; j++) {
    if (blockZ[j] > absGate) {
      sum += blockZ[j];
      n++;
    }
  }
  if (n === 0) return -Infinity;
  const relGate = (sum / n) * Math.pow(10, -10 / 10);
  let sum2 = 0, n2 = 0;
  for (let j = 0; j < nBlocks; j++) {
    if (blockZ[j] > absGate && blockZ[j] > relGate) {
      sum2 += blockZ[j];
      n2++;
    }
  }
  return n2 === 0 ? -Infinity : -0.691 + 10 * Math.log10(sum2 / n2);
}

// -----------------------------------------------------------------------------------------------
// True peak (4x oversampling, 48-tap windowed-sinc polyphase interpolator)

const OS = 4;
const TAPS_PER_PHASE = 12;
const TP_FILTER: Float64Array[] = (() => {
  // Odd-length (49-tap) symmetric design centred on a tap, last (near-zero) tap dropped, so the
  // phases interpolate at exactly 0, 1/4, 1/2 and 3/4 of a sample.
  const len = OS * TAPS_PER_PHASE;
  const h = new Float64Array(len);
  const mid = len / 2;
  for (let i = 0; i < len; i++) {
    const t = (i - mid) / OS;
    const sinc = t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t);
    // Blackman-Harris window over 49 taps
    const a = (2 * Math.PI * i) / len;
    const w = 0.35875 - 0.48829 * Math.cos(a) + 0.14128 * Math.cos(2 * a) -
      0.01168 * Math.cos(3 * a);
    h[i] = sinc * w;
  }
  const phases: Float64Array[] = [];
  for (let p = 0; p < OS; p++) {
    const ph = new Float64Array(TAPS_PER_PHASE);
    let sum = 0;
    for (let k = 0; k < TAPS_PER_PHASE; k++) sum += ph[k] = h[k * OS + p];
    for (let k = 0; k < TAPS_PER_PHASE; k++) ph[k] /= sum; // unity DC gain per phase
    phases.push(ph);
  }
  return phases;
})();
/** Interpolated samples at index m lie between input samples m - TP_DELAY - 1 and m - TP_DELAY. */
const TP_DELAY = TAPS_PER_PHASE / 2 - 1;

/** Largest sum of |taps| over the phases: bounds |interpolated| / max |input in the window|. */
const TP_HSUM = Math.max(...TP_FILTER.map((ph) => ph.reduce((t, v) => t + Math.abs(v), 0)));
const TP_BLOCK = 16;

/**
 * Per-sample peak envelope: max(|x[n]|, |4x-interpolated values next to n|), accumulated as a max
 * into `out` (zeroed, or holding another channel's envelope). Interpolation is skipped in blocks
 * whose samples cannot produce a value >= threshold (there `out` holds the sample peak only).
 */
function peakEnvelope(x: Float32Array, out: Float32Array, threshold: number): void {
  const n = x.length;
  const T = TAPS_PER_PHASE;
  const B = TP_BLOCK;
  const nb = Math.ceil(n / B);
  const bmax = new Float32Array(nb + 1);
  for (let i = 0; i < n; i++) {
    const a = x[i] < 0 ? -x[i] : x[i];
    if (a > out[i]) out[i] = a;
    const b = (i / B) | 0;
    if (a > bmax[b]) bmax[b] = a;
  }
  // Phase 0 interpolates at the sample itself (the centred sinc is 0 at the other integers).
  // Phases 1-3, 12 taps each, unrolled with the taps in locals (the hot loop of the limiter).
  const [, p1, p2, p3] = TP_FILTER;
  const a10 = p1[0], a11 = p1[1], a12 = p1[2], a13 = p1[3], a14 = p1[4], a15 = p1[5];
  const a16 = p1[6], a17 = p1[7], a18 = p1[8], a19 = p1[9], a110 = p1[10], a111 = p1[11];
  const a20 = p2[0], a21 = p2[1], a22 = p2[2], a23 = p2[3], a24 = p2[4], a25 = p2[5];
  const a26 = p2[6], a27 = p2[7], a28 = p2[8], a29 = p2[9], a210 = p2[10], a211 = p2[11];
  const a30 = p3[0], a31 = p3[1], a32 = p3[2], a33 = p3[3], a34 = p3[4], a35 = p3[5];
  const a36 = p3[6], a37 = p3[7], a38 = p3[8], a39 = p3[9], a310 = p3[10], a311 = p3[11];
  let xp: Float32Array | null = null;
  const mEnd = n + TP_DELAY + 1;
  for (let m0 = 0; m0 < mEnd; m0 += B) {
    const b = (m0 / B) | 0;
    const local = Math.max(b > 0 ? bmax[b - 1] : 0, b < nb ? bmax[b] : 0);
    if (local * TP_HSUM < threshold || local === 0) continue;
    if (!xp) {
      xp = new Float32Array(n + 2 * T); // zero-padded copy: xp[T + i] = x[i]
      xp.set(x, T);
    }
    const m1 = Math.min(m0 + B, mEnd);
    for (let m = m0; m < m1; m++) {
      const base = T + m;
      const v0 = xp[base - 0];
      const v1 = xp[base - 1];
      const v2 = xp[base - 2];
      const v3 = xp[base - 3];
      const v4 = xp[base - 4];
      const v5 = xp[base - 5];
      const v6 = xp[base - 6];
      const v7 = xp[base - 7];
      const v8 = xp[base - 8];
      const v9 = xp[base - 9];
      const v10 = xp[base - 10];
      const v11 = xp[base - 11];
      const y1 = a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3 + a14 * v4 + a15 * v5 + a16 * v6 +
        a17 * v7 + a18 * v8 + a19 * v9 + a110 * v10 + a111 * v11;
      const y2 = a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3 + a24 * v4 + a25 * v5 + a26 * v6 +
        a27 * v7 + a28 * v8 + a29 * v9 + a210 * v10 + a211 * v11;
      const y3 = a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3 + a34 * v4 + a35 * v5 + a36 * v6 +
        a37 * v7 + a38 * v8 + a39 * v9 + a310 * v10 + a311 * v11;
      let pk = y1 < 0 ? -y1 : y1;
      if (y2 > pk) pk = y2;
      else if (-y2 > pk) pk = -y2;
      if (y3 > pk) pk = y3;
      else if (-y3 > pk) pk = -y3;
      const lo = m - TP_DELAY - 1, hi = m - TP_DELAY;
      if (lo >= 0 && lo < n && pk > out[lo]) out[lo] = pk;
      if (hi >= 0 && hi < n && pk > out[hi]) out[hi] = pk;
    }
  }
}

/** True peak (linear, 4x oversampled) over all channels. */
export function truePeak(channels: Float32Array[]): number {
  if (!channels.length || !channels[0].length) return 0;
  let samplePeak = 0;
  for (const ch of channels) {
    for (let i = 0; i < ch.length; i++) {
      const a = ch[i] < 0 ? -ch[i] : ch[i];
      if (a > samplePeak) samplePeak = a;
    }
  }
  const env = new Float32Array(channels[0].length);
  for (const ch of channels) peakEnvelope(ch, env, samplePeak);
  let m = 0;
  for (let i = 0; i < env.length; i++) if (env[i] > m) m = env[i];
  return m;
}

// -----------------------------------------------------------------------------------------------
// FFT (iterative radix-2, precomputed twiddles)

class Fft {
  readonly n: number;
  private rev: Uint32Array;
  /** Twiddles (cos, -sin) of each stage from size 4 up, contiguous per stage. */
  private tw: Float64Array;

  constructor(n: number) {
    this.n = n;
    const bits = Math.log2(n);
    this.rev = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
    this.tw = new Float64Array(2 * n);
    let o = 0;
    for (let size = 4; size <= n; size <<= 1) {
      for (let j = 0; j < size / 2; j++) {
        this.tw[o++] = Math.cos((2 * Math.PI * j) / size);
        this.tw[o++] = -Math.sin((2 * Math.PI * j) / size);
      }
    }
  }

  /** In place; inverse includes the 1/n scale. */
  transform(re: Float64Array, im: Float64Array, inverse: boolean): void {
    const { n, rev, tw } = this;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        let t = re[i];
        re[i] = re[j];
        re[j] = t;
        t = im[i];
        im[i] = im[j];
        im[j] = t;
      }
    }
    for (let i = 0; i < n; i += 2) {
      const tr = re[i + 1], ti = im[i + 1];
      re[i + 1] = re[i] - tr;
      im[i + 1] = im[i] - ti;
      re[i] += tr;
      im[i] += ti;
    }
    const sgn = inverse ? -1 : 1;
    let o = 0;
    for (let size = 4; size <= n; size <<= 1) {
      const half = size >> 1;
      for (let j = 0; j < half; j++) {
        const wr = tw[o + 2 * j], wi = sgn * tw[o + 2 * j + 1];
        for (let a = j; a < n; a += size) {
          const b = a + half;
          const xr = re[b], xi = im[b];
          const tr = xr * wr - xi * wi;
          const ti = xr * wi + xi * wr;
          re[b] = re[a] - tr;
          im[b] = im[a] - ti;
          re[a] += tr;
          im[a] += ti;
        }
      }
      o += 2 * half;
    }
    if (inverse) {
      const s = 1 / n;
      for (let i = 0; i < n; i++) {
        re[i] *= s;
        im[i] *= s;
      }
    }
  }
}

// -----------------------------------------------------------------------------------------------
// Noise reduction (spectral gate)

interface FrameStats {
  /** Mean square of each frame (hop-spaced, frameLen long). */
  energies: Float64Array;
  quietIdx: number[];
  floor: number;
  spreadDb: number;
}

function frameLength(fs: number): number {
  let n = 256;
  while (n < fs * 0.02) n <<= 1;
  return n;
}

/** Frame energies and the quietest 15% of frames (ignoring digital silence). */
function frameStats(x: Float32Array, frameLen: number): FrameStats {
  const hop = frameLen / 2;
  const nFrames = Math.max(0, Math.floor((x.length - frameLen) / hop) + 1);
  const energies = new Float64Array(nFrames);
  for (let f = 0; f < nFrames; f++) {
    let s = 0;
    for (let i = f * hop, e = i + frameLen; i < e; i++) s += x[i] * x[i];
    energies[f] = s / frameLen;
  }
  const live = [...energies.keys()].filter((f) => energies[f] > 1e-14);
  if (live.length < 8) return { energies, quietIdx: [], floor: 0, spreadDb: 0 };
  live.sort((a, b) => energies[a] - energies[b]);
  const quietIdx = live.slice(0, Math.max(2, Math.floor(live.length * 0.15)));
  let floor = 0;
  for (const f of quietIdx) floor += energies[f];
  floor /= quietIdx.length;
  const p90 = energies[live[Math.floor(live.length * 0.9)]];
  return { energies, quietIdx, floor, spreadDb: 10 * Math.log10(p90 / Math.max(floor, 1e-20)) };
}

/**
 * Spectral gate on one channel, returning a new array. strength 0..1 sets the over-subtraction
 * (1 + 2s) and the gain floor (-24 dB x s).
 */
function spectralGate(
  x: Float32Array,
  frameLen: number,
  stats: FrameStats,
  strength: number,
  progress: (f: number) => void,
): Float32Array {
  const N = frameLen, H = N / 2, bins = N / 2 + 1;
  const fft = new Fft(N);
  const win = new Float64Array(N);
  for (let i = 0; i < N; i++) win[i] = Math.sin((Math.PI * (i + 0.5)) / N); // sqrt-Hann
  const re = new Float64Array(N), im = new Float64Array(N);

  // Noise power spectrum: mean windowed power over the quietest frames.
  const noise = new Float64Array(bins);
  for (const f of stats.quietIdx) {
    const start = f * H;
    for (let i = 0; i < N; i++) {
      re[i] = x[start + i] * win[i];
      im[i] = 0;
    }
    fft.transform(re, im, false);
    for (let k = 0; k < bins; k++) noise[k] += re[k] * re[k] + im[k] * im[k];
  }
  for (let k = 0; k < bins; k++) noise[k] /= stats.quietIdx.length;

  const alpha = 1 + 2 * strength;
  const gmin = Math.pow(10, (-24 * strength) / 20);
  const psm = new Float64Array(bins); // time-smoothed power
  const graw = new Float64Array(bins);
  const gA = new Float64Array(bins), gB = new Float64Array(bins);
  const Ar = new Float64Array(bins), Ai = new Float64Array(bins);
  const Br = new Float64Array(bins), Bi = new Float64Array(bins);
  let first = true;
  /** Gains for one frame's spectrum (re, im): time-smoothed power, Wiener-style, freq-smoothed. */
  const gains = (sr: Float64Array, si: Float64Array, g: Float64Array) => {
    for (let k = 0; k < bins; k++) {
      const p = sr[k] * sr[k] + si[k] * si[k];
      psm[k] = first ? p : 0.5 * psm[k] + 0.5 * p;
      const r = 1 - (alpha * noise[k]) / (psm[k] + 1e-30);
      const v = r > 0 ? Math.sqrt(r) : 0;
      graw[k] = v > gmin ? v : gmin;
    }
    first = false;
    for (let k = 0; k < bins; k++) {
      g[k] = 0.25 * graw[k > 0 ? k - 1 : 1] + 0.5 * graw[k] +
        0.25 * graw[k < bins - 1 ? k + 1 : bins - 2];
    }
  };
  const out = new Float32Array(x.length);
  const len = x.length;
  const nFrames = Math.ceil((len + H) / H);
  const reportEvery = Math.max(2, 2 * Math.floor(nFrames / 40));
  // Two real frames per complex FFT: frame f in the real part, frame f+1 in the imaginary part.
  for (let f = 0; f < nFrames; f += 2) {
    const sa = (f - 1) * H; // the first frame starts at -H so every sample is covered twice
    const sb = f * H;
    const hasB = f + 1 < nFrames;
    const interior = sa >= 0 && hasB && sb + N <= len;
    if (interior) {
      for (let i = 0; i < N; i++) {
        re[i] = x[sa + i] * win[i];
        im[i] = x[sb + i] * win[i];
      }
    } else {
      for (let i = 0; i < N; i++) {
        const ta = sa + i, tb = sb + i;
        re[i] = ta >= 0 && ta < len ? x[ta] * win[i] : 0;
        im[i] = hasB && tb < len ? x[tb] * win[i] : 0;
      }
    }
    fft.transform(re, im, false);
    for (let k = 0; k < bins; k++) {
      const nk = k === 0 ? 0 : N - k;
      Ar[k] = (re[k] + re[nk]) / 2;
      Ai[k] = (im[k] - im[nk]) / 2;
      Br[k] = (im[k] + im[nk]) / 2;
      Bi[k] = (re[nk] - re[k]) / 2;
    }
    gains(Ar, Ai, gA);
    if (hasB) gains(Br, Bi, gB);
    for (let k = 0; k < bins; k++) {
      const nk = k === 0 ? 0 : N - k;
      const ar = gA[k] * Ar[k], ai = gA[k] * Ai[k];
      const br = hasB ? gB[k] * Br[k] : 0, bi = hasB ? gB[k] * Bi[k] : 0;
      re[k] = ar - bi;
      im[k] = ai + br;
      if (nk !== k) {
        re[nk] = ar + bi;
        im[nk] = br - ai;
      }
    }
    fft.transform(re, im, true);
    if (interior) {
      for (let i = 0; i < N; i++) {
        out[sa + i] += re[i] * win[i];
        out[sb + i] += im[i] * win[i];
      }
    } else {
      for (let i = 0; i < N; i++) {
        const ta = sa + i, tb = sb + i;
        if (ta >= 0 && ta < len) out[ta] += re[i] * win[i];
        if (hasB && tb < len) out[tb] += im[i] * win[i];
      }
    }
    if (f % reportEvery === 0) progress(f / nFrames);
  }
  return out;
}

// -----------------------------------------------------------------------------------------------
// Limiter

/**
 * Gain curve (per frame) so that gain[n] * peak[n] <= ceiling everywhere: sliding minimum of the
 * required gain over the look-ahead, an exponential release, then a box average over the
 * look-ahead (each averaged value is a minimum over a window containing n, so still <= need[n]).
 */
function limiterGain(
  peak: Float32Array,
  preGain: number,
  ceiling: number,
  lookahead: number,
  releaseCoef: number,
): Float32Array {
  const n = peak.length;
  const L = lookahead;
  // Required gain per sample; the L-1 virtual samples before the start (look-ahead) need 1.
  const total = n + L - 1;
  const need = new Float32Array(total);
  for (let k = 0; k < total; k++) {
    const i = k - (L - 1);
    const p = i < 0 ? 0 : peak[i] * preGain;
    need[k] = p > ceiling ? ceiling / p : 1;
  }
  // Sliding minimum over [k, k+L-1] (storage indices) with a monotonic deque.
  const mins = new Float32Array(total);
  const dq = new Int32Array(total);
  let head = 0, tail = 0, next = 0;
  for (let k = 0; k < total; k++) {
    const lim = Math.min(k + L - 1, total - 1);
    while (next <= lim) {
      const v = need[next];
      while (tail > head && need[dq[tail - 1]] >= v) tail--;
      dq[tail++] = next++;
    }
    while (dq[head] < k) head++;
    mins[k] = need[dq[head]];
  }
  // Release.
  let env = 1;
  for (let i = 0; i < total; i++) {
    env = env + (1 - env) * releaseCoef;
    if (mins[i] < env) env = mins[i];
    mins[i] = env;
  }
  // Box average over the last L values.
  const gain = new Float32Array(n);
  let acc = 0;
  for (let i = 0; i < total; i++) {
    acc += mins[i];
    if (i >= L) acc -= mins[i - L];
    if (i >= L - 1) gain[i - (L - 1)] = acc / L;
  }
  return gain;
}

// -----------------------------------------------------------------------------------------------

function checkAudio(audio: Audio): void {
  const ok = audio && Number.isFinite(audio.sampleRate) && audio.sampleRate > 0 &&
    Array.isArray(audio.channels) && audio.channels.length > 0 &&
    audio.channels.every((c) => c instanceof Float32Array && c.length === audio.channels[0].length);
  if (!ok) {
    throw new MediaError(
      'invalid_params',
      'audio must be {sampleRate, channels: equal-length Float32Arrays}',
    );
  }
}

const db = (x: number) => (x > 0 ? 20 * Math.log10(x) : -Infinity);

/**
 * Cleans the audio (see the module comment) and returns a new Audio with the same sample rate,
 * channel count and sourceFormat, plus a report. onProgress receives fractions in [0, 1].
 */
export function cleanAudio(
  audio: Audio,
  opts: CleanOptions = {},
  onProgress?: (fraction: number) => void,
): { audio: Audio; report: CleanReport } {
  checkAudio(audio);
  const fs = audio.sampleRate;
  const highpassHz = checkRange('highpassHz', opts.highpassHz ?? 80, 0, 500);
  const strength = checkRange('noiseReduction', opts.noiseReduction ?? 0.5, 0, 1);
  const target = checkRange('targetLufs', opts.targetLufs ?? -16, -30, -10);
  const ceilingDb = checkRange('truePeakDb', opts.truePeakDb ?? -1, -9, 0);
  const ceiling = Math.pow(10, ceilingDb / 20);
  let lastProgress = 0;
  const progress = (f: number) => {
    const v = Math.max(lastProgress, Math.min(1, f));
    lastProgress = v;
    onProgress?.(v);
  };
  progress(0);

  const nch = audio.channels.length;
  const len = audio.channels[0].length;
  const weights = channelWeights(nch);
  const kw = kWeightingCoefficients(fs);

  // 1-2. DC and high-pass, on copies.
  const dcOffset: number[] = [];
  const work: Float32Array[] = audio.channels.map((src) => {
    const x = new Float32Array(src);
    let sum = 0;
    for (let i = 0; i < len; i++) {
      const v = x[i];
      sum += Number.isFinite(v) ? v : 0;
    }
    const mean = len ? sum / len : 0;
    dcOffset.push(mean);
    for (let i = 0; i < len; i++) x[i] = Number.isFinite(x[i]) ? x[i] - mean : 0;
    if (highpassHz > 0 && highpassHz < fs * 0.45) {
      biquadInPlace(x, highpassCoefficients(highpassHz, fs));
    }
    return x;
  });
  const inputLufs = measureLoudness(audio);
  progress(0.05);

  // 3. Noise reduction.
  const frameLen = frameLength(fs);
  const stats = work.map((x) => frameStats(x, frameLen));
  const floorPower = stats.reduce((s, st) => s + st.floor, 0) / nch;
  const noiseFloorDb = floorPower > 0 ? 10 * Math.log10(floorPower) : -Infinity;
  let nrUsed = false;
  const cleaned = work.map((x, c) => {
    const st = stats[c];
    // Trust the noise estimate only if the quiet frames are clearly below the loud ones.
    const confidence = Math.max(0, Math.min(1, (st.spreadDb - 6) / 6));
    const s = strength * confidence;
    if (s <= 0 || st.quietIdx.length === 0) return x;
    nrUsed = true;
    return spectralGate(x, frameLen, st, s, (f) => progress(0.05 + 0.7 * ((c + f) / nch)));
  });
  progress(0.75);

  // 4. Loudness normalisation.
  const segs = cleaned.map((x) => segmentPowers(x, fs, kw));
  const preLufs = gatedLoudness(segs, weights, fs);
  let gainDb = Number.isFinite(preLufs) ? Math.min(target - preLufs, 30) : 0;
  // Peaks only matter where the (at most +6 dB corrected) gain could take them past the ceiling.
  const peaks = new Float32Array(len);
  const peakThreshold = ceiling / Math.pow(10, (gainDb + 6) / 20);
  for (const x of cleaned) peakEnvelope(x, peaks, peakThreshold);
  progress(0.8);

  const lookahead = Math.max(1, Math.round(fs * 0.005));
  const releaseCoef = 1 - Math.exp(-1 / (0.08 * fs));
  let out: Float32Array[] = [];
  let outputLufs = -Infinity;
  let limiterDb = 0;
  const firstGainDb = gainDb;
  for (let iter = 0; iter < 3; iter++) {
    const g = Math.pow(10, gainDb / 20);
    const curve = limiterGain(peaks, g, ceiling, lookahead, releaseCoef);
    let minCurve = 1;
    for (let i = 0; i < len; i++) if (curve[i] < minCurve) minCurve = curve[i];
    limiterDb = -db(minCurve);
    out = cleaned.map((x) => {
      const y = new Float32Array(len);
      for (let i = 0; i < len; i++) y[i] = x[i] * g * curve[i];
      return y;
    });
    // Without limiting the loudness is exactly preLufs + gain; with it, measure.
    outputLufs = minCurve >= 1 ? preLufs + gainDb : measureLoudness({
      sampleRate: fs,
      channels: out,
      sourceFormat: audio.sourceFormat,
    });
    progress(0.8 + 0.05 * (iter + 1));
    // Limiting lowers loudness a little; push the gain up to compensate (bounded).
    const miss = target - outputLufs;
    if (!Number.isFinite(outputLufs) || Math.abs(miss) < 0.05 || gainDb >= firstGainDb + 6) break;
    gainDb = Math.min(gainDb + miss, firstGainDb + 6);
  }

  // 5. Safety: the true peak after limiting must be within the ceiling (interpolation effects).
  let tp = truePeak(out);
  if (tp > ceiling) {
    const k = ceiling / tp * 0.9999;
    for (const y of out) for (let i = 0; i < len; i++) y[i] *= k;
    tp *= k;
    outputLufs = measureLoudness({
      sampleRate: fs,
      channels: out,
      sourceFormat: audio.sourceFormat,
    });
  }
  progress(0.97);

  let outFloor = 0;
  for (let c = 0; c < nch; c++) {
    const y = out[c];
    let s = 0;
    for (const f of stats[c].quietIdx) {
      const start = f * (frameLen / 2);
      for (let i = start; i < start + frameLen; i++) s += y[i] * y[i];
    }
    outFloor += stats[c].quietIdx.length ? s / (stats[c].quietIdx.length * frameLen) : 0;
  }
  outFloor /= nch;
  progress(1);

  return {
    audio: { sampleRate: fs, channels: out, sourceFormat: { ...audio.sourceFormat } },
    report: {
      inputLufs,
      outputLufs,
      dcOffset,
      noiseFloorDb,
      outputNoiseFloorDb: outFloor > 0 ? 10 * Math.log10(outFloor) : -Infinity,
      gainDb,
      limiterDb: limiterDb > 0 ? limiterDb : 0,
      peakDb: db(tp),
      noiseReduction: nrUsed ? 'spectral-gate' : 'off',
    },
  };
}
