// The schedule creator (supabase/functions/schedules) against the local stack: a schedule is
// checked as the kind's creator checks a job before create_schedule sees it, and every refusal
// writes nothing. The handler runs in this process with the provider environment each test
// names. Schedules here fire next year at the soonest (or a day on), and each test deletes its
// users' schedules when it ends: the sweep (spool-schedules, every minute) never creates a job
// of theirs, and the schedules two-session test finds no active schedule of another user.
import assert from 'node:assert/strict';
import { REPLICATE_VERSION_VARS } from '../_jobs/kinds/index.ts';
import { readProviderConfig } from '../_jobs/providers.ts';
import { readSupabaseEnv } from '../_shared/env.ts';
import { intervalText, ScheduleBody, schedulesHandler } from '../schedules/api.ts';
import {
  assertError,
  call,
  createUser,
  functionEnv,
  integration,
  sql,
  type TestUser,
  uploadInput,
  withSettings,
} from './support/api-stack.ts';
import { png } from './support/media-fixtures.ts';

const OPENAI = { OPENAI_API_KEY: 'sk-test' };
/** Midnight on January 1st: the next slot is next year's. */
const YEARLY = '0 0 1 1 *';

/** The schedules handler with this provider environment (read once, as at load). */
function schedules(vars: Record<string, string> = {}) {
  const reader = functionEnv(vars);
  const env = readSupabaseEnv(reader);
  const providers = readProviderConfig(reader, REPLICATE_VERSION_VARS, env.url);
  reader.done();
  return schedulesHandler(env, providers);
}

const post = (
  handler: ReturnType<typeof schedules>,
  user: TestUser | null,
  body: unknown,
) => call(handler, '/schedules', { method: 'POST', token: user?.token ?? null, body });

async function schedulesOf(user: TestUser) {
  return await sql<Record<string, unknown>>(
    'select * from public.schedules where user_id = $1 order by created_at',
    [user.id],
  );
}

/** Runs `fn` with fresh users, then deletes whatever schedules they own. */
async function withUsers(n: number, fn: (...users: TestUser[]) => Promise<void>) {
  const users = await Promise.all(Array.from({ length: n }, () => createUser()));
  try {
    await fn(...users);
  } finally {
    await sql('delete from public.schedules where user_id = any($1::uuid[])', [
      users.map((u) => u.id),
    ]);
  }
}

// Pure --------------------------------------------------------------------------------------------

Deno.test('the envelope: cron or every (not both, not neither), intervals as people write them', () => {
  const ok = (body: unknown) => ScheduleBody.safeParse(body).success;
  assert.ok(ok({ type: 'text', cron: '0 9 * * *' }));
  assert.ok(ok({ type: 'text', every: '15 minutes' }));
  assert.ok(ok({ type: 'text', every: '2 hours 30 minutes' }));
  assert.ok(ok({ type: 'text', every: 3600 }));
  assert.ok(!ok({ type: 'text' }), 'neither');
  assert.ok(!ok({ type: 'text', cron: '0 9 * * *', every: '1 day' }), 'both');
  assert.ok(!ok({ type: 'text', every: '1 month' }), 'months vary');
  assert.ok(!ok({ type: 'text', every: "1 day'; drop table x" }), 'not interval text');
  assert.ok(!ok({ type: 'text', every: 30 }), 'under a minute');
  assert.ok(!ok({ type: 'text', cron: '0 9 * * *', extra: 1 }), 'unknown keys');
  assert.ok(!ok({ type: 'text', cron: '0 9 * * *', catch_up: 'some' }));
  assert.equal(intervalText(86_400), '1 days');
  assert.equal(intervalText(5400), '1 hours 30 minutes');
  assert.equal(intervalText(90_061), '1 days 1 hours 1 minutes 1 seconds');
  const parsed = ScheduleBody.parse({ type: 'text', cron: '0 9 * * *' });
  assert.equal(parsed.timezone, 'UTC');
  assert.equal(parsed.catch_up, 'latest');
  assert.deepEqual(parsed.input, {});
});

// Against the stack -------------------------------------------------------------------------------

