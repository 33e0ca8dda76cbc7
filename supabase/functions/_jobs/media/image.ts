/**
 * Image codecs for the media jobs: sniffing, header-only info, decoding PNG/JPEG to RGBA8 and
 * encoding RGBA8 to PNG/JPEG. Pure: bytes in, bytes out, no Storage and no Supabase.
 *
 * Libraries:
 * - PNG decode: fast-png (every colour type, bit depths 1–16, palette + tRNS, Adam7), fed by our
 *   own chunk walk and bounded inflate (below).
 * - PNG encode: our own writer (adaptive per-row filters, colour-type reduction) over node:zlib's
 *   deflate; fast-png's encoder writes unfiltered rows, which makes photos ~1.5x bigger and is
 *   ~2x slower (see tests/media/README.md).
 * - JPEG: jpeg-js (baseline + progressive Huffman decode, CMYK/Adobe, baseline encode).
 *
 * Colour management: pixels are taken as sRGB; embedded ICC profiles and EXIF are not carried over
 * (the EXIF orientation is applied to the pixels on decode, so the output displays upright).
 *
 * Hostile files. Every decode is bounded by what the header declares, before it costs memory:
 * - PNG: the IHDR fixes exactly how many bytes the IDAT stream inflates to (per row one filter
 *   byte plus ceil(width x channels x depth / 8), per Adam7 pass when interlaced). The stream is
 *   inflated by node:zlib with exactly that as maxOutputLength, which zlib checks after every
 *   PNG_INFLATE_CHUNK (64 KiB) of output: a stream that yields more is abandoned there, as
 *   `decompression_bomb`, whatever it would expand to. Only IHDR, PLTE, tRNS and the inflated
 *   rows reach fast-png (as stored deflate blocks, which it only copies), so the ancillary chunks
 *   it would inflate whole (iCCP) never are. (fflate's streaming inflate, which fast-png uses,
 *   cannot stop inside one push and costs 2-3x the CPU in small pushes.)
 * - JPEG: jpeg-js gets the frame header's own size as its resolution limit (a later, larger frame
 *   is `too_large`) and a memory limit derived from those dimensions (JPEG_BYTES_PER_PIXEL);
 *   more than that means a pathological structure (hundreds of components) and is
 *   `decompression_bomb`. More than JPEG_MAX_SCANS scans (each a full pass over the image, the
 *   progressive-JPEG CPU bomb) is `decompression_bomb` too.
 * Both sit under the caller's megapixel limit and DECODE_HARD_MAX_MEGAPIXELS (`too_large`).
 *
 * Truncated files ("the header promises more than the file has") are `corrupt_image`, whose
 * message starts with "truncated":
 * - PNG: a chunk whose declared length runs past the end of the file, an IDAT stream that ends
 *   before the rows the IHDR declares (or breaks off mid-stream), or no IEND chunk.
 * - JPEG: a segment running past the end of the file, or no EOI marker after the scan data.
 * truncatedImage() applies the checks a file's head can show (a chunk or segment longer than the
 * file, or a whole file without its trailer) at create time.
 */
import { decode as decodePngLib } from 'npm:fast-png@8.0.0';
import jpeg from 'npm:jpeg-js@0.4.4';
import { deflateSync, inflateSync } from 'node:zlib';
import { MediaError } from './errors.ts';

export { MediaError } from './errors.ts';
export type { MediaErrorCode } from './errors.ts';

/** 8-bit straight (non-premultiplied) RGBA, row-major, top row first. */
export type RgbaImage = { width: number; height: number; data: Uint8ClampedArray };

export type ImageFormat = 'png' | 'jpeg';

export interface ImageInfo {
  format: ImageFormat;
  /** Width and height as displayed, i.e. after the EXIF orientation that decodeImage applies. */
  width: number;
  height: number;
  megapixels: number;
  /** Bits per sample as stored (PNG 1–16, JPEG 8). */
  bitDepth: number;
  /** PNG: has an alpha channel or tRNS transparency. JPEG: false. */
  hasAlpha: boolean;
  /** JPEG: progressive (SOF2). PNG: Adam7 interlaced. */
  progressive: boolean;
  /** EXIF orientation 1–8 (1 when absent, always 1 for PNG). */
  orientation: number;
}

export interface DecodeOptions {
  /** Refuse (MediaError 'too_large') images above this many megapixels before decoding. */
  maxMegapixels?: number;
  /** Rotate/flip JPEGs by their EXIF orientation (default true). */
  applyOrientation?: boolean;
}

/**
 * Hard ceiling for any decode, whatever the caller asks: 40 MP of RGBA is 160 MB, beyond what an
 * Edge Function (256 MB) can hold next to the input and output bytes.
 */
