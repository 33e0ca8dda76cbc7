/**
 * WAV (RIFF/WAVE) codec: PCM 16/24/32-bit integer and 32-bit IEEE float, plain or
 * WAVE_FORMAT_EXTENSIBLE, any channel count. Our own: the npm options (wavefile) decode ~30x
 * slower, return un-normalised integers and cannot read the header alone.
 *
 * Samples are decoded to Float32 in [-1, 1): int / 2^(bits-1). Encoding rounds to nearest and
 * clips, without dither, so integer audio decoded and re-encoded at the same depth is bit-exact.
 *
 * Truncation: a data chunk whose size field declares more bytes than the file holds after it is
 * a file cut short (an interrupted upload or copy) and is refused as `corrupt_audio` ("truncated
 * WAV"), never decoded as the shorter audio it happens to contain. A size of 0 or 0xFFFFFFFF is
 * no promise: streamed writers put it there when they cannot seek back, and such a chunk runs to
 * the end of the file. A declared size that is not a whole number of frames is read up to its
 * last whole frame (the partial one is dropped), and the pad byte after an odd-sized data chunk
 * may be missing at the end of the file. wavInfo reads only the header, so it works on a prefix;
 * its `dataEnd` is the file length the header promises, for callers that know the whole size.
 *
 * Memory: WAV is not compressed, so decoding allocates what the declared (or, when unsized,
 * available) frames need: 4 bytes per sample. decodeWav refuses more than `maxSamples`
 * (WAV_HARD_MAX_SAMPLES at most) as `too_large` before allocating anything.
 */
import { MediaError } from './errors.ts';

export { MediaError } from './errors.ts';

export type SampleFormat = { bitsPerSample: 16 | 24 | 32; float: boolean };

export type Audio = {
  sampleRate: number;
  /** One array per channel, all the same length, nominally in [-1, 1]. */
  channels: Float32Array[];
  sourceFormat: SampleFormat;
};

export interface WavInfo {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  float: boolean;
  /** Sample frames declared by the data chunk (or available, for a streamed/unsized header). */
  frames: number;
  durationSeconds: number;
  /**
   * The file length the header promises: where the data chunk's declared bytes end. null for a
   * streamed (unsized) data chunk, which promises nothing. A file shorter than this is truncated.
   */
  dataEnd: number | null;
}

export interface DecodeWavOptions {
  /**
   * Refuse (MediaError 'too_large') files with more samples (frames x channels) than this,
   * before allocating them. Capped by WAV_HARD_MAX_SAMPLES.
   */
  maxSamples?: number;
}

/**
 * Hard ceiling for any decode, whatever the caller asks: 16 M samples are 64 MB of Float32 next
 * to the input's own bytes, a quarter of an Edge Function's 256 MB.
 */
export const WAV_HARD_MAX_SAMPLES = 16 * 1024 * 1024;

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** The 14 bytes after the format tag in the KSDATAFORMAT_SUBTYPE_* GUIDs. */
const GUID_TAIL = [
  0x00,
  0x00,
  0x00,
  0x00,
  0x10,
  0x00,
  0x80,
  0x00,
  0x00,
  0xaa,
  0x00,
  0x38,
  0x9b,
  0x71,
];

interface Layout {
  sampleRate: number;
  channels: number;
  bitsPerSample: 16 | 24 | 32;
  float: boolean;
  blockAlign: number;
  dataOffset: number;
  /** Declared size of the data chunk in bytes; for an unsized chunk, what the buffer holds. */
  dataSize: number;
  /** True when the data chunk's size field is 0 or 0xFFFFFFFF (streamed writers). */
  unsized: boolean;
}

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
}

