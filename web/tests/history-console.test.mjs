// Browser tests of the history that scales and the operations console (issue 12, items 3 and 4),
// in Debian's Chromium against a live stack (helpers.mjs):
//   1. My jobs: rows tell jobs apart (settings, run time, "queued ..."), filters by status, type
//      and date, a search by file name and by prompt, Load more along the cursor
//   2. bulk actions by filter: "Cancel all queued" and "Retry all failed" state the count first,
//      then say what happened; the retry stops at the jobs-per-minute rate and says so
//   3. the console, for an admin: the last hour's charts on first load (and after a reload) from
//      the server, lines told apart by dash and marker, the reason the queue is held back, the
//      next sweep, failed jobs with their errors, every user's jobs by owner; and at 360 px the
//      limits table fits (the page does not scroll sideways)
// The jobs are written as rows, as the SQL API leaves them; queued ones stay queued because the
// user is held at the per-user cap (helpers.mjs holdQueue). Waits are for states, never for time.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { holdQueue, openProfile, setup, until } from './helpers.mjs';

let env;
let alice;
let userId;
let hold;
/** alice's seeded jobs by name. */
const jobs = {};

/** A job row for `user` in `status`, created `minutesAgo` minutes ago, as the SQL API leaves it. */
async function row(user, type, status, minutesAgo, input, error = null) {
  const { rows: [r] } = await env.admin.query(
    `insert into public.jobs (user_id, type, status, input, created_at, run_at, started_at, finished_at, error, attempts)
     values ($1, $2, $3::public.job_status, $4, now() - make_interval(mins => $5), now() - make_interval(mins => $5),
             case when $3 in ('done', 'failed') then now() - make_interval(mins => $5) end,
             case when $3 in ('done', 'failed', 'cancelled') then now() - make_interval(mins => $5) + interval '3 seconds' end,
             $6, case when $3 = 'pending' then 0 else 1 end)
     returning id`,
    [user, type, status, JSON.stringify(input), minutesAgo, error ? JSON.stringify(error) : null],
  );
  return r.id;
}

before(async () => {
  env = await setup();
  alice = await openProfile(env, { width: 1280, height: 900 });
  userId = (await alice.signIn()).user.id;
  // Held at the per-user cap of 1 by a running blocker: alice's queued jobs stay queued.
  hold = await holdQueue(env.admin, userId);
  // The blocker is no job of the test's: older than every seeded one, and outside the rate's minute.
  await env.admin.query("update public.jobs set created_at = now() - interval '1 hour' where id = $1", [hold.id]);
  // As the browser sends them: the stored path, and the user's own file name (input_name).
  const file = (name) => ({ input_path: `${userId}/mx5snp22-${name}`, input_name: name });
  // 24 jobs, a minute apart, newest first: colour grades of harbour-<n>.png (noir, as JPEG, on
  // every third), voice memos cleaned hard, and images from prompts; n % 4 = 1 queued (1, 5, 9,
  // 13, 17, 21), else n % 5 = 2 failed (2, 7, 12, 22: retryable), the rest done.
  for (let n = 1; n <= 24; n++) {
    const status = n % 4 === 1 ? 'pending' : n % 5 === 2 ? 'failed' : 'done';
    const kind = n % 3;
    const [type, input, name] = kind === 0
      ? ['color-grade', { ...file(`harbour-${n}.png`), preset: 'noir', output_format: 'jpeg' }, `harbour-${n}`]
      : kind === 1
      ? ['audio-clean', { ...file(`voice-memo-${n}.wav`), noise_reduction: 0.9 }, `voice-${n}`]
      : ['image', { prompt: `a lighthouse in a storm, take ${n}` }, `image-${n}`];
    const error = status === 'failed' ? { code: 'provider_error', message: `the provider timed out (${n})`, retryable: true } : null;
    jobs[name] = { id: await row(userId, type, status, n, input, error), status, type, n };
  }
});

after(async () => {
  await hold?.release();
  await alice?.close();
  await env?.close();
});