export const DECODE_HARD_MAX_MEGAPIXELS = 40;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(bytes: Uint8Array, sig: number[], at = 0): boolean {
  if (bytes.length < at + sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (bytes[at + i] !== sig[i]) return false;
  return true;
}

function ascii(bytes: Uint8Array, at: number, len: number): string {
  let s = '';
  for (let i = at; i < at + len && i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/**
 * The format named by the magic bytes: 'png', 'jpeg', another known image format we do not read,
 * or null when unrecognised.
 */
export function sniffImageFormat(bytes: Uint8Array): string | null {
  if (startsWith(bytes, PNG_SIGNATURE)) return 'png';
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (ascii(bytes, 0, 4) === 'GIF8') return 'gif';
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return 'webp';
  if (ascii(bytes, 0, 2) === 'BM') return 'bmp';
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) {
    return 'tiff';
  }
  if (ascii(bytes, 4, 4) === 'ftyp') {
    const brand = ascii(bytes, 8, 4);
    if (brand.startsWith('avi')) return 'avif';
    if (/^(heic|heix|hevc|heim|heis|mif1|msf1)$/.test(brand)) return 'heic';
  }
  if (startsWith(bytes, [0xff, 0x0a]) || ascii(bytes, 4, 8) === 'JXL \r\n\x87\n') return 'jxl';
  return null;
}

function hintedFormat(contentType?: string): ImageFormat | null {
  const t = (contentType ?? '').toLowerCase().split(';')[0].trim();
  if (t === 'image/png' || t === 'image/apng') return 'png';
  if (t === 'image/jpeg' || t === 'image/jpg' || t === 'image/pjpeg') return 'jpeg';
  return null;
}

function requireFormat(bytes: Uint8Array, contentType?: string): ImageFormat {
  if (!(bytes instanceof Uint8Array)) {
    throw new MediaError('invalid_params', 'image bytes must be a Uint8Array');
  }
  const sniffed = sniffImageFormat(bytes);
  if (sniffed === 'png' || sniffed === 'jpeg') return sniffed;
  if (sniffed) {
    throw new MediaError('unsupported_format', `${sniffed} images are not supported (PNG or JPEG)`);
  }
  const hint = hintedFormat(contentType);
  if (hint) {
    // Declared as PNG/JPEG but the bytes do not start like one: broken upload, not another format.
    throw new MediaError('corrupt_image', `not a valid ${hint.toUpperCase()} file (bad signature)`);
  }
  throw new MediaError('unsupported_format', 'unrecognised image format (PNG or JPEG)');
}

function u32be(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

function pngInfo(bytes: Uint8Array): ImageInfo {
  if (bytes.length < 33 || ascii(bytes, 12, 4) !== 'IHDR' || u32be(bytes, 8) !== 13) {
    throw new MediaError('corrupt_image', 'PNG without a valid IHDR chunk');
  }
  const width = u32be(bytes, 16);
  const height = u32be(bytes, 20);
  const bitDepth = bytes[24];
  const colorType = bytes[25];
  const interlace = bytes[28];
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new MediaError('corrupt_image', `PNG with invalid dimensions ${width}x${height}`);
  }
  const validDepths: Record<number, number[]> = {
    0: [1, 2, 4, 8, 16],
    2: [8, 16],
    3: [1, 2, 4, 8],
    4: [8, 16],
    6: [8, 16],
  };
  if (!validDepths[colorType]?.includes(bitDepth) || interlace > 1) {
    throw new MediaError(
      'corrupt_image',
      `PNG with invalid colour type ${colorType} / bit depth ${bitDepth}`,
    );
  }
  // tRNS comes after IHDR (and PLTE); look for it in the chunks before the first IDAT.
  let hasAlpha = colorType === 4 || colorType === 6;
  for (let i = 33; !hasAlpha && i + 8 <= bytes.length;) {
    const len = u32be(bytes, i);
    const type = ascii(bytes, i + 4, 4);
    if (type === 'tRNS') hasAlpha = true;
    if (type === 'IDAT' || type === 'IEND') break;
    i += 12 + len;
  }
  return {
    format: 'png',
    width,
    height,
    megapixels: (width * height) / 1e6,
    bitDepth,
    hasAlpha,
    progressive: interlace === 1,
    orientation: 1,
  };
}

/** EXIF orientation from an APP1 segment body (starting at "Exif\0\0"); 1 when absent/invalid. */
function exifOrientation(b: Uint8Array, start: number, end: number): number {
  if (ascii(b, start, 6) !== 'Exif\0\0') return 1;
  const t = start + 6; // TIFF header
  if (t + 8 > end) return 1;
  const le = b[t] === 0x49 && b[t + 1] === 0x49;
  if (!le && !(b[t] === 0x4d && b[t + 1] === 0x4d)) return 1;
  const u16 = (i: number) => (le ? b[i] | (b[i + 1] << 8) : (b[i] << 8) | b[i + 1]);
  const u32 = (i: number) =>
    le ? (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0 : u32be(b, i);
  const ifd = t + u32(t + 4);
  if (ifd + 2 > end) return 1;
  const count = u16(ifd);
  for (let k = 0; k < count; k++) {
    const e = ifd + 2 + k * 12;
    if (e + 12 > end) return 1;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

function jpegInfo(bytes: Uint8Array): ImageInfo {
  const n = bytes.length;
  let i = 2;
  let orientation = 1;
  while (i < n) {
    if (bytes[i] !== 0xff) {
      throw new MediaError('corrupt_image', `JPEG marker expected at byte ${i}`);
    }
    const m = bytes[i + 1];
    if (m === 0xff) {
      i++; // fill byte
      continue;
    }
    i += 2;
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) continue;
    if (m === 0xd9 || m === 0xda) {
      throw new MediaError('corrupt_image', 'JPEG without a frame header (SOF) before its data');
    }
    if (i + 2 > n) break;
    const len = (bytes[i] << 8) | bytes[i + 1];
    if (len < 2) throw new MediaError('corrupt_image', 'JPEG segment with invalid length');
    const isSof = m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
    if (isSof) {
      if (i + 8 > n) break;
      const precision = bytes[i + 2];
      const height = (bytes[i + 3] << 8) | bytes[i + 4];
      const width = (bytes[i + 5] << 8) | bytes[i + 6];
      if (m !== 0xc0 && m !== 0xc1 && m !== 0xc2) {
        const kind = m === 0xc3 || m === 0xc7 || m === 0xcb || m === 0xcf
          ? 'lossless'
          : m >= 0xc9
          ? 'arithmetic-coded'
          : 'hierarchical';
        throw new MediaError('unsupported_format', `${kind} JPEG is not supported`);
      }
      if (precision !== 8) {
        throw new MediaError('unsupported_format', `${precision}-bit JPEG is not supported`);
      }
      if (width === 0 || height === 0) {
        throw new MediaError('corrupt_image', `JPEG with invalid dimensions ${width}x${height}`);
      }
      const swap = orientation >= 5;
      return {
        format: 'jpeg',
        width: swap ? height : width,
        height: swap ? width : height,
        megapixels: (width * height) / 1e6,
        bitDepth: 8,
        hasAlpha: false,
        progressive: m === 0xc2,
        orientation,
      };
    }
    if (m === 0xe1) orientation = exifOrientation(bytes, i + 2, Math.min(n, i + len));
    i += len;
  }
  throw new MediaError('corrupt_image', 'truncated JPEG: no frame header found');
}

/**
 * Format and dimensions from the headers only, without decoding pixels: cheap enough to refuse
 * too-large images before spending CPU. Works on a prefix of the file (PNG: 33 bytes; JPEG: up to
 * the frame header, usually a few KB unless large EXIF/ICC segments come first).
 */
export function imageInfo(bytes: Uint8Array, contentType?: string): ImageInfo {
  const format = requireFormat(bytes, contentType);
  return format === 'png' ? pngInfo(bytes) : jpegInfo(bytes);
}

/**
 * Decodes PNG or JPEG to RGBA8. The format is sniffed from the magic bytes; contentType is only a
 * hint (used to tell "corrupt PNG" from "unknown format").
 */
export function decodeImage(
  bytes: Uint8Array,
  contentType?: string,
  opts: DecodeOptions = {},
): RgbaImage {
  const info = imageInfo(bytes, contentType);
  const max = Math.min(
    opts.maxMegapixels ?? DECODE_HARD_MAX_MEGAPIXELS,
    DECODE_HARD_MAX_MEGAPIXELS,
  );
  if (info.megapixels > max) {
    throw new MediaError(
      'too_large',
      `image is ${info.width}x${info.height} (${info.megapixels.toFixed(1)} MP), limit ${max} MP`,
    );
  }
  if (info.format === 'png') return decodePng(bytes);
  const img = decodeJpeg(bytes, info, max);
  return opts.applyOrientation === false ? img : orient(img, info.orientation);
}

/**
 * Most scans a JPEG may have. Each scan is a full pass over the image's coefficients, so a few KB
 * of tiny progressive scans cost seconds of CPU; libjpeg-turbo recommends refusing more than 500
 * (its `-maxscans` / TJPARAM_SCANLIMIT), ordinary progressive files have about ten.
 */
export const JPEG_MAX_SCANS = 500;

/**
 * Bytes jpeg-js accounts per pixel of the frame at most, for up to four components at full
 * resolution: coefficient blocks (4 per sample), decoded component lines (1), the colour
 * conversion buffer (1) and the RGBA result (4 per pixel). 32 leaves room for MCU padding.
 */
const JPEG_BYTES_PER_PIXEL = 32;

const hex = (m: number) => `0x${m.toString(16)}`;

type JpegWalk =
  | { state: 'complete'; scans: number }
  /** The head ends before the file does: nothing more can be told. */
  | { state: 'unknown'; scans: number }
  | { state: 'truncated' | 'corrupt' | 'bomb'; scans: number; reason: string };

/**
 * Walks a JPEG's markers from SOI to the first EOI: segments are skipped by their length, scan
 * data up to the next marker (0xFF followed by neither a stuffed 0x00 nor a restart marker).
 * `size` is the whole file's length when `b` is only its head. Entropy-coded data cannot contain
 * FF D9, and thumbnails in EXIF sit inside their segment, so this finds the main image's EOI and
 * tells truncated uploads, which jpeg-js would otherwise decode as a half-grey image.
 */
function walkJpeg(b: Uint8Array, size = b.length): JpegWalk {
  const n = b.length;
  let i = 2;
  let scans = 0;
  const ranOut = (reason: string): JpegWalk =>
    n < size ? { state: 'unknown', scans } : { state: 'truncated', scans, reason };
  for (;;) {
    if (i + 2 > n) return ranOut('the file ends before its end-of-image marker');
    if (b[i] !== 0xff) {
      return { state: 'corrupt', scans, reason: `JPEG marker expected at byte ${i}` };
    }
    const m = b[i + 1];
    if (m === 0xff) {
      i++; // fill byte
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      i += 2;
      continue;
    }
    if (m === 0xd9) return { state: 'complete', scans };
    if (i + 4 > n) return ranOut('the file ends inside a segment header');
    const len = (b[i + 2] << 8) | b[i + 3];
    if (len < 2) return { state: 'corrupt', scans, reason: 'JPEG segment with invalid length' };
    const end = i + 2 + len;
    if (end > size) {
      return {
        state: 'truncated',
        scans,
        reason: `segment ${hex(m)} at byte ${i} declares ${len} bytes, past the end of the file`,
      };
    }
    if (m !== 0xda) {
      i = end;
      continue;
    }
    if (++scans > JPEG_MAX_SCANS) {
      return { state: 'bomb', scans, reason: `more than ${JPEG_MAX_SCANS} scans` };
    }
    // Entropy-coded data, up to the next real marker.
    let k = end;
    for (;;) {
      k = b.indexOf(0xff, k);
      if (k < 0 || k + 1 >= n) return ranOut('the scan data ends without an end-of-image marker');
      const x = b[k + 1];
      if (x === 0x00 || (x >= 0xd0 && x <= 0xd7)) k += 2;
      else if (x === 0xff) k += 1;
      else break;
    }
    i = k;
  }
}

function decodeJpeg(bytes: Uint8Array, info: ImageInfo, maxMegapixels: number): RgbaImage {
  const walk = walkJpeg(bytes);
  if (walk.state === 'bomb') {
    throw new MediaError('decompression_bomb', `JPEG refused before decoding: ${walk.reason}`);
  }
  if (walk.state === 'truncated') {
    throw new MediaError('corrupt_image', `truncated JPEG: ${walk.reason}`);
  }
  if (walk.state !== 'complete') {
    const why = 'reason' in walk ? walk.reason : 'no end-of-image marker after the data';
    throw new MediaError('corrupt_image', `JPEG could not be decoded: ${why}`);
  }
  // The frame header found by jpegInfo bounds the decode: its pixel count (a later, larger
  // frame is refused) and the memory that many pixels can need.
  const pixels = info.width * info.height;
  const maxResolutionInMP = Math.min(maxMegapixels, (pixels + 0.5) / 1e6);
  const padded = (info.width + 32) * (info.height + 32);
  const maxMemoryUsageInMB = Math.ceil((padded * JPEG_BYTES_PER_PIXEL) / (1024 * 1024)) + 4;
  let out: { width: number; height: number; data: Uint8Array };
  try {
    out = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      tolerantDecoding: true,
      maxResolutionInMP,
      maxMemoryUsageInMB,
    });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/maxResolutionInMP/.test(msg)) {
      throw new MediaError('too_large', `JPEG too large to decode: ${msg}`, { cause: err });
    }
    if (/maxMemoryUsageInMB/.test(msg)) {
      throw new MediaError(
        'decompression_bomb',
        `JPEG needs more memory than its ${info.width}x${info.height} frame allows (${maxMemoryUsageInMB} MB): ${msg}`,
        { cause: err },
      );
    }
    throw new MediaError('corrupt_image', `JPEG could not be decoded: ${msg}`, { cause: err });
  }
  const { width, height, data } = out;
  if (!data || data.length !== width * height * 4) {
    throw new MediaError('corrupt_image', 'JPEG decoded to an unexpected pixel count');
  }
  return { width, height, data: new Uint8ClampedArray(data.buffer, data.byteOffset, data.length) };
}

// ---------------------------------------------------------------------------------------------
// PNG: chunk walk and bounded inflate

/**
 * zlib's output chunk while inflating IDAT data: inflateSync checks maxOutputLength after each
 * chunk, so a bomb is given up at most this many bytes past its header's bound.
 */
const PNG_INFLATE_CHUNK = 64 * 1024;

/** The data of several IDAT chunks, joined. */
function concatChunks(bytes: Uint8Array, chunks: PngChunk[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(bytes.subarray(c.at + 8, c.at + 8 + c.length), o);
    o += c.length;
  }
  return out;
}

/** A stored deflate block: 5 header bytes, then up to 65,535 bytes as they are. */
const STORED_BLOCK = 5 + 65535;

/** Samples per pixel by PNG colour type. */
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** Adam7 passes: [x0, y0, dx, dy]. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

/**
 * Exactly how many bytes a PNG's IDAT stream inflates to, from its IHDR: each row is one filter
 * byte and ceil(width x channels x bitDepth / 8) bytes of samples; interlaced images have the
 * rows of each non-empty Adam7 pass.
 */
export function pngInflatedBytes(
  width: number,
  height: number,
  channels: number,
  bitDepth: number,
  interlaced: boolean,
): number {
  const row = (w: number) => 1 + Math.ceil((w * channels * bitDepth) / 8);
  if (!interlaced) return height * row(width);
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil((width - x0) / dx);
    const h = Math.ceil((height - y0) / dy);
    if (w > 0 && h > 0) total += h * row(w);
  }
  return total;
}

