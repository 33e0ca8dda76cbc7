// Browser tests of the inbox, the checks before an upload, and keyboard and focus (issue 12,
// items 5 to 7), in Debian's Chromium against a live stack (helpers.mjs):
//
//   inbox          a backlog of notifications announced on load ("… ended while you were away"),
//                  the header's unread count, the panel newest first with links to the jobs,
//                  mark one and mark all read (through the SQL API), new ones arriving live
//   toasts         identical toasts collapse into one "… ×3"; at 360 px no toast covers the
//                  Download button (bounding boxes)
//   before upload  an operation whose provider is not configured says so before any prompt;
//                  too many megapixels and too long a WAV are refused before any upload; a file
//                  the creator refuses is not left behind (one another job reads, or refused
//                  for its settings only, is kept); colour grade's output format is offered and used; the download keeps
//                  the user's file name (Content-Disposition from a signed URL's download=)
//   keyboard       the skip link is the first thing Tab reaches; after Start focus is on the new
//                  job card; the form survives a reload (the file does not, and the form says
//                  so); a 429 counts down and Start comes back; an unreachable API is named and
//                  asked again by itself
//   axe            0 serious or critical axe-core violations on: new job, a done job, my jobs,
//                  schedules, admin, the inbox open
// The tests wait for states, never for time; every test asserts that the page logged no console
// errors but those it causes on purpose (allow()).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { axeSerious, colourfulPng, makePng, noisyWav, openProfile, setup, until } from './helpers.mjs';

const START_JOB = /^Start(?!: complete pack)/;
/** Bytes stored as image/png that are no image at all. */
const NOT_A_PNG = Buffer.from('this is text, not a PNG image. '.repeat(40));

let env;

before(async () => {
  env = await setup();
});

after(async () => {
  await env?.close();
});

/** Opens a hash route and waits until the app moved focus to <main> (its route change). */
async function goTo(page, hash) {
  if ((await page.evaluate(() => location.hash)) === hash) return;
  await page.evaluate(() => document.activeElement?.blur());
  await page.goto(`${env.appUrl}/${hash}`);
  await page.waitForFunction(() => document.activeElement?.id === 'main');
}

/** Axe finds nothing serious or critical on the page as it is now. */
async function assertAccessible(page, where) {
  const found = await axeSerious(page);
  assert.deepEqual(found, [], `serious axe violations on ${where}: ${JSON.stringify(found, null, 2)}`);
}

/** The user's objects in the inputs bucket. */
async function inputsOf(userId) {
  const { rows } = await env.admin.query(
    `select name from storage.objects where bucket_id = 'inputs' and name like $1 order by name`,
    [`${userId}/%`],
  );
  return rows.map((r) => r.name);
}

/** Uploads bytes into the user's inputs folder through Storage, as the app does. */
async function putInput(token, path, bytes, type = 'image/png') {
  const res = await fetch(`${env.api}/storage/v1/object/inputs/${path}`, {
    method: 'POST',
    headers: { apikey: env.anonKey, authorization: `Bearer ${token}`, 'content-type': type, 'x-upsert': 'true' },
    body: bytes,
  });
  assert.equal(res.status, 200, await res.text());
}

