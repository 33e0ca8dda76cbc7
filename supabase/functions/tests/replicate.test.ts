// Replicate's client and webhook rules (_jobs/replicate.ts) and job-worker's HTTP surface
// (job-worker/app.ts), pure: fake fetch, no stack.
import assert from 'node:assert/strict';
import { JobError } from '../_jobs/kind.ts';
import {
  createPrediction,
  failureOutcome,
  getPrediction,
  outputName,
  outputUrls,
  type Prediction,
  signWebhook,
  verifyWebhook,
} from '../_jobs/replicate.ts';
import { createWorkerHandler } from '../job-worker/app.ts';
import { secureEqual } from '../_shared/secure-compare.ts';
import { Webhook } from '../_shared/deps.ts';

const SECRET = `whsec_${btoa('a-test-signing-key-of-some-length')}`;
const NOW = 1_800_000_000;

async function signed(body: string, { id = 'msg_1', timestamp = NOW, secret = SECRET } = {}) {
  return new Headers({
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': await signWebhook(secret, id, timestamp, body),
  });
}

Deno.test('a webhook signed per Standard Webhooks with the whsec_ key verifies', async () => {
  const body = '{"id":"p1","status":"succeeded"}';
  assert.deepEqual(await verifyWebhook(SECRET, await signed(body), body, NOW), { ok: true });
  // The signature is HMAC-SHA256 over "<id>.<timestamp>.<body>" with the base64-decoded key.
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode('a-test-signing-key-of-some-length'),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(`msg_1.${NOW}.${body}`)),
  );
  assert.equal(
    (await signed(body)).get('webhook-signature'),
    `v1,${btoa(String.fromCharCode(...mac))}`,
  );
});

Deno.test('any one of several space-separated signatures may match (key rotation)', async () => {
  const body = '{}';
  const headers = await signed(body);
  headers.set('webhook-signature', `v1,AAAA ${headers.get('webhook-signature')} v2,zzzz`);
  assert.deepEqual(await verifyWebhook(SECRET, headers, body, NOW), { ok: true });
});

Deno.test('a webhook with a tampered body, another key, an old or future timestamp, or no headers is refused', async () => {
  const body = '{"id":"p1","status":"succeeded"}';
  const cases: [string, Headers, string][] = [
    ['tampered body', await signed(body), body.replace('succeeded', 'failed')],
    ['another key', await signed(body, { secret: `whsec_${btoa('other')}` }), body],
    ['6 minutes old', await signed(body, { timestamp: NOW - 360 }), body],
    ['6 minutes ahead', await signed(body, { timestamp: NOW + 360 }), body],
    ['no headers', new Headers(), body],
    [
      'a malformed timestamp',
      new Headers({ 'webhook-id': 'x', 'webhook-timestamp': 'soon', 'webhook-signature': 'v1,x' }),
      body,
    ],
  ];
  for (const [label, headers, b] of cases) {
    assert.equal((await verifyWebhook(SECRET, headers, b, NOW)).ok, false, label);
  }
  assert.equal(
    (await verifyWebhook(SECRET, await signed(body, { timestamp: NOW - 299 }), body, NOW)).ok,
    true,
    'within 5 minutes is fine',
  );
});

Deno.test('a webhook signed by the standardwebhooks reference library verifies at the injected clock', async () => {
  const body = '{"id":"p9","status":"failed"}';
  const signature = new Webhook(SECRET).sign('msg_9', new Date(NOW * 1000), body);
  const headers = new Headers({
    'webhook-id': 'msg_9',
    'webhook-timestamp': String(NOW),
    'webhook-signature': signature,
  });
  // NOW is not today: the window is measured from the caller's clock, not the library's.
  assert.deepEqual(await verifyWebhook(SECRET, headers, body, NOW), { ok: true });
  assert.deepEqual(await verifyWebhook(SECRET, headers, body, NOW + 301), {
    ok: false,
    why: 'webhook-timestamp is too old or in the future',
  });
  assert.deepEqual(await verifyWebhook(SECRET, headers, `${body} `, NOW), {
    ok: false,
    why: 'no signature matches',
  });
  assert.equal(await signWebhook(SECRET, 'msg_9', NOW, body), signature);
  assert.deepEqual(await verifyWebhook('whsec_***not base64***', headers, body, NOW), {
    ok: false,
    why: 'the webhook secret is not configured correctly',
  });
});

Deno.test('secret comparison: secureEqual (node:crypto timingSafeEqual) for strings and bytes of any length', () => {
  assert.equal(secureEqual('sb_secret_abc', 'sb_secret_abc'), true);
  assert.equal(secureEqual('sb_secret_abc', 'sb_secret_abd'), false);
  assert.equal(secureEqual('sb_secret_abc', 'sb_secret_ab'), false, 'a prefix is not equal');
  assert.equal(secureEqual('', ''), true);
  assert.equal(secureEqual('', 'x'), false);
  assert.equal(secureEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  assert.equal(secureEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), false);
  assert.equal(secureEqual('é', new TextEncoder().encode('é')), true, 'strings compare as UTF-8');
});

function fakeFetch(status: number, body: unknown, calls: Request[] = []): typeof fetch {
  return (input, init) => {
    calls.push(new Request(input as string, init));
    return Promise.resolve(new Response(JSON.stringify(body), { status }));
  };
}

