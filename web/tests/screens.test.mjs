// Screenshots of the main screens, taken by the same browser harness as app.test.mjs: start a
// job (upload and settings), a job in progress, a finished job with its before/after, the
// history, the start screen on a 360 px wide phone, the run view of a job that failed once and
// then succeeded, the inbox; and (a test of its own) the history filtered and the operations
// console. Under `npm test` they
// go to a temporary folder (the screens must render without console errors); `npm run
// web:screenshots` writes them to docs/screenshots/ for the README.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  claimAsTest,
  corruptPng,
  greenScreenPng,
  holdQueue,
  landscapePng,
  leaseAsTest,
  noisyWav,
  openProfile,
  setup,
  until,
} from './helpers.mjs';

// The new-job form's Start button ("Start: colour grade", ...), not the complete pack's form
// beside it, which offers its own "Start: complete pack" now that the stack has OpenAI (a fake).
const START_JOB = /^Start(?!: complete pack)/;

const ROOT = path.resolve(import.meta.dirname, '..', '..');
let env;
let user;
let outDir;

before(async () => {
  env = await setup();
  outDir = process.env.SPOOL_SCREENSHOTS_DIR
    ? path.resolve(ROOT, process.env.SPOOL_SCREENSHOTS_DIR)
    : path.join(env.tmp, 'screenshots');
  fs.mkdirSync(outDir, { recursive: true });
  user = await openProfile(env, { width: 1280, height: 860 });
  await user.signIn();
});

after(async () => {
  await user?.close();
  await env?.close();
});

async function shot(page, name, opts = {}) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.mouse.move(0, 0);
  await page.screenshot({ path: path.join(outDir, `${name}.png`), ...opts });
}

/** Dismisses the toasts on screen (e.g. the test's own blocker's), but those matching `keep`. */
const dismissToasts = (page, keep = null) =>
  page.evaluate((keep) => {
    for (const toast of document.querySelectorAll('[data-testid="toast"]')) {
      if (!keep || !toast.textContent.includes(keep)) toast.querySelector('button').click();
    }
  }, keep);

