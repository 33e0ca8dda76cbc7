import assert from 'node:assert/strict';
import {
  type Audio,
  AUDIO_LIMITS,
  checkAudioLimits,
  cleanAudio,
  kWeightingCoefficients,
  measureLoudness,
  MediaError,
  truePeak,
} from '../../_jobs/media/audio.ts';
import { decodeWav, encodeWav } from '../../_jobs/media/wav.ts';
import { concat, dB, goertzelPower, meanSquare, noisyVoice, sine } from './_media.ts';

const FMT = { bitsPerSample: 24 as const, float: false };
const audioOf = (fs: number, ...channels: Float32Array[]): Audio => ({
  sampleRate: fs,
  channels,
  sourceFormat: FMT,
});
const close = (actual: number, expected: number, tol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected} ± ${tol}`);

Deno.test('K-weighting at 48 kHz matches the BS.1770-4 coefficient table', () => {
  const [shelf, hp] = kWeightingCoefficients(48000);
  const table = [
    [shelf.b0, 1.53512485958697],
    [shelf.b1, -2.69169618940638],
    [shelf.b2, 1.19839281085285],
    [shelf.a1, -1.69065929318241],
    [shelf.a2, 0.73248077421585],
    [hp.b0, 1],
    [hp.b1, -2],
    [hp.b2, 1],
    [hp.a1, -1.99004745483398],
    [hp.a2, 0.99007225036621],
  ];
  for (const [got, want] of table) close(got, want, 1e-8, 'coefficient');
});

Deno.test('a full-scale 997 Hz sine in one channel reads -3.01 LUFS (BS.1770-4)', () => {
  for (const fs of [48000, 44100]) {
    const x = sine(997, 0, 10, fs);
    close(measureLoudness(audioOf(fs, x)), -3.01, 0.1, `mono ${fs}`);
    close(measureLoudness(audioOf(fs, x, new Float32Array(x.length))), -3.01, 0.1, `L only ${fs}`);
  }
});

Deno.test('EBU Tech 3341 stereo 1 kHz cases read their expected integrated loudness', () => {
  const fs = 48000;
  const st = (x: Float32Array) => audioOf(fs, x, x);
  // Case 1 and 2: steady -23 and -33 dBFS per channel.
  close(measureLoudness(st(sine(1000, -23, 20, fs))), -23, 0.1, 'case 1');
  close(measureLoudness(st(sine(1000, -33, 20, fs))), -33, 0.1, 'case 2');
  // Case 3: the relative gate removes the -36 dBFS parts.
  const c3 = concat(sine(1000, -36, 10, fs), sine(1000, -23, 60, fs), sine(1000, -36, 10, fs));
  close(measureLoudness(st(c3)), -23, 0.1, 'case 3');
  // Case 4: the absolute gate removes -72, the relative gate -36.
  const c4 = concat(
    sine(1000, -72, 10, fs),
    sine(1000, -36, 10, fs),
    sine(1000, -23, 60, fs),
    sine(1000, -36, 10, fs),
    sine(1000, -72, 10, fs),
  );
  close(measureLoudness(st(c4)), -23, 0.1, 'case 4');
  // Case 5: everything passes both gates; the power mean is -23.
  const c5 = concat(sine(1000, -26, 20, fs), sine(1000, -20, 20.1, fs), sine(1000, -26, 20, fs));
  close(measureLoudness(st(c5)), -23, 0.1, 'case 5');
});

Deno.test('loudness is -Infinity for silence and for audio shorter than one 400 ms block', () => {
  assert.equal(measureLoudness(audioOf(48000, new Float32Array(48000))), -Infinity);
  assert.equal(measureLoudness(audioOf(48000, sine(1000, -10, 0.3, 48000))), -Infinity);
});

Deno.test('truePeak finds inter-sample peaks that the samples miss', () => {
  // fs/4 sine at 45° phase: samples at ±0.707, true peak 1.0.
  const x = new Float32Array(4800);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin((Math.PI / 2) * i + Math.PI / 4);
  close(20 * Math.log10(truePeak([x])), 0, 0.1, 'dBTP');
});

function cleanFixture(seconds = 20, fs = 48000) {
  const left = noisyVoice(seconds, fs, { seed: 3 });
  const right = noisyVoice(seconds, fs, { seed: 4, voiceAmp: 0.1 });
  return { audio: audioOf(fs, left.x, right.x), speech: left.speech };
}

Deno.test('cleanAudio hits the loudness target and removes DC, rumble and noise', () => {
  const fs = 48000;
  const { audio, speech } = cleanFixture(20, fs);
  const progress: number[] = [];
  const { audio: out, report } = cleanAudio(audio, {}, (f) => progress.push(f));

  // Loudness within 1 LU of the -16 LUFS default, measured independently.
  const lufs = measureLoudness(out);
  close(lufs, -16, 1, 'output LUFS');
  close(report.outputLufs, lufs, 0.05, 'reported LUFS');
  assert.ok(report.inputLufs < -20);

  const margin = Math.round(0.08 * fs);
  for (let c = 0; c < 2; c++) {
    const x = audio.channels[c], y = out.channels[c];
    // DC removed.
    const mean = y.reduce((s, v) => s + v, 0) / y.length;
    assert.ok(Math.abs(mean) < 1e-4, `channel ${c} mean ${mean}`);
    close(report.dcOffset[c], 0.05, 0.002, 'reported DC');
    // 30 Hz rumble, relative to the whole signal, attenuated by >= 12 dB.
    const xc = x.map((v) => v - report.dcOffset[c]);
    const rumbleIn = dB(goertzelPower(xc, 30, fs)) - dB(meanSquare(xc, speech, 1));
    const rumbleOut = dB(goertzelPower(y, 30, fs)) - dB(meanSquare(y, speech, 1));
    assert.ok(rumbleIn - rumbleOut >= 12, `rumble reduced ${rumbleIn - rumbleOut} dB`);
    // Noise floor in the gaps, relative to the speech, reduced by >= 6 dB.
    const gapIn = dB(meanSquare(xc, speech, 0, margin)) - dB(meanSquare(xc, speech, 1, margin));
    const gapOut = dB(meanSquare(y, speech, 0, margin)) - dB(meanSquare(y, speech, 1, margin));
    assert.ok(gapIn - gapOut >= 6, `gap noise reduced ${gapIn - gapOut} dB`);
  }
  assert.ok(report.outputNoiseFloorDb - report.gainDb < report.noiseFloorDb - 6);
  assert.equal(report.noiseReduction, 'spectral-gate');

  // No sample beyond the -1 dBTP ceiling, also after 16-bit encoding.
  const ceiling = Math.pow(10, -1 / 20);
  for (const y of out.channels) for (const v of y) assert.ok(Math.abs(v) <= ceiling, `${v}`);
  assert.ok(report.peakDb <= -1 + 1e-6, `peak ${report.peakDb}`);
  const reread = decodeWav(encodeWav(out, { bitsPerSample: 16, float: false }));
  for (const y of reread.channels) for (const v of y) assert.ok(Math.abs(v) <= ceiling + 1 / 32768);

  // Progress: several calls, monotone, ending at 1.
  assert.ok(progress.length >= 5, `${progress.length} progress calls`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1]);
  assert.equal(progress.at(-1), 1);
  assert.equal(out.sampleRate, fs);
  assert.deepEqual(out.sourceFormat, FMT);
});

Deno.test('the limiter keeps a loud, peaky input under the true-peak ceiling', () => {
  const fs = 44100;
  // Clicks every 100 ms on top of a tone: the gain to -10 LUFS would push them far over 0 dBFS.
  const x = sine(220, -30, 6, fs);
  for (let i = 0; i < x.length; i += fs / 10) x[i] = 0.9;
  const { audio: out, report } = cleanAudio(audioOf(fs, x), {
    targetLufs: -10,
    truePeakDb: -2,
    noiseReduction: 0,
  });
  const ceiling = Math.pow(10, -2 / 20);
  assert.ok(report.limiterDb > 3, `limiter ${report.limiterDb} dB`);
  assert.ok(truePeak(out.channels) <= ceiling * 1.0001, `true peak ${truePeak(out.channels)}`);
  for (const v of out.channels[0]) assert.ok(Math.abs(v) <= ceiling);
  close(measureLoudness(out), report.outputLufs, 0.05, 'reported LUFS');
  // Reaching -10 LUFS here would take far more limiting; the gain push is bounded (+6 dB).
  assert.ok(report.outputLufs > -16 && report.outputLufs < -9.5, `output ${report.outputLufs}`);
});

Deno.test('cleanAudio with noise reduction and high-pass off only removes DC and sets gain', () => {
  const fs = 48000;
  const x = sine(500, -30, 3, fs).map((v) => v + 0.01);
  const { audio: out, report } = cleanAudio(audioOf(fs, x), { highpassHz: 0, noiseReduction: 0 });
  assert.equal(report.noiseReduction, 'off');
  const g = Math.pow(10, report.gainDb / 20);
  for (let i = 0; i < x.length; i += 997) {
    close(out.channels[0][i], (x[i] - 0.01) * g, 1e-4, `s${i}`);
  }
  close(measureLoudness(out), -16, 0.1, 'LUFS');
});

Deno.test('cleanAudio leaves silence silent without NaN', () => {
  const { audio: out, report } = cleanAudio(audioOf(16000, new Float32Array(32000)));
  assert.equal(report.inputLufs, -Infinity);
  assert.equal(report.gainDb, 0);
  assert.ok(out.channels[0].every((v) => v === 0));
});

Deno.test('cleanAudio refuses options out of range with invalid_params', () => {
  const a = audioOf(16000, new Float32Array(16000));
  for (
    const opts of [
      { targetLufs: -5 },
      { targetLufs: -40 },
      { noiseReduction: 2 },
      { highpassHz: -1 },
      { truePeakDb: 1 },
    ]
  ) {
    assert.throws(
      () => cleanAudio(a, opts),
      (e: unknown) => e instanceof MediaError && e.code === 'invalid_params',
      JSON.stringify(opts),
    );
  }
});

Deno.test('checkAudioLimits refuses long or many-sample audio as too_large', () => {
  const mono = {
    sampleRate: 48000,
    channels: 1,
    durationSeconds: AUDIO_LIMITS.maxSeconds as number,
  };
  checkAudioLimits(mono);
  const stereo = { ...mono, channels: 2, durationSeconds: AUDIO_LIMITS.maxSamples / 96000 };
  checkAudioLimits(stereo);
  const tooLarge = (info: typeof mono) =>
    assert.throws(
      () => checkAudioLimits(info),
      (e: unknown) => e instanceof MediaError && e.code === 'too_large',
    );
  tooLarge({ ...mono, durationSeconds: AUDIO_LIMITS.maxSeconds + 1 });
  tooLarge({ ...stereo, durationSeconds: stereo.durationSeconds + 1 });
  tooLarge({ ...mono, sampleRate: 96000, channels: 6, durationSeconds: 10 });
  assert.throws(() => checkAudioLimits({ ...mono, sampleRate: 4000 }), MediaError);
});
