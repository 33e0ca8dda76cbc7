// `npm run demo`'s core, without its terminal: the committed samples are what the plan and their
// descriptions say, the success rule (the demo's exit code) and the key figures read jobs right,
// and every job type runs through the public HTTP API of the stack npm test starts (SUPABASE_URL
// and SUPABASE_ANON_KEY; without them that test fails, naming what is missing).
//
//   npm test                                                     everything, with a stack
//   SUPABASE_URL=… SUPABASE_ANON_KEY=… node --test local/tools/tests/   against a running stack

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { decode as decodePng } from 'fast-png';
import { allGood, demoPlan, keyFigures, loadSamples, runDemoJobs } from '../demo/jobs.mjs';

/** Width and height from a baseline or progressive JPEG's SOF marker. */
function jpegSize(buf) {
  assert.deepEqual([...buf.subarray(0, 3)], [0xff, 0xd8, 0xff], 'JPEG SOI');
  for (let i = 2; i + 9 < buf.length;) {
    assert.equal(buf[i], 0xff, `marker at ${i}`);
    const marker = buf[i + 1];
    if (marker === 0xc0 || marker === 0xc2) return { width: buf.readUInt16BE(i + 7), height: buf.readUInt16BE(i + 5) };
    i += 2 + buf.readUInt16BE(i + 2);
  }
  assert.fail('no SOF marker');
}

/** The mean and the 50 Hz amplitude of 16-bit mono PCM (Goertzel). */
function wavFacts(buf) {
  const n = buf.readUInt32LE(40) / 2;
  const coeff = 2 * Math.cos((2 * Math.PI * 50) / buf.readUInt32LE(24));
  let sum = 0;
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const x = buf.readInt16LE(44 + 2 * i) / 2 ** 15;
    sum += x;
    const s = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  const power = (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n);
  return { mean: sum / n, hum50: 2 * Math.sqrt(power) };
}

test('the samples are every input the plan names, each what its description says', () => {
  const media = loadSamples();
  for (const p of demoPlan().filter((x) => x.input)) assert.ok(media[p.input], `${p.key} needs ${p.input}`);

  assert.equal(media.photo.contentType, 'image/jpeg');
  assert.deepEqual(jpegSize(media.photo.bytes), { width: 960, height: 640 });

  // The green screen: an RGB PNG, and the share of pixels that are not backdrop green is the
  // subjectFraction the roto check compares the matte with.
  const screen = decodePng(media.greenScreen.bytes);
  assert.deepEqual([screen.width, screen.height, screen.channels], [640, 480, 3]);
  let subject = 0;
  for (let i = 0; i < screen.data.length; i += 3) {
    const [r, g, b] = screen.data.subarray(i, i + 3);
    if (!(g > r + 60 && g > b + 40)) subject++;
  }
  assert.ok(Math.abs(subject / (640 * 480) - media.greenScreen.subjectFraction) < 0.005, `${subject} pixels`);

  const voice = media.voice.bytes;
  assert.equal(voice.toString('latin1', 0, 4), 'RIFF');
  assert.equal(voice.toString('latin1', 8, 12), 'WAVE');
  assert.deepEqual([voice.readUInt16LE(20), voice.readUInt16LE(22), voice.readUInt16LE(34)], [1, 1, 16], 'PCM mono 16-bit');
  assert.equal(voice.readUInt32LE(24), 24000);
  assert.equal(voice.readUInt32LE(40), 5 * 24000 * 2, '5 s');
  const { mean, hum50 } = wavFacts(voice);
  assert.ok(Math.abs(mean - media.voice.dcOffset) < 0.005, `DC offset ${mean}`);
  assert.ok(hum50 > 0.004 && hum50 < 0.008, `50 Hz hum amplitude ${hum50}`);
});

test('the demo succeeds only when every job is done and downloaded, refusals only as the plan expects', () => {
  const done = { status: 'done', files: [{}] };
  const expected = { status: 'refused', expected: true, files: [] };
  assert.equal(allGood([done, expected]), true);
  assert.equal(allGood([done, { ...expected, expected: false }]), false, 'an unexpected refusal');
  assert.equal(allGood([{ ...done, files: [] }]), false, 'done, but nothing downloaded');
  assert.equal(allGood([{ ...done, downloadError: 'HTTP 400' }]), false, 'a failed download');
  assert.equal(allGood([{ status: 'failed', files: [] }]), false);
  assert.equal(allGood([{ status: 'running', files: [] }]), false, 'unfinished at the timeout');

  const image = demoPlan().find((p) => p.type === 'image');
  assert.deepEqual(image.expectRefusal, { status: 503, code: 'provider_not_configured' });
});

test('the key figures: size, loudness with the noise change net of the gain, the matte shares', () => {
  const files = [{ width: 640, height: 480 }];
  const report = {
    input_lufs: -29.54,
    output_lufs: -16.01,
    dc_offset: [0.04],
    noise_floor_db: -60,
    output_noise_floor_db: -55,
    gain_db: 13.5,
    peak_dbtp: -1,
  };
  assert.equal(
    keyFigures('audio-clean', { files: [{}], report }),
    '-29.5 → -16.0 LUFS · DC 0.0400 removed · noise -8.5 dB · peak -1.0 dBTP',
  );
  assert.equal(
    keyFigures('roto', { files, matte: { opaque: 0.139, transparent: 0.855, partial: 0.006 } }),
    '640x480 · subject 13.9%, background 85.5%, edge 0.6%',
  );
  assert.equal(keyFigures('color-grade', { files }), '640x480');
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
    const media = loadSamples();
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
    // Output formats: noir kept the JPEG, teal-orange asked for PNG, roto writes an RGBA PNG.
    const head = (key) => fs.readFileSync(byKey[key].files[0].local).subarray(0, 4);
    assert.deepEqual([...head('grade-noir').subarray(0, 3)], [0xff, 0xd8, 0xff]);
    assert.equal(head('grade-teal-orange').toString('latin1', 1, 4), 'PNG');
    assert.equal(head('roto').toString('latin1', 1, 4), 'PNG');
    assert.equal(head('audio-clean').toString('latin1'), 'RIFF');

    // The outputs' reports: loudness brought to the target, DC found, a matte near the drawn subject.
    const audio = byKey['audio-clean'].job.output.report;
    assert.ok(Math.abs(audio.output_lufs - -16) < 1, `output ${audio.output_lufs} LUFS`);
    assert.ok(Math.abs(audio.dc_offset[0] - media.voice.dcOffset) < 0.005, `DC ${audio.dc_offset}`);
    const matte = byKey.roto.job.output.matte;
    assert.ok(Math.abs(matte.opaque + matte.partial / 2 - media.greenScreen.subjectFraction) < 0.03,
      `matte ${JSON.stringify(matte)} vs subject ${media.greenScreen.subjectFraction}`);

    // image: done where OpenAI is configured, otherwise refused up front with 503.
    const image = byKey.image;
    if (image.status === 'refused') {
      assert.equal(image.error.status, 503);
      assert.equal(image.error.code, 'provider_not_configured');
      assert.equal(image.job, null);
    }
    assert.ok(fs.existsSync(path.join(outDir, 'inputs', 'voice.wav')));
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
});