const items = (page) => page.locator('[data-testid="history-item"]');
const ids = async (page) => await items(page).evaluateAll((els) => els.map((e) => e.dataset.jobId));
const seeded = (pred) => Object.values(jobs).filter(pred).sort((a, b) => a.n - b.n).map((j) => j.id);

/** Waits until the history shows exactly `expected` (ids, in order). */
async function shows(page, expected, what) {
  let seen = [];
  try {
    await until(async () => JSON.stringify(seen = await ids(page)) === JSON.stringify(expected), { what });
  } catch (err) {
    const name = (id) => Object.entries(jobs).find(([, j]) => j.id === id)?.[0] ?? id;
    throw new Error(`${err.message}: shown ${seen.map(name).join(', ')}; expected ${expected.map(name).join(', ')}`);
  }
}

test('my jobs: rows tell jobs apart; filters, search and pages', async () => {
  const { page, errors } = alice;
  // A fresh page: the live list then holds the first page only (Realtime added the seeded rows
  // to the one loaded at sign-in).
  await page.goto(`${env.appUrl}/#/jobs`);
  await page.reload();
  await items(page).first().waitFor();
  // The newest ten, with the settings and durations that tell them apart.
  await shows(page, seeded((j) => j.n <= 10), 'the first page');
  const grade = page.locator(`[data-testid="history-item"][data-job-id="${jobs['harbour-3'].id}"]`);
  // The file name once (the stored path and input_name say the same), then the settings.
  await grade.getByText(/^harbour-3\.png · noir · jpeg · /).waitFor();
  assert.equal(await grade.getByTestId('history-duration').textContent(), 'ran 3 s', 'run time, not wait');
  const voice = page.locator(`[data-testid="history-item"][data-job-id="${jobs['voice-4'].id}"]`);
  await voice.getByText('voice-memo-4.wav · noise reduction 90%').waitFor();
  const queued = page.locator(`[data-testid="history-item"][data-job-id="${jobs['voice-1'].id}"]`);
  assert.match(await queued.getByTestId('history-duration').textContent(), /^queued \d+ min \d+ s$/);

  // Load more: the next page along the cursor, nothing twice.
  await page.getByRole('button', { name: 'Load more' }).click();
  await until(async () => (await ids(page)).length >= 20, { what: 'the second page' });
  const twenty = await ids(page);
  assert.equal(new Set(twenty).size, twenty.length, 'no job twice');

  // Status.
  const filters = page.getByRole('search', { name: 'Filter jobs' });
  await filters.getByLabel('Status').selectOption({ label: 'Failed' });
  await shows(page, seeded((j) => j.status === 'failed'), 'the failed jobs');
  // And type.
  await filters.getByLabel('Type').selectOption({ label: 'Colour grade' });
  await shows(page, seeded((j) => j.status === 'failed' && j.type === 'color-grade'), 'failed colour grades');
  // Without a filter: the live list, with the two pages it has loaded.
  await filters.getByRole('button', { name: 'Clear filters' }).click();
  await shows(page, seeded((j) => j.n <= 20), 'all jobs again');

  // Search: a file name, then a prompt.
  await filters.getByLabel('Search').fill('HARBOUR-12');
  await shows(page, [jobs['harbour-12'].id], 'the search by file name');
  await filters.getByLabel('Search').fill('lighthouse in a storm, take 2');
  await shows(page, seeded((j) => j.type === 'image' && String(j.n).startsWith('2')), 'the search by prompt');
  await filters.getByLabel('Search').fill('');
  await shows(page, seeded((j) => j.n <= 20), 'no search');

  // Dates: from tomorrow, nothing; up to today, everything.
  const day = (offset) => new Date(Date.now() + offset * 86400_000).toISOString().slice(0, 10);
  await filters.getByLabel('From', { exact: true }).fill(day(1));
  await page.getByTestId('history-none').waitFor();
  await filters.getByLabel('From', { exact: true }).fill(day(-1));
  await filters.getByLabel('To', { exact: true }).fill(day(0));
  await shows(page, seeded((j) => j.n <= 10), 'yesterday to today');

  // The filter survives a reload.
  await filters.getByLabel('Status').selectOption({ label: 'Done' });
  await page.reload();
  await page.getByRole('search', { name: 'Filter jobs' }).getByLabel('Status').waitFor();
  assert.equal(await page.getByRole('search', { name: 'Filter jobs' }).getByLabel('Status').inputValue(), 'done');
  await shows(page, seeded((j) => j.status === 'done').slice(0, 10), 'done jobs after the reload');

  // A job created meanwhile that matches the filter shows up (the live list tells the filtered one).
  const again = page.getByRole('search', { name: 'Filter jobs' });
  await again.getByLabel('Status').selectOption({ label: 'Any status' });
  await again.getByLabel('Search').fill('harbour-12');
  await shows(page, [jobs['harbour-12'].id], 'harbour-12 alone');
  const fresh = await row(userId, 'color-grade', 'done', 0, { input_path: `${userId}/mx5snp22-harbour-120.png` });
  await shows(page, [fresh, jobs['harbour-12'].id], 'the new harbour-120 in the search');
  await env.admin.query('delete from public.jobs where id = $1', [fresh]);
  await again.getByRole('button', { name: 'Clear filters' }).click();
  assert.deepEqual(errors, []);
});

