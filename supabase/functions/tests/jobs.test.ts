// The jobs API against the local stack: listing with filters and pages, one job with signed URLs
// of its outputs, cancel and retry of my own jobs, nobody else's, and the health check.
// Jobs are made through the SQL API with run_at tomorrow, so job-worker leaves them pending.
import { readProviderConfig } from '../_jobs/providers.ts';
import assert from 'node:assert/strict';
import { jobsHandler } from '../jobs/api.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { PUBLIC_JOB_FIELDS } from '../_shared/job-view.ts';
import {
  assertError,
  call,
  createUser,
  functionEnv,
  integration,
  serviceDb,
  sql,
  type TestUser,
  theStack,
  transaction,
  withSettings,
} from './support/api-stack.ts';
import { png } from './support/media-fixtures.ts';

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

/** Creates a job for `user` through the SQL API (as service_role), runnable tomorrow. */
async function makeJob(
  user: TestUser,
  type: string,
  { priority = 0, input = {} }: { priority?: number; input?: Record<string, unknown> } = {},
): Promise<string> {
  const [row] = await transaction<{ id: string }>([
    ['set local role service_role'],
    [
      `select id from public.create_job($1, $2, $3, $4, 3, now() + interval '1 day')`,
      [user.id, type, JSON.stringify(input), priority],
    ],
  ]);
  return row.id;
}

async function cancelAsService(id: string) {
  await transaction([['set local role service_role'], ['select public.cancel_job($1)', [id]]]);
}

/** Runs the job to done through claim_jobs + complete_job, a day ahead (spool.now). */
async function completeJob(id: string, type: string, output: Record<string, unknown>) {
  const rows = await transaction<{ id: string }>([
    ['set local role service_role'],
    [`set local spool.now = '${new Date(Date.now() + 2 * 86400_000).toISOString()}'`],
    [
      `with claimed as (select * from public.claim_jobs('jobs-test', 1, 60, array[$1]))
       select c.id, (public.complete_job(c.id, c.lease_token, $2)).id as done from claimed c`,
      [type, JSON.stringify(output)],
    ],
  ]);
  assert.deepEqual(rows.map((r) => r.id), [id], 'the claim took the job under test');
}

const get = (user: TestUser | null, path: string, token?: string) =>
  call(jobs(), path, { method: 'GET', token: token ?? user?.token });
const post = (user: TestUser | null, path: string, token?: string) =>
  call(jobs(), path, { method: 'POST', token: token ?? user?.token });

interface World {
  alice: TestUser;
  bob: TestUser;
  /** alice's jobs, oldest first: type and whether cancelled. */
  mine: { id: string; type: string; cancelled: boolean }[];
  bobs: string;
}

let world: Promise<World> | null = null;
function theWorld(): Promise<World> {
  world ??= (async () => {
    const [alice, bob] = await Promise.all([createUser(), createUser()]);
    const mine: World['mine'] = [];
    const types = ['roto', 'color-grade', 'audio-clean', 'image', 'roto', 'roto', 'image'];
    for (let i = 0; i < types.length; i++) {
      const id = await makeJob(alice, types[i], { input: { n: i } });
      const cancelled = i % 3 === 0;
      if (cancelled) await cancelAsService(id);
      mine.push({ id, type: types[i], cancelled });
    }
    const bobs = await makeJob(bob, 'roto');
    return { alice, bob, mine, bobs };
  })();
  return world;
}