Deno.test({
  name: 'create: 201 with the row, for the caller, with the parsed input (defaults filled in)',
  ...integration,
  async fn() {
    await withUsers(1, async (alice) => {
      const handler = schedules(OPENAI);
      const res = await post(handler, alice, {
        type: 'text',
        input: { prompt: '  Write a morning note  ' },
        cron: YEARLY,
        timezone: 'Europe/Paris',
        name: 'New year note',
      });
      assert.equal(res.status, 201, res.text);
      const schedule = res.json!.schedule as Record<string, unknown>;
      assert.equal(schedule.user_id, alice.id);
      assert.equal(schedule.type, 'text');
      assert.equal(schedule.cron, YEARLY);
      assert.equal(schedule.timezone, 'Europe/Paris');
      assert.equal(schedule.name, 'New year note');
      assert.equal(schedule.paused, false);
      assert.equal(schedule.project_wide, false);
      assert.equal(schedule.catch_up, 'latest');
      const input = schedule.input as Record<string, unknown>;
      assert.equal(input.prompt, 'Write a morning note', 'trimmed by the schema');
      assert.equal(input.max_output_tokens, 1000, 'the default, filled in');
      assert.ok(input.output_schema, 'the default output schema, filled in');
      // Midnight on January 1st in Paris is 23:00 UTC on December 31st.
      assert.match(String(schedule.next_run_at), /-12-31T23:00:00/);

      const rows = await schedulesOf(alice);
      assert.equal(rows.length, 1);
      assert.equal(rows[0].id, schedule.id);
      assert.deepEqual(rows[0].input, input, 'the stored input is the parsed one');

      // An interval, a zone-less kind of the other provider; every counted from now.
      const every = await post(handler, alice, {
        type: 'image',
        input: { prompt: 'A lighthouse at dawn' },
        every: '1 day',
        catch_up: 'all',
      });
      assert.equal(every.status, 201, every.text);
      const daily = every.json!.schedule as Record<string, unknown>;
      assert.equal(daily.every, '1 day');
      assert.equal(daily.cron, null);
      assert.equal(daily.catch_up, 'all');
      assert.equal((daily.input as Record<string, unknown>).size, '1024x1024');
      const inADay = Date.parse(String(daily.next_run_at)) - Date.now();
      assert.ok(inADay > 86_000_000 && inADay <= 86_400_000, `next run in ${inADay} ms`);

      // The owner sees both through RLS (the web client's list).
      const { data, error } = await alice.db.from('schedules').select('id').order('created_at');
      assert.equal(error, null);
      assert.deepEqual(data!.map((r) => r.id), [schedule.id, daily.id]);
    });
  },
});

Deno.test({
  name: 'invalid input: 400 invalid_body with the issues under "input.", nothing written',
  ...integration,
  async fn() {
    await withUsers(1, async (alice) => {
      const handler = schedules(OPENAI);
      const res = await post(handler, alice, {
        type: 'text',
        input: { prompt: '   ', max_output_tokens: 5 },
        cron: YEARLY,
      });
      assertError(res, 400, 'invalid_body', 'bad input');
      const paths = (res.json!.error as { details: { path: string }[] }).details.map((d) => d.path)
        .sort();
      assert.deepEqual(paths, ['input.max_output_tokens', 'input.prompt']);

      const extra = await post(handler, alice, {
        type: 'image',
        input: { prompt: 'x', style: 'noir' },
        cron: YEARLY,
      });
      assertError(extra, 400, 'invalid_body', 'a key the kind does not take');

      const envelope = await post(handler, alice, {
        type: 'text',
        input: { prompt: 'x' },
        cron: YEARLY,
        every: '1 day',
      });
      assertError(envelope, 400, 'invalid_body', 'cron and every');

      const cron = await post(handler, alice, {
        type: 'text',
        input: { prompt: 'x' },
        cron: '0 25 * * *',
      });
      assertError(cron, 400, 'invalid_argument', 'a bad cron, from create_schedule');
      assert.match((cron.json!.error as { message: string }).message, /hour/);

      const zone = await post(handler, alice, {
        type: 'text',
        input: { prompt: 'x' },
        cron: YEARLY,
        timezone: 'Mars/Olympus',
      });
      assertError(zone, 400, 'invalid_argument', 'an unknown zone');

      const json = await call(handler, '/schedules', {
        method: 'POST',
        token: alice.token,
        body: '{"type":',
      });
      assertError(json, 400, 'invalid_json', 'malformed JSON');

      assert.deepEqual(await schedulesOf(alice), [], 'no refusal wrote a row');
    });
  },
});

