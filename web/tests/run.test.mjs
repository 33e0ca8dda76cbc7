// Browser tests of the run view (the job page, #/jobs/<id>: RunDetail) and of honest states, in
// Debian's Chromium against a live stack (helpers.mjs):
//   1. a job that fails once and then succeeds shows two attempts with their outcomes, the first
//      one's error, the settings it ran with and every field of its output report
//   2. a pending job behind others shows its place in line, and moves up as they go
//   3. a job claimed but waiting for a media slot is not shown as Running (no progress as if it
//      worked), and a cancelled one says it has no result
// The attempts are made deterministic by playing the worker in SQL: holdQueue keeps the user's
// jobs queued, claimAsTest claims one through claim_jobs (so its attempt is recorded), and
// heartbeat_job / fail_job report as job-worker does. The tests wait for states, never for time.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  claimAsTest,
  colourfulPng,
  holdQueue,
  noisyWav,
  openProfile,
  setup,
  until,
} from './helpers.mjs';

let env;
let user;
let userId;

before(async () => {
  env = await setup();
  user = await openProfile(env);
  userId = (await user.signIn()).user.id;
});

after(async () => {
  await user?.close();
  await env?.close();
});

async function uploadByApi(name, bytes, type) {
  const { access_token: token } = await user.session();
  const p = `${userId}/${name}`;
  const res = await fetch(`${env.api}/storage/v1/object/inputs/${p}`, {
    method: 'POST',
    headers: {
      apikey: env.anonKey,
      authorization: `Bearer ${token}`,
      'content-type': type,
      'x-upsert': 'true',
    },
    body: bytes,
  });
  assert.equal(res.status, 200, await res.text());
  return p;
}