/** POSTs a creator as the user; returns { status, body }. */
async function create(token, type, body) {
  const res = await fetch(`${env.api}/functions/v1/${type}`, {
    method: 'POST',
    headers: { apikey: env.anonKey, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Notifications for `userId`, written as the SQL API writes them (one per ended job). */
async function notify(userId, rows) {
  for (const r of rows) {
    await env.admin.query(
      `insert into public.notifications (user_id, job_id, job_type, status, message, created_at)
       values ($1, gen_random_uuid(), $2, $3, $4, coalesce($5::timestamptz, now()))`,
      [userId, r.type ?? 'color-grade', r.status ?? 'done', r.message, r.at ?? null],
    );
  }
}

async function unreadIn(userId) {
  const { rows: [{ n }] } = await env.admin.query(
    'select count(*)::int as n from public.notifications where user_id = $1 and read_at is null',
    [userId],
  );
  return n;
}

/**
 * Chooses an operation as a person does: a click on its card's label (which covers its radio,
 * styles.css); waits until its radio is checked.
 */
async function pick(page, label) {
  const radio = page.getByRole('radio', { name: new RegExp(`^${label.replace(/[()]/g, '\\$&')}`) });
  if (!(await radio.isChecked())) await page.locator('label', { hasText: label }).click();
  await page.waitForFunction((l) =>
    [...document.querySelectorAll('input[type=radio]')].some((r) => r.checked && r.labels?.[0]?.textContent === l), label);
}

/** Chooses a file on the new-job form's (labelled) file input. */
const choose = (page, name, buffer, mimeType) =>
  page.getByTestId('file-input').setInputFiles({ name, mimeType, buffer });

describe('the inbox', () => {
  test('announces jobs that ended while away, lists them newest first, marks one and all read, and gets new ones live', async () => {
    const ada = await openProfile(env);
    try {
      const session = await ada.signIn();
      const { page } = ada;
      const uid = session.user.id;
      // A backlog the user never saw (oldest first here; the inbox lists newest first).
      await notify(uid, [
        { message: 'Colour grade is done', at: '2026-12-01 10:00+00' },
        { message: 'Clean up audio failed', type: 'audio-clean', status: 'failed', at: '2026-12-01 11:00+00' },
        { message: 'Cut out (roto) was cancelled', type: 'roto', status: 'cancelled', at: '2026-12-01 12:00+00' },
      ]);

      await page.reload();
      await page.getByTestId('toast').filter({ hasText: '3 jobs ended while you were away' }).waitFor();
      const button = page.getByRole('button', { name: /^Inbox\W+3 unread$/ });
      await button.waitFor();
      assert.equal(await page.getByTestId('inbox-count').textContent(), '3');

      // The toast's button opens the inbox.
      await page.getByTestId('toast').getByRole('button', { name: 'Open the inbox' }).click();
      const inbox = page.getByRole('region', { name: 'Inbox' });
      await inbox.waitFor();
      assert.equal(await button.getAttribute('aria-expanded'), 'true');
      const items = inbox.getByTestId('inbox-item');
      await until(async () => (await items.count()) === 3, { what: 'three notifications listed' });
      assert.deepEqual(
        await items.locator('.inbox__message').allTextContents(),
        ['Unread: Cut out (roto) was cancelled', 'Unread: Clean up audio failed', 'Unread: Colour grade is done'],
        'newest first',
      );
      const { rows: [first] } = await env.admin.query(
        'select job_id from public.notifications where user_id = $1 order by created_at desc limit 1',
        [uid],
      );
      assert.equal(await items.first().getByRole('link').getAttribute('href'), `#/jobs/${first.job_id}`);
      await assertAccessible(page, 'the inbox open');

      // Mark one read: the count goes down, in the page and in the table.
      await items.nth(1).getByRole('button', { name: 'Mark read: Clean up audio failed' }).click();
      await page.getByRole('button', { name: /^Inbox\W+2 unread$/ }).waitFor();
      await until(async () => (await unreadIn(uid)) === 2, { what: 'one notification read in SQL' });
      assert.equal(await items.nth(1).getAttribute('data-unread'), null);

      // Escape closes the panel and focus goes back to its button.
      await page.keyboard.press('Escape');
      await inbox.waitFor({ state: 'detached' });
      await page.waitForFunction(() => document.activeElement?.dataset.testid === 'inbox-button');

      // A job ending now comes in live: the count rises without a reload.
      await page.evaluate(() => (window.__noReload = true));
      const token = (await ada.session()).access_token;
      await putInput(token, `${uid}/live.png`, colourfulPng(48, 36));
      const started = await create(token, 'color-grade', { input_path: `${uid}/live.png` });
      assert.equal(started.status, 202, JSON.stringify(started.body));
      await page.getByRole('button', { name: /^Inbox\W+3 unread$/ }).waitFor();
      assert.equal(await page.evaluate(() => window.__noReload), true);

      // Mark all read.
      await page.getByTestId('inbox-button').click();
      await inbox.getByRole('button', { name: 'Mark all read' }).click();
      await page.getByRole('button', { name: /^Inbox\W+nothing unread$/ }).waitFor();
      await until(async () => (await unreadIn(uid)) === 0, { what: 'all read in SQL' });
      assert.equal(await inbox.locator('[data-unread="true"]').count(), 0);

      // The newest is that job's: its link opens the job's view.
      assert.equal(await items.first().getByRole('link').getAttribute('href'), `#/jobs/${started.body.job.id}`);
      await items.first().getByRole('link').click();
      await page.locator(`[data-testid="job-card"][data-job-id="${started.body.job.id}"]`).waitFor();
      assert.deepEqual(ada.errors, []);
    } finally {
      await ada.close();
    }
  });

  test('identical toasts collapse into one that counts them', async () => {
    const bea = await openProfile(env);
    try {
      const session = await bea.signIn();
      const { page } = bea;
      await page.getByRole('button', { name: /^Inbox\W+nothing unread$/ }).waitFor();
      // The live channel is up (a loaded stack may take a while to subscribe)...
      await page.locator('[data-testid="session"] .dot--live').waitFor();
      // ...when three jobs of one kind end at once (their notifications arrive through Realtime).
      await env.admin.query(
        `insert into public.notifications (user_id, job_id, job_type, status, message)
         select $1, gen_random_uuid(), 'color-grade', 'done', 'Colour grade is done' from generate_series(1, 3)`,
        [session.user.id],
      );
      const toast = page.getByTestId('toast').filter({ hasText: 'Colour grade is done' });
      await toast.getByTestId('toast-count').filter({ hasText: '×3' }).waitFor();
      assert.equal(await toast.count(), 1, 'one toast for the three');
      // Three jobs: the link goes to the list rather than one of them.
      assert.equal(await toast.getByRole('link').getAttribute('href'), '#/jobs');
      assert.deepEqual(bea.errors, []);
    } finally {
      await bea.close();
    }
  });

  test('at 360 px a toast never covers the Download button', async () => {
    const cy = await openProfile(env, { width: 360, height: 740 });
    try {
      await cy.signIn();
      const { page } = cy;
      await pick(page, 'Colour grade');
      await choose(page, 'phone.png', colourfulPng(), 'image/png');
      await page.getByTestId('uploaded').waitFor();
      await page.getByRole('button', { name: START_JOB }).click();
      const download = page.getByTestId('download');
      await download.waitFor();
      const toast = page.getByTestId('toast').filter({ hasText: 'Colour grade is done' });
      await toast.waitFor();
      // Wherever the page is scrolled: with the Download in view, and scrolled to the top.
      for (const where of ['download in view', 'top']) {
        if (where === 'top') await page.evaluate(() => window.scrollTo(0, 0));
        else await download.scrollIntoViewIfNeeded();
        const boxes = await page.evaluate(() => {
          const rect = (el) => {
            const r = el.getBoundingClientRect();
            return { x: r.x, y: r.y, w: r.width, h: r.height };
          };
          return {
            download: rect(document.querySelector('[data-testid="download"]')),
            toasts: [...document.querySelectorAll('[data-testid="toast"]')].map(rect),
          };
        });
        assert.ok(boxes.toasts.length > 0, 'the toast is there');
        for (const t of boxes.toasts) {
          const d = boxes.download;
          const overlap = t.x < d.x + d.w && d.x < t.x + t.w && t.y < d.y + d.h && d.y < t.y + t.h;
          assert.equal(overlap, false, `${where}: toast ${JSON.stringify(t)} covers Download ${JSON.stringify(d)}`);
        }
        // And the Download is what a tap there reaches.
        const d = boxes.download;
        const hit = await page.evaluate(
          ({ x, y }) => document.elementFromPoint(x, y)?.closest('[data-testid="download"]') !== null,
          { x: d.x + d.w / 2, y: d.y + d.h / 2 },
        );
        if (d.y >= 0 && d.y + d.h <= 740) assert.equal(hit, true, `${where}: the Download is on top`);
      }
      assert.deepEqual(cy.errors, []);
    } finally {
      await cy.close();
    }
  });
});

describe('before the upload', () => {
  test('refuses too many megapixels and too long a WAV before uploading, and says which operations need a provider', async () => {
    const dee = await openProfile(env);
    try {
      const session = await dee.signIn();
      const { page } = dee;
      const uploads = [];
      page.on('request', (r) => {
        if (r.method() === 'POST' && new URL(r.url()).pathname.startsWith('/storage/v1/object/inputs')) uploads.push(r.url());
      });
      // 2400 x 1600 = 3.84 MP: colour grade takes 3 MP in the function, and no Replicate here.
      await pick(page, 'Colour grade');
      await choose(page, 'big.png', makePng(2400, 1600, () => [90, 120, 150]), 'image/png');
      await page.getByRole('alert')
        .filter({ hasText: 'big.png is 2400×1600 (3.8 megapixels); Colour grade takes up to 3 megapixels here: larger files need Replicate' })
        .waitFor();
      assert.equal(await page.getByRole('button', { name: START_JOB }).isDisabled(), true);

      // 75 s of 8 kHz mono: over the 60 s clean-up limit, measured from the WAV header.
      await pick(page, 'Clean up audio');
      await choose(page, 'long.wav', noisyWav(75, 8000), 'audio/wav');
      await page.getByRole('alert')
        .filter({ hasText: 'long.wav is 1 min 15 s long; Clean up audio takes up to 1 min here' })
        .waitFor();
      // A short one goes through, its duration shown.
      await choose(page, 'short.wav', noisyWav(2, 8000), 'audio/wav');
      await page.getByTestId('uploaded').filter({ hasText: 'short.wav' }).filter({ hasText: '2 s' }).waitFor();
      assert.equal(uploads.length, 1, `only the short file was uploaded: ${uploads.join(', ')}`);

      // An operation whose provider is not configured says so before any prompt is written: the
      // page is told OpenAI is not configured (this stack has a fake one).
      await page.route('**/functions/v1/jobs/kinds', async (route) => {
        const res = await route.fetch();
        const body = await res.json();
        const image = body.kinds.find((k) => k.type === 'image');
        Object.assign(image, {
          available: false,
          unavailable: { code: 'provider_not_configured', message: 'image generation needs OpenAI, which this project has not configured' },
        });
        await route.fulfill({ response: res, json: body });
      });
      await page.reload();
      await page.locator('label', { hasText: 'Generate an image' }).click();
      await page.getByTestId('unavailable').filter({ hasText: 'Image generation needs OpenAI' }).waitFor();
      const form = page.locator('form.new-job:not(.pack-form)');
      assert.equal(await form.getByRole('textbox').count(), 0, 'no prompt to write');
      assert.equal(await form.getByText('Not available in this project.').count(), 1, 'the list says which one');
      assert.deepEqual(await inputsOf(session.user.id).then((l) => l.length), 1);
      assert.deepEqual(dee.errors, []);
    } finally {
      await dee.close();
    }
  });

  test('a file the creator refuses is not left in Storage, but one another job reads, or refused only for its settings, is kept', async () => {
    const eve = await openProfile(env);
    try {
      const session = await eve.signIn();
      const { page } = eve;
      const uid = session.user.id;
      eve.allow(/status of 422/);

      // In the browser: a "PNG" that is not one (the browser cannot measure it, so leaves it to
      // the creator, which refuses it: 422 unsupported_format).
      await pick(page, 'Colour grade');
      await choose(page, 'broken.png', NOT_A_PNG, 'image/png');
      await page.getByTestId('uploaded').waitFor();
      assert.equal((await inputsOf(uid)).length, 1, 'uploaded');
      await page.getByRole('button', { name: START_JOB }).click();
      await page.getByTestId('start-error').waitFor();
      await until(async () => (await inputsOf(uid)).length === 0, { what: 'the refused upload removed' });

      // By the API (the creator itself, no browser fallback): refused, and removed.
      const token = (await eve.session()).access_token;
      await putInput(token, `${uid}/api-broken.png`, NOT_A_PNG);
      const refused = await create(token, 'color-grade', { input_path: `${uid}/api-broken.png` });
      assert.equal(refused.status, 422, JSON.stringify(refused.body));
      assert.deepEqual(await inputsOf(uid), [], 'the creator removed the refused file');

      // A file a started job reads stays, even when a second job refuses it.
      await putInput(token, `${uid}/good.png`, colourfulPng(48, 36));
      const ok = await create(token, 'color-grade', { input_path: `${uid}/good.png` });
      assert.equal(ok.status, 202, JSON.stringify(ok.body));
      const notAudio = await create(token, 'audio-clean', { input_path: `${uid}/good.png` });
      assert.equal(notAudio.status, 422, JSON.stringify(notAudio.body));
      // A refusal of the settings, not of the file, keeps the upload for another try.
      await putInput(token, `${uid}/retry-me.png`, colourfulPng(48, 36));
      const badSettings = await create(token, 'color-grade', { input_path: `${uid}/retry-me.png`, exposure: 99 });
      assert.equal(badSettings.status, 400);
      assert.deepEqual(await inputsOf(uid), [`${uid}/good.png`, `${uid}/retry-me.png`], 'both kept');
      // No job was written for any refusal.
      const { rows: [{ n }] } = await env.admin.query('select count(*)::int as n from public.jobs where user_id = $1', [uid]);
      assert.equal(n, 1);
      assert.deepEqual(eve.errors, []);
    } finally {
      await eve.close();
    }
  });

  test("offers colour grade's output format, and the download keeps the user's file name", async () => {
    const fay = await openProfile(env);
    try {
      await fay.signIn();
      const { page } = fay;
      await pick(page, 'Colour grade');
      await choose(page, 'Beach day.png', colourfulPng(), 'image/png');
      await page.getByTestId('uploaded').waitFor();
      const format = page.getByLabel('Output format');
      assert.equal(await format.inputValue(), '', 'Default (the input format) at first');
      await format.selectOption({ label: 'JPEG (smaller)' });
      const created = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/functions/v1/color-grade');
      await page.getByRole('button', { name: START_JOB }).click();
      const { job } = await (await created).json();
      assert.equal(job.input.output_format, 'jpeg');
      assert.equal(job.input.input_name, 'Beach day.png', 'the original name is kept with the job');
      const download = page.getByTestId('download');
      await download.waitFor();
      const [file] = await Promise.all([page.waitForEvent('download'), download.click()]);
      assert.equal(file.suggestedFilename(), 'Beach day-graded.jpg');
      const bytes = await (await import('node:fs')).promises.readFile(await file.path());
      assert.deepEqual([...bytes.subarray(0, 3)], [0xff, 0xd8, 0xff], 'a JPEG');
      assert.deepEqual(fay.errors, []);
    } finally {
      await fay.close();
    }
  });
});

describe('keyboard and focus', () => {
  test('the skip link comes first, focus lands on the new job card, and the form survives a reload', async () => {
    const gus = await openProfile(env);
    try {
      await gus.signIn();
      const { page } = gus;
      await page.getByRole('radio', { name: /^Colour grade/ }).waitFor();
      await page.evaluate(() => document.activeElement?.blur());
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.activeElement?.id === 'main');
      assert.equal(await page.evaluate(() => location.hash), '', 'the view stays (no "#main" route)');

      // Settings, then a reload: they are back; the file is asked for again.
      await pick(page, 'Colour grade');
      await page.getByLabel('Preset', { exact: true }).selectOption('noir');
      await page.getByLabel('Output format').selectOption('png');
      await choose(page, 'kept.png', colourfulPng(), 'image/png');
      await page.getByTestId('uploaded').waitFor();
      await page.reload();
      await page.getByTestId('file-lost').filter({ hasText: 'kept.png' }).waitFor();
      assert.equal(await page.getByLabel('Preset', { exact: true }).inputValue(), 'noir');
      assert.equal(await page.getByLabel('Output format').inputValue(), 'png');
      assert.equal(await page.getByRole('radio', { name: /^Colour grade/ }).isChecked(), true);

      // Start from the keyboard: focus moves to the new job's card.
      await choose(page, 'kept.png', colourfulPng(), 'image/png');
      await page.getByTestId('uploaded').waitFor();
      const created = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/functions/v1/color-grade');
      await page.getByRole('button', { name: START_JOB }).focus();
      await page.keyboard.press('Enter');
      const { job } = await (await created).json();
      await page.waitForFunction((id) => document.activeElement?.dataset?.jobId === id, job.id);
      assert.deepEqual(gus.errors, []);
    } finally {
      await gus.close();
    }
  });

  test('a quota refusal counts down and Start comes back; an unreachable API is named and asked again by itself', async () => {
    const hal = await openProfile(env);
    try {
      await hal.signIn();
      const { page } = hal;
      hal.allow(/status of 429|net::ERR_FAILED|Failed to load resource/);
      // The creator answers 429 with Retry-After: 3 (as create_job's quota_rate does).
      await page.route('**/functions/v1/color-grade', (route) =>
        route.fulfill({
          status: 429,
          headers: { 'retry-after': '3', 'access-control-allow-origin': '*', 'access-control-expose-headers': 'retry-after' },
          json: { error: { code: 'quota_rate', message: 'too many jobs in the last minute' } },
        }));
      await pick(page, 'Colour grade');
      await choose(page, 'quota.png', colourfulPng(), 'image/png');
      await page.getByTestId('uploaded').waitFor();
      const start = page.getByRole('button', { name: START_JOB });
      await start.click();
      const message = page.getByTestId('start-error');
      await message.filter({ hasText: /You are starting jobs too quickly\. You can start again in [123] s\./ }).waitFor();
      assert.equal(await start.isDisabled(), true, 'no Start while waiting');
      // It counts down (each second shown) and Start comes back by itself.
      await message.filter({ hasText: 'You can start again in 1 s.' }).waitFor();
      await page.waitForFunction(() => !document.querySelector('[data-testid="start-error"]'));
      assert.equal(await start.isDisabled(), false);
      assert.deepEqual(await inputsOf((await hal.session()).user.id).then((l) => l.length), 1, 'a 429 keeps the upload');
      await page.unroute('**/functions/v1/color-grade');

      // The API unreachable: the kinds cannot load. The page names the URL and tries again.
      let refused = 0;
      await page.route('**/functions/v1/jobs/kinds', (route) => (refused++ < 2 ? route.abort('failed') : route.fallback()));
      await page.reload();
      await page.getByTestId('kinds-error').filter({ hasText: `Spool's API at ${env.api} is unreachable` }).waitFor();
      await page.getByTestId('kinds-retry').filter({ hasText: /Trying again in \d+ s…/ }).waitFor();
      // Twice refused, then answered: the form comes by itself, without a press.
      await page.getByRole('radio', { name: /^Colour grade/ }).waitFor();
      assert.equal(refused, 3, 'asked three times: two refused, then answered');
      assert.deepEqual(hal.errors, []);
    } finally {
      await hal.close();
    }
  });
});

describe('accessibility', () => {
  test('axe finds no serious violations on new job, a done job, my jobs, schedules and admin', async () => {
    const ida = await openProfile(env);
    try {
      const session = await ida.signIn();
      const { page } = ida;
      await page.getByRole('radio', { name: /^Colour grade/ }).waitFor();
      await assertAccessible(page, 'new job');

      await pick(page, 'Colour grade');
      await choose(page, 'axe.png', colourfulPng(), 'image/png');
      await page.getByTestId('uploaded').waitFor();
      const created = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/functions/v1/color-grade');
      await page.getByRole('button', { name: START_JOB }).click();
      const { job } = await (await created).json();
      await goTo(page, `#/jobs/${job.id}`);
      await page.locator(`[data-testid="job-card"][data-status="done"]`).waitFor();
      await page.getByTestId('download').waitFor();
      await assertAccessible(page, 'a done job');

      await goTo(page, '#/jobs');
      await page.locator(`[data-testid="history-item"][data-job-id="${job.id}"]`).waitFor();
      await assertAccessible(page, 'my jobs');

      await goTo(page, '#/schedules');
      await page.getByRole('heading', { name: /schedules/i }).first().waitFor();
      await assertAccessible(page, 'schedules');

      await env.admin.query(
        `update auth.users set raw_app_meta_data = coalesce(raw_app_meta_data, '{}') || '{"spool_admin": true}' where id = $1`,
        [session.user.id],
      );
      await page.reload();
      await page.getByRole('link', { name: 'Admin' }).click();
      await page.getByTestId('kpis').waitFor();
      await page.getByRole('table', { name: 'Job types' }).waitFor();
      await assertAccessible(page, 'admin');
      assert.deepEqual(ida.errors, []);
    } finally {
      await ida.close();
    }
  });
});