interface PngChunk {
  type: string;
  /** Offset of the chunk's length field. */
  at: number;
  length: number;
}

const truncatedPng = (why: string) => new MediaError('corrupt_image', `truncated PNG: ${why}`);

/**
 * The chunks of a PNG from IHDR to IEND. `size` is the whole file's length when `bytes` is only
 * its head: the walk then stops, without a verdict, where the head ends. Throws corrupt_image
 * ("truncated") for a chunk that runs past the end of the file, or a whole file without IEND.
 */
function pngChunks(bytes: Uint8Array, size = bytes.length): { chunks: PngChunk[]; end: boolean } {
  const chunks: PngChunk[] = [];
  for (let i = 8;;) {
    if (i + 8 > bytes.length) {
      if (bytes.length < size) return { chunks, end: false };
      throw truncatedPng(`the file ends after ${chunks.length} chunks, without an IEND chunk`);
    }
    const length = u32be(bytes, i);
    const type = ascii(bytes, i + 4, 4);
    if (length > 0x7fffffff) {
      throw new MediaError('corrupt_image', `PNG chunk ${type} with invalid length ${length}`);
    }
    if (i + 12 + length > size) {
      throw truncatedPng(
        `chunk ${type} at byte ${i} declares ${length} bytes, past the end of the ${size}-byte file`,
      );
    }
    chunks.push({ type, at: i, length });
    if (type === 'IEND') return { chunks, end: true };
    i += 12 + length;
  }
}