function parse(bytes: Uint8Array): Layout {
  if (!(bytes instanceof Uint8Array)) {
    throw new MediaError('invalid_params', 'WAV bytes must be a Uint8Array');
  }
  if (bytes.length < 12) throw new MediaError('unsupported_format', 'not a WAV file (too short)');
  const riff = fourcc(bytes, 0);
  if (riff === 'RF64' || riff === 'BW64') {
    throw new MediaError('unsupported_format', `${riff} (64-bit WAV) is not supported`);
  }
  if (riff === 'RIFX') {
    throw new MediaError('unsupported_format', 'big-endian WAV is not supported');
  }
  if (riff !== 'RIFF' || fourcc(bytes, 8) !== 'WAVE') {
    throw new MediaError('unsupported_format', 'not a WAV file (no RIFF/WAVE header)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: Omit<Layout, 'dataOffset' | 'dataSize' | 'unsized'> | null = null;
  let pos = 12;
  while (pos + 8 <= bytes.length) {
    const id = fourcc(bytes, pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > bytes.length) {
        throw new MediaError('corrupt_audio', 'WAV fmt chunk is truncated');
      }
      fmt = parseFmt(view, bytes, body, size);
    } else if (id === 'data') {
      if (!fmt) throw new MediaError('corrupt_audio', 'WAV data chunk before the fmt chunk');
      const unsized = size === 0 || size === 0xffffffff;
      return { ...fmt, dataOffset: body, dataSize: unsized ? bytes.length - body : size, unsized };
    }
    // Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
    pos = body + size + (size & 1);
  }
  throw new MediaError(
    'corrupt_audio',
    fmt ? 'WAV file has no data chunk' : 'WAV has no fmt chunk',
  );
}

function parseFmt(
  view: DataView,
  bytes: Uint8Array,
  at: number,
  size: number,
): Omit<Layout, 'dataOffset' | 'dataSize' | 'unsized'> {
  let tag = view.getUint16(at, true);
  const channels = view.getUint16(at + 2, true);
  const sampleRate = view.getUint32(at + 4, true);
  const blockAlign = view.getUint16(at + 12, true);
  const bits = view.getUint16(at + 14, true);
  if (tag === WAVE_FORMAT_EXTENSIBLE) {
    if (size < 40 || at + 40 > bytes.length) {
      throw new MediaError('corrupt_audio', 'WAVE_FORMAT_EXTENSIBLE fmt chunk is truncated');
    }
    tag = view.getUint16(at + 24, true);
    for (let k = 0; k < GUID_TAIL.length; k++) {
      if (bytes[at + 26 + k] !== GUID_TAIL[k]) {
        throw new MediaError('unsupported_format', 'WAV with an unknown sub-format GUID');
      }
    }
  }
  if (channels < 1) throw new MediaError('corrupt_audio', 'WAV with 0 channels');
  if (sampleRate < 1) throw new MediaError('corrupt_audio', 'WAV with sample rate 0');
  let float: boolean;
  if (tag === WAVE_FORMAT_PCM && (bits === 16 || bits === 24 || bits === 32)) float = false;
  else if (tag === WAVE_FORMAT_IEEE_FLOAT && bits === 32) float = true;
  else {
    const what = tag === WAVE_FORMAT_PCM
      ? `${bits}-bit PCM`
      : tag === WAVE_FORMAT_IEEE_FLOAT
      ? `${bits}-bit float`
      : `format tag 0x${tag.toString(16)}`;
    throw new MediaError(
      'unsupported_format',
      `${what} WAV is not supported (PCM 16/24/32-bit or 32-bit float)`,
    );
  }
  if (blockAlign !== channels * (bits / 8)) {
    throw new MediaError(
      'corrupt_audio',
      `WAV block align ${blockAlign} does not match the format`,
    );
  }
  return { sampleRate, channels, bitsPerSample: bits as 16 | 24 | 32, float, blockAlign };
}

/**
 * Format and duration from the header only (fmt + data chunk headers): works on a prefix of the
 * file that reaches the data chunk's header. Throws like decodeWav for unsupported formats.
 */
export function wavInfo(bytes: Uint8Array): WavInfo {
  const l = parse(bytes);
  const frames = Math.floor(l.dataSize / l.blockAlign);
  return {
    sampleRate: l.sampleRate,
    channels: l.channels,
    bitsPerSample: l.bitsPerSample,
    float: l.float,
    frames,
    durationSeconds: frames / l.sampleRate,
    dataEnd: l.unsized ? null : l.dataOffset + l.dataSize,
  };
}

/**
 * Decodes a whole WAV file. Refuses a data chunk declared longer than the file (corrupt_audio,
 * "truncated") and more than `maxSamples` samples (too_large), both before allocating samples.
 */
export function decodeWav(bytes: Uint8Array, opts: DecodeWavOptions = {}): Audio {
  const l = parse(bytes);
  const held = bytes.length - l.dataOffset;
  if (!l.unsized && l.dataSize > held) {
    throw new MediaError(
      'corrupt_audio',
      `truncated WAV: the data chunk declares ${l.dataSize} bytes, the file holds ${held}`,
      { details: { declared_bytes: l.dataSize, held_bytes: held } },
    );
  }
  const frames = Math.floor(l.dataSize / l.blockAlign);
  const nch = l.channels;
  const maxSamples = Math.min(opts.maxSamples ?? WAV_HARD_MAX_SAMPLES, WAV_HARD_MAX_SAMPLES);
  if (frames * nch > maxSamples) {
    throw new MediaError(
      'too_large',
      `WAV has ${frames * nch} samples (${nch} ch x ${frames} frames), limit ${maxSamples}`,
    );
  }
  const channels: Float32Array[] = [];
  for (let c = 0; c < nch; c++) channels.push(new Float32Array(frames));
  // Copy into an aligned buffer so the sample arrays can be viewed directly (little-endian host).
  const start = bytes.byteOffset + l.dataOffset;
  const raw = bytes.buffer.slice(start, start + frames * l.blockAlign) as ArrayBuffer;
  if (l.bitsPerSample === 16) {
    const s = new Int16Array(raw);
    const k = 1 / 32768;
    for (let c = 0; c < nch; c++) {
      const ch = channels[c];
      for (let i = 0, j = c; i < frames; i++, j += nch) ch[i] = s[j] * k;
    }
  } else if (l.bitsPerSample === 24) {
    const b = new Uint8Array(raw);
    const k = 1 / 8388608;
    for (let c = 0; c < nch; c++) {
      const ch = channels[c];
      for (let i = 0, j = c * 3; i < frames; i++, j += nch * 3) {
        ch[i] = (((b[j] << 8) | (b[j + 1] << 16) | (b[j + 2] << 24)) >> 8) * k;
      }
    }
  } else if (l.float) {
    const s = new Float32Array(raw);
    for (let c = 0; c < nch; c++) {
      const ch = channels[c];
      for (let i = 0, j = c; i < frames; i++, j += nch) ch[i] = s[j];
    }
  } else {
    const s = new Int32Array(raw);
    const k = 1 / 2147483648;
    for (let c = 0; c < nch; c++) {
      const ch = channels[c];
      for (let i = 0, j = c; i < frames; i++, j += nch) ch[i] = s[j] * k;
    }
  }
  return {
    sampleRate: l.sampleRate,
    channels,
    sourceFormat: { bitsPerSample: l.bitsPerSample, float: l.float },
  };
}

/** Default WAVEFORMATEXTENSIBLE speaker masks by channel count (FL FR FC LFE BL BR ...). */
const CHANNEL_MASKS: Record<number, number> = {
  1: 0x4,
  2: 0x3,
  3: 0x7,
  4: 0x33,
  5: 0x37,
  6: 0x3f,
  7: 0x13f,
  8: 0x63f,
};

/**
 * Encodes audio as WAV. Integer formats: round to nearest, clip to the integer range (no dither).
 * Float: written as is (values beyond ±1 are kept), NaN/Infinity become 0. Mono/stereo 16-bit PCM
 * uses the plain PCM header; float uses WAVE_FORMAT_IEEE_FLOAT with a fact chunk; more than two
 * channels, or 24/32-bit integer, use WAVE_FORMAT_EXTENSIBLE.
 */
export function encodeWav(audio: Audio, format: SampleFormat = audio.sourceFormat): Uint8Array {
  const nch = audio?.channels?.length ?? 0;
  if (nch < 1 || nch > 65535) throw new MediaError('invalid_params', 'audio needs 1+ channels');
  const frames = audio.channels[0].length;
  if (audio.channels.some((ch) => !(ch instanceof Float32Array) || ch.length !== frames)) {
    throw new MediaError('invalid_params', 'channels must be Float32Arrays of equal length');
  }
  if (!Number.isInteger(audio.sampleRate) || audio.sampleRate < 1) {
    throw new MediaError('invalid_params', 'sampleRate must be a positive integer');
  }
  const bits = format?.bitsPerSample;
  const float = !!format?.float;
  if (!(bits === 16 || bits === 24 || bits === 32) || (float && bits !== 32)) {
    throw new MediaError('invalid_params', 'format must be 16/24/32-bit PCM or 32-bit float');
  }
  const bytesPer = bits / 8;
  const blockAlign = nch * bytesPer;
  const dataSize = frames * blockAlign;
  const extensible = !float && (nch > 2 || bits > 16);
  const fmtSize = extensible ? 40 : float ? 18 : 16;
  const factSize = float ? 12 : 0;
  const headerSize = 12 + 8 + fmtSize + factSize + 8;
  const padded = dataSize + (dataSize & 1);
  const total = headerSize + padded;
  if (total - 8 > 0xffffffff) throw new MediaError('too_large', 'WAV would exceed 4 GiB');

  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  const str = (at: number, s: string) => {
    for (let k = 0; k < 4; k++) out[at + k] = s.charCodeAt(k);
  };
  str(0, 'RIFF');
  v.setUint32(4, total - 8, true);
  str(8, 'WAVE');
  str(12, 'fmt ');
  v.setUint32(16, fmtSize, true);
  const tag = extensible
    ? WAVE_FORMAT_EXTENSIBLE
    : float
    ? WAVE_FORMAT_IEEE_FLOAT
    : WAVE_FORMAT_PCM;
  v.setUint16(20, tag, true);
  v.setUint16(22, nch, true);
  v.setUint32(24, audio.sampleRate, true);
  v.setUint32(28, audio.sampleRate * blockAlign, true);
  v.setUint16(32, blockAlign, true);
  v.setUint16(34, bits, true);
  let p = 36;
  if (extensible) {
    v.setUint16(36, 22, true); // cbSize
    v.setUint16(38, bits, true); // valid bits
    v.setUint32(40, CHANNEL_MASKS[nch] ?? 0, true);
    v.setUint16(44, WAVE_FORMAT_PCM, true);
    out.set(GUID_TAIL, 46);
    p = 60;
  } else if (float) {
    v.setUint16(36, 0, true); // cbSize
    p = 38;
  }
  if (float) {
    str(p, 'fact');
    v.setUint32(p + 4, 4, true);
    v.setUint32(p + 8, frames, true);
    p += 12;
  }
  str(p, 'data');
  v.setUint32(p + 4, dataSize, true);
  p += 8;

  const chs = audio.channels;
  if (float) {
    // The data offset (58) is not 4-aligned: interleave into a scratch array, then copy bytes.
    const dst = new Float32Array(frames * nch);
    for (let c = 0; c < nch; c++) {
      const ch = chs[c];
      for (let i = 0, j = c; i < frames; i++, j += nch) {
        const x = ch[i];
        dst[j] = Number.isFinite(x) ? x : 0;
      }
    }
    out.set(new Uint8Array(dst.buffer), p);
  } else if (bits === 16) {
    const dst = new Int16Array(out.buffer, p, dataSize / 2); // p = 44 or 68
    for (let c = 0; c < nch; c++) {
      const ch = chs[c];
      for (let i = 0, j = c; i < frames; i++, j += nch) {
        const x = Math.round(ch[i] * 32768);
        dst[j] = x > 32767 ? 32767 : x < -32768 ? -32768 : x || 0;
      }
    }
  } else if (bits === 24) {
    for (let c = 0; c < nch; c++) {
      const ch = chs[c];
      for (let i = 0, j = p + c * 3; i < frames; i++, j += blockAlign) {
        let x = Math.round(ch[i] * 8388608);
        x = x > 8388607 ? 8388607 : x < -8388608 ? -8388608 : x || 0;
        out[j] = x & 255;
        out[j + 1] = (x >> 8) & 255;
        out[j + 2] = (x >> 16) & 255;
      }
    }
  } else {
    const dst = new Int32Array(out.buffer, p, dataSize / 4); // p = 68 (extensible)
    for (let c = 0; c < nch; c++) {
      const ch = chs[c];
      for (let i = 0, j = c; i < frames; i++, j += nch) {
        const x = Math.round(ch[i] * 2147483648);
        dst[j] = x > 2147483647 ? 2147483647 : x < -2147483648 ? -2147483648 : x || 0;
      }
    }
  }
  return out;
}
