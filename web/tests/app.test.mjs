// Browser tests of the web client (web/) in Debian's Chromium, against a live stack: the app is
// built with the stack's URL and anon key and served statically (see helpers.mjs).
//
//   1. sign-in, upload from the keyboard, colour grade (noir), live status through Realtime to
//      done without a reload, download
//   2. cancel a job that stays queued
//   3. retry a job that failed
//   4. a file too large, or one only an unconfigured provider takes, refused before any upload
//   5. upload progress, and polling while Realtime is refused (this test refuses it itself)
//   6. a second browser profile sees none of the first one's jobs or files
//   7. the admin view, for a user with app_metadata.spool_admin (the console's charts, job types)
//   8. schedules: the Schedules view (made through SQL, as an admin would), pause, resume,
//      delete; Repeat on the new-job form previews the next runs
//   9. the complete pack: its form says it needs OpenAI where image is unavailable (a page.route
//      says so); a pack made through SQL is one card of seven children (in History and opened),
//      cancelled one child, then the whole pack
//  10. the complete pack from the form: a prompt, Start, and the one card shows all seven done
//      (six thumbnails, the A+ headline); the stack's OpenAI is a fake (local/tools/fake-openai.mjs)
// The stack `npm test` runs configures OpenAI against that fake; a test that needs OpenAI
// unconfigured says so itself with a page.route on GET /jobs/kinds (kindsWithoutOpenAI).
// Every test also asserts that the page logged no console errors. The tests wait for states of
// the page or of the job's row, never for time (helpers.mjs WAIT_MS only bounds a wait).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  colourfulPng,
  corruptPng,
  decodePng,
  holdQueue,
  makePng,
  maxChroma,
  openProfile,
  PNG_SIGNATURE,
  setup,
  until,
} from './helpers.mjs';

// The new-job form's Start button ("Start: colour grade", ...), not the complete pack's form
// beside it, which offers its own "Start: complete pack" now that the stack has OpenAI (a fake).
const START_JOB = /^Start(?!: complete pack)/;

const TERMINAL = ['done', 'failed', 'cancelled'];

let env;
let alice; // the first browser profile
let aliceSession;

before(async () => {
  env = await setup();
  alice = await openProfile(env);
  aliceSession = await alice.signIn();
});

after(async () => {
  await alice?.close();
  await env?.close();
});

/** The job card on the page (the current job on the "New job" view). */
const card = (page) => page.getByTestId('job-card');

/**
 * Opens a view of the app (a hash route) and waits until the app has taken it over: on a route
 * change it moves focus to <main> (for keyboard and screen-reader users), so nothing done on the
 * new view afterwards can lose its focus to that move.
 */
async function goTo(page, hash) {
  if ((await page.evaluate(() => location.hash)) === hash) return;
  await page.evaluate(() => document.activeElement?.blur());
  await page.goto(`${env.appUrl}/${hash}`);
  await page.waitForFunction(() => document.activeElement?.id === 'main');
}

/**
 * Makes GET /functions/v1/jobs/kinds answer as a project without OpenAI does: image and text
 * unavailable, provider_not_configured with the creators' own messages. The stack configures
 * OpenAI (a fake), so a test of the "not configured" path must ask for it; reload after.
 */
async function kindsWithoutOpenAI(page) {
  await page.route('**/functions/v1/jobs/kinds', async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    for (const k of body.kinds) {
      if (k.type === 'image' || k.type === 'text') {
        const what = k.type === 'image' ? 'image generation' : 'text generation';
        Object.assign(k, {
          available: false,
          unavailable: {
            code: 'provider_not_configured',
            message: `${what} needs OpenAI, which this project has not configured`,
          },
        });
      }
    }
    await route.fulfill({ response: res, json: body });
  });
}

/**
 * Uploads a PNG through the drop zone and starts a colour grade. `how`: 'keyboard' (Enter on the
 * focused drop zone opens the file picker), 'drop' (a drop event carrying the file) or 'input'
 * (the labelled file input). Returns the new job's id, as the creator answered it; its card is
 * on the page by then.
 */
async function uploadAndStart(page, { name, buffer, preset, how = 'input' }) {
  await goTo(page, '#/');
  await page.getByRole('radio', { name: /^Colour grade/ }).check();
  await chooseFile(page, { name, buffer, type: 'image/png', how });
  await page.getByTestId('uploaded').waitFor();
  if (preset) await page.getByLabel('Preset', { exact: true }).selectOption(preset);
  const created = page.waitForResponse((r) =>
    r.request().method() === 'POST' && new URL(r.url()).pathname === '/functions/v1/color-grade'
  );
  await page.getByRole('button', { name: START_JOB }).click();
  const res = await created;
  const body = await res.text();
  assert.equal(res.status(), 202, `the creator accepted the job: ${body}`);
  const { job } = JSON.parse(body);
  // The card of the new job replaces the previous one (the current job is kept per tab).
  await page.locator(`[data-testid="job-card"][data-job-id="${job.id}"]`).waitFor();
  return job.id;
}