Deno.test({
  name: 'unknown type: 400 unknown_type, the test-only noop too (even where it is enabled)',
  ...integration,
  async fn() {
    await withUsers(1, async (alice) => {
      const handler = schedules({ ...OPENAI, SPOOL_ENABLE_NOOP: 'true' });
      for (const type of ['teleport', 'noop']) {
        const res = await post(handler, alice, { type, input: {}, cron: YEARLY });
        assertError(res, 400, 'unknown_type', type);
      }
      assert.deepEqual(await schedulesOf(alice), []);
    });
  },
});

Deno.test({
  name: 'a provider not configured: 503 provider_not_configured, as the creator answers',
  ...integration,
  async fn() {
    await withUsers(1, async (alice) => {
      const handler = schedules(); // no OPENAI_API_KEY
      for (const type of ['text', 'image']) {
        const res = await post(handler, alice, {
          type,
          input: { prompt: 'every morning' },
          cron: '0 7 * * *',
        });
        assertError(res, 503, 'provider_not_configured', type);
      }
      assert.deepEqual(await schedulesOf(alice), []);
    });
  },
});

Deno.test({
  name: 'quota: past max_schedules_per_user, 429 quota_schedules with Retry-After',
  ...integration,
  async fn() {
    await withUsers(1, async (alice) => {
      const handler = schedules(OPENAI);
      const body = { type: 'text', input: { prompt: 'x' }, cron: YEARLY };
      await withSettings({ max_schedules_per_user: 2 }, async () => {
        for (let i = 0; i < 2; i++) {
          const res = await post(handler, alice, body);
          assert.equal(res.status, 201, res.text);
        }
        const over = await post(handler, alice, body);
        assertError(over, 429, 'quota_schedules', 'the third');
        assert.match(over.headers.get('retry-after') ?? '', /^\d+$/);
        assert.deepEqual(
          (over.json!.error as { details: Record<string, unknown> }).details,
          { user_id: alice.id, schedules: 2, limit: 2 },
        );
      });
      assert.equal((await schedulesOf(alice)).length, 2);
    });
  },
});

Deno.test({
  name: "input files: another user's input_path 403 forbidden_input; my own file is scheduled",
  ...integration,
  async fn() {
    await withUsers(2, async (alice, bob) => {
      const handler = schedules();
      const bobs = await uploadInput(bob, 'bob.png', png(), 'image/png');
      const theirs = await post(handler, alice, {
        type: 'color-grade',
        input: { input_path: bobs, preset: 'noir' },
        cron: YEARLY,
      });
      assertError(theirs, 403, 'forbidden_input', "bob's file");

      const missing = await post(handler, alice, {
        type: 'color-grade',
        input: { input_path: `${alice.id}/nothing.png` },
        cron: YEARLY,
      });
      assertError(missing, 404, 'input_not_found', 'no such file');
      assert.deepEqual(await schedulesOf(alice), []);

      const mine = await uploadInput(alice, 'mine.png', png(), 'image/png');
      const res = await post(handler, alice, {
        type: 'color-grade',
        input: { input_path: mine, preset: 'noir' },
        every: 86_400,
      });
      assert.equal(res.status, 201, res.text);
      const schedule = res.json!.schedule as { input: Record<string, unknown>; every: string };
      assert.equal(schedule.input.input_path, mine);
      assert.equal(schedule.every, '1 day');
      assert.equal((await schedulesOf(alice)).length, 1);
    });
  },
});

Deno.test({
  name: 'no JWT: 401 unauthorized; the anon key is no user either; only POST /schedules',
  ...integration,
  async fn() {
    const handler = schedules(OPENAI);
    const body = { type: 'text', input: { prompt: 'x' }, cron: YEARLY };
    assertError(await post(handler, null, body), 401, 'unauthorized', 'no token');
    assertError(
      await call(handler, '/schedules', { method: 'POST', token: 'not-a-jwt', body }),
      401,
      'invalid_token',
      'garbage token',
    );
    await withUsers(1, async (alice) => {
      assertError(
        await call(handler, '/schedules', { method: 'GET', token: alice.token }),
        405,
        'method_not_allowed',
        'GET',
      );
      assertError(
        await call(handler, '/schedules/elsewhere', { method: 'POST', token: alice.token, body }),
        404,
        'not_found',
        'another path',
      );
      assert.deepEqual(await schedulesOf(alice), []);
    });
  },
});
