// The jobs API's history and console routes against the local stack: GET /jobs with filters and
// a search, page by page along the cursor; POST /jobs/bulk (cancel all queued, retry all failed,
// stopping at the rate quota); and the admin console: GET /jobs/admin (series, diagnosis, limits),
// GET /jobs/admin/jobs across users, POST /jobs/admin/bulk, all refused to plain users.
// Jobs are written as rows (as the SQL API leaves them), queued ones runnable tomorrow so
// job-worker leaves them alone.
import assert from 'node:assert/strict';
import { readProviderConfig } from '../_jobs/providers.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { PUBLIC_JOB_FIELDS } from '../_shared/job-view.ts';
import { jobsHandler } from '../jobs/api.ts';
import {
  assertError,
  call,
  createUser,
  functionEnv,
  integration,
  sql,
  type TestUser,
  theStack,
  withSettings,
} from './support/api-stack.ts';

let handler: ReturnType<typeof jobsHandler> | null = null;
function jobs() {
  if (!handler) {
    const reader = functionEnv();
    const env = readSupabaseEnv(reader);
    reader.done();
    handler = jobsHandler(env, readProviderConfig(new EnvReader(() => undefined), {}));
  }
  return handler;
}

type Job = Record<string, unknown> & { id: string; status: string; type: string };

const get = (user: TestUser | null, path: string) =>
  call(jobs(), path, { method: 'GET', token: user?.token });
const post = (user: TestUser | null, path: string, body: unknown) =>
  call(jobs(), path, { method: 'POST', token: user?.token, body });

/**
 * A job row for `user`: `status` as the SQL API leaves it (queued ones run tomorrow), created
 * `minutesAgo` minutes ago, reading `file` or with `prompt`.
 */
async function row(
  user: TestUser,
  type: string,
  status: string,
  minutesAgo: number,
  input: Record<string, unknown>,
  error: Record<string, unknown> | null = null,
): Promise<string> {
  const [r] = await sql<{ id: string }>(
    `insert into public.jobs (user_id, type, status, input, created_at, run_at, started_at, finished_at, error, attempts)
     values ($1, $2, $3::public.job_status, $4, now() - make_interval(mins => $5),
             case when $3 = 'pending' then now() + interval '1 day' else now() - make_interval(mins => $5) end,
             case when $3 in ('done', 'failed') then now() - make_interval(mins => $5) end,
             case when $3 in ('done', 'failed', 'cancelled') then now() - make_interval(mins => $5) + interval '3 seconds' end,
             $6, case when $3 = 'pending' then 0 else 1 end)
     returning id`,
    [
      user.id,
      type,
      status,
      JSON.stringify(input),
      minutesAgo,
      error ? JSON.stringify(error) : null,
    ],
  );
  return r.id;
}

interface World {
  alice: TestUser;
  bob: TestUser;
  /** alice's jobs, newest first. */
  mine: { id: string; type: string; status: string; name: string }[];
}

let world: Promise<World> | null = null;
function theWorld(): Promise<World> {
  world ??= (async () => {
    const [alice, bob] = await Promise.all([createUser(), createUser()]);
    const mine: World['mine'] = [];
    // 25 jobs, one a minute: every 4th queued, every 5th failed (retryable), the rest done;
    // colour grades of harbour-<n>.png and images with a prompt, alternately.
    for (let n = 1; n <= 25; n++) {
      const status = n % 4 === 0 ? 'pending' : n % 5 === 0 ? 'failed' : 'done';
      const type = n % 2 ? 'color-grade' : 'image';
      const name = type === 'color-grade' ? `harbour-${n}.png` : `a red fox, take ${n}`;
      const input = type === 'color-grade'
        ? { input_path: `${alice.id}/mx5snp22-${name}`, preset: 'noir' }
        : { prompt: name };
      const error = status === 'failed'
        ? { code: 'provider_error', message: 'provider timed out', retryable: true }
        : null;
      mine.push({ id: await row(alice, type, status, n, input, error), type, status, name });
    }
    await row(bob, 'color-grade', 'pending', 1, { input_path: `${bob.id}/harbour-1.png` });
    await row(bob, 'color-grade', 'failed', 2, { input_path: `${bob.id}/harbour-2.png` }, {
      code: 'provider_error',
      message: 'x',
      retryable: true,
    });
    return { alice, bob, mine };
  })();
  return world;
}