test('bulk actions by filter: the count first, then what happened and why', async () => {
  const { page, errors } = alice;
  await page.goto(`${env.appUrl}/#/jobs`);
  // Whatever filter an earlier test left (the page keeps it in sessionStorage): none.
  await page.evaluate(() => sessionStorage.removeItem('spool.historyFilter'));
  await page.reload();
  const filters = page.getByRole('search', { name: 'Filter jobs' });
  await items(page).first().waitFor();

  // Cancel all queued audio clean-ups (n = 1, 13); the queued images and colour grades stay.
  await filters.getByLabel('Type').selectOption({ label: 'Clean up audio' });
  const queuedVoices = seeded((j) => j.status === 'pending' && j.type === 'audio-clean');
  await shows(page, seeded((j) => j.type === 'audio-clean').slice(0, 10), 'the audio clean-ups');
  await page.getByRole('button', { name: 'Cancel all queued' }).click();
  const confirm = page.getByTestId('bulk-confirm');
  await confirm.getByText(`Cancel ${queuedVoices.length} queued jobs matching this filter?`).waitFor();
  await confirm.getByRole('button', { name: `Cancel ${queuedVoices.length} jobs` }).click();
  await page.getByTestId('bulk-result').filter({ hasText: `${queuedVoices.length} cancelled.` }).waitFor();
  const { rows } = await env.admin.query('select status::text from public.jobs where id = any($1)', [queuedVoices]);
  assert.deepEqual(rows.map((r) => r.status), queuedVoices.map(() => 'cancelled'));
  const { rows: [other] } = await env.admin.query('select status::text from public.jobs where id = $1', [jobs['image-5'].id]);
  assert.equal(other.status, 'pending', 'a queued image outside the filter stays queued');
  for (const id of queuedVoices) {
    await page.locator(`[data-testid="history-item"][data-job-id="${id}"][data-status="cancelled"]`).waitFor();
  }

  // Retry all failed, with room for two more starts this minute: two go, the rest are refused.
  await filters.getByRole('button', { name: 'Clear filters' }).click();
  const failed = seeded((j) => j.status === 'failed');
  // Only this test's retries count against the rate: the blocker's creation is long past.
  await env.admin.query("update public.jobs set created_at = now() - interval '1 hour' where id = $1", [hold.id]);
  const { rows: [{ recent }] } = await env.admin.query(
    "select count(*)::int as recent from public.jobs where user_id = $1 and created_at > now() - interval '1 minute'",
    [userId],
  );
  const { rows: [{ max_jobs_per_minute_per_user: rate }] } = await env.admin.query('select max_jobs_per_minute_per_user from spool.settings');
  await env.admin.query('update spool.settings set max_jobs_per_minute_per_user = $1', [recent + 2]);
  try {
    await page.getByRole('button', { name: 'Retry all failed' }).click();
    await confirm.getByText(`Retry ${failed.length} failed jobs?`).waitFor();
    await confirm.getByRole('button', { name: `Retry ${failed.length} jobs` }).click();
    await page.getByTestId('bulk-result')
      .filter({ hasText: `2 retried; ${failed.length - 2} refused: ${failed.length - 2} because the jobs-per-minute limit was reached.` })
      .waitFor();
  } finally {
    await env.admin.query('update spool.settings set max_jobs_per_minute_per_user = $1', [rate]);
  }
  const { rows: after } = await env.admin.query(
    'select status::text, count(*)::int as n from public.jobs where id = any($1) group by 1 order by 1',
    [failed],
  );
  assert.deepEqual(after, [{ status: 'failed', n: failed.length - 2 }, { status: 'pending', n: 2 }]);

  // Nothing to cancel under a filter on done jobs: the buttons say so by being unavailable.
  await filters.getByLabel('Status').selectOption({ label: 'Done' });
  assert.equal(await page.getByRole('button', { name: 'Cancel all queued' }).isDisabled(), true);
  await filters.getByRole('button', { name: 'Clear filters' }).click();
  assert.deepEqual(errors, []);
});

