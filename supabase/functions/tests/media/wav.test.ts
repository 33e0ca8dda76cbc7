import assert from 'node:assert/strict';
import {
  type Audio,
  decodeWav,
  encodeWav,
  MediaError,
  type SampleFormat,
  wavInfo,
} from '../../_jobs/media/wav.ts';
import { rng, sine } from './_media.ts';

/** Audio whose samples are exactly representable at `bits` (so a round trip must be exact). */
function quantised(channels: number, frames: number, fmt: SampleFormat, seed = 5): Audio {
  const rand = rng(seed);
  const chs = Array.from({ length: channels }, (_, c) => {
    const x = sine(440 * (c + 1), -6, frames / 48000, 48000);
    for (let i = 0; i < x.length; i++) {
      let v = x[i] + (rand() - 0.5) * 0.1;
      if (!fmt.float) {
        const s = 2 ** (fmt.bitsPerSample - 1);
        v = Math.max(-s, Math.min(s - 1, Math.round(v * s))) / s;
      }
      x[i] = v;
    }
    x[0] = fmt.float ? 1.5 : -1; // full scale (and > 1 for float)
    return x;
  });
  return { sampleRate: 48000, channels: chs, sourceFormat: fmt };
}

const FORMATS: SampleFormat[] = [
  { bitsPerSample: 16, float: false },
  { bitsPerSample: 24, float: false },
  { bitsPerSample: 32, float: true },
];

