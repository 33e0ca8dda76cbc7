// Small media files for the API tests, made with the media module's own encoders, plus
// header-only files that claim sizes no test wants to encode (a 4000x4000 PNG, an hour of WAV),
// and decompression bombs (a small PNG whose data inflates to gigabytes of zeros).
import { constants, deflateRawSync } from 'node:zlib';
import { encodeJpeg, encodePng } from '../../_jobs/media/image.ts';
import { encodeWav } from '../../_jobs/media/wav.ts';

function gradient(width: number, height: number) {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      data[i] = (x * 255) / Math.max(1, width - 1);
      data[i + 1] = (y * 255) / Math.max(1, height - 1);
      data[i + 2] = 128;
      data[i + 3] = 255;
    }
  }
  return { width, height, data };
}

export const png = (width = 16, height = 12): Uint8Array => encodePng(gradient(width, height));
export const jpeg = (width = 16, height = 12): Uint8Array =>
  encodeJpeg(gradient(width, height), 90);

/** A 16-bit mono WAV of a 440 Hz tone. */
export function wav(seconds = 0.25, sampleRate = 16000): Uint8Array {
  const samples = new Float32Array(Math.round(seconds * sampleRate));
  for (let i = 0; i < samples.length; i++) {
    samples[i] = 0.25 * Math.sin((2 * Math.PI * 440 * i) / sampleRate);
  }
  return encodeWav({
    sampleRate,
    channels: [samples],
    sourceFormat: { bitsPerSample: 16, float: false },
  });
}

const u32be = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const u32le = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255];
const u16le = (n: number) => [n & 255, (n >>> 8) & 255];
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** A PNG signature and IHDR claiming width x height (8-bit RGBA), with no pixel data. */
export function pngHeader(width: number, height: number): Uint8Array {
  return new Uint8Array([
    0x89,
    0x50,
    0x4e,
    0x47,
    0x0d,
    0x0a,
    0x1a,
    0x0a,
    ...u32be(13),
    ...ascii('IHDR'),
    ...u32be(width),
    ...u32be(height),
    8,
    6,
    0,
    0,
    0,
    ...u32be(0), // CRC: header parsers do not check it
  ]);
}

/** A WAV header (16-bit mono PCM) declaring `seconds` of audio, followed by a little silence. */
export function wavHeader(seconds: number, sampleRate = 16000): Uint8Array {
  const dataBytes = Math.round(seconds * sampleRate) * 2;
  return new Uint8Array([
    ...ascii('RIFF'),
    ...u32le(36 + dataBytes),
    ...ascii('WAVE'),
    ...ascii('fmt '),
    ...u32le(16),
    ...u16le(1),
    ...u16le(1),
    ...u32le(sampleRate),
    ...u32le(sampleRate * 2),
    ...u16le(2),
    ...u16le(16),
    ...ascii('data'),
    ...u32le(dataBytes),
    ...new Array(64).fill(0),
  ]);
}

/** An 8-bit WAV: a format the in-function decoder does not read. */
export function wav8bit(): Uint8Array {
  const h = wavHeader(0.01);
  const v = new DataView(h.buffer);
  v.setUint32(28, 16000, true); // byte rate
  v.setUint16(32, 1, true); // block align
  v.setUint16(34, 8, true); // bits
  return h;
}

/**
 * A zlib stream that inflates to `mib` MiB of zeros, in about a KiB per MiB: one MiB of zeros
 * deflated with a full flush (byte-aligned, no reference to earlier data) repeated `mib` times,
 * then an empty final block and the Adler-32 of it all. Made in microseconds, never held whole.
 */
export function zerosZlib(mib: number): Uint8Array {
  const segment = deflateRawSync(new Uint8Array(1 << 20), { finishFlush: constants.Z_FULL_FLUSH });
  const out = new Uint8Array(2 + segment.length * mib + 2 + 4);
  out.set([0x78, 0x9c]);
  for (let i = 0; i < mib; i++) out.set(segment, 2 + i * segment.length);
  let o = 2 + segment.length * mib;
  out.set([0x03, 0x00], o); // final block, fixed Huffman, end-of-block only
  o += 2;
  const b = (mib * 2 ** 20) % 65521; // Adler-32 of zeros: a stays 1, b counts the bytes
  out.set([b >>> 8, b & 255, 0, 1], o);
  return out;
}

/** A PNG chunk; the CRC is left 0 (the decoders do not check it). */
function pngChunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  out.set(u32be(body.length));
  out.set(ascii(type), 4);
  out.set(body, 8);
  return out;
}

/** A width x height 8-bit RGBA PNG whose one IDAT holds `zlib` as given (then IEND). */
export function pngWithIdat(width: number, height: number, zlib: Uint8Array): Uint8Array {
  const ihdr = Uint8Array.from([...u32be(width), ...u32be(height), 8, 6, 0, 0, 0]);
  const parts = [
    Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib),
    pngChunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