Deno.test({
  name: 'kinds: a signed-in user learns every kind they may start, with its form and file rules',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const res = await get(alice, '/jobs/kinds');
    assert.equal(res.status, 200, res.text);
    const kinds = res.json!.kinds as Record<string, unknown>[];
    assert.deepEqual(kinds.map((k) => k.type), [
      'color-grade',
      'audio-clean',
      'roto',
      'image',
      'text',
    ], 'every kind but the test-only noop');
    const grade = kinds[0] as {
      label: string;
      available: boolean;
      input_schema: { properties: Record<string, Record<string, unknown>> };
      file: { content_types: string[]; max_bytes: number; provider_configured: boolean };
    };
    assert.equal(grade.label, 'Colour grade');
    assert.equal(grade.available, true);
    assert.deepEqual(grade.input_schema.properties.exposure, {
      default: 0,
      title: 'Exposure',
      'x-widget': 'range',
      'x-step': 0.1,
      'x-format': 'stops',
      type: 'number',
      minimum: -3,
      maximum: 3,
    });
    assert.equal(grade.file.max_bytes, 50 * 1024 * 1024);
    assert.ok(grade.file.content_types.includes('image/png'));
    assert.equal(grade.file.provider_configured, false);
    const image = kinds[3] as { available: boolean; unavailable: { code: string } };
    assert.equal(image.available, false, 'no OpenAI key in this function');
    assert.equal(image.unavailable.code, 'provider_not_configured');
    const anonymous = await get(null, '/jobs/kinds');
    assert.equal(anonymous.status, 401);
  },
});

Deno.test({
  name: "list: my jobs, newest first, in the public view, nobody else's",
  ...integration,
  async fn() {
    const { alice, mine, bobs } = await theWorld();
    const res = await get(alice, '/jobs');
    assert.equal(res.status, 200, res.text);
    const list = res.json!.jobs as Job[];
    assert.deepEqual(list.map((j) => j.id), mine.map((j) => j.id).reverse());
    assert.equal(res.json!.next_cursor, null);
    for (const job of list) assert.deepEqual(Object.keys(job), [...PUBLIC_JOB_FIELDS]);
    assert.ok(!list.some((j) => j.id === bobs));
  },
});

Deno.test({
  name: 'list: filters by status and type, alone, combined and as comma lists',
  ...integration,
  async fn() {
    const { alice, mine } = await theWorld();
    const ids = (res: Awaited<ReturnType<typeof get>>) => {
      assert.equal(res.status, 200, res.text);
      return (res.json!.jobs as Job[]).map((j) => j.id);
    };
    const newest = [...mine].reverse();
    assert.deepEqual(
      ids(await get(alice, '/jobs?status=cancelled')),
      newest.filter((j) => j.cancelled).map((j) => j.id),
    );
    assert.deepEqual(
      ids(await get(alice, '/jobs?type=roto')),
      newest.filter((j) => j.type === 'roto').map((j) => j.id),
    );
    assert.deepEqual(
      ids(await get(alice, '/jobs?type=roto&status=pending')),
      newest.filter((j) => j.type === 'roto' && !j.cancelled).map((j) => j.id),
    );
    assert.deepEqual(
      ids(await get(alice, '/jobs?type=image,audio-clean&status=pending,cancelled')),
      newest.filter((j) => j.type === 'image' || j.type === 'audio-clean').map((j) => j.id),
    );
    assert.deepEqual(ids(await get(alice, '/jobs?status=done')), []);
  },
});