test('the console: charts of the last hour at once, why the queue is held back, failed jobs, everyone\'s jobs, 360 px', async () => {
  const { page, errors } = alice;
  const bob = (await env.admin.query(
    "insert into auth.users (id, aud, role, email) values (gen_random_uuid(), 'authenticated', 'authenticated', 'bob@spool.test') returning id",
  )).rows[0].id;
  const bobs = await row(bob, 'color-grade', 'failed', 3, { input_path: `${bob}/harbour-bob.png` }, { code: 'corrupt_image', message: 'not a PNG', retryable: false });
  // The console lists the newest failed jobs first; other suites on this stack fail jobs too (some
  // created on a test clock in the future): make bob's the newest, so it is on the first page.
  await env.admin.query(
    `update public.jobs set created_at = greatest(now(), (select max(created_at) from public.jobs)) + interval '1 second'
     where id = $1`,
    [bobs],
  );
  // A job handed to Replicate, which this stack does not configure: nothing will finish it.
  await env.admin.query(
    `insert into public.jobs (user_id, type, status, input, external_provider, external_id, started_at, lease_expires_at, attempts)
     values ($1, 'roto', 'waiting', '{}', 'replicate', 'pred-1', now(), now() + interval '1 hour', 1)`,
    [bob],
  );
  await env.admin.query(
    `update auth.users set raw_app_meta_data = coalesce(raw_app_meta_data, '{}') || '{"spool_admin": true}' where id = $1`,
    [userId],
  );
  try {
    await page.goto(`${env.appUrl}/#/admin`);
    await page.reload();
    // On first load, from the server: the hour's finished jobs, no sampling. Other suites' jobs
    // may finish on this stack meanwhile (and some finish "in the future", on a test clock, which
    // the last hour leaves out): the page (fetched again every 15 s) must come to say what the
    // database says of the hour up to now.
    for (let round = 0; round < 2; round++) {
      await page.getByTestId('kpis').waitFor();
      const chart = page.getByRole('img', { name: /Jobs finished per minute/ });
      await chart.waitFor();
      await until(async () => {
        const said = await chart.getAttribute('aria-labelledby').then((ids) => page.evaluate((ids) =>
          ids.split(' ').map((id) => document.getElementById(id).textContent).join(' '), ids));
        const { rows: [{ done }] } = await env.admin.query(
          "select count(*)::int as done from public.jobs where status = 'done' and finished_at > now() - interval '1 hour' and finished_at <= now()",
        );
        return new RegExp(`Last 60 minutes: ${done} done`).test(said);
      }, { what: "the chart to count the hour's done jobs as the database does" });
      // Lines told apart by more than colour: dash patterns and marker shapes, in the legend too.
      const dashes = await chart.locator('g[data-series] path').evaluateAll((ps) =>
        [...new Set(ps.map((p) => p.getAttribute('stroke-dasharray') ?? 'solid'))]);
      assert.ok(dashes.length >= 3, `three dash patterns (${dashes})`);
      // Failed and cancelled are both 0 in most minutes: drawn apart and labelled.
      const offsets = await chart.locator('g[data-series]').evaluateAll((gs) => gs.map((g) => Number(g.dataset.offset)));
      assert.equal(new Set(offsets).size, offsets.length, `every line at its own offset (${offsets})`);
      await page.getByTestId('legend').first().getByText(/px apart/).first().waitFor();
      await page.getByRole('img', { name: /Run time and queue wait/ }).waitFor();
      if (round === 0) await page.reload(); // and the same after a reload
    }

    // Why jobs wait: alice is at the per-user cap; bob's roto waits for an unconfigured provider.
    const reasons = page.getByTestId('stall-reasons');
    await reasons.locator('[data-code="user_cap"]').filter({ hasText: 'at the per-user cap of 1 running' }).waitFor();
    await reasons.locator('[data-code="provider_not_configured"]').filter({ hasText: 'replicate' }).waitFor();
    await page.getByTestId('next-sweep').filter({ hasText: /Next safety-net sweep at/ }).waitFor();

    // Failed jobs with their errors.
    const failedJobs = page.getByTestId('failed-jobs');
    await failedJobs.locator(`[data-job-id="${bobs}"]`).filter({ hasText: 'corrupt_image: not a PNG' }).waitFor();
    assert.match(await failedJobs.locator(`[data-job-id="${bobs}"]`).textContent(), /attempt 1 of 3 .* permanent/);
    // Another user's job is not linked: the run view shows the signed-in user's own jobs only.
    assert.equal(await failedJobs.locator(`[data-job-id="${bobs}"] a`).count(), 0, "bob's failed job has no dead link");

    // Every user's jobs: by owner, and a search across users.
    const all = page.getByTestId('all-jobs');
    await all.getByLabel('Owner (user id)').fill(bob);
    await until(async () => (await all.locator('[data-testid="console-item"]').count()) === 2, { what: 'bob\'s two jobs' });
    await all.getByLabel('Owner (user id)').fill('');
    await all.getByLabel('Search').fill('harbour-bob');
    await until(async () => (await all.locator('[data-testid="console-item"]').evaluateAll((els) => els.map((e) => e.dataset.jobId))).join() === bobs, { what: 'the search across users' });
    assert.equal(await all.locator(`[data-job-id="${bobs}"] a`).count(), 0, "bob's job in every user's list has no dead link");

    // The job types' limits fit a 360 px phone, and so does the page.
    await page.setViewportSize({ width: 360, height: 780 });
    const table = page.getByRole('table', { name: 'Job types' });
    await table.getByRole('row', { name: /Colour grade/ }).waitFor();
    const fit = await table.evaluate((t) => ({ table: t.scrollWidth, box: t.parentElement.clientWidth }));
    assert.ok(fit.table <= fit.box, `the limits table fits (${fit.table} <= ${fit.box} px)`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    // What sticks out, if anything: the innermost elements past the right edge.
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll('main *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && ![...e.children].some((c) => c.getBoundingClientRect().right > window.innerWidth + 1))
        .slice(0, 5)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className} "${e.textContent.slice(0, 40)}" right ${Math.round(e.getBoundingClientRect().right)}`));
    assert.ok(overflow <= 0, `#/admin: no horizontal scroll at 360 px (overflow ${overflow} px): ${wide.join('; ')}`);
    await page.setViewportSize({ width: 1280, height: 900 });
  } finally {
    await env.admin.query(
      `update auth.users set raw_app_meta_data = raw_app_meta_data - 'spool_admin' where id = $1`,
      [userId],
    );
  }
  assert.deepEqual(errors, []);
});