async function chooseFile(page, { name, buffer, type, how }) {
  const zone = page.getByTestId('dropzone');
  const input = page.getByTestId('file-input');
  if (how === 'keyboard') {
    // Enter on the focused zone must click the (hidden) file input, which is what opens the
    // picker. That click is recorded here and its default (the native picker) prevented; the
    // file is then given to the same input, as the picker would (no filechooser event to race).
    await input.evaluate((el) => {
      window.__pickerOpened = false;
      el.addEventListener('click', (e) => {
        window.__pickerOpened = true;
        e.preventDefault();
      }, { once: true });
    });
    await zone.press('Enter');
    await page.waitForFunction(() => window.__pickerOpened === true);
    await input.setInputFiles({ name, mimeType: type, buffer });
  } else if (how === 'drop') {
    const dataTransfer = await page.evaluateHandle(({ b64, name, type }) => {
      const dt = new DataTransfer();
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], name, { type }));
      return dt;
    }, { b64: buffer.toString('base64'), name, type });
    await zone.dispatchEvent('dragenter', { dataTransfer });
    await zone.dispatchEvent('drop', { dataTransfer });
  } else {
    await input.setInputFiles({ name, mimeType: type, buffer });
  }
}

async function jobRow(id) {
  const { rows } = await env.admin.query('select * from public.jobs where id = $1', [id]);
  return rows[0];
}

/** Waits until job `id` has ended (done, failed or cancelled, in its row); returns the row. */
const ended = (id) =>
  until(async () => {
    const row = await jobRow(id);
    return TERMINAL.includes(row?.status) && row;
  }, { what: `job ${id} to end` });

/**
 * Starts a colour grade of a fresh upload as the user whose access token is `token`, through
 * Storage and the creator (as the app does), and waits for it to end; returns its row.
 */
async function gradeByApi(token, userId, name) {
  const auth = { apikey: env.anonKey, authorization: `Bearer ${token}` };
  const inputPath = `${userId}/${name}`;
  const up = await fetch(`${env.api}/storage/v1/object/inputs/${inputPath}`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'image/png', 'x-upsert': 'true' },
    body: colourfulPng(48, 36),
  });
  assert.equal(up.status, 200, await up.text());
  const res = await fetch(`${env.api}/functions/v1/color-grade`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ input_path: inputPath, preset: 'warm' }),
  });
  const text = await res.text();
  assert.equal(res.status, 202, text);
  return await ended(JSON.parse(text).job.id);
}