async function startByApi(type, body) {
  const { access_token: token } = await user.session();
  const res = await fetch(`${env.api}/functions/v1/${type}`, {
    method: 'POST',
    headers: {
      apikey: env.anonKey,
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 202, text);
  return JSON.parse(text).job;
}

/** Rings job-worker, as the doorbell or the sweep does. */
async function ringWorker() {
  const res = await fetch(`${env.api}/functions/v1/job-worker`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.serviceKey}`, 'content-type': 'application/json' },
    body: '{}',
  });
  await res.body?.cancel();
}

const jobRow = async (id) =>
  (await env.admin.query('select * from public.jobs where id = $1', [id])).rows[0];

test('a job that failed once, then succeeded, shows both attempts, the first error, its settings and its whole report', async () => {
  const { page, errors } = user;
  const input = await uploadByApi('voice-note.wav', noisyWav(), 'audio/wav');
  const hold = await holdQueue(env.admin, userId);
  let job;
  try {
    job = await startByApi('audio-clean', { input_path: input, target_lufs: -18 });
    // A worker's claim in flight may hold the row for a moment (SKIP LOCKED): try until ours takes it.
    const token = await until(() => claimAsTest(env.admin, job.id, 'web-test-flaky'), {
      what: 'the test to claim the job',
    });
    await env.admin.query(`select public.heartbeat_job($1, $2, 15, 'decoding')`, [job.id, token]);
    await env.admin.query(
      `select public.fail_job($1, $2, '{"message": "the test worker lost its connection", "code": "connection_lost"}', true)`,
      [job.id, token],
    );
    // Runnable now rather than after its backoff: the test waits for states, not for time.
    await env.admin.query('update public.jobs set run_at = now() where id = $1', [job.id]);
  } finally {
    await hold.release();
  }
  await ringWorker();
  await until(async () => (await jobRow(job.id)).status === 'done', {
    what: 'the retried job to be done',
  });

  await page.goto(`${env.appUrl}/#/jobs/${job.id}`);
  await page.locator('[data-testid="job-card"][data-status="done"]').waitFor();
  const attempts = page.getByTestId('attempt');
  await attempts.nth(1).waitFor();
  assert.equal(await attempts.count(), 2, 'two attempts');
  assert.deepEqual(await page.getByTestId('attempt-outcome').allTextContents(), [
    'Failed · retried',
    'Done',
  ]);
  assert.match(
    await attempts.nth(0).getByTestId('attempt-error').textContent(),
    /^the test worker lost its connection \(connection_lost\)$/,
    'the message, a space, then the error code in parentheses',
  );
  assert.equal(
    await attempts.nth(1).getByTestId('attempt-error').count(),
    0,
    'the attempt that succeeded shows no error',
  );
  assert.match(await attempts.nth(0).textContent(), /decoding/, 'the first attempt lists its step');

  // The settings it ran with, labelled as the form labels them: the file by its name.
  const settings = page.getByTestId('run-settings');
  assert.match(await settings.textContent(), /voice-note\.wav/);
  assert.match(await settings.textContent(), /-18/);

  // Every field of output.report, not a pick: DC offset, noise floors and peak included.
  const report = (await jobRow(job.id)).output.report;
  const keys = Object.keys(report);
  for (const k of ['dc_offset', 'noise_floor_db', 'output_noise_floor_db', 'peak_dbtp']) {
    assert.ok(keys.includes(k), `the audio report has ${k}`);
  }
  const shown = await page.getByTestId('run-report').locator('[data-key]').evaluateAll((els) =>
    els.map((e) => e.getAttribute('data-key'))
  );
  assert.deepEqual(
    [...shown].sort(),
    [...keys].sort(),
    'the run view shows every field of the report',
  );
  assert.match(await page.getByTestId('run-report').textContent(), /DC offset/);

  // Time running is told apart from time waiting.
  await page.getByTestId('timing-running').waitFor();
  await page.getByTestId('timing-queued').waitFor();
  assert.match(await page.getByTestId('job-took').textContent(), /ran /);
  assert.deepEqual(errors, []);
});

test('a pending job behind others shows its place in line and moves up as they go', async () => {
  const { page, errors } = user;
  const photo = await uploadByApi('line.png', colourfulPng(32, 24), 'image/png');
  const hold = await holdQueue(env.admin, userId);
  const jobs = [];
  try {
    for (const preset of ['warm', 'cool', 'noir']) {
      jobs.push(await startByApi('color-grade', { input_path: photo, preset }));
    }
    // Other suites on this stack may leave pending jobs (of types no worker here runs, or of
    // owners held at the cap): put these three at the front of the line, as an admin may.
    await env.admin.query('update public.jobs set priority = 100 where id = any($1::uuid[])', [jobs.map((j) => j.id)]);
    const last = jobs[2];
    await page.goto(`${env.appUrl}/#/jobs/${last.id}`);
    await page.locator(`[data-testid="job-card"][data-job-id="${last.id}"][data-status="pending"]`)
      .waitFor();
    await page.getByTestId('job-step').filter({ hasText: '3rd in line' }).waitFor();
    assert.equal((await page.getByTestId('job-badge').textContent()).trim(), 'Queued');

    // The first one leaves the line: the page asks again while the job is pending.
    await env.admin.query('select public.cancel_job($1)', [jobs[0].id]);
    await page.getByTestId('job-step').filter({ hasText: '2nd in line' }).waitFor();
    await env.admin.query('select public.cancel_job($1)', [jobs[1].id]);
    await page.getByTestId('job-step').filter({ hasText: 'Next in line' }).waitFor();
  } finally {
    for (const j of jobs) {
      await env.admin.query('select public.cancel_job($1)', [j.id]).catch(() => {});
    }
    await hold.release();
  }
  assert.deepEqual(errors, []);
});

test('a job waiting for a media slot is not shown as running, and a cancelled one says it has no result', async () => {
  const { page, errors } = user;
  const photo = await uploadByApi('slot.png', colourfulPng(32, 24), 'image/png');
  const hold = await holdQueue(env.admin, userId);
  try {
    const job = await startByApi('color-grade', { input_path: photo, preset: 'warm' });
    // A worker's claim in flight may hold the row for a moment (SKIP LOCKED): try until ours takes it.
    const token = await until(() => claimAsTest(env.admin, job.id, 'web-test-slots'), {
      what: 'the test to claim the job',
    });
    // As job-worker reports a job that waits for a free media slot (media-slots.ts).
    await env.admin.query(`select public.heartbeat_job($1, $2, 0, 'queued')`, [job.id, token]);

    await page.goto(`${env.appUrl}/#/jobs/${job.id}`);
    const card = page.locator(
      `[data-testid="job-card"][data-job-id="${job.id}"][data-status="running"]`,
    );
    await card.waitFor();
    await page.getByTestId('job-step').filter({ hasText: 'Waiting for a free worker slot' })
      .waitFor();
    assert.equal((await page.getByTestId('job-badge').textContent()).trim(), 'Waiting for a slot');
    assert.equal(
      await card.getByRole('progressbar').getAttribute('aria-valuenow'),
      null,
      'no 0 % bar as if it worked',
    );
    assert.doesNotMatch(await card.locator('.job-card__progress').textContent(), /Running|%/);
    await page.getByTestId('attempt-outcome').filter({ hasText: 'Waiting for a free worker slot' })
      .waitFor();
    // My jobs says the same, not "Running".
    await page.goto(`${env.appUrl}/#/jobs`);
    const row = page.locator(`[data-testid="history-item"][data-job-id="${job.id}"]`);
    await row.locator('.badge').filter({ hasText: 'Waiting for a slot' }).waitFor();
    await page.goto(`${env.appUrl}/#/jobs/${job.id}`);
    await card.waitFor();

    // Once it has a slot and reports work, it is running.
    await env.admin.query(`select public.heartbeat_job($1, $2, 40, 'grading')`, [job.id, token]);
    await page.getByTestId('job-step').filter({ hasText: 'Grading · 40%' }).waitFor();
    assert.equal((await page.getByTestId('job-badge').textContent()).trim(), 'Running');

    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.locator(`[data-testid="job-card"][data-job-id="${job.id}"][data-status="cancelled"]`)
      .waitFor();
    await page.getByTestId('attempt-outcome').filter({ hasText: 'Cancelled' }).waitFor();
    await page.getByTestId('job-no-result').waitFor();
    const said = await page.getByTestId('job-card').textContent();
    assert.doesNotMatch(said, /Not ready yet/);
    assert.equal(said.match(/no result/g)?.length, 1, `"no result" said once: ${said}`);
  } finally {
    await hold.release();
  }
  assert.deepEqual(errors, []);
});