/** Adler-32 of b, continuing from `adler` (zlib's checksum). */
function adler32(adler: number, b: Uint8Array): number {
  let a = adler & 0xffff;
  let s = adler >>> 16;
  for (let i = 0; i < b.length;) {
    const end = Math.min(b.length, i + 5552);
    for (; i < end; i++) {
      a += b[i];
      s += a;
    }
    a %= 65521;
    s %= 65521;
  }
  return ((s << 16) | a) >>> 0;
}

function putU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 255;
  out[at + 2] = (v >>> 8) & 255;
  out[at + 3] = v & 255;
}

/**
 * Checks a PNG's structure and inflates its IDAT stream within the bound its IHDR sets, then
 * returns a PNG for fast-png made of the same IHDR, PLTE and tRNS and one IDAT holding the
 * inflated rows as stored (uncompressed) deflate blocks, so fast-png's own inflate only copies.
 * Expects imageInfo to have validated the IHDR. Nothing beyond the bound (plus one zlib output
 * chunk) is ever allocated.
 */
function stagePng(bytes: Uint8Array): Uint8Array {
  const { chunks } = pngChunks(bytes);
  const width = u32be(bytes, 16);
  const height = u32be(bytes, 20);
  const depth = bytes[24];
  const colorType = bytes[25];
  const expected = pngInflatedBytes(width, height, PNG_CHANNELS[colorType], depth, bytes[28] === 1);
  const firstIdat = chunks.findIndex((c) => c.type === 'IDAT');
  if (firstIdat < 0) throw truncatedPng('no image data (IDAT chunk)');
  const kept = chunks.slice(0, firstIdat).filter((c) => c.type === 'PLTE' || c.type === 'tRNS');
  if (colorType === 3 && !kept.some((c) => c.type === 'PLTE')) {
    throw new MediaError('corrupt_image', 'palette PNG without a PLTE chunk before its data');
  }
  const idats = chunks.filter((c) => c.type === 'IDAT');

  const blocks = Math.ceil(expected / 65535);
  const zlibLength = 2 + blocks * 5 + expected + 4;
  const keptLength = kept.reduce((sum, c) => sum + 12 + c.length, 0);
  const out = new Uint8Array(33 + keptLength + 12 + zlibLength + 12);
  out.set(bytes.subarray(0, 33)); // signature + IHDR
  let o = 33;
  for (const c of kept) {
    out.set(bytes.subarray(c.at, c.at + 12 + c.length), o);
    o += 12 + c.length;
  }
  putU32(out, o, zlibLength);
  out.set([0x49, 0x44, 0x41, 0x54], o + 4); // IDAT
  const z = o + 8;
  out[z] = 0x78; // zlib header: deflate, 32 KiB window, no dictionary
  out[z + 1] = 0x01;

  // The compressed stream, in one piece (IDAT chunks split it anywhere).
  const compressed = idats.length === 1
    ? bytes.subarray(idats[0].at + 8, idats[0].at + 8 + idats[0].length)
    : concatChunks(bytes, idats);
  let rows: Uint8Array;
  try {
    rows = inflateSync(compressed, { maxOutputLength: expected, chunkSize: PNG_INFLATE_CHUNK });
  } catch (err) {
    const code = (err as { code?: string } | null)?.code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new MediaError(
        'decompression_bomb',
        `PNG image data inflates past the ${expected} bytes its ${width}x${height} header declares`,
        { cause: err, details: { declared_bytes: expected, compressed_bytes: compressed.length } },
      );
    }
    if (code === 'Z_BUF_ERROR') {
      throw truncatedPng(`the image data stream breaks off before its end`);
    }
    const msg = err instanceof Error ? err.message : String(err);
    throw new MediaError('corrupt_image', `PNG could not be decoded: ${msg}`, { cause: err });
  }
  if (rows.length > expected) {
    // Only a runtime whose node:zlib ignored maxOutputLength gets here; still not decoded.
    throw new MediaError(
      'decompression_bomb',
      `PNG image data inflates to ${rows.length} bytes, its ${width}x${height} header declares ${expected}`,
      { details: { declared_bytes: expected, compressed_bytes: compressed.length } },
    );
  }
  if (rows.length < expected) {
    throw truncatedPng(
      `the image data holds ${rows.length} of the ${expected} bytes its header declares`,
    );
  }
  for (let b = 0, from = 0; b < blocks; b++, from += 65535) {
    out.set(rows.subarray(from, Math.min(expected, from + 65535)), z + 2 + b * STORED_BLOCK + 5);
  }
  const adler = adler32(1, rows);
  for (let b = 0; b < blocks; b++) {
    const len = Math.min(65535, expected - b * 65535);
    const at = z + 2 + b * STORED_BLOCK;
    out[at] = b === blocks - 1 ? 1 : 0; // BFINAL, BTYPE 00 (stored)
    out[at + 1] = len & 255;
    out[at + 2] = len >>> 8;
    out[at + 3] = ~len & 255;
    out[at + 4] = (~len >>> 8) & 255;
  }
  putU32(out, z + zlibLength - 4, adler);
  // The IDAT's CRC stays 0: fast-png does not check CRCs. Then IEND with its fixed CRC.
  out.set([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82], z + zlibLength + 4);
  return out;
}