function u8(...parts: (string | number[] | Uint8Array)[]): Uint8Array {
  const arrays = parts.map((p) =>
    typeof p === 'string'
      ? new TextEncoder().encode(p)
      : p instanceof Uint8Array
      ? p
      : Uint8Array.from(p)
  );
  const out = new Uint8Array(arrays.reduce((s, a) => s + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}
const le32 = (v: number) => [v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255];
const le16 = (v: number) => [v & 255, (v >> 8) & 255];

/** Splits a WAV written by encodeWav into [riff header, fmt (+fact) chunks, data chunk]. */
function chunksOf(wav: Uint8Array) {
  const dataAt = wav.findIndex((_, i) => String.fromCharCode(...wav.subarray(i, i + 4)) === 'data');
  return { head: wav.subarray(12, dataAt), data: wav.subarray(dataAt) };
}

function riff(...chunks: Uint8Array[]): Uint8Array {
  const body = u8('WAVE', ...chunks);
  return u8('RIFF', le32(body.length), body);
}

Deno.test('WAV round trip is exact for 16/24-bit PCM and 32-bit float, mono and stereo', () => {
  for (const fmt of FORMATS) {
    for (const channels of [1, 2, 6]) {
      const audio = quantised(channels, 4801, fmt);
      const bytes = encodeWav(audio);
      const back = decodeWav(bytes);
      assert.equal(back.sampleRate, 48000);
      assert.deepEqual(back.sourceFormat, fmt);
      assert.equal(back.channels.length, channels);
      for (let c = 0; c < channels; c++) assert.deepEqual(back.channels[c], audio.channels[c]);
      assert.deepEqual(encodeWav(back), bytes, 'bytes are stable');
    }
  }
});

Deno.test('wavInfo reads the format and duration from a header-only prefix', () => {
  const audio = quantised(2, 48000 * 3, { bitsPerSample: 24, float: false });
  const bytes = encodeWav(audio);
  const info = wavInfo(bytes.slice(0, 200));
  assert.deepEqual(info, {
    sampleRate: 48000,
    channels: 2,
    bitsPerSample: 24,
    float: false,
    frames: 144000,
    durationSeconds: 3,
    dataEnd: bytes.length,
  });
  assert.equal(wavInfo(encodeWav(audio, { bitsPerSample: 32, float: true })).float, true);
});

Deno.test('LIST chunks before and after the data and odd-sized chunks are skipped', () => {
  const audio = quantised(2, 999, { bitsPerSample: 16, float: false });
  const { head, data } = chunksOf(encodeWav(audio));
  const list = u8('LIST', le32(13), 'INFOISFT', le32(5), 'x', [0]); // 13 bytes + pad
  const odd = u8('junk', le32(3), [1, 2, 3], [0]);
  const wav = riff(odd, head, list, data, list);
  const back = decodeWav(wav);
  assert.deepEqual(back.channels, audio.channels);
  // 24-bit mono with an odd frame count: an odd-sized data chunk, then its pad byte, then LIST.
  const mono = quantised(1, 7, { bitsPerSample: 24, float: false });
  const m = chunksOf(encodeWav(mono));
  assert.equal(m.data.length, 8 + 21 + 1);
  const back2 = decodeWav(riff(m.head, m.data, list));
  assert.deepEqual(back2.channels, mono.channels);
});

Deno.test('WAVE_FORMAT_EXTENSIBLE PCM and float are decoded', () => {
  const guid = (
    tag: number,
  ) => [...le16(tag), 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71];
  const fmtExt = (tag: number, bits: number, ch: number) =>
    u8(
      'fmt ',
      le32(40),
      le16(0xfffe),
      le16(ch),
      le32(44100),
      le32(44100 * ch * bits / 8),
      le16(ch * bits / 8),
      le16(bits),
      le16(22),
      le16(bits),
      le32(3),
      guid(tag),
    );
  const f32 = new Float32Array([0.25, -0.5, 1, -1]);
  const wavF = riff(fmtExt(3, 32, 2), u8('data', le32(16), new Uint8Array(f32.buffer)));
  const a = decodeWav(wavF);
  assert.deepEqual(a.sourceFormat, { bitsPerSample: 32, float: true });
  assert.deepEqual([...a.channels[0]], [0.25, 1]);
  assert.deepEqual([...a.channels[1]], [-0.5, -1]);
  const pcm24 = u8([0x00, 0x00, 0x40], [0x00, 0x00, 0xc0]); // +0.5, -0.5
  const b = decodeWav(riff(fmtExt(1, 24, 1), u8('data', le32(6), pcm24)));
  assert.deepEqual([...b.channels[0]], [0.5, -0.5]);
  assert.equal(wavInfo(riff(fmtExt(1, 24, 1), u8('data', le32(6), pcm24))).bitsPerSample, 24);
});

Deno.test('encodeWav rounds to nearest and clips integer formats without dither', () => {
  const x = new Float32Array([2, -2, 0.5 / 32768, 1.5 / 32768, -0.6 / 32768, 32767.4 / 32768, NaN]);
  const bytes = encodeWav({
    sampleRate: 8000,
    channels: [x],
    sourceFormat: { bitsPerSample: 16, float: false },
  });
  const s = new Int16Array(bytes.buffer.slice(44));
  assert.deepEqual([...s], [32767, -32768, 1, 2, -1, 32767, 0]);
  const f = decodeWav(
    encodeWav({
      sampleRate: 8000,
      channels: [x],
      sourceFormat: { bitsPerSample: 32, float: true },
    }),
  );
  assert.equal(f.channels[0][0], 2, 'float keeps values beyond full scale');
  assert.equal(f.channels[0][6], 0, 'NaN becomes 0');
});

Deno.test('a file cut short inside its data chunk is refused as truncated corrupt_audio', () => {
  // The 2,000-byte head of a 7.8 s file used to come out as 13 ms of audio.
  const audio = quantised(2, 1000, { bitsPerSample: 16, float: false });
  const bytes = encodeWav(audio);
  for (const length of [44 + 4 * 500 + 3, 44 + 4 * 1000 - 1, 44]) {
    assert.throws(
      () => decodeWav(bytes.slice(0, length)),
      (e: unknown) =>
        e instanceof MediaError && e.code === 'corrupt_audio' && /^truncated WAV/.test(e.message),
    );
  }
  // The header alone still tells the format, and the length the whole file must have.
  assert.deepEqual(wavInfo(bytes.slice(0, 44)).dataEnd, bytes.length);
  assert.equal(decodeWav(bytes).channels[0].length, 1000);
});

Deno.test('a declared size that is not whole frames decodes its whole frames', () => {
  const audio = quantised(2, 1000, { bitsPerSample: 16, float: false });
  const bytes = encodeWav(audio);
  // 3 bytes of a partial frame declared and present at the end.
  const odd = new Uint8Array(bytes.length + 3);
  odd.set(bytes);
  new DataView(odd.buffer).setUint32(40, 4 * 1000 + 3, true);
  const back = decodeWav(odd);
  assert.equal(back.channels[0].length, 1000);
  assert.deepEqual(back.channels[1], audio.channels[1]);
  // An odd-sized data chunk at the end of the file may lack its pad byte.
  const mono = encodeWav(quantised(1, 7, { bitsPerSample: 24, float: false }));
  assert.equal(mono.length % 2, 0, 'encodeWav wrote the pad byte');
  assert.equal(decodeWav(mono.slice(0, mono.length - 1)).channels[0].length, 7);
});

Deno.test('decodeWav refuses more samples than maxSamples before decoding them', () => {
  const bytes = encodeWav(quantised(2, 1000, { bitsPerSample: 16, float: false }));
  assert.throws(
    () => decodeWav(bytes, { maxSamples: 1999 }),
    (e: unknown) => e instanceof MediaError && e.code === 'too_large',
  );
  assert.equal(decodeWav(bytes, { maxSamples: 2000 }).channels[0].length, 1000);
});

Deno.test('a streamed WAV with an unsized data chunk is read to the end of the file', () => {
  const audio = quantised(1, 300, { bitsPerSample: 16, float: false });
  for (const size of [0, 0xffffffff]) {
    const bytes = encodeWav(audio);
    new DataView(bytes.buffer).setUint32(40, size, true);
    assert.equal(wavInfo(bytes).frames, 300);
    assert.equal(wavInfo(bytes).dataEnd, null, 'an unsized chunk promises no length');
    assert.deepEqual(decodeWav(bytes).channels[0], audio.channels[0]);
  }
});

Deno.test('non-WAV and unsupported WAV encodings are refused with unsupported_format', () => {
  const refuse = (bytes: Uint8Array, code: string) =>
    assert.throws(
      () => decodeWav(bytes),
      (e: unknown) => e instanceof MediaError && e.code === code,
    );
  const fmt = (tag: number, bits: number) =>
    u8(
      'fmt ',
      le32(16),
      le16(tag),
      le16(1),
      le32(8000),
      le32(8000 * bits / 8),
      le16(bits / 8),
      le16(bits),
    );
  refuse(u8('ID3', new Uint8Array(100)), 'unsupported_format'); // MP3
  refuse(u8('OggS', new Uint8Array(100)), 'unsupported_format');
  refuse(riff(fmt(1, 8), u8('data', le32(4), [1, 2, 3, 4])), 'unsupported_format'); // 8-bit
  refuse(riff(fmt(6, 8), u8('data', le32(4), [1, 2, 3, 4])), 'unsupported_format'); // A-law
  refuse(riff(fmt(3, 64), u8('data', le32(8), new Uint8Array(8))), 'unsupported_format'); // f64
  refuse(u8('RF64', le32(0), 'WAVE'), 'unsupported_format');
  refuse(new Uint8Array(0), 'unsupported_format');
  // Broken WAV structure.
  refuse(riff(u8('data', le32(4), [1, 2, 3, 4])), 'corrupt_audio'); // data before fmt
  refuse(riff(fmt(1, 16)), 'corrupt_audio'); // no data
  refuse(u8('RIFF', le32(100), 'WAVE', 'fmt ', le32(16), [1, 0]), 'corrupt_audio'); // cut fmt
  assert.throws(() => wavInfo(u8('fLaC', new Uint8Array(40))), MediaError);
});