Deno.test('a prediction is created with the version, input, webhook and the completed filter', async () => {
  const calls: Request[] = [];
  const prediction = await createPrediction(
    {
      apiBase: 'https://replicate.test/v1',
      token: 'r8_x',
      fetch: fakeFetch(201, { id: 'p1', status: 'starting' }, calls),
    },
    { version: 'v1', input: { image: 'https://signed' }, webhook: 'https://cb' },
  );
  assert.equal(prediction.id, 'p1');
  assert.equal(calls[0].url, 'https://replicate.test/v1/predictions');
  assert.equal(calls[0].headers.get('authorization'), 'Bearer r8_x');
  assert.deepEqual(await calls[0].json(), {
    version: 'v1',
    input: { image: 'https://signed' },
    webhook: 'https://cb',
    webhook_events_filter: ['completed'],
  });
});

Deno.test('Replicate answering 429 or 5xx, or not at all, is retryable; 4xx is permanent with its detail', async () => {
  const api = (status: number, body: unknown) => ({
    apiBase: 'https://r.test/v1',
    token: 't',
    fetch: fakeFetch(status, body),
  });
  for (const status of [429, 500, 502, 503]) {
    await assert.rejects(getPrediction(api(status, { detail: 'busy' }), 'p'), (err: JobError) => {
      assert.equal(err.retryable, true, String(status));
      assert.equal(err.code, 'provider_unavailable');
      return true;
    });
  }
  for (const status of [400, 401, 404, 422]) {
    await assert.rejects(
      getPrediction(api(status, { detail: 'You did it wrong' }), 'p'),
      (err: JobError) => {
        assert.equal(err.retryable, false, String(status));
        assert.equal(err.code, 'provider_rejected');
        assert.match(err.message, /You did it wrong/);
        return true;
      },
    );
  }
  const down = {
    apiBase: 'https://r.test/v1',
    token: 't',
    fetch: () => Promise.reject(new TypeError('connection refused')),
  };
  await assert.rejects(
    getPrediction(down, 'p'),
    (err: JobError) => err.retryable && err.code === 'provider_unavailable',
  );
});

Deno.test('output URLs are found in a string, a list or an object of outputs', () => {
  assert.deepEqual(outputUrls('https://a/x.png'), ['https://a/x.png']);
  assert.deepEqual(outputUrls(['https://a/1.png', 'https://a/2.png', 'https://a/1.png']), [
    'https://a/1.png',
    'https://a/2.png',
  ]);
  assert.deepEqual(
    outputUrls({ matte: 'https://a/m.png', meta: { n: 1, preview: 'http://a/p.jpg' }, text: 'hi' }),
    [
      'https://a/m.png',
      'http://a/p.jpg',
    ],
  );
  assert.deepEqual(outputUrls(null), []);
});

Deno.test('stored output names are safe and keep the extension', () => {
  assert.equal(
    outputName('https://replicate.delivery/x/out put.png', 0, 'image/png'),
    'replicate-0-out_put.png',
  );
  assert.equal(
    outputName('https://replicate.delivery/x/../..', 1, 'video/mp4'),
    'replicate-1-output-1.mp4',
  );
  assert.equal(
    outputName('https://replicate.delivery/x/blob', 2, 'application/x-weird'),
    'replicate-2-output-2.bin',
  );
});

Deno.test('transient prediction failures are retried; cancellations and input errors are not', () => {
  const p = (status: Prediction['status'], error: unknown): Prediction => ({
    id: 'p',
    status,
    error,
  });
  assert.equal(failureOutcome(p('failed', 'CUDA out of memory')), 'retry');
  assert.equal(
    failureOutcome(p('failed', 'Prediction interrupted; please retry (code: PA)')),
    'retry',
  );
  assert.equal(failureOutcome(p('failed', 'Timed out after 600 s')), 'retry');
  assert.equal(failureOutcome(p('aborted', null)), 'retry');
  assert.equal(failureOutcome(p('failed', 'Input image has an unsupported mode')), 'failed');
  assert.equal(failureOutcome(p('canceled', null)), 'failed');
});

Deno.test('job-worker refuses a caller without the secret key and answers 202 with a worker id', async () => {
  const env = {
    url: 'http://x',
    anonKey: 'anon',
    secretKey: 'sb_secret_x',
    acceptedSecretKeys: ['sb_secret_x', 'sb_secret_rotated'],
  };
  const started: [string, string][] = [];
  const handler = createWorkerHandler({
    env,
    start: (workerId, reason) => {
      started.push([workerId, reason]);
      return Promise.resolve();
    },
  });
  const post = (headers: Record<string, string>, body = '{"reason":"insert"}') =>
    handler(new Request('http://x/job-worker', { method: 'POST', headers, body }));

  const refused: Record<string, string>[] = [
    {},
    { apikey: 'anon', authorization: 'Bearer anon' },
    { authorization: 'Bearer sb_secret_y' },
  ];
  for (const headers of refused) {
    const res = await post(headers);
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, 'unauthorized');
  }
  assert.equal(started.length, 0, 'nothing runs for a refused caller');

  const res = await post({
    apikey: 'sb_secret_x',
    authorization: 'Bearer sb_secret_x',
    'content-type': 'application/json',
  });
  assert.equal(res.status, 202);
  const body = await res.json();
  assert.equal(body.accepted, true);
  assert.match(body.worker_id, /^jw-[0-9a-f]{8}$/);
  assert.deepEqual(started, [[body.worker_id, 'insert']]);

  const bare = await post({ authorization: 'Bearer sb_secret_x' }, '');
  assert.equal(bare.status, 202, 'a ring without a body still wakes the worker');
  assert.equal(started[1][1], 'unspecified');
  const rotated = await post({ apikey: 'sb_secret_rotated' }, '');
  assert.equal(
    rotated.status,
    202,
    'any of the project secret keys (SUPABASE_SECRET_KEYS) is accepted',
  );
  assert.equal((await handler(new Request('http://x/job-worker', { method: 'GET' }))).status, 405);
});