/** Starts a job through a creator as the browser's user (for history and admin activity). */
async function startByApi(type, body) {
  const { access_token: token } = await user.session();
  const res = await fetch(`${env.api}/functions/v1/${type}`, {
    method: 'POST',
    headers: { apikey: env.anonKey, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 202, text);
  return JSON.parse(text).job;
}

async function uploadByApi(name, bytes, type = 'image/png') {
  const { access_token: token, user: { id } } = await user.session();
  const p = `${id}/${name}`;
  const res = await fetch(`${env.api}/storage/v1/object/inputs/${p}`, {
    method: 'POST',
    headers: { apikey: env.anonKey, authorization: `Bearer ${token}`, 'content-type': type, 'x-upsert': 'true' },
    body: bytes,
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return p;
}

const status = async (id) => (await env.admin.query('select status from public.jobs where id = $1', [id])).rows[0]?.status;

test('screenshots of the main screens', async () => {
  const { page, errors } = user;
  const userId = (await user.session()).user.id;

  // 1. Start a job: a photo uploaded, a preset and a slider set.
  await page.goto(`${env.appUrl}/#/`);
  await page.getByTestId('file-input').setInputFiles({ name: 'harbour.png', mimeType: 'image/png', buffer: landscapePng() });
  await page.getByTestId('uploaded').waitFor();
  await page.getByLabel('Preset', { exact: true }).selectOption('teal-orange');
  await page.getByLabel('Contrast').fill('0.2');
  await page.getByLabel('Saturation').fill('0.15');
  await page.getByLabel('Saturation').blur();
  await shot(page, 'start-job', { fullPage: true });

  // 2. A job in progress, made deterministic: the job stays queued (holdQueue, as in
  // app.test.mjs), then this test plays the worker that claimed it (leaseAsTest) and reports
  // progress through heartbeat_job, as job-worker does.
  const hold = await holdQueue(env.admin, userId);
  try {
    await page.getByRole('button', { name: START_JOB }).click();
    const queued = page.locator('[data-testid="job-card"][data-status="pending"]');
    await queued.waitFor();
    const id = await queued.getAttribute('data-job-id');
    const token = await leaseAsTest(env.admin, id, 'web-screenshots');
    assert.ok(token, 'the queued job was leased by the test');
    await env.admin.query(`select public.heartbeat_job($1, $2, 45, 'grading')`, [id, token]);
    await page.locator('[data-testid="job-card"][data-status="running"]').waitFor();
    await page.getByTestId('job-step').filter({ hasText: 'Grading · 45%' }).waitFor();
    await dismissToasts(page);
    await shot(page, 'job-running');
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.locator('[data-testid="job-card"][data-status="cancelled"]').waitFor();
  } finally {
    await hold.release();
  }

  // 3. Done, with the before/after compare and the download.
  await dismissToasts(page);
  await page.getByRole('button', { name: START_JOB }).click();
  const done = page.locator('[data-testid="job-card"][data-status="done"]');
  await done.waitFor();
  await page.getByTestId('compare').locator('img').nth(1).evaluate((img) => img.decode());
  await page.getByTestId('compare').locator('input').fill('45');
  await page.getByRole('status').filter({ hasText: 'is done' }).waitFor();
  await page.getByTestId('compare').locator('input').blur();
  await dismissToasts(page, 'is done');
  await shot(page, 'job-done');

  // 4. History: a few more jobs in other states.
  const corrupt = await uploadByApi('scan-0042.png', corruptPng());
  const bad = await startByApi('color-grade', { input_path: corrupt, preset: 'warm' });
  const matte = await startByApi('roto', { input_path: await uploadByApi('greenscreen.png', greenScreenPng()), mode: 'color' });
  const voice = await startByApi('audio-clean', {
    input_path: await uploadByApi('voice-memo.wav', noisyWav(), 'audio/wav'),
    target_lufs: -16,
  });
  await until(
    async () => (await status(bad.id)) === 'failed' && (await status(matte.id)) === 'done' && (await status(voice.id)) === 'done',
    { what: 'the extra jobs' },
  );
  await page.goto(`${env.appUrl}/#/jobs`);
  await page.locator(`[data-testid="history-item"][data-job-id="${bad.id}"][data-status="failed"]`).waitFor();
  await page.locator(`[data-testid="history-item"][data-job-id="${matte.id}"][data-status="done"]`).waitFor();
  await dismissToasts(page);
  await shot(page, 'history');

  // The roto result over its checkerboard.
  await page.goto(`${env.appUrl}/#/jobs/${matte.id}`);
  await page.getByTestId('compare').locator('img').nth(1).evaluate((img) => img.decode());
  await page.getByTestId('compare').locator('input').fill('35');
  await page.getByTestId('compare').locator('input').blur();
  await shot(page, 'roto-matte');

  // The audio clean-up: before and after players.
  await page.goto(`${env.appUrl}/#/jobs/${voice.id}`);
  await page.getByTestId('after-audio').waitFor();
  await until(() => page.locator('audio').evaluateAll((els) => els.length === 2 && els.every((a) => a.readyState >= 1)), { what: 'both players' });
  await shot(page, 'audio-done');

  // 5. The console and a filtered history: their own test below ("screenshots of the filtered
  // history and the console"), on jobs of their own.

  // A 360 px wide phone: no view scrolls sideways; the start screen is the screenshot.
  await page.reload();
  await page.setViewportSize({ width: 360, height: 780 });
  for (const route of ['#/jobs', `#/jobs/${matte.id}`, `#/jobs/${voice.id}`, '#/']) {
    await page.goto(`${env.appUrl}/${route}`);
    await page.locator('main h2').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${route}: no horizontal scroll at 360 px (overflow ${overflow} px)`);
  }
  await page.getByTestId('dropzone').waitFor();
  await shot(page, 'mobile');

  assert.deepEqual(errors, []);
  console.log(`# screenshots in ${outDir}`);
});

test('screenshot: inbox', async () => {
  // The inbox open over the new-job view: a user back after a while, six jobs ended meanwhile
  // (notifications as the SQL API writes them), one of them read already.
  const inboxUser = await openProfile(env, { width: 1280, height: 860 });
  try {
    const { user: { id } } = await inboxUser.signIn();
    const { page, errors } = inboxUser;
    const rows = [
      ['color-grade', 'done', 'Colour grade is done', '95 minutes', true],
      ['audio-clean', 'done', 'Clean up audio is done', '80 minutes', false],
      ['roto', 'failed', 'Cut out (roto) failed: the image is 4000x3000 (12.0 MP); at most 2 MP can be processed here', '62 minutes', false],
      ['color-grade', 'cancelled', 'Colour grade was cancelled', '40 minutes', false],
      ['image', 'done', 'Generate an image is done', '12 minutes', false],
      ['color-grade', 'done', 'Colour grade is done', '3 minutes', false],
    ];
    for (const [type, state, message, ago, read] of rows) {
      await env.admin.query(
        `insert into public.notifications (user_id, job_id, job_type, status, message, created_at, read_at)
         values ($1, gen_random_uuid(), $2, $3, $4, now() - $5::interval, case when $6 then now() end)`,
        [id, type, state, message, ago, read],
      );
    }
    await page.reload();
    await page.getByRole('button', { name: /^Inbox\W+5 unread$/ }).waitFor();
    await dismissToasts(page);
    await page.getByTestId('inbox-button').click();
    await until(async () => (await page.getByTestId('inbox-item').count()) === rows.length, { what: 'the inbox listed' });
    await page.mouse.move(0, 0);
    await page.screenshot({ path: path.join(outDir, 'inbox.png') });
    assert.deepEqual(errors, []);
  } finally {
    await inboxUser.close();
  }
});

test('screenshot of the run view', async () => {
  const { page, errors } = user;
  const userId = (await user.session()).user.id;
  // An audio clean-up that failed once (this test plays the worker of its first attempt, claimed
  // through claim_jobs so the attempt is recorded), then ran for real on job-worker.
  const input = await uploadByApi('Interview_take_2.wav', noisyWav(), 'audio/wav');
  const hold = await holdQueue(env.admin, userId);
  let job;
  try {
    job = await startByApi('audio-clean', { input_path: input, target_lufs: -16, noise_reduction: 0.6 });
    // A worker's claim in flight may hold the row for a moment (SKIP LOCKED): try until ours takes it.
    const token = await until(() => claimAsTest(env.admin, job.id, 'jw-3f9a1c2e'), { what: 'the test to claim the job' });
    await env.admin.query(`select public.heartbeat_job($1, $2, 15, 'decoding')`, [job.id, token]);
    await env.admin.query(
      `select public.fail_job($1, $2, '{"message": "storage read timed out after 30 s"}', true)`,
      [job.id, token],
    );
    await env.admin.query('update public.jobs set run_at = now() where id = $1', [job.id]);
  } finally {
    await hold.release();
  }
  const ring = await fetch(`${env.api}/functions/v1/job-worker`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.serviceKey}`, 'content-type': 'application/json' },
    body: '{}',
  });
  await ring.body?.cancel();
  await until(async () => (await status(job.id)) === 'done', { what: 'the retried audio job' });

  await page.setViewportSize({ width: 1280, height: 860 });
  await page.goto(`${env.appUrl}/#/jobs/${job.id}`);
  await page.getByTestId('after-audio').waitFor();
  await page.getByTestId('attempt').nth(1).waitFor();
  await page.getByTestId('run-report').waitFor();
  await until(() => page.locator('audio').evaluateAll((els) => els.length === 2 && els.every((a) => a.readyState >= 1)), { what: 'both players' });
  await dismissToasts(page);
  await shot(page, 'run-view', { fullPage: true });
  assert.deepEqual(errors, []);
});

/** A finished (or queued) job row for the screenshots, as the SQL API leaves it. */
async function jobRow(userId, type, status, { minutesAgo, input, runMs = 1500, waitMs = 400, error = null }) {
  const { rows: [r] } = await env.admin.query(
    `insert into public.jobs (user_id, type, status, input, created_at, run_at, started_at, finished_at, error, attempts, progress)
     values ($1, $2, $3::public.job_status, $4, now() - make_interval(secs => $5::float8 * 60),
             now() - make_interval(secs => $5::float8 * 60),
             case when $3 in ('done', 'failed') then now() - make_interval(secs => $5::float8 * 60) + make_interval(secs => $7::float8 / 1000) end,
             case when $3 in ('done', 'failed', 'cancelled')
                  then now() - make_interval(secs => $5::float8 * 60) + make_interval(secs => ($7::float8 + $6::float8) / 1000) end,
             $8, case when $3 = 'pending' then 0 else 1 end, case when $3 = 'done' then 100 else 0 end)
     returning id`,
    [userId, type, status, JSON.stringify(input), minutesAgo, runMs, waitMs, error ? JSON.stringify(error) : null],
  );
  return r.id;
}

test('screenshots of the filtered history and the console', async () => {
  const { page, errors } = user;
  const userId = (await user.session()).user.id;
  const file = (name) => ({ input_path: `${userId}/mx5snp22-${name}` });
  // An hour of work: colour grades, audio clean-ups and images finishing every few minutes, with
  // a few failures; then a backlog held at the per-user cap (the console's stall reason).
  const presets = ['noir', 'warm', 'teal-orange', 'cool'];
  for (let i = 0; i < 40; i++) {
    const minutesAgo = 58 - i * 1.4;
    const kind = i % 4;
    const status = i % 9 === 4 ? 'failed' : 'done';
    const error = status === 'failed'
      ? { code: kind === 1 ? 'unsupported_wav' : 'provider_error', message: kind === 1 ? 'WAV is 24-bit float: send 16-bit PCM' : 'the provider timed out', retryable: kind !== 1, attempt: 3 }
      : null;
    if (kind === 0 || kind === 3) {
      await jobRow(userId, 'color-grade', status, {
        minutesAgo,
        input: { ...file(`harbour-${i}.png`), preset: presets[i % 4], ...(i % 3 === 0 ? { output_format: 'jpeg' } : {}) },
        runMs: 700 + (i % 5) * 180,
        waitMs: 300 + (i % 7) * 120,
        error,
      });
    } else if (kind === 1) {
      await jobRow(userId, 'audio-clean', status, {
        minutesAgo,
        input: { ...file(`interview-${i}.wav`), noise_reduction: i % 2 ? 0.9 : 0.3 },
        runMs: 2200 + (i % 4) * 500,
        waitMs: 500 + (i % 3) * 200,
        error,
      });
    } else {
      await jobRow(userId, 'image', status, {
        minutesAgo,
        input: { prompt: `a lighthouse in a storm, take ${i}` },
        runMs: 4000 + (i % 3) * 900,
        waitMs: 800,
        error,
      });
    }
  }
  const hold = await holdQueue(env.admin, userId);
  try {
    for (let i = 0; i < 3; i++) {
      await jobRow(userId, 'color-grade', 'pending', { minutesAgo: 0.2 + i * 0.1, input: { ...file(`batch-${i}.png`), preset: 'warm' } });
    }
    // The filtered history: failed colour grades and audio of the hour, searched.
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(`${env.appUrl}/#/jobs`);
    const filters = page.getByRole('search', { name: 'Filter jobs' });
    await filters.getByLabel('Type').selectOption({ label: 'Colour grade' });
    await filters.getByLabel('Search').fill('harbour');
    await until(async () => {
      const names = await page.locator('[data-testid="history-item"]').evaluateAll((els) => els.map((e) => e.textContent));
      return names.length === 10 && names.every((n) => n.includes('harbour'));
    }, { what: 'ten colour grades of harbour files' });
    // The bulk retry's confirmation, with its count, over the page.
    await page.getByRole('button', { name: 'Retry all failed' }).click();
    await page.getByTestId('bulk-confirm').getByText(/^Retry \d+ failed jobs? matching this filter\?$/).waitFor();
    await page.mouse.move(0, 0);
    await dismissToasts(page);
    await shot(page, 'history-filtered');
    await page.getByTestId('bulk-confirm').getByRole('button', { name: 'Keep them' }).click();
    await filters.getByRole('button', { name: 'Clear filters' }).click();

    // The console: the hour at once, why the backlog waits, the limits, the failures.
    await env.admin.query(
      `update auth.users set raw_app_meta_data = coalesce(raw_app_meta_data, '{}') || '{"spool_admin": true}' where id = $1`,
      [userId],
    );
    try {
      await page.goto(`${env.appUrl}/#/admin`);
      await page.reload();
      await page.getByTestId('stall-reasons').locator('[data-code="user_cap"]').waitFor();
      await page.getByRole('img', { name: /Jobs finished per minute/ }).waitFor();
      await page.getByTestId('failed-jobs').locator('li').first().waitFor();
      await page.getByTestId('all-jobs').locator('[data-testid="console-item"]').first().waitFor();
      await dismissToasts(page);
      await shot(page, 'console', { fullPage: true });
      await page.setViewportSize({ width: 360, height: 780 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `#/admin: no horizontal scroll at 360 px (overflow ${overflow} px)`);
      await page.setViewportSize({ width: 1280, height: 860 });
    } finally {
      await env.admin.query(
        `update auth.users set raw_app_meta_data = raw_app_meta_data - 'spool_admin' where id = $1`,
        [userId],
      );
    }
  } finally {
    await hold.release();
  }
  assert.deepEqual(errors, []);
  console.log(`# screenshots in ${outDir}`);
});