Deno.test({
  name: 'history: filters, a search by file name or prompt, and pages along the cursor',
  ...integration,
  async fn() {
    const { alice, mine } = await theWorld();
    const failedGrades = await get(alice, '/jobs?status=failed&type=color-grade&limit=100');
    assert.equal(failedGrades.status, 200, failedGrades.text);
    assert.deepEqual(
      (failedGrades.json!.jobs as Job[]).map((j) => j.id),
      mine.filter((j) => j.status === 'failed' && j.type === 'color-grade').map((j) => j.id),
    );
    for (const job of failedGrades.json!.jobs as Job[]) {
      assert.deepEqual(Object.keys(job), [...PUBLIC_JOB_FIELDS], 'the public view only');
    }
    const search = await get(alice, `/jobs?q=${encodeURIComponent('HARBOUR-1')}&limit=100`);
    assert.deepEqual(
      (search.json!.jobs as Job[]).map((j) => j.id),
      mine.filter((j) => /^harbour-1/.test(j.name)).map((j) => j.id),
      "file names, case-insensitive; not bob's harbour-1.png",
    );
    const prompt = await get(alice, `/jobs?q=${encodeURIComponent('fox, take 2')}&limit=100`);
    assert.deepEqual(
      (prompt.json!.jobs as Job[]).map((j) => j.id),
      mine.filter((j) => /^a red fox, take 2/.test(j.name)).map((j) => j.id),
    );
    const from = new Date(Date.now() - 10.5 * 60_000).toISOString();
    const to = new Date(Date.now() - 4.5 * 60_000).toISOString();
    const range = await get(alice, `/jobs?from=${from}&to=${to}&limit=100`);
    assert.deepEqual(
      (range.json!.jobs as Job[]).map((j) => j.id),
      mine.slice(4, 10).map((j) => j.id),
      'created 5 to 10 minutes ago',
    );
    // Pages of 4 along next_cursor: every job once, newest first.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await get(alice, `/jobs?limit=4${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(page.status, 200, page.text);
      seen.push(...(page.json!.jobs as Job[]).map((j) => j.id));
      cursor = page.json!.next_cursor as string | null;
    } while (cursor);
    assert.deepEqual(seen, mine.map((j) => j.id));
    assertError(await get(alice, '/jobs?from=yesterday'), 400, 'invalid_query');
    assertError(await get(alice, `/jobs?user=${alice.id}`), 400, 'invalid_query');
  },
});

Deno.test({
  name: 'bulk: cancel all queued and retry all failed by filter, stopping at the rate quota',
  ...integration,
  async fn() {
    const { alice, bob, mine } = await theWorld();
    assertError(await post(alice, '/jobs/bulk', { action: 'delete' }), 400, 'invalid_body');
    assertError(
      await call(jobs(), '/jobs/bulk', {
        method: 'POST',
        token: alice.token,
        body: 'x',
        contentType: 'text/plain',
      }),
      415,
      'unsupported_media_type',
    );
    assertError(await post(null, '/jobs/bulk', { action: 'cancel' }), 401, 'unauthorized');

    const queuedGrades = mine.filter((j) => j.status === 'pending' && j.type === 'color-grade');
    const dry = await post(alice, '/jobs/bulk', {
      action: 'cancel',
      filter: { status: 'pending', type: 'color-grade' },
      dry_run: true,
    });
    assert.deepEqual(dry.json, {
      matched: queuedGrades.length,
      changed: 0,
      refused: {},
      reasons: {},
    });
    const cancel = await post(alice, '/jobs/bulk', {
      action: 'cancel',
      filter: { status: ['pending'], type: ['color-grade'] },
    });
    assert.equal(cancel.status, 200, cancel.text);
    assert.deepEqual(cancel.json, {
      matched: queuedGrades.length,
      changed: queuedGrades.length,
      refused: {},
      reasons: {},
    });
    const states = await sql<{ id: string; status: string }>(
      'select id, status::text from public.jobs where user_id = any($1) and status = $2',
      [[alice.id, bob.id], 'pending'],
    );
    assert.equal(states.filter((s) => queuedGrades.some((q) => q.id === s.id)).length, 0);
    assert.ok(states.length > 0, "the queued images and bob's queued job are still queued");

    // 4 failed jobs (n = 5, 10, 15, 25), a rate of 3: three go, the fourth is refused quota_rate.
    await withSettings({ max_jobs_per_minute_per_user: 3 }, async () => {
      const retry = await post(alice, '/jobs/bulk', {
        action: 'retry',
        filter: { status: 'failed' },
      });
      assert.equal(retry.status, 200, retry.text);
      const body = retry.json as {
        matched: number;
        changed: number;
        refused: Record<string, number>;
        reasons: Record<string, string>;
      };
      assert.deepEqual({ ...body, reasons: Object.keys(body.reasons) }, {
        matched: 4,
        changed: 3,
        refused: { quota_rate: 1 },
        reasons: ['quota_rate'],
      });
    });
    const [bobs] = await sql<{ status: string }>(
      "select status::text from public.jobs where user_id = $1 and type = 'color-grade' order by created_at limit 1",
      [bob.id],
    );
    assert.equal(bobs.status, 'failed', "bob's failed job is not alice's to retry");
  },
});