describe('the web client', () => {
  test('signs in anonymously, uploads, grades a photo noir and shows it live until done', async () => {
    const { page, errors } = alice;
    assert.ok(aliceSession?.access_token, 'a session is kept in localStorage');
    assert.equal(aliceSession.user.is_anonymous, true);

    // The page must not reload while the job runs: a marker on window survives only without one.
    // Every state a job card shows is recorded from its first render on, with the card element
    // it was shown in (numbered), so the first state cannot be missed however fast the job runs.
    await page.evaluate(() => {
      window.__noReload = true;
      window.__cards = [];
      const seen = new WeakMap(); // card element -> { n, status }
      let cards = 0;
      const record = () => {
        for (const el of document.querySelectorAll('[data-testid="job-card"][data-job-id]')) {
          let s = seen.get(el);
          if (!s) seen.set(el, (s = { n: ++cards, status: null }));
          if (s.status === el.dataset.status) continue;
          s.status = el.dataset.status;
          window.__cards.push({ id: el.dataset.jobId, status: s.status, card: s.n });
        }
      };
      new MutationObserver(record).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
        attributeFilter: ['data-status', 'data-job-id'],
      });
    });

    const id = await uploadAndStart(page, { name: 'gradient.png', buffer: colourfulPng(), preset: 'noir', how: 'keyboard' });

    await page.locator(`[data-testid="job-card"][data-job-id="${id}"][data-status="done"]`).waitFor();
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
    // The stack serves Realtime: the card is kept live through it.
    await card(page).getByText('Live updates').waitFor();
    const shown = (await page.evaluate(() => window.__cards)).filter((c) => c.id === id);
    const statuses = shown.map((c) => c.status);
    assert.equal(statuses[0], 'pending', `the card starts with the queued job: ${statuses.join(' -> ')}`);
    assert.equal(statuses.at(-1), 'done');
    assert.equal(new Set(shown.map((c) => c.card)).size, 1, `the card changed state in place: ${JSON.stringify(shown)}`);

    // The input was stored in the user's own folder.
    const row = await jobRow(id);
    assert.equal(row.user_id, aliceSession.user.id);
    assert.match(row.input.input_path, new RegExp(`^${aliceSession.user.id}/[0-9a-z]+-gradient\\.png$`));
    assert.equal(row.input.preset, 'noir');

    // Before/after: both images load.
    const compare = page.getByTestId('compare');
    await compare.waitFor();
    await until(() => compare.locator('img').evaluateAll((imgs) => imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0)), { what: 'both preview images' });

    // A toast, in the aria-live region, says it is done.
    await page.getByRole('status').filter({ hasText: 'Colour grade is done' }).waitFor();

    // Download: a PNG, and greyscale.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download').click()]);
    assert.match(download.suggestedFilename(), /gradient-graded\.png$/);
    const file = fs.readFileSync(await download.path());
    assert.ok(file.subarray(0, 8).equals(PNG_SIGNATURE), 'the download is a PNG');
    const image = decodePng(file);
    assert.deepEqual([image.width, image.height], [160, 120]);
    assert.ok(maxChroma(image) <= 2, `noir output is greyscale (max channel spread ${maxChroma(image)})`);

    // History lists it, done.
    await page.goto(`${env.appUrl}/#/jobs`);
    await page.locator(`[data-testid="history-item"][data-job-id="${id}"][data-status="done"]`).waitFor();

    assert.deepEqual(errors, []);
  });

  test('cancels a job that stays queued', async () => {
    // Deterministic queueing without sleeps (holdQueue): the per-user running cap (spool.settings
    // max_running_per_user, honoured by claim_jobs) is set to 1 and this user already has a
    // running job, a test-only `noop` blocker. The colour grade started from the UI then stays
    // `pending` however often job-worker is rung, until it is cancelled.
    const { page, errors } = alice;
    const hold = await holdQueue(env.admin, aliceSession.user.id);
    try {
      const id = await uploadAndStart(page, { name: 'queued.png', buffer: colourfulPng(32, 24), how: 'drop' });
      await page.locator(`[data-testid="job-card"][data-job-id="${id}"][data-status="pending"]`).waitFor();
      await page.getByTestId('job-step').filter({ hasText: /Queued|in line/ }).waitFor();
      assert.equal((await jobRow(id)).status, 'pending');

      await page.getByRole('button', { name: 'Cancel job' }).click();
      await page.locator(`[data-testid="job-card"][data-job-id="${id}"][data-status="cancelled"]`).waitFor();
      assert.equal((await jobRow(id)).status, 'cancelled');
      assert.equal(await page.getByRole('button', { name: 'Cancel job' }).count(), 0);
      await page.getByRole('button', { name: 'Retry' }).waitFor();
      await page.getByRole('status').filter({ hasText: 'Colour grade was cancelled' }).waitFor();
    } finally {
      await hold.release();
    }
    assert.deepEqual(errors, []);
  });

  test('retries a job that failed, once its input is fixed', async () => {
    // Deterministic failure: the PNG's header is valid, so the creator accepts it, but its image
    // data is not zlib at all, so the worker fails it for good (corrupt_image, not retryable).
    const { page, errors } = alice;
    // First, a file the client refuses itself (the creators' types): nothing is uploaded.
    await goTo(page, '#/');
    await chooseFile(page, { name: 'notes.txt', buffer: Buffer.from('hello'), type: 'text/plain', how: 'drop' });
    await page.getByRole('alert').filter({ hasText: "Colour grade can't take text/plain" }).waitFor();
    assert.equal(await page.getByRole('button', { name: START_JOB }).isDisabled(), true);

    const id = await uploadAndStart(page, { name: 'broken.png', buffer: corruptPng() });
    await page.locator(`[data-testid="job-card"][data-job-id="${id}"][data-status="failed"]`).waitFor();
    await page.getByTestId('job-error').filter({ hasText: /could not be decoded|corrupt/i }).waitFor();
    await page.getByRole('status').filter({ hasText: 'Colour grade failed' }).waitFor();
    const failed = await jobRow(id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error.code, 'corrupt_image');

    // A permanent failure: the card says a retry of the same file would fail the same way, and
    // retrying before the file is fixed is refused with that reason (409 not_retryable).
    await page.getByTestId('retry-note').filter({ hasText: 'This failure is permanent' }).waitFor();
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.getByRole('alert').filter({ hasText: 'failed for good' }).waitFor();
    assert.equal((await jobRow(id)).status, 'failed');

    // Re-upload a good file under the same name, as the user (Storage update, own folder).
    const res = await fetch(`${env.api}/storage/v1/object/inputs/${failed.input.input_path}`, {
      method: 'PUT',
      headers: {
        apikey: env.anonKey,
        authorization: `Bearer ${(await alice.session()).access_token}`,
        'content-type': 'image/png',
      },
      body: colourfulPng(64, 48),
    });
    assert.equal(res.status, 200, await res.text());

    await page.getByRole('button', { name: 'Retry' }).click();
    await page.locator(`[data-testid="job-card"][data-job-id="${id}"][data-status="done"]`).waitFor();
    assert.equal((await jobRow(id)).status, 'done');
    await page.getByTestId('compare').waitFor();
    // The refused retry above is the one failed request the browser logged.
    assert.deepEqual(errors, [
      'console.error: Failed to load resource: the server responded with a status of 409 (Conflict)',
    ]);
    errors.length = 0;
  });

  test('refuses a file too large, or one only an unconfigured provider takes, before uploading it', async () => {
    const dave = await openProfile(env);
    try {
      const session = await dave.signIn();
      const { page } = dave;
      // The rules come from GET /jobs/kinds: this stack configures no Replicate, and the inputs
      // bucket's limit is colour grade's max_bytes.
      const kinds = await (await fetch(`${env.api}/functions/v1/jobs/kinds`, {
        headers: { apikey: env.anonKey, authorization: `Bearer ${session.access_token}` },
      })).json();
      const grade = kinds.kinds.find((k) => k.type === 'color-grade');
      assert.equal(grade.file.provider_configured, false, 'the test stack has no Replicate');
      assert.ok(grade.file.content_types.includes('video/mp4') && !grade.file.in_function.content_types.includes('video/mp4'));
      const uploads = [];
      page.on('request', (r) => {
        if (new URL(r.url()).pathname.startsWith('/storage/v1/object/')) uploads.push(`${r.method()} ${r.url()}`);
      });

      await page.getByRole('radio', { name: /^Colour grade/ }).check();
      // A video: colour grade takes it only through Replicate, which is not configured here.
      await chooseFile(page, { name: 'clip.mp4', buffer: Buffer.alloc(2048, 1), type: 'video/mp4', how: 'input' });
      await page.getByRole('alert')
        .filter({ hasText: 'Colour grade of video/mp4 needs Replicate, which this project has not configured: use PNG or JPEG' })
        .waitFor();
      assert.equal(await page.getByRole('button', { name: START_JOB }).isDisabled(), true);

      // Larger than the limit (a sparse file: Playwright hands the browser its path), both sizes named.
      const huge = path.join(env.tmp, 'huge.png');
      fs.writeFileSync(huge, PNG_SIGNATURE);
      fs.truncateSync(huge, grade.file.max_bytes + 10 * 1024 * 1024);
      await page.getByTestId('file-input').setInputFiles(huge);
      await page.getByRole('alert').filter({ hasText: 'huge.png is 60 MB; the limit is 50 MB.' }).waitFor();
      assert.equal(await page.getByRole('button', { name: START_JOB }).isDisabled(), true);
      assert.equal(await page.getByTestId('uploaded').count(), 0);

      // A kind whose provider is not configured says so, and offers no upload and no Start. The
      // stack has OpenAI (a fake): the page is told it has not, as a project without a key is.
      const image = kinds.kinds.find((k) => k.type === 'image');
      assert.equal(image.available, true, 'the test stack configures OpenAI (local/tools/fake-openai.mjs)');
      await kindsWithoutOpenAI(page);
      await page.reload();
      // The card's label covers its radio (styles.css), so a click lands on the label, as a person's does.
      await page.locator('label', { hasText: 'Generate an image' }).click();
      assert.equal(await page.getByRole('radio', { name: /^Generate an image/ }).isChecked(), true);
      await page.getByTestId('unavailable').filter({ hasText: 'Image generation needs OpenAI' }).waitFor();
      assert.equal(await page.getByRole('button', { name: START_JOB }).count(), 0);
      assert.equal(await page.getByTestId('dropzone').count(), 0);

      // Nothing was sent to Storage, and nothing is in the user's folder.
      assert.deepEqual(uploads, []);
      const { rows: [{ n }] } = await env.admin.query(
        `select count(*)::int as n from storage.objects where bucket_id = 'inputs' and name like $1`,
        [`${session.user.id}/%`],
      );
      assert.equal(n, 0);
      assert.deepEqual(dave.errors, []);
    } finally {
      await dave.close();
    }
  });

  test('shows upload progress, and keeps up by polling while Realtime is unreachable', async () => {
    const carol = await openProfile(env);
    try {
      // Realtime refused (every WebSocket to it closed at once), uploads slowed to ~256 KB/s.
      await carol.page.routeWebSocket(/\/realtime\/v1\/websocket/, (ws) => ws.close());
      const cdp = await carol.context.newCDPSession(carol.page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: 256 * 1024,
      });
      await carol.signIn();
      const { page } = carol;
      await page.evaluate(() => {
        window.__progress = [];
        new MutationObserver(() => {
          const bar = document.querySelector('.upload-status [role="progressbar"]');
          if (bar) window.__progress.push(Number(bar.getAttribute('aria-valuenow')));
        }).observe(document.body, { subtree: true, attributes: true, childList: true });
      });
      // ~700 KB that PNG cannot shrink (noise): a few seconds at that rate.
      let seed = 3;
      const noise = makePng(480, 480, () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return [seed & 255, (seed >> 8) & 255, (seed >> 16) & 255];
      });
      const id = await uploadAndStart(page, { name: 'noise.png', buffer: noise, preset: 'cool' });
      const progress = await page.evaluate(() => window.__progress);
      assert.ok(progress.some((p) => p > 0 && p < 100), `the bar moved through the upload: ${progress.join(', ')}`);

      await page.locator(`[data-testid="job-card"][data-job-id="${id}"][data-status="done"]`).waitFor();
      await card(page).getByText('Realtime unavailable: checking every 3 s').waitFor();
      assert.equal((await jobRow(id)).status, 'done');
      await page.getByTestId('compare').waitFor();
      await page.getByRole('status').filter({ hasText: 'Colour grade is done' }).waitFor();
      assert.deepEqual(carol.errors.filter((e) => !/WebSocket/.test(e)), []);
    } finally {
      await carol.close();
    }
  });

  test("a second browser profile sees none of the first one's jobs or files", async () => {
    // The first profile's job with an output, made here (not borrowed from another test).
    const graded = await gradeByApi((await alice.session()).access_token, aliceSession.user.id, 'private.png');
    assert.equal(graded.status, 'done', JSON.stringify(graded.error));
    const bob = await openProfile(env);
    try {
      const session = await bob.signIn();
      assert.notEqual(session.user.id, aliceSession.user.id, 'a new profile is a new anonymous user');

      await bob.page.goto(`${env.appUrl}/#/jobs`);
      await bob.page.getByTestId('history-empty').waitFor();

      // Opening the first user's job by its id: the jobs API answers 404, the page says so.
      bob.allow(/Failed to load resource: the server responded with a status of 404/);
      await bob.page.goto(`${env.appUrl}/#/jobs/${graded.id}`);
      await bob.page.getByText('That job does not exist, or it is not yours.').waitFor();

      // And directly, with Bob's token: no listing, no job, no file without a signature.
      const bobAuth = { apikey: env.anonKey, authorization: `Bearer ${session.access_token}` };
      const list = await (await fetch(`${env.api}/functions/v1/jobs`, { headers: bobAuth })).json();
      assert.deepEqual(list.jobs, []);
      const one = await fetch(`${env.api}/functions/v1/jobs/${graded.id}`, { headers: bobAuth });
      assert.equal(one.status, 404);
      await one.body?.cancel();

      const outputPath = graded.output.files[0].path;
      for (const [what, url, headers] of [
        ['as Bob', `${env.api}/storage/v1/object/outputs/${outputPath}`, bobAuth],
        ['as Bob (authenticated route)', `${env.api}/storage/v1/object/authenticated/outputs/${outputPath}`, bobAuth],
        ['with no token', `${env.api}/storage/v1/object/outputs/${outputPath}`, { apikey: env.anonKey }],
        ['by the sign route without a token', `${env.api}/storage/v1/object/sign/outputs/${outputPath}`, {}],
        ["Alice's input as Bob", `${env.api}/storage/v1/object/inputs/${graded.input.input_path}`, bobAuth],
      ]) {
        const r = await fetch(url, { headers });
        const body = Buffer.from(await r.arrayBuffer());
        assert.notEqual(r.status, 200, `${what}: refused`);
        assert.ok(!body.subarray(0, 8).equals(PNG_SIGNATURE), `${what}: no image bytes`);
      }
      const signed = await fetch(`${env.api}/storage/v1/object/sign/outputs/${outputPath}`, {
        method: 'POST',
        headers: { ...bobAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ expiresIn: 60 }),
      });
      assert.notEqual(signed.status, 200, 'Bob cannot sign a URL for it either');
      await signed.body?.cancel();

      assert.deepEqual(bob.errors, []);
    } finally {
      await bob.close();
    }
    assert.deepEqual(alice.errors, []);
  });

  test('shows the admin view with queue charts to admins only', async () => {
    const { page, errors } = alice;
    // A colour grade that has just finished, for the view's "last minute by type".
    const graded = await gradeByApi((await alice.session()).access_token, aliceSession.user.id, 'for-admin.png');
    assert.equal(graded.status, 'done', JSON.stringify(graded.error));
    await goTo(page, '#/');
    await page.getByRole('link', { name: 'My jobs' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0, 'no Admin tab for a plain user');

    await env.admin.query(
      `update auth.users set raw_app_meta_data = coalesce(raw_app_meta_data, '{}') || '{"spool_admin": true}' where id = $1`,
      [aliceSession.user.id],
    );
    try {
      await page.reload();
      await page.getByRole('link', { name: 'Admin' }).click();
      await page.getByTestId('kpis').waitFor();
      // The console's series come from SQL: the colour grade that just finished is in the hour.
      await page.getByRole('img', { name: /Jobs finished per minute.*Last 60 minutes: [1-9]\d* done/ }).waitFor();
      await page.getByRole('img', { name: /Run time and queue wait/ }).waitFor();
      await page.getByRole('img', { name: /Finished per minute by type.*Colour grade: [1-9]/ }).waitFor();
      // The job types' limits (the health response's job_types), named by the kinds' labels.
      const types = page.getByRole('table', { name: 'Job types' });
      await types.getByRole('columnheader', { name: 'Max running' }).waitFor();
      await types.getByRole('row', { name: /Colour grade/ }).waitFor();
    } finally {
      await env.admin.query(
        `update auth.users set raw_app_meta_data = raw_app_meta_data - 'spool_admin' where id = $1`,
        [aliceSession.user.id],
      );
    }
    assert.deepEqual(errors, []);
  });

  test('lists my schedules with their next and last runs, pauses, resumes and deletes one; Repeat previews the next runs', async () => {
    const erin = await openProfile(env);
    // Refusals the page shows on purpose (a bad cron's preview, the creator's 503) are logged
    // by Chromium as failed resource loads.
    erin.allow(/status of (400|503)/);
    const session = await erin.signIn();
    const userId = session.user.id;
    const { page } = erin;
    try {
      // The schedules the view shows are made through SQL as service_role, as an admin would
      // (a project-wide one, and last runs, are nothing a user's creator makes).
      const client = await env.admin.connect();
      const made = {};
      try {
        await client.query('begin');
        await client.query('set local role service_role');
        const create = async (key, args, params) => {
          const { rows: [row] } = await client.query(
            `select (public.create_schedule(p_user_id => $1, ${args})).id`,
            [userId, ...params],
          );
          made[key] = row.id;
        };
        await create('morning', `p_type => 'image', p_input => $2::jsonb, p_cron => '0 9 * * *',
          p_timezone => 'Europe/Paris', p_name => 'Morning lighthouse'`, [
          JSON.stringify({ prompt: 'A lighthouse at dawn', size: '1024x1024', quality: 'auto', n: 1 }),
        ]);
        await create('text', `p_type => 'text', p_input => $2::jsonb, p_every => '6 hours'`, [
          JSON.stringify({ prompt: 'A tip of the day', max_output_tokens: 200 }),
        ]);
        await create('house', `p_type => 'text', p_input => $2::jsonb, p_cron => '0 0 * * 1',
          p_name => 'House digest', p_project_wide => true`, [JSON.stringify({ prompt: 'This week' })]);
        await client.query('commit');
      } catch (err) {
        await client.query('rollback');
        throw err;
      } finally {
        client.release();
      }
      // A slot the sweep could not create leaves last_error (materialize_schedules' shape).
      await env.admin.query(
        `update public.schedules set last_error = jsonb_build_object('code', 'quota_active_jobs',
           'message', 'too many active jobs: 10 of 10 allowed', 'slot', now(), 'at', now()) where id = $1`,
        [made.text],
      );
      const row = async (id) => (await env.admin.query('select * from public.schedules where id = $1', [id])).rows[0];

      await page.getByRole('link', { name: 'Schedules' }).click();
      await page.getByRole('heading', { name: 'Schedules' }).waitFor();
      const items = page.getByTestId('schedule-item');
      await until(async () => (await items.count()) === 3, { what: 'three schedules listed' });
      const item = (id) => page.locator(`[data-testid="schedule-item"][data-schedule-id="${id}"]`);

      const morning = item(made.morning);
      await morning.getByText('Morning lighthouse').waitFor();
      await morning.getByText('Generate an image ·').waitFor();
      assert.equal(await morning.getByTestId('schedule-recurrence').textContent(), 'cron 0 9 * * * (Europe/Paris)');
      assert.match(await morning.getByTestId('schedule-next').textContent(), /^Next run .* \(.*9:00.* Europe\/Paris\)$/);
      assert.equal(await morning.getByTestId('schedule-last').textContent(), 'Not run yet.');
      const daily = item(made.text);
      assert.equal(await daily.getByTestId('schedule-recurrence').textContent(), 'every 6 hours');
      await daily.getByText('Write text', { exact: true }).waitFor();
      assert.equal(await daily.getByTestId('schedule-error').textContent(), 'Last error: too many active jobs: 10 of 10 allowed');
      const house = item(made.house);
      await house.getByText('Set by the project').waitFor();
      assert.equal(await house.getByRole('button').count(), 0, 'a project-wide schedule offers no Pause or Delete');

      // Pause, then resume, as the owner (the RPCs under RLS); the row says so.
      await page.getByRole('button', { name: 'Pause Morning lighthouse' }).click();
      await morning.getByTestId('schedule-state').filter({ hasText: 'Paused' }).waitFor();
      assert.equal((await row(made.morning)).paused, true);
      await page.getByRole('button', { name: 'Resume Morning lighthouse' }).click();
      await morning.getByTestId('schedule-state').filter({ hasText: 'Active' }).waitFor();
      const resumed = await row(made.morning);
      assert.equal(resumed.paused, false);
      assert.ok(resumed.next_run_at > new Date(), 'resumed from now');

      // Delete asks once more, then the row is gone.
      await page.getByRole('button', { name: 'Delete Morning lighthouse' }).click();
      await page.getByRole('button', { name: 'Really delete Morning lighthouse' }).click();
      await until(async () => (await items.count()) === 2, { what: 'the deleted schedule to leave the list' });
      assert.equal(await row(made.morning), undefined);

      // Repeat on the new-job form. A kind with an upload says why it cannot repeat.
      await goTo(page, '#/');
      await page.getByRole('radio', { name: /^Colour grade/ }).check();
      await page.getByTestId('repeat-unavailable').waitFor();
      assert.equal(await page.getByRole('checkbox', { name: 'Run on a schedule' }).isDisabled(), true);

      // For a kind without an upload (image; the stack's OpenAI is a fake): the preview is the
      // real preview_schedule. Creating is answered as a project without OpenAI answers (503
      // provider_not_configured, the creators' error shape, by a page.route: the stack would
      // accept it), and the form shows the refusal; nothing is written.
      await page.route('**/functions/v1/schedules', async (route) => {
        if (route.request().method() !== 'POST') return route.fallback();
        await route.fulfill({
          status: 503,
          json: {
            error: {
              code: 'provider_not_configured',
              message: 'image generation needs OpenAI, which this project has not configured',
            },
          },
        });
      });
      await page.reload();
      await page.locator('label', { hasText: 'Generate an image' }).click();
      await page.getByLabel('Prompt').fill('A lighthouse at dawn');
      await page.getByRole('checkbox', { name: 'Run on a schedule' }).check();
      assert.equal(await page.getByLabel('Cron expression').inputValue(), '0 9 * * *');
      await page.getByLabel('Time zone').fill('Europe/Paris');
      const slots = page.getByTestId('repeat-slots').locator('time');
      await until(async () => {
        if ((await slots.count()) !== 3) return false;
        const at = await slots.evaluateAll((els) => els.map((e) => e.getAttribute('dateTime')));
        // 9:00 in Paris is 08:00 UTC in winter (the test runs in December; allow summer's 07:00).
        return at.every((t) => /T0[78]:00:00/.test(t)) && new Set(at).size === 3;
      }, { what: 'three previewed runs at 9:00 Paris time' });
      await page.getByLabel('Cron expression').fill('0 25 * * *');
      await page.getByTestId('repeat-preview').getByRole('alert').filter({ hasText: /hour/ }).waitFor();
      await page.getByLabel('Cron expression').fill('0 9 * * 1-5');
      await until(async () => (await slots.count()) === 3, { what: 'the weekday preview' });
      const posted = page.waitForResponse((r) =>
        r.request().method() === 'POST' && new URL(r.url()).pathname === '/functions/v1/schedules'
      );
      await page.getByRole('button', { name: 'Schedule: generate an image' }).click();
      const res = await posted;
      assert.equal(res.status(), 503, await res.text());
      const sent = res.request().postDataJSON();
      assert.deepEqual(sent, {
        type: 'image',
        input: { prompt: 'A lighthouse at dawn', size: '1024x1024', quality: 'auto', n: 1 },
        cron: '0 9 * * 1-5',
        timezone: 'Europe/Paris',
      });
      await page.getByTestId('start-error').filter({ hasText: 'Image generation needs OpenAI' }).waitFor();
      const { rows: [{ n }] } = await env.admin.query(
        'select count(*)::int as n from public.schedules where user_id = $1',
        [userId],
      );
      assert.equal(n, 2, 'the refused schedule wrote nothing');
      assert.deepEqual(erin.errors, []);
    } finally {
      await env.admin.query('delete from public.schedules where user_id = $1', [userId]);
      await erin.close();
    }
  });

  test('the complete pack: the form says it needs OpenAI; a pack is one card of seven live children, cancelled at both levels', async () => {
    const frank = await openProfile(env);
    const session = await frank.signIn();
    const userId = session.user.id;
    const { page } = frank;
    try {
      // (a) A project without OpenAI (a page.route says so: the stack's is a fake): image is
      // unavailable, so the pack is, and says why.
      await goTo(page, '#/');
      await kindsWithoutOpenAI(page);
      await page.reload();
      await page.getByTestId('pack-unavailable').filter({ hasText: 'needs OpenAI' }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Start: complete pack' }).count(), 0);
      await page.unroute('**/functions/v1/jobs/kinds');

      // (b) A pack as the pack creator makes it (six image views, then the A+ text), made through
      // SQL as service_role so that its children can wait: run_at tomorrow, the stack's worker
      // leaves them pending (the creator's children run at once). The views are listed in an order of their own, so
      // the card must place each child by its view, not by the order rows come back in.
      const views = [
        ['main', 'the product alone on a pure white background, centred, studio light'],
        ['lifestyle', 'the product in use in a real, attractive everyday setting'],
        ['detail', "a close-up of the product's materials, texture and finish"],
        ['scale', 'the product beside everyday objects that show its size'],
        ['features', 'the product with its key features made visible, clean layout'],
        ['packaging', 'the product with its packaging, as the customer receives it'],
      ];
      const tomorrow = new Date(Date.now() + 86400_000).toISOString();
      const children = [
        ...views.map(([, hint]) => ({
          type: 'image',
          input: { prompt: `A speckled mug. Show ${hint}.`, size: '1024x1024', quality: 'auto', n: 1 },
          run_at: tomorrow,
        })),
        { type: 'text', input: { prompt: 'Write the A+ content for: A speckled mug' }, run_at: tomorrow },
      ];
      const client = await env.admin.connect();
      let ids;
      try {
        await client.query('begin');
        await client.query('set local role service_role');
        const { rows } = await client.query(
          `select f.id from public.create_flow(p_user_id => $1, p_type => 'pack', p_input => $2::jsonb,
             p_children => $3::jsonb, p_policy => 'partial') with ordinality f order by f.ordinality`,
          [userId, JSON.stringify({ prompt: 'A speckled mug', views: views.map(([v]) => v) }), JSON.stringify(children)],
        );
        await client.query('commit');
        ids = rows.map((r) => r.id);
      } catch (err) {
        await client.query('rollback');
        throw err;
      } finally {
        client.release();
      }
      const [parentId, ...childIds] = ids;
      assert.equal(childIds.length, 7);
      const labels = ['Main', 'Lifestyle', 'Detail', 'Scale', 'Features', 'Packaging', 'A+ content'];

      // My jobs: the pack is one card with its seven children; the children are not listed apart.
      await goTo(page, '#/jobs');
      const item = page.locator(`[data-testid="history-item"][data-job-id="${parentId}"]`);
      await item.locator('[data-testid="pack-card"][data-status="waiting"]').waitFor();
      await until(async () => (await item.locator('[data-testid="pack-child"][data-status="pending"]').count()) === 7, {
        what: 'seven queued children in the history card',
      });
      for (const id of childIds) {
        assert.equal(await page.locator(`[data-testid="history-item"][data-job-id="${id}"]`).count(), 0, id);
      }

      // Opened: one card, seven children, each in its view's place.
      await goTo(page, `#/jobs/${parentId}`);
      const pack = page.locator(`[data-testid="pack-card"][data-job-id="${parentId}"]`);
      await pack.waitFor();
      const child = pack.getByTestId('pack-child');
      await until(async () => (await pack.locator('[data-testid="pack-child"][data-status="pending"]').count()) === 7, {
        what: 'seven queued children in the pack card',
      });
      assert.deepEqual(await child.evaluateAll((els) => els.map((e) => e.dataset.view)), labels);
      assert.deepEqual(await child.evaluateAll((els) => els.map((e) => e.dataset.jobId)), childIds);
      await pack.getByTestId('pack-tally').filter({ hasText: '0 of 7 done' }).waitFor();
      // Both channels joined: the parent's (id=eq) and its children's (parent_id=eq, a filter
      // Realtime accepts now that owners may select parent_id).
      await pack.getByText('Live updates').waitFor();

      // A child's own Cancel: only it ends; the pack (policy partial) still waits for the rest.
      await pack.getByRole('button', { name: 'Cancel A+ content', exact: true }).click();
      await pack.locator(`[data-testid="pack-child"][data-job-id="${childIds[6]}"][data-status="cancelled"]`).waitFor();
      assert.equal((await jobRow(childIds[6])).status, 'cancelled');
      assert.equal((await jobRow(parentId)).status, 'waiting');
      await pack.getByRole('button', { name: 'Retry A+ content', exact: true }).waitFor();
      assert.equal(await pack.getAttribute('data-status'), 'waiting');

      // The pack's Cancel: cancel_job on the parent cancels every unfinished child, live.
      await pack.getByRole('button', { name: 'Cancel the pack', exact: true }).click();
      await page.locator(`[data-testid="pack-card"][data-job-id="${parentId}"][data-status="cancelled"]`).waitFor();
      await until(async () => (await pack.locator('[data-testid="pack-child"][data-status="cancelled"]').count()) === 7, {
        what: 'seven cancelled children in the pack card',
      });
      const { rows } = await env.admin.query(
        'select id, status from public.jobs where id = any($1::uuid[]) order by array_position($1::uuid[], id)',
        [ids],
      );
      assert.deepEqual(rows.map((r) => r.status), Array(8).fill('cancelled'));
      await pack.getByTestId('pack-tally').filter({ hasText: '0 of 7 done · 7 cancelled' }).waitFor();
      await pack.getByRole('button', { name: 'Retry the failed jobs', exact: true }).waitFor();
      assert.equal(await pack.getByRole('button', { name: 'Cancel the pack', exact: true }).count(), 0);
      assert.deepEqual(frank.errors, []);
    } finally {
      await env.admin.query('delete from public.jobs where user_id = $1', [userId]);
      await frank.close();
    }
  });

  test('the complete pack from the form: a prompt, Start, and one card of seven results, all done', async () => {
    const gina = await openProfile(env);
    const session = await gina.signIn();
    const userId = session.user.id;
    const { page } = gina;
    try {
      // The stack's OpenAI is local/tools/fake-openai.mjs: small PNGs for images, an answer made from
      // the request's JSON schema for text (the A+ schema: a headline, modules, a closing).
      await goTo(page, '#/');
      const form = page.getByTestId('pack-form');
      await form.waitFor();
      assert.equal(await page.getByTestId('pack-unavailable').count(), 0);
      await form.getByLabel('Product').fill('A hand-thrown stoneware mug, speckled glaze, 350 ml');
      const posted = page.waitForResponse((r) =>
        r.request().method() === 'POST' && new URL(r.url()).pathname === '/functions/v1/pack'
      );
      await form.getByRole('button', { name: 'Start: complete pack' }).click();
      const res = await posted;
      assert.equal(res.status(), 202, await res.text());
      const { job: parent, children } = await res.json();
      assert.equal(parent.type, 'pack');
      assert.equal(children.length, 7);

      // The one pack card: seven children, all done, six thumbnails and the A+ headline.
      const pack = page.locator(`[data-testid="pack-card"][data-job-id="${parent.id}"]`);
      await pack.waitFor();
      assert.equal(await page.locator('[data-testid="pack-card"]').count(), 1);
      await page.locator(`[data-testid="pack-card"][data-job-id="${parent.id}"][data-status="done"]`).waitFor();
      await until(async () => (await pack.locator('[data-testid="pack-child"][data-status="done"]').count()) === 7, {
        what: 'seven done children in the pack card',
      });
      await pack.getByTestId('pack-tally').filter({ hasText: '7 of 7 done' }).waitFor();
      const thumbs = pack.getByTestId('pack-thumb');
      await until(async () => (await thumbs.count()) === 6, { what: 'six thumbnails' });
      const srcs = await thumbs.evaluateAll((els) => els.map((e) => e.getAttribute('src')));
      assert.ok(srcs.every((src) => typeof src === 'string' && src.length > 0), JSON.stringify(srcs));
      const aplus = pack.getByTestId('pack-aplus');
      await aplus.waitFor();
      const headline = (await aplus.locator('.pack-aplus__headline').innerText()).trim();
      assert.ok(headline.length > 0, 'the A+ headline is shown');

      // The parent's row: done, its output the seven children in the pack's order.
      const row = await jobRow(parent.id);
      assert.equal(row.status, 'done', JSON.stringify(row.error));
      assert.deepEqual(row.output.children.map((c) => c.id), children.map((c) => c.id));
      assert.ok(row.output.children.every((c) => c.status === 'done'), JSON.stringify(row.output.children));
      assert.deepEqual(gina.errors, []);
    } finally {
      await env.admin.query('delete from public.jobs where user_id = $1', [userId]);
      await gina.close();
    }
  });

  test('stays within the bundle budget (300 kB gzipped JS + CSS)', () => {
    assert.ok(env.bundle.gzip < 300 * 1024, `the app is ${env.bundle.gzip} bytes gzipped`);
    console.log(`# bundle: ${(env.bundle.bytes / 1024).toFixed(1)} kB, ${(env.bundle.gzip / 1024).toFixed(1)} kB gzipped (${env.bundle.files.map((f) => f.file).join(', ')})`);
  });
});
