// Contract tests of the Storage stand-in (local/standins/storage.mjs), driven by the official
// supabase-js. The buckets and RLS policies are the real ones from supabase/migrations:
// users write and read inputs/<uid>/..., read outputs/<uid>/...; only the service writes outputs.
// Run: node --test local/standins/tests/storage.test.mjs

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signJwt } from '../keys.mjs';
import { startStack } from './helpers.mjs';

let stack;
let service;
let alice;
let bob;

const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
const png = (bytes = PNG) => bytes;
/** supabase-js uploads of raw bytes (as the functions and the web client send them) as image/png. */
const asPng = { contentType: 'image/png' };

const diskPath = (bucket, name) => path.join(stack.stateDir, 'storage', bucket, ...name.split('/'));

async function objectRow(bucket, name) {
  const { rows } = await stack.admin.query(
    'select id, owner, owner_id, metadata, user_metadata from storage.objects where bucket_id = $1 and name = $2',
    [bucket, name],
  );
  return rows[0] ?? null;
}

function stagingIsEmpty() {
  const dir = path.join(stack.stateDir, 'storage-staging');
  return !fs.existsSync(dir) || fs.readdirSync(dir).length === 0;
}

before(async () => {
  stack = await startStack();
  service = stack.serviceClient();
  alice = await stack.makeUser();
  bob = await stack.makeUser();
}, { timeout: 180_000 });

after(async () => {
  await stack?.close();
});

describe('upload', () => {
  it('stores a user upload into their own inputs folder: row under RLS, file on disk', async () => {
    const name = `${alice.id}/photo.png`;
    const { data, error } = await stack.client(alice.token).storage.from('inputs').upload(name, png(), { ...asPng,  cacheControl: '60' },
    );
    assert.equal(error, null);
    assert.equal(data.path, name);
    assert.equal(data.fullPath, `inputs/${name}`);
    const row = await objectRow('inputs', name);
    assert.equal(row.id, data.id);
    assert.equal(row.owner, alice.id);
    assert.equal(row.owner_id, alice.id);
    assert.equal(row.metadata.size, PNG.length);
    assert.equal(row.metadata.mimetype, 'image/png');
    assert.equal(row.metadata.cacheControl, 'max-age=60');
    assert.match(row.metadata.eTag, /^"[0-9a-f]{32}"$/);
    assert.ok(fs.readFileSync(diskPath('inputs', name)).equals(PNG));
    assert.ok(stagingIsEmpty());
  });

  it("refuses an upload into another user's folder with 403 and writes nothing", async () => {
    const name = `${bob.id}/sneaky.png`;
    const { data, error } = await stack.client(alice.token).storage.from('inputs').upload(name, png(), asPng);
    assert.equal(data, null);
    assert.equal(error.statusCode, '403');
    assert.equal(error.status, 400);
    assert.equal(error.message, 'new row violates row-level security policy');
    assert.equal(await objectRow('inputs', name), null);
    assert.equal(fs.existsSync(diskPath('inputs', name)), false);
    assert.equal(fs.existsSync(path.dirname(diskPath('inputs', name))), false);
    assert.ok(stagingIsEmpty());
  });

  it('refuses a MIME type the bucket does not allow with 415 and writes nothing', async () => {
    const name = `${alice.id}/notes.txt`;
    const { error } = await stack.client(alice.token).storage.from('inputs')
      .upload(name, Buffer.from('hello'), { contentType: 'text/plain' });
    assert.equal(error.statusCode, '415');
    assert.equal(error.message, 'mime type text/plain is not supported');
    assert.equal(await objectRow('inputs', name), null);
    assert.equal(fs.existsSync(diskPath('inputs', name)), false);
  });

  it("refuses a file over the bucket's size limit with 413 and writes nothing", async () => {
    const name = `${alice.id}/huge.png`;
    const tooBig = Buffer.alloc(50 * 1024 * 1024 + 1); // inputs: 50 MiB
    const raw = await stack.client(alice.token).storage.from('inputs').upload(name, tooBig, {
      contentType: 'image/png',
    });
    assert.equal(raw.error.statusCode, '413');
    assert.equal(raw.error.message, 'The object exceeded the maximum allowed size');
    assert.equal(await objectRow('inputs', name), null);
    assert.equal(fs.existsSync(diskPath('inputs', name)), false);
    assert.ok(stagingIsEmpty());
  });

  it('answers a second upload to the same path with 409 Duplicate unless upsert is set', async () => {
    const name = `${alice.id}/again.png`;
    const storage = stack.client(alice.token).storage.from('inputs');
    assert.equal((await storage.upload(name, png(), asPng)).error, null);
    const dup = await storage.upload(name, png(), asPng);
    assert.equal(dup.error.statusCode, '409');
    assert.equal(dup.error.message, 'The resource already exists');

    const replacement = Buffer.concat([PNG, Buffer.from('v2')]);
    const up = await storage.upload(name, png(replacement), { ...asPng,  upsert: true });
    assert.equal(up.error, null);
    assert.ok(fs.readFileSync(diskPath('inputs', name)).equals(replacement));
    // storage-js update(): PUT, which replaces (web/tests fixes a failed job's input this way).
    const upd = await storage.update(name, png(PNG), asPng);
    assert.equal(upd.error, null);
    assert.equal(upd.data.id, up.data.id);
    assert.ok(fs.readFileSync(diskPath('inputs', name)).equals(PNG));
  });

  it('refuses a request without a valid JWT', async () => {
    const res = await fetch(`${stack.url}/storage/v1/object/inputs/${alice.id}/x.png`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: PNG,
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      statusCode: '403',
      code: 'AccessDenied',
      error: 'Unauthorized',
      message: 'Invalid Compact JWS',
    });
  });
});