/**
 * Why a file of `size` bytes starting with `head` is cut short, as far as the head shows it: a
 * PNG chunk or JPEG segment declared longer than the file, or a whole file (head = file) without
 * its IEND / EOI. null when nothing is wrong or the head cannot tell. Does not decode anything.
 */
export function truncatedImage(head: Uint8Array, size: number): string | null {
  const format = sniffImageFormat(head);
  if (format === 'png') {
    try {
      pngChunks(head, size);
      return null;
    } catch (err) {
      // Other structural faults are the decoder's to report.
      const msg = err instanceof MediaError ? err.message : '';
      return msg.startsWith('truncated') ? msg : null;
    }
  }
  if (format === 'jpeg') {
    const walk = walkJpeg(head, size);
    return walk.state === 'truncated' ? `truncated JPEG: ${walk.reason}` : null;
  }
  return null;
}

function decodePng(bytes: Uint8Array): RgbaImage {
  const staged = stagePng(bytes);
  let p: ReturnType<typeof decodePngLib>;
  try {
    p = decodePngLib(staged);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new MediaError('corrupt_image', `PNG could not be decoded: ${msg}`, { cause: err });
  }
  const { width: w, height: h, depth, channels } = p;
  const src = p.data;
  const out = new Uint8ClampedArray(w * h * 4);
  const expected = depth < 8 ? Math.ceil((w * depth) / 8) * h : w * h * channels;
  if (!src || src.length < expected) {
    throw new MediaError('corrupt_image', 'PNG image data is truncated');
  }
  const trns = p.transparency;

  if (p.palette) {
    const pal = p.palette;
    const lut = new Uint8Array(256 * 4); // missing entries stay transparent black
    for (let k = 0; k < pal.length && k < 256; k++) {
      const c = pal[k];
      lut[k * 4] = c[0];
      lut[k * 4 + 1] = c[1];
      lut[k * 4 + 2] = c[2];
      lut[k * 4 + 3] = c.length > 3 ? c[3] : 255;
    }
    unpackSamples(src as Uint8Array, w, h, depth, (x, y, idx) => {
      const o = (y * w + x) * 4;
      const l = idx * 4;
      out[o] = lut[l];
      out[o + 1] = lut[l + 1];
      out[o + 2] = lut[l + 2];
      out[o + 3] = lut[l + 3];
    });
    return { width: w, height: h, data: out };
  }

  if (depth < 8) {
    // Greyscale 1/2/4-bit.
    const scale = 255 / ((1 << depth) - 1);
    const key = trns && trns.length >= 1 ? trns[0] : -1;
    unpackSamples(src as Uint8Array, w, h, depth, (x, y, v) => {
      const o = (y * w + x) * 4;
      const g = Math.round(v * scale);
      out[o] = g;
      out[o + 1] = g;
      out[o + 2] = g;
      out[o + 3] = v === key ? 0 : 255;
    });
    return { width: w, height: h, data: out };
  }

  const n = w * h;
  // Uint8ClampedArray rounds to nearest on store, so v * 255/65535 lands on round(v / 257).
  const to8 = depth === 16 ? (v: number) => v * (255 / 65535) : (v: number) => v;
  if (channels === 1) {
    const key = trns && trns.length >= 1 ? trns[0] : -1;
    for (let i = 0, o = 0; i < n; i++, o += 4) {
      const v = src[i];
      const g = to8(v);
      out[o] = g;
      out[o + 1] = g;
      out[o + 2] = g;
      out[o + 3] = v === key ? 0 : 255;
    }
  } else if (channels === 2) {
    for (let i = 0, o = 0; i < n; i++, o += 4) {
      const g = to8(src[i * 2]);
      out[o] = g;
      out[o + 1] = g;
      out[o + 2] = g;
      out[o + 3] = to8(src[i * 2 + 1]);
    }
  } else if (channels === 3) {
    const hasKey = !!trns && trns.length >= 3;
    const kr = hasKey ? trns[0] : -1, kg = hasKey ? trns[1] : -1, kb = hasKey ? trns[2] : -1;
    for (let i = 0, s = 0, o = 0; i < n; i++, s += 3, o += 4) {
      const r = src[s], g = src[s + 1], b = src[s + 2];
      out[o] = to8(r);
      out[o + 1] = to8(g);
      out[o + 2] = to8(b);
      out[o + 3] = r === kr && g === kg && b === kb ? 0 : 255;
    }
  } else if (channels === 4) {
    if (depth === 8) out.set(src.subarray(0, n * 4));
    else for (let i = 0; i < n * 4; i++) out[i] = to8(src[i]);
  } else {
    throw new MediaError('corrupt_image', `PNG with ${channels} channels`);
  }
  return { width: w, height: h, data: out };
}

