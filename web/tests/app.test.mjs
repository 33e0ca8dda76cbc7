// Browser tests of the web client (web/) in Debian's Chromium, against a live stack: the app is
// built with the stack's URL and anon key and served statically (see helpers.mjs).
//
//   1. sign-in, upload, colour grade (noir), live status to done without a reload, download
//   2. cancel a job that stays queued
//   3. retry a job that failed
//   4. a second browser profile sees none of the first one's jobs or files
//   5. the admin view, for a user with app_metadata.spool_admin
// Every test also asserts that the page logged no console errors.

import assert from 'node:assert/strict';
import fs from 'node:fs';
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

let env;
let alice; // the first browser profile
let aliceSession;
const jobs = {}; // what test 1 made, for test 4

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
 * Uploads a PNG through the drop zone and starts a colour grade. `how`: 'keyboard' (focus the
 * drop zone, press Enter, answer the file chooser), 'drop' (a drop event carrying the file) or
 * 'input' (the labelled file input). Returns the new job's id.
 */
async function uploadAndStart(page, { name, buffer, preset, how = 'input' }) {
  await page.goto(`${env.appUrl}/#/`);
  await page.getByRole('radio', { name: /^Colour grade/ }).check();
  await chooseFile(page, { name, buffer, type: 'image/png', how });
  await page.getByTestId('uploaded').waitFor();
  if (preset) await page.getByLabel('Preset', { exact: true }).selectOption(preset);
  const previous = await card(page).getAttribute('data-job-id', { timeout: 1000 }).catch(() => null);
  await page.getByRole('button', { name: /^Start/ }).click();
  // The card of the new job replaces the previous one (the current job is kept per tab).
  const fresh = page.locator(`[data-testid="job-card"]:not([data-job-id="${previous}"])`);
  await fresh.waitFor();
  return await fresh.getAttribute('data-job-id');
}

async function chooseFile(page, { name, buffer, type, how }) {
  const zone = page.getByTestId('dropzone');
  if (how === 'keyboard') {
    await zone.focus();
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
    await chooser.setFiles({ name, mimeType: type, buffer });
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
    await page.getByTestId('file-input').setInputFiles({ name, mimeType: type, buffer });
  }
}

async function jobRow(id) {
  const { rows } = await env.admin.query('select * from public.jobs where id = $1', [id]);
  return rows[0];
}

