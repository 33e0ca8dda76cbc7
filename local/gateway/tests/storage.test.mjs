// Contract tests of the Storage stand-in (local/gateway/storage.mjs), driven by the official
// supabase-js. The buckets and RLS policies are the real ones from supabase/migrations:
// users write and read inputs/<uid>/..., read outputs/<uid>/...; only the service writes outputs.
// Run: node --test local/gateway/tests/storage.test.mjs

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
const png = (bytes = PNG) => new Blob([bytes], { type: 'image/png' });

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
    const { data, error } = await stack.client(alice.token).storage.from('inputs').upload(
      name,
      png(),
      { cacheControl: '60' },
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
    const { data, error } = await stack.client(alice.token).storage.from('inputs').upload(
      name,
      png(),
    );
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
    const form = await stack.client(alice.token).storage.from('inputs').upload(name, png(tooBig));
    assert.equal(form.error.statusCode, '413');
    assert.equal(await objectRow('inputs', name), null);
    assert.equal(fs.existsSync(diskPath('inputs', name)), false);
    assert.ok(stagingIsEmpty());
  });

  it('answers a second upload to the same path with 409 Duplicate unless upsert is set', async () => {
    const name = `${alice.id}/again.png`;
    const storage = stack.client(alice.token).storage.from('inputs');
    assert.equal((await storage.upload(name, png())).error, null);
    const dup = await storage.upload(name, png());
    assert.equal(dup.error.statusCode, '409');
    assert.equal(dup.error.message, 'The resource already exists');

    const replacement = Buffer.concat([PNG, Buffer.from('v2')]);
    const up = await storage.upload(name, png(replacement), { upsert: true });
    assert.equal(up.error, null);
    assert.ok(fs.readFileSync(diskPath('inputs', name)).equals(replacement));
    const upd = await storage.update(name, png(PNG));
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
    const { error } = await stack.client(alice.token).storage.from('inputs').upload(name(), png(), {
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

  it('answers info and exists per RLS', async () => {
    const info = await stack.client(alice.token).storage.from('inputs').info(name());
    assert.equal(info.error, null);
    assert.equal(info.data.name, name());
    assert.equal(info.data.bucketId, 'inputs');
    assert.equal(info.data.size, PNG.length);
    assert.equal(info.data.contentType, 'image/png');
    assert.equal(
      (await stack.client(alice.token).storage.from('inputs').exists(name())).data,
      true,
    );
    assert.equal((await stack.client(bob.token).storage.from('inputs').exists(name())).data, false);
  });
});

describe('signed URLs', () => {
  const name = () => `${alice.id}/signed.png`;

  before(async () => {
    const { error } = await stack.client(alice.token).storage.from('inputs').upload(name(), png(), {
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
    const stale = signJwt({
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

  it('signs many paths, with an error for the ones the caller cannot read', async () => {
    const { data, error } = await stack.client(alice.token).storage.from('inputs')
      .createSignedUrls([name(), `${alice.id}/missing.png`], 60);
    assert.equal(error, null);
    assert.equal(data.length, 2);
    assert.equal(data[0].error, null);
    assert.equal((await fetch(data[0].signedUrl)).status, 200);
    assert.equal(data[1].signedUrl, null);
    assert.equal(data[1].error, 'Either the object does not exist or you do not have access to it');
  });
});

describe('signed upload URLs', () => {
  it('lets whoever holds the token upload once, as the signer', async () => {
    const name = `${alice.id}/via-token.png`;
    const signed = await stack.client(alice.token).storage.from('inputs').createSignedUploadUrl(
      name,
    );
    assert.equal(signed.error, null);
    assert.ok(
      signed.data.signedUrl.startsWith(
        `${stack.url}/storage/v1/object/upload/sign/inputs/${name}?token=`,
      ),
    );
    // Anyone may use the URL: here, a client with only the anon key.
    const up = await stack.client().storage.from('inputs').uploadToSignedUrl(
      name,
      signed.data.token,
      png(),
    );
    assert.equal(up.error, null);
    assert.equal(up.data.fullPath, `inputs/${name}`);
    const row = await objectRow('inputs', name);
    assert.equal(row.owner, alice.id);
    assert.ok(fs.readFileSync(diskPath('inputs', name)).equals(PNG));
    const again = await stack.client().storage.from('inputs').uploadToSignedUrl(
      name,
      signed.data.token,
      png(),
    );
    assert.equal(again.error.statusCode, '409');
  });

  it("refuses to sign an upload into another user's folder", async () => {
    const { data, error } = await stack.client(alice.token).storage.from('inputs')
      .createSignedUploadUrl(`${bob.id}/x.png`);
    assert.equal(data, null);
    assert.equal(error.statusCode, '403');
  });

  it('refuses a download token on the upload endpoint', async () => {
    const name = `${alice.id}/download.png`;
    await stack.client(alice.token).storage.from('inputs').upload(name, png(), { upsert: true });
    const { data } = await stack.client(alice.token).storage.from('inputs').createSignedUrl(
      name,
      60,
    );
    const token = new URL(data.signedUrl).searchParams.get('token');
    const up = await stack.client().storage.from('inputs').uploadToSignedUrl(name, token, png());
    assert.equal(up.error.statusCode, '400');
    assert.equal(up.error.message, 'Token is not scoped for upload');
  });
});

describe('list and remove', () => {
  before(async () => {
    const storage = stack.client(alice.token).storage.from('inputs');
    for (const n of ['list/a.png', 'list/b.png', 'list/sub/c.png', 'list/sub/d.png']) {
      const { error } = await storage.upload(`${alice.id}/${n}`, png(), { upsert: true });
      assert.equal(error, null);
    }
  });

  it('lists files and folders one level under a prefix', async () => {
    const { data, error } = await stack.client(alice.token).storage.from('inputs').list(
      `${alice.id}/list`,
    );
    assert.equal(error, null);
    assert.deepEqual(data.map((e) => e.name), ['a.png', 'b.png', 'sub']);
    assert.equal(data[2].id, null);
    assert.equal(data[2].metadata, null);
    assert.equal(data[0].metadata.mimetype, 'image/png');
    const limited = await stack.client(alice.token).storage.from('inputs')
      .list(`${alice.id}/list`, { limit: 1, offset: 1, sortBy: { column: 'name', order: 'desc' } });
    assert.deepEqual(limited.data.map((e) => e.name), ['b.png']);
    const searched = await stack.client(alice.token).storage.from('inputs').list(
      `${alice.id}/list`,
      { search: 'b' },
    );
    assert.deepEqual(searched.data.map((e) => e.name), ['b.png']);
  });

  it("lists nothing of another user's folder", async () => {
    const { data, error } = await stack.client(bob.token).storage.from('inputs').list(
      `${alice.id}/list`,
    );
    assert.equal(error, null);
    assert.deepEqual(data, []);
  });

  it('removes only what the caller may delete, and the files with the rows', async () => {
    const names = [`${alice.id}/list/a.png`, `${alice.id}/list/sub/c.png`];
    const bobTry = await stack.client(bob.token).storage.from('inputs').remove(names);
    assert.equal(bobTry.error, null);
    assert.deepEqual(bobTry.data, []);
    assert.ok(fs.existsSync(diskPath('inputs', names[0])));

    const { data, error } = await stack.client(alice.token).storage.from('inputs').remove(names);
    assert.equal(error, null);
    assert.deepEqual(data.map((o) => o.name).sort(), [...names].sort());
    assert.equal(data[0].bucket_id, 'inputs');
    for (const n of names) {
      assert.equal(await objectRow('inputs', n), null);
      assert.equal(fs.existsSync(diskPath('inputs', n)), false);
    }
    assert.ok(fs.existsSync(diskPath('inputs', `${alice.id}/list/sub/d.png`)));
  });
});

describe('hardening (stricter than Storage where Storage leaks or breaks)', () => {
  const del = (token, name) => fetch(`${stack.url}/storage/v1/object/inputs/${name}`, {
    method: 'DELETE',
    headers: { apikey: stack.keys.anonKey, authorization: `Bearer ${token}` },
  });

  it("answers deleting another user's object exactly as deleting a missing one (no existence oracle)", async () => {
    const mine = `${alice.id}/secret-plan.png`;
    assert.equal((await stack.client(alice.token).storage.from('inputs').upload(mine, png())).error, null);
    const existing = await del(bob.token, mine);
    const missing = await del(bob.token, `${alice.id}/no-such-file.png`);
    assert.equal(existing.status, missing.status);
    const [a, b] = [await existing.json(), await missing.json()];
    assert.deepEqual(a, b);
    assert.deepEqual(a, { statusCode: '404', code: 'NoSuchKey', error: 'not_found', message: 'Object not found' });
    assert.equal(existing.status, 400, "Storage's HTTP status for its 4xx errors");
    assert.ok(await objectRow('inputs', mine), 'the object is still there');
    assert.ok(fs.existsSync(diskPath('inputs', mine)));
    const own = await del(alice.token, mine);
    assert.equal(own.status, 200);
    assert.equal(await objectRow('inputs', mine), null);
  });

  it('refuses an object name too long for the S3 key (or for a file name) with 400 InvalidKey, not 500', async () => {
    const storage = stack.client(alice.token).storage.from('inputs');
    const longNames = [
      `${alice.id}/${'a'.repeat(5000)}.png`,
      `${alice.id}/${'a/'.repeat(600)}x.png`, // short segments, over the key limit
      `${alice.id}/${'b'.repeat(300)}.png`, // within the key limit, a segment over 255 bytes
    ];
    for (const name of longNames) {
      const { error } = await storage.upload(name, png());
      assert.equal(error?.statusCode, '400', `${name.length}: ${error?.message}`);
      assert.match(error.message, /^Invalid key: /);
      assert.equal(await objectRow('inputs', name), null);
      const signed = await storage.createSignedUploadUrl(name);
      assert.equal(signed.error?.statusCode, '400', `sign ${name.length}`);
    }
    assert.ok(stagingIsEmpty());
    const longest = `${alice.id}/${'c/'.repeat(409)}${'d'.repeat(100)}.png`;
    assert.equal(Buffer.byteLength(longest), 959, 'the longest name the inputs bucket takes');
    assert.equal((await storage.upload(longest, png())).error, null);
    const { error } = await storage.upload(`${longest.slice(0, -4)}e.png`, png());
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
    assert.equal((await stack.client(alice.token).storage.from('inputs').upload(name, png())).error, null);
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
    const written = await service.storage.from('outputs').upload(name, png());
    assert.equal(written.error, null);
    const row = await objectRow('outputs', name);
    assert.equal(row.owner, null); // the service role key has no sub

    const mine = await stack.client(alice.token).storage.from('outputs').download(name);
    assert.equal(mine.error, null);
    assert.ok(Buffer.from(await mine.data.arrayBuffer()).equals(PNG));

    const theirs = await stack.client(bob.token).storage.from('outputs').download(name);
    assert.equal(theirs.error.statusCode, '404');

    const write = await stack.client(alice.token).storage.from('outputs').upload(
      `${alice.id}/forged.png`,
      png(),
    );
    assert.equal(write.error.statusCode, '403');
    assert.equal(await objectRow('outputs', `${alice.id}/forged.png`), null);
    assert.equal(fs.existsSync(diskPath('outputs', `${alice.id}/forged.png`)), false);

    const remove = await stack.client(alice.token).storage.from('outputs').remove([name]);
    assert.deepEqual(remove.data, []);
  });
});

describe('buckets and routing', () => {
  it('lists buckets through RLS: all for the service role, none for a user', async () => {
    const all = await service.storage.listBuckets();
    assert.equal(all.error, null);
    const inputs = all.data.find((b) => b.id === 'inputs');
    assert.equal(inputs.public, false);
    assert.equal(inputs.file_size_limit, 52428800);
    assert.ok(inputs.allowed_mime_types.includes('image/png'));
    assert.ok(all.data.some((b) => b.id === 'outputs'));
    const mine = await stack.client(alice.token).storage.listBuckets();
    assert.deepEqual(mine.data, []);
    const one = await service.storage.getBucket('outputs');
    assert.equal(one.data.id, 'outputs');
  });

  it('answers a missing bucket and unknown routes like Storage', async () => {
    const { error } = await stack.client(alice.token).storage.from('nope').upload(
      `${alice.id}/a.png`,
      png(),
    );
    assert.equal(error.statusCode, '404');
    assert.equal(error.message, 'Bucket not found');
    const res = await fetch(`${stack.url}/storage/v1/nothing-here`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).statusCode, '404');
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