/** Calls fn(x, y, value) for each sample of packed 1/2/4/8-bit rows (rows are byte-aligned). */
function unpackSamples(
  src: Uint8Array,
  w: number,
  h: number,
  depth: number,
  fn: (x: number, y: number, v: number) => void,
): void {
  const stride = Math.ceil((w * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < h; y++) {
    const row = y * stride;
    for (let x = 0; x < w; x++) {
      if (depth === 8) {
        fn(x, y, src[row + x]);
      } else {
        const bit = x * depth;
        const shift = 8 - depth - (bit & 7);
        fn(x, y, (src[row + (bit >> 3)] >> shift) & mask);
      }
    }
  }
}

/** Applies an EXIF orientation (1–8) so the pixels display upright. */
export function orient(img: RgbaImage, orientation: number): RgbaImage {
  if (orientation <= 1 || orientation > 8) return img;
  const { width: w, height: h } = img;
  const src = new Uint32Array(img.data.buffer, img.data.byteOffset, w * h);
  const swap = orientation >= 5;
  const dw = swap ? h : w;
  const dh = swap ? w : h;
  const out = new Uint8ClampedArray(w * h * 4);
  const dst = new Uint32Array(out.buffer);
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      let sx: number, sy: number;
      switch (orientation) {
        case 2:
          sx = w - 1 - x, sy = y;
          break;
        case 3:
          sx = w - 1 - x, sy = h - 1 - y;
          break;
        case 4:
          sx = x, sy = h - 1 - y;
          break;
        case 5:
          sx = y, sy = x;
          break;
        case 6:
          sx = y, sy = h - 1 - x;
          break;
        case 7:
          sx = w - 1 - y, sy = h - 1 - x;
          break;
        default: // 8
          sx = w - 1 - y, sy = x;
      }
      dst[y * dw + x] = src[sy * w + sx];
    }
  }
  return { width: dw, height: dh, data: out };
}