describe('download and info', () => {
  const name = () => `${alice.id}/download.png`;

  before(async () => {
    const { error } = await stack.client(alice.token).storage.from('inputs').upload(name(), png(), { ...asPng, 
      upsert: true,
    });
    assert.equal(error, null);
  });

  it('serves the owner their file with its content type, length and ETag', async () => {
    const { data, error } = await stack.client(alice.token).storage.from('inputs').download(name());
    assert.equal(error, null);
    assert.equal(data.type, 'image/png');
    assert.ok(Buffer.from(await data.arrayBuffer()).equals(PNG));

    const res = await fetch(`${stack.url}/storage/v1/object/authenticated/inputs/${name()}`, {
      headers: { Authorization: `Bearer ${alice.token}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(PNG.length));
    assert.match(res.headers.get('etag'), /^"[0-9a-f]{32}"$/);
    assert.equal(res.headers.get('cache-control'), 'max-age=3600');
  });

  it("hides another user's file (404 NoSuchKey)", async () => {
    const { data, error } = await stack.client(bob.token).storage.from('inputs').download(name());
    assert.equal(data, null);
    assert.equal(error.statusCode, '404');
    assert.equal(error.message, 'Object not found');
  });

  it('answers info per RLS', async () => {
    const info = await stack.client(alice.token).storage.from('inputs').info(name());
    assert.equal(info.error, null);
    assert.equal(info.data.name, name());
    assert.equal(info.data.bucketId, 'inputs');
    assert.equal(info.data.size, PNG.length);
    assert.equal(info.data.contentType, 'image/png');
    const theirs = await stack.client(bob.token).storage.from('inputs').info(name());
    assert.equal(theirs.data, null);
    assert.equal(theirs.error.statusCode, '404');
  });

  it('serves the byte range an Edge Function asks for (input-file.ts readHead)', async () => {
    const res = await fetch(`${stack.url}/storage/v1/object/inputs/${name()}`, {
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${alice.token}`, range: 'bytes=0-7' },
    });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 0-7/${PNG.length}`);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(PNG.subarray(0, 8)));
  });
});

describe('signed URLs', () => {
  const name = () => `${alice.id}/signed.png`;

  before(async () => {
    const { error } = await stack.client(alice.token).storage.from('inputs').upload(name(), png(), { ...asPng, 
      upsert: true,
    });
    assert.equal(error, null);
  });

  it('serves the file to anyone holding the URL, without auth headers', async () => {
    const { data, error } = await stack.client(alice.token).storage.from('inputs')
      .createSignedUrl(name(), 60, { download: 'result.png' });
    assert.equal(error, null);
    assert.ok(
      data.signedUrl.startsWith(`${stack.url}/storage/v1/object/sign/inputs/${name()}?token=`),
    );
    const res = await fetch(data.signedUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    assert.equal(
      res.headers.get('content-disposition'),
      "attachment; filename=result.png; filename*=UTF-8''result.png",
    );
    assert.ok(res.headers.get('expires'));
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(PNG));
  });

  it('stops working once expired (injected clock)', async () => {
    const { data } = await stack.client(alice.token).storage.from('inputs').createSignedUrl(
      name(),
      60,
    );
    stack.gateway.ctx.now = () => Date.now() + 61_000;
    try {
      const res = await fetch(data.signedUrl);
      assert.equal(res.status, 400);
      const body = await res.json();
      assert.equal(body.statusCode, '400');
      assert.equal(body.code, 'InvalidJWT');
      assert.equal(body.message, '"exp" claim timestamp check failed');
    } finally {
      delete stack.gateway.ctx.now;
    }
    assert.equal((await fetch(data.signedUrl)).status, 200);
  });

  it('refuses a token whose exp is in the past, or that was signed for another path', async () => {
    const iat = Math.floor(Date.now() / 1000) - 120;
    // Signed-URL tokens are Storage's own (HS256 with its secret), in either key mode.
    const stale = await signJwt({
      url: `inputs/${name()}`,
      scope: 'download',
      iat,
      exp: iat + 60,
    }, stack.keys.jwtSecret);
    const res = await fetch(`${stack.url}/storage/v1/object/sign/inputs/${name()}?token=${stale}`);
    assert.equal(res.status, 400);
    const refused = await res.json();
    assert.equal(refused.code, 'InvalidJWT');
    assert.equal(refused.message, '"exp" claim timestamp check failed', 'refused for its expiry');

    const { data } = await stack.client(alice.token).storage.from('inputs').createSignedUrl(
      name(),
      60,
    );
    const token = new URL(data.signedUrl).searchParams.get('token');
    const other = await fetch(
      `${stack.url}/storage/v1/object/sign/inputs/${alice.id}/download.png?token=${token}`,
    );
    assert.equal(other.status, 400);
    assert.equal((await other.json()).code, 'InvalidSignature');
  });

  it('refuses to sign an object the caller cannot read', async () => {
    const { data, error } = await stack.client(bob.token).storage.from('inputs').createSignedUrl(
      name(),
      60,
    );
    assert.equal(data, null);
    assert.equal(error.statusCode, '404');
  });

});

describe('hardening (stricter than Storage where Storage leaks or breaks)', () => {
  it('refuses an object name too long for the S3 key (or for a file name) with 400 InvalidKey, not 500', async () => {
    const storage = stack.client(alice.token).storage.from('inputs');
    const longNames = [
      `${alice.id}/${'a'.repeat(5000)}.png`,
      `${alice.id}/${'a/'.repeat(600)}x.png`, // short segments, over the key limit
      `${alice.id}/${'b'.repeat(300)}.png`, // within the key limit, a segment over 255 bytes
    ];
    for (const name of longNames) {
      const { error } = await storage.upload(name, png(), asPng);
      assert.equal(error?.statusCode, '400', `${name.length}: ${error?.message}`);
      assert.match(error.message, /^Invalid key: /);
      assert.equal(await objectRow('inputs', name), null);
    }
    assert.ok(stagingIsEmpty());
    const longest = `${alice.id}/${'c/'.repeat(409)}${'d'.repeat(100)}.png`;
    assert.equal(Buffer.byteLength(longest), 959, 'the longest name the inputs bucket takes');
    assert.equal((await storage.upload(longest, png(), asPng)).error, null);
    const { error } = await storage.upload(`${longest.slice(0, -4)}e.png`, png(), asPng);
    assert.equal(error?.statusCode, '400', 'one byte more is refused');
  });

  it('refuses a MIME value that is not one type/subtype (image/png/html, parameters) with 415', async () => {
    const put = (name, type) => fetch(`${stack.url}/storage/v1/object/inputs/${name}`, {
      method: 'POST',
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${alice.token}`, 'content-type': type },
      body: PNG,
    });
    for (const type of ['image/png/html', 'image/png/', 'image/png; charset=utf-8', 'image/png,text/html']) {
      const name = `${alice.id}/mime-${crypto.randomUUID()}.png`;
      const res = await put(name, type);
      assert.equal(res.status, 400, type);
      assert.deepEqual(await res.json(), {
        statusCode: '415',
        code: 'InvalidMimeType',
        error: 'invalid_mime_type',
        message: `mime type ${type} is not supported`,
      }, type);
      assert.equal(await objectRow('inputs', name), null, type);
    }
    const name = `${alice.id}/mime-ok.png`;
    assert.equal((await put(name, 'image/png')).status, 200);
    const down = await fetch(`${stack.url}/storage/v1/object/authenticated/inputs/${name}`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    assert.equal(down.headers.get('content-type'), 'image/png');
  });

  it('sends X-Content-Type-Options: nosniff with every download', async () => {
    const name = `${alice.id}/sniff.png`;
    assert.equal((await stack.client(alice.token).storage.from('inputs').upload(name, png(), asPng)).error, null);
    const auth = await fetch(`${stack.url}/storage/v1/object/authenticated/inputs/${name}`, {
      headers: { authorization: `Bearer ${alice.token}` },
    });
    assert.equal(auth.status, 200);
    assert.equal(auth.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(auth.headers.get('content-type'), 'image/png');
    const { data } = await stack.client(alice.token).storage.from('inputs').createSignedUrl(name, 60);
    const signed = await fetch(data.signedUrl);
    assert.equal(signed.status, 200);
    assert.equal(signed.headers.get('x-content-type-options'), 'nosniff');
  });
});

