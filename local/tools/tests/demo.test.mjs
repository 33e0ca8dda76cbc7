// `npm run demo`'s core, without its terminal: the generated media are what they claim to be, and
// every job type runs through the public HTTP API of the stack npm test starts (SUPABASE_URL and
// SUPABASE_ANON_KEY; without them that test fails, naming what is missing).
//
//   npm test                                                     everything, with a stack
//   SUPABASE_URL=… SUPABASE_ANON_KEY=… node --test local/tools/tests/   against a running stack

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { allGood, demoPlan, runDemoJobs } from '../demo/jobs.mjs';
import { crc32, makeSampleMedia } from '../demo/media.mjs';

/** The chunks of a PNG, each CRC-checked. */
function pngChunks(bytes) {
  const buf = Buffer.from(bytes);
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks = [];
  for (let i = 8; i < buf.length;) {
    const length = buf.readUInt32BE(i);
    const type = buf.toString('latin1', i + 4, i + 8);
    const data = buf.subarray(i + 8, i + 8 + length);
    const crc = buf.readUInt32BE(i + 8 + length);
    assert.equal((crc32(buf.subarray(i + 4, i + 8 + length)) ^ 0xffffffff) >>> 0, crc, `${type} CRC`);
    chunks.push({ type, data });
    i += 12 + length;
  }
  return chunks;
}

/** The mean and the 50 Hz amplitude of 24-bit mono PCM (Goertzel). */
function wavFacts(bytes) {
  const buf = Buffer.from(bytes);
  const n = buf.readUInt32LE(40) / 3;
  const fs_ = buf.readUInt32LE(24);
  let sum = 0;
  let s1 = 0;
  let s2 = 0;
  const coeff = 2 * Math.cos((2 * Math.PI * 50) / fs_);
  for (let i = 0; i < n; i++) {
    const x = buf.readIntLE(44 + 3 * i, 3) / 2 ** 23;
    sum += x;
    const s = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  const power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n);
  return { mean: sum / n, hum50: 2 * Math.sqrt(power) };
}

test('the demo media are a photo-like PNG, a green-screen PNG and a voice WAV with DC and hum', () => {
  const media = makeSampleMedia({ scale: 0.25, voiceSeconds: 2 });

  for (const key of ['photo', 'greenScreen']) {
    const m = media[key];
    assert.equal(m.contentType, 'image/png');
    const chunks = pngChunks(m.bytes);
    assert.deepEqual(chunks.map((c) => c.type), ['IHDR', 'IDAT', 'IEND']);
    const ihdr = chunks[0].data;
    assert.equal(ihdr.readUInt32BE(0), m.width);
    assert.equal(ihdr.readUInt32BE(4), m.height);
    assert.equal(ihdr[9], 2, 'RGB');
    const raw = zlib.inflateSync(chunks[1].data);
    assert.equal(raw.length, (m.width * 3 + 1) * m.height);
  }
  assert.equal(media.photo.width, 240);
  assert.ok(media.greenScreen.subjectFraction > 0.08 && media.greenScreen.subjectFraction < 0.3);

  const voice = Buffer.from(media.voice.bytes);
  assert.equal(voice.toString('latin1', 0, 4), 'RIFF');
  assert.equal(voice.toString('latin1', 8, 12), 'WAVE');
  assert.equal(voice.readUInt16LE(20), 1, 'PCM');
  assert.equal(voice.readUInt16LE(22), 1, 'mono');
  assert.equal(voice.readUInt32LE(24), 48000);
  assert.equal(voice.readUInt16LE(34), 24);
  assert.equal(voice.readUInt32LE(40), 2 * 48000 * 3);
  const { mean, hum50 } = wavFacts(voice);
  assert.ok(Math.abs(mean - 0.04) < 0.005, `DC offset ${mean}`);
  assert.ok(hum50 > 0.004 && hum50 < 0.008, `50 Hz hum amplitude ${hum50}`);
});

test('the demo media are deterministic', () => {
  const a = makeSampleMedia({ scale: 0.1, voiceSeconds: 0.5 });
  const b = makeSampleMedia({ scale: 0.1, voiceSeconds: 0.5 });
  for (const key of Object.keys(a)) assert.ok(Buffer.from(a[key].bytes).equals(Buffer.from(b[key].bytes)), key);
});

const url = process.env.SUPABASE_URL;
const anonKey = process.env.SUPABASE_ANON_KEY;

test('every job type runs through the public HTTP API and its outputs download', {
  timeout: 60_000,
}, async () => {
  const missing = Object.entries({ SUPABASE_URL: url, SUPABASE_ANON_KEY: anonKey }).filter(([, v]) => !v).map(([k]) => k);
  if (missing.length > 0) {
    throw new Error(`this test needs the stack npm test starts, but ${missing.join(', ')} not set: run it through \`npm test\``);
  }
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-demo-test-'));
  try {
    const media = makeSampleMedia({ scale: 0.3, voiceSeconds: 2 });
    const updates = [];
    const { entries, timedOut, userId } = await runDemoJobs({
      url,
      anonKey,
      media,
      outDir,
      plan: demoPlan(),
      timeoutMs: 45_000,
      onUpdate: (e) => updates.push(e.map((x) => x.status).join(',')),
    });
    assert.equal(timedOut, false);
    assert.match(userId, /^[0-9a-f-]{36}$/);
    assert.ok(allGood(entries), JSON.stringify(entries.map((e) => [e.key, e.status, e.error, e.job?.error])));
    assert.ok(updates.length > 1, 'onUpdate was called as the jobs moved');

    const byKey = Object.fromEntries(entries.map((e) => [e.key, e]));
    for (const key of ['grade-noir', 'grade-teal-orange', 'audio-clean', 'roto']) {
      const e = byKey[key];
      assert.equal(e.status, 'done', key);
      assert.equal(e.files.length, 1, key);
      assert.equal(fs.statSync(e.files[0].local).size, e.files[0].size, `${key}: downloaded whole`);
    }
    // Output formats: noir asked for JPEG, teal-orange kept the PNG, roto writes an RGBA PNG.
    const head = (key) => fs.readFileSync(byKey[key].files[0].local).subarray(0, 4);
    assert.deepEqual([...head('grade-noir').subarray(0, 3)], [0xff, 0xd8, 0xff]);
    assert.equal(head('grade-teal-orange').toString('latin1', 1, 4), 'PNG');
    assert.equal(head('roto').toString('latin1', 1, 4), 'PNG');
    assert.equal(head('audio-clean').toString('latin1'), 'RIFF');

    // Key figures: loudness brought to the target, DC found, a matte near the drawn subject.
    const audio = byKey['audio-clean'].job.output.report;
    assert.ok(Math.abs(audio.output_lufs - -16) < 1, `output ${audio.output_lufs} LUFS`);
    assert.ok(Math.abs(audio.dc_offset[0] - 0.04) < 0.005, `DC ${audio.dc_offset}`);
    const matte = byKey.roto.job.output.matte;
    assert.ok(Math.abs(matte.opaque + matte.partial / 2 - media.greenScreen.subjectFraction) < 0.03,
      `matte ${JSON.stringify(matte)} vs subject ${media.greenScreen.subjectFraction}`);

    // image: done where OpenAI is configured, otherwise refused up front with 503.
    const image = byKey.image;
    if (image.refused) {
      assert.equal(image.error.status, 503);
      assert.equal(image.error.code, 'provider_not_configured');
      assert.equal(image.job, null);
    }
    assert.ok(fs.existsSync(path.join(outDir, 'inputs', 'voice.wav')));
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
});