function checkImage(img: RgbaImage): void {
  const ok = img && Number.isInteger(img.width) && Number.isInteger(img.height) &&
    img.width > 0 && img.height > 0 && img.data instanceof Uint8ClampedArray &&
    img.data.length === img.width * img.height * 4;
  if (!ok) {
    throw new MediaError('invalid_params', 'image must be {width, height, data: RGBA8 array}');
  }
}

// ---------------------------------------------------------------------------------------------
// PNG encoder

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface PngEncodeOptions {
  /** zlib level 1–9 (default 3: within ~5% of level 9's size on photos at ~2/3 of the CPU). */
  level?: number;
}

/**
 * Encodes RGBA8 as PNG. Chooses the smallest lossless colour type (grey, grey+alpha, RGB, RGBA)
 * and an adaptive filter per row (minimum sum of absolute differences, as libpng does).
 */
export function encodePng(img: RgbaImage, opts: PngEncodeOptions = {}): Uint8Array {
  checkImage(img);
  const { width: w, height: h, data } = img;
  const n = w * h;
  let opaque = true;
  let grey = true;
  for (let i = 0; i < n * 4; i += 4) {
    if (data[i + 3] !== 255) opaque = false;
    if (data[i] !== data[i + 1] || data[i] !== data[i + 2]) grey = false;
    if (!opaque && !grey) break;
  }
  const channels = grey ? (opaque ? 1 : 2) : (opaque ? 3 : 4);
  const colorType = grey ? (opaque ? 0 : 4) : (opaque ? 2 : 6);
  const stride = w * channels;

  // Pack the samples of the chosen colour type, one row at a time, and filter it.
  const filtered = new Uint8Array(h * (stride + 1));
  let prev = new Uint8Array(stride);
  let cur = new Uint8Array(stride);
  const bpp = channels;
  for (let y = 0; y < h; y++) {
    const base = y * w * 4;
    if (channels === 4) {
      cur.set(data.subarray(base, base + stride));
    } else {
      for (let x = 0, s = base, d = 0; x < w; x++, s += 4) {
        if (channels === 3) {
          cur[d++] = data[s];
          cur[d++] = data[s + 1];
          cur[d++] = data[s + 2];
        } else if (channels === 2) {
          cur[d++] = data[s];
          cur[d++] = data[s + 3];
        } else {
          cur[d++] = data[s];
        }
      }
    }
    filterRow(cur, prev, y > 0, bpp, filtered, y * (stride + 1));
    const t = prev;
    prev = cur;
    cur = t;
  }

  const level = Math.max(1, Math.min(9, Math.round(opts.level ?? 3)));
  const z = deflateSync(filtered, { level });
  const idat = new Uint8Array(z.buffer, z.byteOffset, z.byteLength);

  const out = new Uint8Array(8 + 25 + 12 + idat.length + 12);
  out.set(PNG_SIGNATURE, 0);
  let o = 8;
  const chunk = (type: string, body: Uint8Array) => {
    const len = body.length;
    out[o] = len >>> 24;
    out[o + 1] = (len >>> 16) & 255;
    out[o + 2] = (len >>> 8) & 255;
    out[o + 3] = len & 255;
    for (let k = 0; k < 4; k++) out[o + 4 + k] = type.charCodeAt(k);
    out.set(body, o + 8);
    const c = crc32(out, o + 4, o + 8 + len);
    out[o + 8 + len] = c >>> 24;
    out[o + 9 + len] = (c >>> 16) & 255;
    out[o + 10 + len] = (c >>> 8) & 255;
    out[o + 11 + len] = c & 255;
    o += 12 + len;
  };
  const ihdr = new Uint8Array(13);
  ihdr.set([w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255], 0);
  ihdr.set([h >>> 24, (h >>> 16) & 255, (h >>> 8) & 255, h & 255], 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = colorType;
  chunk('IHDR', ihdr);
  chunk('IDAT', idat);
  chunk('IEND', new Uint8Array(0));
  return out;
}

/** Writes filter byte + filtered row at out[o]; picks the filter with the least |residual| sum. */
function filterRow(
  cur: Uint8Array,
  prev: Uint8Array,
  hasPrev: boolean,
  bpp: number,
  out: Uint8Array,
  o: number,
): void {
  const len = cur.length;
  let sNone = 0, sSub = 0, sUp = 0, sAvg = 0, sPaeth = 0;
  for (let i = 0; i < len; i++) {
    const x = cur[i];
    const a = i >= bpp ? cur[i - bpp] : 0;
    const b = hasPrev ? prev[i] : 0;
    const c = hasPrev && i >= bpp ? prev[i - bpp] : 0;
    const p = a + b - c;
    const pa = p > a ? p - a : a - p;
    const pb = p > b ? p - b : b - p;
    const pc = p > c ? p - c : c - p;
    const pr = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    let r = x;
    sNone += r < 128 ? r : 256 - r;
    r = (x - a) & 255;
    sSub += r < 128 ? r : 256 - r;
    r = (x - b) & 255;
    sUp += r < 128 ? r : 256 - r;
    r = (x - ((a + b) >> 1)) & 255;
    sAvg += r < 128 ? r : 256 - r;
    r = (x - pr) & 255;
    sPaeth += r < 128 ? r : 256 - r;
  }
  let f = 0, best = sNone;
  if (sSub < best) f = 1, best = sSub;
  if (sUp < best) f = 2, best = sUp;
  if (sAvg < best) f = 3, best = sAvg;
  if (sPaeth < best) f = 4, best = sPaeth;
  out[o] = f;
  const d = o + 1;
  for (let i = 0; i < len; i++) {
    const x = cur[i];
    const a = i >= bpp ? cur[i - bpp] : 0;
    const b = hasPrev ? prev[i] : 0;
    let r: number;
    if (f === 0) r = x;
    else if (f === 1) r = x - a;
    else if (f === 2) r = x - b;
    else if (f === 3) r = x - ((a + b) >> 1);
    else {
      const c = hasPrev && i >= bpp ? prev[i - bpp] : 0;
      const p = a + b - c;
      const pa = p > a ? p - a : a - p;
      const pb = p > b ? p - b : b - p;
      const pc = p > c ? p - c : c - p;
      r = x - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
    }
    out[d + i] = r & 255;
  }
}

// ---------------------------------------------------------------------------------------------
// JPEG encoder

export interface JpegEncodeOptions {
  /**
   * JPEG has no alpha: pixels that are not fully opaque are composited over this colour
   * (default white). Fully opaque images are encoded as they are.
   */
  background?: [number, number, number];
}

/** Encodes RGBA8 as baseline JPEG, 4:4:4 (jpeg-js does not subsample chroma). quality 1–100. */
export function encodeJpeg(img: RgbaImage, quality = 90, opts: JpegEncodeOptions = {}): Uint8Array {
  checkImage(img);
  if (!Number.isFinite(quality)) throw new MediaError('invalid_params', 'quality must be 1–100');
  const q = Math.max(1, Math.min(100, Math.round(quality)));
  let data: Uint8ClampedArray = img.data;
  const [br, bg, bb] = opts.background ?? [255, 255, 255];
  for (let i = 3; i < data.length; i += 4) {
    if (data[i] !== 255) {
      data = new Uint8ClampedArray(img.data);
      for (let k = 0; k < data.length; k += 4) {
        const a = data[k + 3] / 255;
        if (a === 1) continue;
        data[k] = data[k] * a + br * (1 - a);
        data[k + 1] = data[k + 1] * a + bg * (1 - a);
        data[k + 2] = data[k + 2] * a + bb * (1 - a);
        data[k + 3] = 255;
      }
      break;
    }
  }
  const out = jpeg.encode({ width: img.width, height: img.height, data }, q).data;
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
