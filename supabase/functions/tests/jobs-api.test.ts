// The jobs API's pure parts: routing, list query validation, cursors, output files, and the public
// job view (no stack needed).
import assert from 'node:assert/strict';
import { HttpError } from '../_shared/http.ts';
import {
  decodeCursor,
  encodeCursor,
  matchRoute,
  mayReadHealth,
  outputFilesOf,
  outputObjectPath,
  parseBulkBody,
  parseListQuery,
  withProviderFacts,
} from '../jobs/api.ts';
import type { KindCapabilities } from '../_jobs/capabilities.ts';
import {
  jobLocation,
  PUBLIC_JOB_COLUMNS,
  PUBLIC_JOB_FIELDS,
  retryRefusal,
  toPublicJob,
} from '../_shared/job-view.ts';
import type { JobRow } from '../_shared/clients.ts';

const ID = '019a4c8e-1f2b-7c3d-8e4f-5a6b7c8d9e0f';

function httpError(fn: () => unknown, status: number, code: string): HttpError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof HttpError, `expected HttpError, got ${err}`);
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${status} ${code}`);
}

Deno.test('routes: list, kinds, health, get, cancel and retry, with or without /functions/v1', () => {
  assert.deepEqual(matchRoute('GET', '/jobs'), { name: 'list' });
  assert.deepEqual(matchRoute('GET', '/jobs/'), { name: 'list' });
  assert.deepEqual(matchRoute('GET', '/functions/v1/jobs'), { name: 'list' });
  assert.deepEqual(matchRoute('GET', '/jobs/health'), { name: 'health' });
  assert.deepEqual(matchRoute('GET', '/jobs/kinds'), { name: 'kinds' });
  assert.deepEqual(matchRoute('GET', `/jobs/${ID}`), { name: 'get', id: ID });
  assert.deepEqual(matchRoute('POST', `/jobs/${ID}/cancel`), { name: 'cancel', id: ID });
  assert.deepEqual(matchRoute('POST', `/functions/v1/jobs/${ID}/retry`), { name: 'retry', id: ID });
  assert.deepEqual(matchRoute('POST', '/jobs/bulk'), { name: 'bulk' });
  assert.deepEqual(matchRoute('GET', '/jobs/admin'), { name: 'console' });
  assert.deepEqual(matchRoute('GET', '/functions/v1/jobs/admin/jobs'), { name: 'admin-list' });
  assert.deepEqual(matchRoute('POST', '/jobs/admin/bulk'), { name: 'admin-bulk' });
});

Deno.test('routes: the bulk and console routes refuse other methods and paths', () => {
  httpError(() => matchRoute('GET', '/jobs/bulk'), 405, 'method_not_allowed');
  httpError(() => matchRoute('POST', '/jobs/admin'), 405, 'method_not_allowed');
  httpError(() => matchRoute('GET', '/jobs/admin/bulk'), 405, 'method_not_allowed');
  httpError(() => matchRoute('GET', '/jobs/admin/other'), 404, 'not_found');
  httpError(() => matchRoute('GET', `/jobs/admin/${ID}`), 404, 'not_found');
});

Deno.test('routes: unknown paths are 404, bad ids 400, wrong methods 405 with Allow', () => {
  httpError(() => matchRoute('GET', '/other'), 404, 'not_found');
  httpError(() => matchRoute('GET', '/jobsx'), 404, 'not_found');
  httpError(() => matchRoute('POST', `/jobs/${ID}/delete`), 404, 'not_found');
  httpError(() => matchRoute('GET', `/jobs/${ID}/cancel/now`), 404, 'not_found');
  httpError(() => matchRoute('GET', '/jobs/123'), 400, 'invalid_id');
  httpError(() => matchRoute('POST', '/jobs/123/cancel'), 400, 'invalid_id');
  const err = httpError(() => matchRoute('POST', '/jobs'), 405, 'method_not_allowed');
  assert.equal(err.headers.allow, 'GET');
  httpError(() => matchRoute('GET', `/jobs/${ID}/retry`), 405, 'method_not_allowed');
  httpError(() => matchRoute('POST', '/jobs/health'), 405, 'method_not_allowed');
});

Deno.test('list query: defaults to 20 newest jobs of any status and type', () => {
  assert.deepEqual(parseListQuery(new URLSearchParams()), {
    statuses: null,
    types: null,
    from: null,
    to: null,
    search: null,
    parent: null,
    user: null,
    limit: 20,
    cursor: null,
  });
});

Deno.test('list query: accepts comma lists, limits 1..100 and a cursor', () => {
  const cursor = encodeCursor({ createdAt: '2026-11-22T12:00:00.123456+00:00', id: ID });
  const q = parseListQuery(
    new URLSearchParams({ status: 'failed,cancelled', type: 'roto', limit: '100', cursor }),
  );
  assert.deepEqual(q, {
    statuses: ['failed', 'cancelled'],
    types: ['roto'],
    from: null,
    to: null,
    search: null,
    parent: null,
    user: null,
    limit: 100,
    cursor: { createdAt: '2026-11-22T12:00:00.123456+00:00', id: ID },
  });
  assert.equal(parseListQuery(new URLSearchParams({ limit: '1' })).limit, 1);
  assert.equal(parseListQuery(new URLSearchParams({ forceFunctionRegion: 'eu-west-1' })).limit, 20);
});

Deno.test("list query: parent=<id> keeps a flow's children; anything but one job id is 400", () => {
  assert.equal(parseListQuery(new URLSearchParams({ parent: ID })).parent, ID);
  assert.equal(parseListQuery(new URLSearchParams({ parent: ID.toUpperCase() })).parent, ID);
  for (const parent of ['', 'abc', `${ID},${ID}`, `${ID}x`]) {
    const err = httpError(
      () => parseListQuery(new URLSearchParams({ parent })),
      400,
      'invalid_query',
    );
    assert.deepEqual((err.details as { param: string }[]).map((p) => p.param), ['parent'], parent);
  }
  httpError(
    () => parseListQuery(new URLSearchParams(`parent=${ID}&parent=${ID}`)),
    400,
    'invalid_query',
  );
});

Deno.test('list query: every invalid parameter is named in one 400 invalid_query', () => {
  const err = httpError(
    () =>
      parseListQuery(
        new URLSearchParams({
          status: 'pending,finished',
          type: 'Roto!',
          limit: '0',
          cursor: 'bogus',
          sort: 'asc',
        }),
      ),
    400,
    'invalid_query',
  );
  const params = (err.details as { param: string }[]).map((p) => p.param).sort();
  assert.deepEqual(params, ['cursor', 'limit', 'sort', 'status', 'type']);
  for (const limit of ['101', '-1', '1.5', 'ten', '', '99999']) {
    httpError(() => parseListQuery(new URLSearchParams({ limit })), 400, 'invalid_query');
  }
  httpError(() => parseListQuery(new URLSearchParams('limit=1&limit=2')), 400, 'invalid_query');
  httpError(() => parseListQuery(new URLSearchParams({ status: '' })), 400, 'invalid_query');
});

Deno.test('cursors: round-trip, and refuse anything this API did not make', () => {
  const c = { createdAt: '2026-11-22T12:42:05.5+00:00', id: ID };
  assert.deepEqual(decodeCursor(encodeCursor(c)), c);
  assert.match(encodeCursor(c), /^[A-Za-z0-9_-]+$/);
  const forge = (v: unknown) => btoa(JSON.stringify(v)).replace(/=+$/, '');
  assert.equal(decodeCursor(forge(['2026-11-22T12:42:05Z', 'x'])), null);
  assert.equal(decodeCursor(forge(['2026-11-22T12:42:05"),id.gt.(', ID])), null);
  assert.equal(decodeCursor(forge(['yesterday', ID])), null);
  assert.equal(decodeCursor(forge({ a: 1 })), null);
  assert.equal(decodeCursor('!!!'), null);
  assert.equal(decodeCursor(''), null);
});

Deno.test('output files: read output.files, skip malformed entries', () => {
  assert.deepEqual(outputFilesOf(null), []);
  assert.deepEqual(outputFilesOf({}), []);
  assert.deepEqual(outputFilesOf({ files: 'x' }), []);
  const file = { path: `${ID}/${ID}/out.png`, content_type: 'image/png', size: 10, width: 2 };
  assert.deepEqual(outputFilesOf({ files: [file, null, { size: 1 }, 'x'] }), [file]);
});

Deno.test('output files: paths are bucket-relative; a leading outputs/ is tolerated', () => {
  assert.equal(outputObjectPath(`${ID}/j/out.png`), `${ID}/j/out.png`);
  assert.equal(outputObjectPath(`outputs/${ID}/j/out.png`), `${ID}/j/out.png`);
  assert.equal(outputObjectPath('outputs/x.png'), 'outputs/x.png');
});

Deno.test('health: the secret key and admins may read it, other users may not', () => {
  assert.equal(mayReadHealth({ kind: 'secret' }), true);
  const user = { kind: 'user' as const, userId: ID, jwt: 'j', isAnonymous: false, isAdmin: false };
  assert.equal(mayReadHealth(user), false);
  assert.equal(mayReadHealth({ ...user, isAdmin: true }), true);
});

Deno.test('public view: the select list matches the fields, internals are dropped', () => {
  assert.equal(PUBLIC_JOB_COLUMNS, PUBLIC_JOB_FIELDS.join(','));
  // Every column of jobs (cast: columns other migrations add need not be spelled out here).
  const row = {
    id: ID,
    user_id: 'u',
    type: 'roto',
    status: 'running',
    priority: 0,
    input: { a: 1 },
    output: null,
    progress: 10,
    step: 'matte',
    error: null,
    attempts: 1,
    max_attempts: 3,
    history: [],
    run_at: 't0',
    fair_at: 't0',
    worker_id: 'w',
    lease_token: 'secret',
    lease_expires_at: 't1',
    idempotency_key: 'k',
    external_provider: null,
    external_id: null,
    parent_id: null,
    created_at: 't0',
    started_at: 't0',
    finished_at: null,
    updated_at: 't0',
  } satisfies Partial<JobRow> as unknown as JobRow;
  const view = toPublicJob(row);
  assert.deepEqual(Object.keys(view), [...PUBLIC_JOB_FIELDS]);
  for (const hidden of ['lease_token', 'worker_id', 'fair_at', 'user_id', 'idempotency_key']) {
    assert.equal(hidden in view, false, hidden);
  }
  assert.deepEqual(view.history, []);
  assert.equal(jobLocation(ID), `/functions/v1/jobs/${ID}`);
});

Deno.test('retryRefusal: what retry_job refuses whatever the quotas', () => {
  const job = (status: string, error: unknown = null, input: unknown = { prompt: 'a cat' }) =>
    ({ status, error, input }) as Parameters<typeof retryRefusal>[0];
  assert.equal(retryRefusal(job('cancelled')), null);
  assert.equal(retryRefusal(job('pending')), null);
  assert.equal(retryRefusal(job('failed', { code: 'lease_expired', retryable: true })), null);
  for (const status of ['running', 'waiting', 'done']) {
    assert.deepEqual(retryRefusal(job(status)), { code: 'invalid_transition' }, status);
  }
  assert.deepEqual(retryRefusal(job('failed', { code: 'content_policy', retryable: false })), {
    code: 'not_retryable',
    unlessInputReplaced: false,
  });
  assert.deepEqual(
    retryRefusal(
      job('failed', { code: 'corrupt_image', retryable: false }, { input_path: 'u/a.png' }),
    ),
    { code: 'not_retryable', unlessInputReplaced: true },
  );
});

Deno.test('list query: from/to are ISO date-times with a zone, q a trimmed search, user only for the console', () => {
  const q = parseListQuery(
    new URLSearchParams({
      from: '2026-12-01T00:00:00+01:00',
      to: '2026-12-02T00:00Z',
      q: '  Harbour ',
    }),
  );
  assert.equal(q.from, '2026-11-30T23:00:00.000Z');
  assert.equal(q.to, '2026-12-02T00:00:00.000Z');
  assert.equal(q.search, 'Harbour');
  assert.equal(
    parseListQuery(new URLSearchParams({ q: '   ' })).search,
    null,
    'a blank search is none',
  );
  httpError(() => parseListQuery(new URLSearchParams('q=a%00b')), 400, 'invalid_query');
  const err = httpError(
    () =>
      parseListQuery(
        new URLSearchParams({ from: '2026-12-02', to: 'tomorrow', q: 'x'.repeat(201), user: ID }),
      ),
    400,
    'invalid_query',
  );
  assert.deepEqual((err.details as { param: string }[]).map((p) => p.param).sort(), [
    'from',
    'q',
    'to',
    'user',
  ]);
  const backwards = httpError(
    () =>
      parseListQuery(
        new URLSearchParams({ from: '2026-12-02T00:00:00Z', to: '2026-12-01T00:00:00Z' }),
      ),
    400,
    'invalid_query',
  );
  assert.deepEqual((backwards.details as { param: string }[]).map((p) => p.param), ['to']);
  assert.equal(
    parseListQuery(new URLSearchParams({ user: ID.toUpperCase() }), { allowUser: true }).user,
    ID,
  );
});

Deno.test('bulk body: an action and the list filter, as strings or arrays; every problem named', () => {
  assert.deepEqual(
    parseBulkBody({
      action: 'retry',
      filter: { status: ['failed'], type: 'roto,image', q: 'cat' },
    }),
    {
      action: 'retry',
      filter: {
        statuses: ['failed'],
        types: ['roto', 'image'],
        from: null,
        to: null,
        search: 'cat',
        parent: null,
        user: null,
      },
      dryRun: false,
    },
  );
  assert.equal(parseBulkBody({ action: 'cancel' }).filter.statuses, null, 'no filter: all jobs');
  assert.equal(parseBulkBody({ action: 'cancel', dry_run: true }).dryRun, true);
  httpError(() => parseBulkBody({ action: 'cancel', dry_run: 'yes' }), 400, 'invalid_body');
  const err = httpError(
    () =>
      parseBulkBody({
        action: 'delete',
        filter: { status: 'done,finished', limit: 3, user: ID, q: 5 },
        extra: 1,
      }),
    400,
    'invalid_body',
  );
  assert.deepEqual((err.details as { param: string }[]).map((p) => p.param).sort(), [
    'action',
    'extra',
    'filter.limit',
    'filter.q',
    'filter.status',
    'filter.user',
  ]);
  assert.equal(
    parseBulkBody({ action: 'cancel', filter: { user: ID } }, { allowUser: true }).filter.user,
    ID,
  );
  httpError(() => parseBulkBody({ action: 'cancel', filter: [] }), 400, 'invalid_body');
});

Deno.test('diagnosis: due jobs of a kind whose provider is missing, and provider waits nobody can finish, come first', () => {
  const kind = (type: string, available: boolean) =>
    ({
      type,
      label: type === 'image' ? 'Image' : 'Colour grade',
      available,
      unavailable: available
        ? null
        : { code: 'provider_not_configured', message: 'OPENAI_API_KEY is not set' },
    }) as unknown as KindCapabilities;
  const kinds = [kind('image', false), kind('color-grade', true)];
  const diagnosis = {
    due_by_type: [{ type: 'color-grade', due: 2 }, { type: 'image', due: 3 }],
    waiting: { providers: [{ provider: 'replicate', count: 1 }] },
    reasons: [{ code: 'user_cap', count: 2, message: 'cap' }],
  };
  const merged = withProviderFacts(diagnosis, kinds, { openai: false, replicate: () => false });
  assert.deepEqual(merged.reasons.map((r) => r.code), [
    'provider_not_configured',
    'provider_not_configured',
    'user_cap',
  ]);
  assert.equal(merged.reasons[0].message, 'Image: 3 due, but OPENAI_API_KEY is not set');
  assert.match(merged.reasons[1].message, /wait for replicate, which is not configured/);
  const configured = withProviderFacts(diagnosis, [kind('image', true)], {
    openai: true,
    replicate: () => true,
  });
  assert.deepEqual(configured.reasons.map((r) => r.code), ['user_cap']);
});