describe('outputs bucket', () => {
  it('takes writes from the service role only; the owner reads, others do not', async () => {
    const name = `${alice.id}/job-1/result.png`;
    const written = await service.storage.from('outputs').upload(name, png(), asPng);
    assert.equal(written.error, null);
    const row = await objectRow('outputs', name);
    assert.equal(row.owner, null); // the service role key has no sub

    const mine = await stack.client(alice.token).storage.from('outputs').download(name);
    assert.equal(mine.error, null);
    assert.ok(Buffer.from(await mine.data.arrayBuffer()).equals(PNG));

    const theirs = await stack.client(bob.token).storage.from('outputs').download(name);
    assert.equal(theirs.error.statusCode, '404');

    const write = await stack.client(alice.token).storage.from('outputs').upload(`${alice.id}/forged.png`, png(), asPng);
    assert.equal(write.error.statusCode, '403');
    assert.equal(await objectRow('outputs', `${alice.id}/forged.png`), null);
    assert.equal(fs.existsSync(diskPath('outputs', `${alice.id}/forged.png`)), false);
  });
});

describe('buckets and routing', () => {
  it('answers a missing bucket and unknown routes like Storage', async () => {
    const { error } = await stack.client(alice.token).storage.from('nope').upload(`${alice.id}/a.png`, png(), asPng);
    assert.equal(error.statusCode, '404');
    assert.equal(error.message, 'Bucket not found');
    const res = await fetch(`${stack.url}/storage/v1/nothing-here`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).statusCode, '404');
  });

  it('removes what RLS lets the caller delete, row and file, and nothing of another user', async () => {
    const name = `${alice.id}/to-remove.png`;
    assert.equal((await stack.client(alice.token).storage.from('inputs').upload(name, png(), asPng)).error, null);
    const theirs = await stack.client(bob.token).storage.from('inputs').remove([name]);
    assert.equal(theirs.error, null);
    assert.deepEqual(theirs.data, []);
    assert.ok(await objectRow('inputs', name), "bob's remove deleted nothing");
    assert.ok(fs.existsSync(diskPath('inputs', name)));
    const mine = await stack.client(alice.token).storage.from('inputs').remove([name, `${alice.id}/never-there.png`]);
    assert.equal(mine.error, null);
    assert.deepEqual(mine.data.map((o) => o.name), [name]);
    assert.equal(await objectRow('inputs', name), null);
    assert.equal(fs.existsSync(diskPath('inputs', name)), false);
    const empty = await fetch(`${stack.url}/storage/v1/object/inputs`, {
      method: 'DELETE',
      headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prefixes: [] }),
    });
    assert.equal(empty.status, 400);
    assert.equal((await empty.json()).message, 'body/prefixes must NOT have fewer than 1 items');
  });

  it('does not serve what Spool does not use: lists, buckets, multipart uploads', async () => {
    const client = stack.client(alice.token).storage;
    const listed = await client.from('inputs').list(alice.id);
    assert.equal(listed.error.statusCode, '404');
    assert.equal((await client.listBuckets()).error.statusCode, '404');
    const form = await client.from('inputs').upload(`${alice.id}/form.png`, new Blob([PNG], { type: 'image/png' }));
    assert.equal(form.error.statusCode, '400');
    assert.match(form.error.message, /multipart uploads are not served/);
    assert.equal(await objectRow('inputs', `${alice.id}/form.png`), null);
  });

  it('answers CORS preflights', async () => {
    const res = await fetch(`${stack.url}/storage/v1/object/inputs/a.png`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://127.0.0.1:5173',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization, x-upsert',
      },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
  });
});