Deno.test({
  name: 'console: for admins and the secret key only; series, diagnosis and limits in one answer',
  ...integration,
  async fn() {
    const { alice, bob } = await theWorld();
    assertError(await get(alice, '/jobs/admin'), 403, 'forbidden');
    assertError(await get(alice, '/jobs/admin/jobs'), 403, 'forbidden');
    assertError(await post(alice, '/jobs/admin/bulk', { action: 'cancel' }), 403, 'forbidden');
    assertError(await get(null, '/jobs/admin'), 401, 'unauthorized');

    const admin = await createUser({ admin: true });
    const overview = await get(admin, '/jobs/admin?minutes=30');
    assert.equal(overview.status, 200, overview.text);
    const body = overview.json as {
      minutes: number;
      series: { minute: string; type: string; status: string; finished: number }[];
      diagnosis: { reasons: unknown[]; sweep: unknown; user_cap: unknown };
      job_types: { type: string }[];
    };
    assert.equal(body.minutes, 30);
    assert.ok(
      body.series.some((s) => s.type === 'color-grade' && s.status === 'done' && s.finished >= 1),
      "alice's colour grades finished within the half hour",
    );
    assert.ok(Array.isArray(body.diagnosis.reasons));
    assert.ok(body.diagnosis.user_cap);
    assert.ok(body.job_types.some((t) => t.type === 'color-grade'));
    assertError(await get(admin, '/jobs/admin?minutes=0'), 400, 'invalid_query');

    const secret = await call(jobs(), '/jobs/admin', {
      method: 'GET',
      token: theStack().serviceKey,
      headers: { apikey: theStack().serviceKey },
    });
    assert.equal(secret.status, 200, secret.text);

    const bobsJobs = await get(admin, `/jobs/admin/jobs?user=${bob.id}&limit=100`);
    assert.equal(bobsJobs.status, 200, bobsJobs.text);
    const listed = bobsJobs.json!.jobs as (Job & { user_id: string })[];
    assert.equal(listed.length, 2);
    assert.ok(listed.every((j) => j.user_id === bob.id), "the console's rows say whose they are");
    const harbours = await get(admin, '/jobs/admin/jobs?q=harbour-1.png&limit=100');
    const owners = new Set((harbours.json!.jobs as { user_id: string }[]).map((j) => j.user_id));
    assert.ok(owners.has(alice.id) && owners.has(bob.id), 'a search across users');

    const cancel = await post(admin, '/jobs/admin/bulk', {
      action: 'cancel',
      filter: { user: bob.id, status: 'pending' },
    });
    assert.equal(cancel.status, 200, cancel.text);
    assert.deepEqual(cancel.json, { matched: 1, changed: 1, refused: {}, reasons: {} });
    const [bobs] = await sql<{ status: string; error: { message: string } }>(
      "select status::text, error from public.jobs where user_id = $1 and input->>'input_path' like '%harbour-1.png'",
      [bob.id],
    );
    assert.equal(bobs.status, 'cancelled');
    assert.equal(bobs.error.message, 'cancelled by an admin');
  },
});

Deno.test({
  name: 'bad filters and bodies get a 4xx in the error shape, never a 500',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const admin = await createUser({ admin: true });
    for (
      const path of [
        '/jobs?q=a%00b',
        `/jobs?q=${'x'.repeat(201)}`,
        '/jobs?from=2026-13-45T00:00:00Z',
        '/jobs?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z',
        '/jobs?status=queued',
        `/jobs?user=${alice.id}`,
      ]
    ) {
      assertError(await get(alice, path), 400, 'invalid_query', path);
    }
    assertError(await get(admin, '/jobs/admin/jobs?user=nobody'), 400, 'invalid_query');
    assertError(await get(admin, '/jobs/admin?minutes=x'), 400, 'invalid_query');
    assertError(await get(admin, '/jobs/admin?window=1'), 400, 'invalid_query');
    for (
      const body of [
        { action: 'retry', filter: { q: 'a\u0000b' } },
        { action: 'retry', filter: { from: 'monday' } },
        { action: 'cancel', filter: { status: ['pending', 7] } },
        { action: 'cancel', filter: { user: alice.id } },
        { action: 'cancel', dry_run: 1 },
      ]
    ) {
      assertError(await post(alice, '/jobs/bulk', body), 400, 'invalid_body', JSON.stringify(body));
    }
    assertError(
      await post(admin, '/jobs/admin/bulk', { action: 'cancel', filter: { user: 'x' } }),
      400,
      'invalid_body',
    );
  },
});