describe('the web client', () => {
  test('signs in anonymously, uploads, grades a photo noir and shows it live until done', async () => {
    const { page, errors } = alice;
    assert.ok(aliceSession?.access_token, 'a session is kept in localStorage');
    assert.equal(aliceSession.user.is_anonymous, true);

    // The page must not reload while the job runs: a marker on window survives only without one.
    await page.evaluate(() => {
      window.__noReload = true;
    });
    const statuses = [];
    await page.exposeFunction('__status', (s) => statuses.push(s));

    const id = await uploadAndStart(page, { name: 'gradient.png', buffer: colourfulPng(), preset: 'noir', how: 'keyboard' });
    jobs.graded = id;
    await page.evaluate(() => {
      const el = document.querySelector('[data-testid="job-card"]');
      window.__status(el.dataset.status);
      new MutationObserver(() => window.__status(el.dataset.status))
        .observe(el, { attributes: true, attributeFilter: ['data-status'] });
    });
    assert.ok(['pending', 'running'].includes(statuses[0]), `starts queued or running, got ${statuses[0]}`);

    await page.locator('[data-testid="job-card"][data-status="done"]').waitFor({ timeout: 30_000 });
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
    // Live through Realtime when the stack serves it; polled otherwise.
    await card(page).getByText(env.realtime ? 'Live updates' : 'Realtime unavailable').waitFor();
    assert.equal(statuses.at(-1), 'done');
    assert.ok(statuses.length >= 2, `the card changed state in place: ${statuses.join(' -> ')}`);

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
      await page.locator('[data-testid="job-card"][data-status="pending"]').waitFor();
      await page.getByTestId('job-step').filter({ hasText: 'Queued' }).waitFor();
      assert.equal((await jobRow(id)).status, 'pending');

      await page.getByRole('button', { name: 'Cancel job' }).click();
      await page.locator('[data-testid="job-card"][data-status="cancelled"]').waitFor();
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
    await page.goto(`${env.appUrl}/#/`);
    await chooseFile(page, { name: 'notes.txt', buffer: Buffer.from('hello'), type: 'text/plain', how: 'drop' });
    await page.getByRole('alert').filter({ hasText: "Colour grade can't take text/plain" }).waitFor();
    assert.equal(await page.getByRole('button', { name: /^Start/ }).isDisabled(), true);

    const id = await uploadAndStart(page, { name: 'broken.png', buffer: corruptPng() });
    await page.locator('[data-testid="job-card"][data-status="failed"]').waitFor({ timeout: 30_000 });
    await page.getByTestId('job-error').filter({ hasText: /could not be decoded|corrupt/i }).waitFor();
    await page.getByRole('status').filter({ hasText: 'Colour grade failed' }).waitFor();
    const failed = await jobRow(id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error.code, 'corrupt_image');

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
    await page.locator('[data-testid="job-card"][data-status="done"]').waitFor({ timeout: 30_000 });
    assert.equal((await jobRow(id)).status, 'done');
    await page.getByTestId('compare').waitFor();
    assert.deepEqual(errors, []);
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

      await page.locator('[data-testid="job-card"][data-status="done"]').waitFor({ timeout: 30_000 });
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
    const bob = await openProfile(env);
    try {
      const session = await bob.signIn();
      assert.notEqual(session.user.id, aliceSession.user.id, 'a new profile is a new anonymous user');

      await bob.page.goto(`${env.appUrl}/#/jobs`);
      await bob.page.getByTestId('history-empty').waitFor();

      // Opening the first user's job by its id: the jobs API answers 404, the page says so.
      bob.allow(/Failed to load resource: the server responded with a status of 404/);
      await bob.page.goto(`${env.appUrl}/#/jobs/${jobs.graded}`);
      await bob.page.getByText('That job does not exist, or it is not yours.').waitFor();

      // And directly, with Bob's token: no listing, no job, no file without a signature.
      const bobAuth = { apikey: env.anonKey, authorization: `Bearer ${session.access_token}` };
      const list = await (await fetch(`${env.api}/functions/v1/jobs`, { headers: bobAuth })).json();
      assert.deepEqual(list.jobs, []);
      const one = await fetch(`${env.api}/functions/v1/jobs/${jobs.graded}`, { headers: bobAuth });
      assert.equal(one.status, 404);
      await one.body?.cancel();

      const graded = await jobRow(jobs.graded);
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
    await page.goto(`${env.appUrl}/#/`);
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
      await page.getByRole('img', { name: /Queue depth by state/ }).waitFor();
      await page.getByRole('img', { name: /Throughput/ }).waitFor();
      await page.getByRole('img', { name: /Failures/ }).waitFor();
      // The last minute saw this file's jobs finish: done and failed ones.
      await page.getByRole('row', { name: /Colour grade/ }).waitFor();
    } finally {
      await env.admin.query(
        `update auth.users set raw_app_meta_data = raw_app_meta_data - 'spool_admin' where id = $1`,
        [aliceSession.user.id],
      );
    }
    assert.deepEqual(errors, []);
  });

  test('stays within the bundle budget (300 kB gzipped JS + CSS)', () => {
    assert.ok(env.bundle.gzip < 300 * 1024, `the app is ${env.bundle.gzip} bytes gzipped`);
    console.log(`# bundle: ${(env.bundle.bytes / 1024).toFixed(1)} kB, ${(env.bundle.gzip / 1024).toFixed(1)} kB gzipped (${env.bundle.files.map((f) => f.file).join(', ')})`);
  });
});