Deno.test({
  name: 'list: pages of 2 walk every job once, in order, then next_cursor is null',
  ...integration,
  async fn() {
    const { alice, mine } = await theWorld();
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const res = await get(alice, `/jobs?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(res.status, 200, res.text);
      const list = res.json!.jobs as Job[];
      assert.ok(list.length <= 2);
      seen.push(...list.map((j) => j.id));
      cursor = res.json!.next_cursor as string | null;
      if (!cursor) break;
    }
    assert.deepEqual(seen, mine.map((j) => j.id).reverse());
    // Jobs created in one transaction share created_at: the id breaks the tie.
    const twins = await transaction<{ id: string }>([
      ['set local role service_role'],
      [
        `select (public.create_job($1, 'noop', '{}', 0, 3, now() + interval '1 day')).id
         from generate_series(1, 3)`,
        [alice.id],
      ],
    ]);
    const all: string[] = [];
    cursor = null;
    for (let page = 0; page < 20; page++) {
      const res = await get(alice, `/jobs?limit=1&type=noop${cursor ? `&cursor=${cursor}` : ''}`);
      all.push(...(res.json!.jobs as Job[]).map((j) => j.id));
      cursor = res.json!.next_cursor as string | null;
      if (!cursor) break;
    }
    assert.deepEqual(all, twins.map((t) => t.id).sort().reverse());
  },
});

Deno.test({
  name: "list: parent=<id> gives a flow's children with their parent_id, to its owner only",
  ...integration,
  async fn() {
    const [carol, dave] = await Promise.all([createUser(), createUser()]);
    const tomorrow = new Date(Date.now() + 86400_000).toISOString();
    const flow = await transaction<{ id: string; type: string }>([
      ['set local role service_role'],
      [
        `select id, type from public.create_flow($1, 'pack', '{"prompt": "a mug"}', $2)`,
        [
          carol.id,
          JSON.stringify([
            { type: 'image', input: { n: 0 }, run_at: tomorrow },
            { type: 'image', input: { n: 1 }, run_at: tomorrow },
            { type: 'text', input: { n: 2 }, run_at: tomorrow },
          ]),
        ],
      ],
    ]);
    const [parent, ...children] = flow;
    assert.equal(parent.type, 'pack');
    const other = await makeJob(carol, 'roto');
    const res = await get(carol, `/jobs?parent=${parent.id}`);
    assert.equal(res.status, 200, res.text);
    const list = res.json!.jobs as Job[];
    assert.deepEqual(list.map((j) => j.id).sort(), children.map((c) => c.id).sort());
    assert.ok(!list.some((j) => j.id === other || j.id === parent.id));
    for (const job of list) {
      assert.deepEqual(Object.keys(job), [...PUBLIC_JOB_FIELDS]);
      assert.equal(job.parent_id, parent.id);
    }
    const one = await get(carol, `/jobs/${parent.id}`);
    assert.equal((one.json!.job as Job).parent_id, null, 'the parent has none');
    const typed = await get(carol, `/jobs?parent=${parent.id}&type=text`);
    assert.deepEqual((typed.json!.jobs as Job[]).map((j) => j.id), [children[2].id]);
    const theirs = await get(dave, `/jobs?parent=${parent.id}`);
    assert.equal(theirs.status, 200, theirs.text);
    assert.deepEqual(theirs.json!.jobs, [], "another user's flow has no children for me");
  },
});

Deno.test({
  name: 'list: invalid filters are 400 invalid_query',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    for (
      const query of [
        'status=finished',
        'type=Roto',
        'limit=0',
        'limit=101',
        'limit=abc',
        'cursor=nope',
        'order=asc',
        'parent=nope',
      ]
    ) {
      assertError(await get(alice, `/jobs?${query}`), 400, 'invalid_query', query);
    }
  },
});

Deno.test({
  name: "get: my job in the public view; another user's or an unknown one is 404",
  ...integration,
  async fn() {
    const { alice, bob, mine, bobs } = await theWorld();
    const res = await get(alice, `/jobs/${mine[1].id}`);
    assert.equal(res.status, 200, res.text);
    const job = res.json!.job as Job;
    assert.deepEqual(Object.keys(job), [...PUBLIC_JOB_FIELDS]);
    assert.equal(job.id, mine[1].id);
    assert.equal(job.status, 'pending');
    assert.equal(res.json!.output_url, null);
    assert.deepEqual(res.json!.output_files, []);
    assertError(await get(alice, `/jobs/${bobs}`), 404, 'job_not_found');
    assertError(await get(bob, `/jobs/${mine[1].id}`), 404, 'job_not_found');
    assertError(await get(alice, `/jobs/${crypto.randomUUID()}`), 404, 'job_not_found');
    assertError(await get(alice, '/jobs/not-a-uuid'), 400, 'invalid_id');
    assertError(await get(null, `/jobs/${mine[1].id}`), 401, 'unauthorized');
  },
});

Deno.test({
  name: 'get: a done job has a signed URL for each output file, valid for an hour',
  ...integration,
  async fn() {
    const { alice, bob } = await theWorld();
    const id = await makeJob(alice, 'color-grade', { priority: 100 });
    const bytes = png(4, 4);
    const path = `${alice.id}/${id}/graded.png`;
    const { error } = await serviceDb().storage.from('outputs').upload(path, bytes, {
      contentType: 'image/png',
    });
    assert.equal(error, null, error?.message);
    const file = { path, content_type: 'image/png', size: bytes.length, width: 4, height: 4 };
    await completeJob(id, 'color-grade', { files: [file] });

    const res = await get(alice, `/jobs/${id}`);
    assert.equal(res.status, 200, res.text);
    assert.equal((res.json!.job as Job).status, 'done');
    const files = res.json!.output_files as (typeof file & { url: string; expires_at: string })[];
    assert.equal(files.length, 1);
    assert.deepEqual({ ...files[0], url: undefined, expires_at: undefined }, {
      ...file,
      url: undefined,
      expires_at: undefined,
    });
    assert.equal(res.json!.output_url, files[0].url);
    const expires = Date.parse(files[0].expires_at) - Date.now();
    assert.ok(expires > 3500_000 && expires <= 3600_000, `expires in ${expires} ms`);
    assert.ok(files[0].url.startsWith(`${theStack().url}/storage/v1/object/sign/outputs/`));
    const download = await fetch(files[0].url);
    assert.equal(download.status, 200);
    assert.deepEqual(new Uint8Array(await download.arrayBuffer()), bytes);
    assertError(await get(bob, `/jobs/${id}`), 404, 'job_not_found');
  },
});

Deno.test({
  name: "cancel: my pending job is cancelled, again is a no-op; others' are 404",
  ...integration,
  async fn() {
    const { alice, bob, bobs } = await theWorld();
    const id = await makeJob(alice, 'roto');
    const res = await post(alice, `/jobs/${id}/cancel`);
    assert.equal(res.status, 200, res.text);
    const job = res.json!.job as Job;
    assert.deepEqual(Object.keys(job), [...PUBLIC_JOB_FIELDS]);
    assert.equal(job.status, 'cancelled');
    assert.equal((job.error as { code: string }).code, 'cancelled');
    const again = await post(alice, `/jobs/${id}/cancel`);
    assert.equal(again.status, 200, again.text);
    assert.equal((again.json!.job as Job).status, 'cancelled');
    assertError(await post(alice, `/jobs/${bobs}/cancel`), 404, 'job_not_found');
    assertError(await post(bob, `/jobs/${id}/cancel`), 404, 'job_not_found');
    assertError(await post(null, `/jobs/${id}/cancel`), 401, 'unauthorized');
    const [row] = await sql<{ status: string }>('select status from public.jobs where id = $1', [
      bobs,
    ]);
    assert.equal(row.status, 'pending', "bob's job is untouched");
  },
});

Deno.test({
  name: 'cancel: a done job is 409 invalid_transition',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const id = await makeJob(alice, 'audio-clean', { priority: 100 });
    await completeJob(id, 'audio-clean', { files: [] });
    assertError(await post(alice, `/jobs/${id}/cancel`), 409, 'invalid_transition');
  },
});

Deno.test({
  name: "retry: my cancelled job is pending again; a pending one stays; others' are 404",
  ...integration,
  async fn() {
    const { alice, bob } = await theWorld();
    const id = await makeJob(alice, 'image');
    await cancelAsService(id);
    assertError(await post(bob, `/jobs/${id}/retry`), 404, 'job_not_found');
    const res = await post(alice, `/jobs/${id}/retry`);
    assert.equal(res.status, 200, res.text);
    const job = res.json!.job as Job;
    assert.equal(job.id, id);
    assert.equal(job.attempts, 0);
    assert.ok(['pending', 'running', 'failed', 'done'].includes(job.status));
    assertError(await post(alice, `/jobs/${crypto.randomUUID()}/retry`), 404, 'job_not_found');
  },
});

/** Fails the job's attempt through claim_jobs + fail_job, a day ahead (spool.now). */
async function failJob(
  id: string,
  type: string,
  error: Record<string, unknown>,
  retryable: boolean,
) {
  const rows = await transaction<{ id: string; status: string }>([
    ['set local role service_role'],
    [`set local spool.now = '${new Date(Date.now() + 2 * 86400_000).toISOString()}'`],
    [
      `with claimed as (select * from public.claim_jobs('jobs-test', 1, 60, array[$1]))
       select c.id, (public.fail_job(c.id, c.lease_token, $2, $3)).status from claimed c`,
      [type, JSON.stringify(error), retryable],
    ],
  ]);
  assert.deepEqual(rows.map((r) => r.id), [id], 'the claim took the job under test');
  return rows[0].status;
}

Deno.test({
  name: 'retry: a permanent failure is 409 not_retryable, saying why; the job stays failed',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const id = await makeJob(alice, 'roto', { priority: 100 });
    const status = await failJob(id, 'roto', {
      code: 'content_policy',
      message: 'the provider refused the prompt',
    }, false);
    assert.equal(status, 'failed');
    const res = await post(alice, `/jobs/${id}/retry`);
    assertError(res, 409, 'not_retryable');
    const error = res.json!.error as { message: string; details: Record<string, unknown> };
    assert.match(
      error.message,
      /failed permanently \(content_policy: the provider refused the prompt\)/,
    );
    assert.deepEqual(error.details.reason, 'content_policy');
    const got = await get(alice, `/jobs/${id}`);
    const job = got.json!.job as Job & { error: Record<string, unknown> };
    assert.equal(job.status, 'failed');
    assert.equal(job.error.retryable, false);
  },
});

Deno.test({
  name:
    'retry: past the jobs-per-minute rate is 429 quota_rate with Retry-After; the job stays cancelled',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const id = await makeJob(alice, 'image');
    await cancelAsService(id);
    await withSettings({ max_jobs_per_minute_per_user: 1 }, async () => {
      // alice created this job a moment ago: the retry would be her second run this minute.
      const res = await post(alice, `/jobs/${id}/retry`);
      assertError(res, 429, 'quota_rate');
      assert.equal(res.headers.get('retry-after'), '60');
    });
    const [row] = await sql<{ status: string }>('select status from public.jobs where id = $1', [
      id,
    ]);
    assert.equal(row.status, 'cancelled');
  },
});

Deno.test({
  name: 'health: 200 with the secret key or for an admin; 403 for a user; 401 without a token',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    assertError(await get(alice, '/jobs/health'), 403, 'forbidden');
    assertError(await get(null, '/jobs/health'), 401, 'unauthorized');
    const secret = await call(jobs(), '/jobs/health', {
      method: 'GET',
      token: theStack().serviceKey,
      headers: { apikey: theStack().serviceKey },
    });
    assert.equal(secret.status, 200, secret.text);
    const stats = secret.json!.stats as Record<string, unknown>;
    assert.ok(Array.isArray(stats.depth));
    assert.equal(typeof stats.window, 'object');
    const admin = await createUser({ admin: true });
    const asAdmin = await get(admin, '/jobs/health?window_seconds=600');
    assert.equal(asAdmin.status, 200, asAdmin.text);
    assert.equal((asAdmin.json!.stats as { window_seconds: number }).window_seconds, 600);
    assertError(await get(admin, '/jobs/health?window_seconds=5'), 400, 'invalid_query');
  },
});

Deno.test({
  name: 'routes: wrong methods are 405 and unknown paths 404, in the one error shape',
  ...integration,
  async fn() {
    const { alice, mine } = await theWorld();
    assertError(await post(alice, '/jobs'), 405, 'method_not_allowed');
    assertError(await get(alice, `/jobs/${mine[0].id}/cancel`), 405, 'method_not_allowed');
    assertError(
      await call(jobs(), '/jobs', { method: 'DELETE', token: alice.token }),
      405,
      'method_not_allowed',
    );
    assertError(await get(alice, `/jobs/${mine[0].id}/logs`), 404, 'not_found');
  },
});

Deno.test({
  name: 'gateway: the jobs function lists my jobs through /functions/v1',
  ...integration,
  async fn() {
    const { alice } = await theWorld();
    const s = theStack();
    const res = await fetch(`${s.url}/functions/v1/jobs?limit=1`, {
      headers: { apikey: s.anonKey, authorization: `Bearer ${alice.token}` },
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.jobs.length, 1);
    const [owner] = await sql<{ user_id: string }>(
      'select user_id from public.jobs where id = $1',
      [
        body.jobs[0].id,
      ],
    );
    assert.equal(owner.user_id, alice.id);
    assert.equal(typeof body.next_cursor, 'string');
  },
});
