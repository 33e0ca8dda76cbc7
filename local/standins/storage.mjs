// The Storage stand-in at /storage/v1: the object API Spool uses, on Supabase Storage's wire format.
//
//   POST /object/{bucket}/{path}                 upload the raw body (x-upsert: true replaces)
//   PUT  /object/{bucket}/{path}                 replace it (storage-js update())
//   GET  /object[/authenticated]/{bucket}/{path} download (Range bytes=a-[b] honoured)
//   GET  /object/info/{bucket}/{path}            the object's size, type, etag, …
//   POST /object/sign/{bucket}/{path}            {expiresIn} -> a signed download URL
//   GET  /object/sign/{bucket}/{path}?token=     download by signature (download=<name>: attachment)
//   DELETE /object/{bucket}   {prefixes: [names]} remove what RLS lets the caller delete
// Anything else (multipart: a clear 400; lists, buckets, signed uploads, public buckets) is not served.
//
// Files live under <ctx.stateDir>/storage/<bucket>/<path>, rows in storage.objects, read and written
// as the caller (shared.mjs withCallerTransaction): the migrations' RLS decides. An upload stages
// the file, inserts the row, moves the file into place, then commits: a refused row leaves no file.
// Stricter than Storage: a name over its S3 key (maxKeyBytes) or a segment over 255 bytes is 400
// InvalidKey; a Content-Type must be one RFC 9110 type/subtype (else 415); downloads are nosniff.
// Errors are Storage's {statusCode: "<internal status>", code, error, message}, HTTP 400 unless the
// internal status is 500 (src/http/error-handler.ts), or 413 for a body too large.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bearerOf, signJwt, TokenError, verifyToken } from './keys.mjs';
import {
  corsHeaders, nowMs, parseSize, readBody, readJson, readConfigSection, sendJson as sendJsonAs,
  sendPreflight, withCallerTransaction,
} from './shared.mjs';

const PREFIX = '/storage/v1';
const EXPOSED = 'Content-Length, Content-Type, Content-Range, Content-Disposition, Accept-Ranges, ETag, ' +
  'Last-Modified, Cache-Control, Expires';
const VALID_OBJECT_KEY = /^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$/;
const MEDIA_TYPE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_EXPIRES_IN = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

class StorageError extends Error {
  constructor(statusCode, code, error, message, httpStatus = statusCode === 500 ? 500 : 400) {
    super(message);
    this.body = { statusCode: String(statusCode), code, error, message };
    this.httpStatus = httpStatus;
  }
}

const ERRORS = {
  NoSuchBucket: () => new StorageError(404, 'NoSuchBucket', 'Bucket not found', 'Bucket not found'),
  NoSuchKey: () => new StorageError(404, 'NoSuchKey', 'not_found', 'Object not found'),
  AccessDenied: (message) => new StorageError(403, 'AccessDenied', 'Unauthorized', message),
  InvalidJWT: (message) => new StorageError(400, 'InvalidJWT', 'InvalidJWT', message),
  KeyAlreadyExists: () => new StorageError(409, 'KeyAlreadyExists', 'Duplicate', 'The resource already exists'),
  EntityTooLarge: () =>
    new StorageError(413, 'EntityTooLarge', 'Payload too large', 'The object exceeded the maximum allowed size'),
  InvalidMimeType: (t) =>
    new StorageError(415, 'InvalidMimeType', 'invalid_mime_type', `mime type ${t} is not supported`),
  InvalidKey: (key) => new StorageError(400, 'InvalidKey', 'InvalidKey', `Invalid key: ${key}`),
  InvalidSignature: (message = 'Invalid signature') =>
    new StorageError(400, 'InvalidSignature', 'InvalidSignature', message),
  InvalidRange: () => new StorageError(400, 'InvalidRange', 'invalid_range', 'invalid range provided'),
  Validation: (message) => new StorageError(400, 'InvalidRequest', 'Bad Request', message),
  NotFound: ({ method, url }) =>
    new StorageError(404, 'InvalidRequest', 'Not Found', `Route ${method}:${url.slice(PREFIX.length)} not found`, 404),
};

/** A node-pg error as Storage maps it (src/storage/database/errors.ts). */
function fromDbError(err) {
  if (err.code === '42501') {
    const rls = err.message.includes('row-level security');
    return ERRORS.AccessDenied(rls ? 'new row violates row-level security policy' : err.message);
  }
  if (err.code === '23505') return ERRORS.KeyAlreadyExists();
  if (err.code === '57014') {
    return new StorageError(544, 'DatabaseTimeout', 'DatabaseTimeout', 'The connection to the database timed out', 544);
  }
  return new StorageError(500, 'DatabaseError', 'DatabaseError', `database error, code: ${err.code}`);
}

/** What jose (Storage's JWT library) says about a token it refused. */
const JOSE_MESSAGES = {
  alg: '"alg" (Algorithm) Header Parameter value not allowed',
  signature: 'signature verification failed',
  expired: '"exp" claim timestamp check failed',
  nbf: '"nbf" claim timestamp check failed',
};
const joseMessage = (err) => JOSE_MESSAGES[err.reason] ?? 'Invalid Compact JWS';

/** The longest name (UTF-8 bytes) whose S3 key "<20-char ref>/<bucket>/<name>/<36-char version>" fits 1,024. */
const maxKeyBytes = (bucketId) => 1024 - 20 - 1 - Buffer.byteLength(bucketId) - 1 - 1 - 36;

function mustBeValidKey(key, bucketId) {
  const segments = key.split('/');
  if (!key || !VALID_OBJECT_KEY.test(key) || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw ERRORS.InvalidKey(key);
  }
  if (Buffer.byteLength(key) > maxKeyBytes(bucketId) || segments.some((s) => Buffer.byteLength(s) > 255)) {
    throw ERRORS.InvalidKey(key.length > 80 ? `${key.slice(0, 80)}… (too long)` : key);
  }
}

/** Storage's check of type/subtype against the bucket's list, after the stricter MEDIA_TYPE one. */
function validateMimeType(mimeType, allowed) {
  const [type, ext] = mimeType.split('/');
  const listed = allowed.length === 0 ||
    allowed.some((a) => a.split('/')[0] === type && ['*', ext].includes(a.split('/')[1]));
  if (!MEDIA_TYPE.test(mimeType) || !listed) throw ERRORS.InvalidMimeType(mimeType);
}

export function create(ctx) {
  const storageRoot = path.join(ctx.stateDir, 'storage');
  const stagingDir = path.join(ctx.stateDir, 'storage-staging');
  const globalLimit = parseSize(readConfigSection(ctx.root, 'storage').file_size_limit) ?? 50 * 1024 * 1024;
  const secret = ctx.keys.jwtSecret;
  const SERVICE = { role: 'service_role', claims: { role: 'service_role' }, jwt: '' };
  const ANON = { role: 'anon', claims: { role: 'anon' }, jwt: '' };

  const objectFile = (bucketId, name) => {
    const dir = path.join(storageRoot, bucketId);
    const file = path.join(dir, ...name.split('/'));
    if (!dir.startsWith(storageRoot + path.sep) || !file.startsWith(dir + path.sep)) throw ERRORS.InvalidKey(name);
    return file;
  };

  const sendJson = (req, res, status, body, headers = {}) =>
    sendJsonAs(res, status, body, { ...corsHeaders(req, EXPOSED), ...headers });

  /**
   * The caller as Storage's jwt plugin sees it: { role, owner, claims, jwt }. The token is the
   * bearer, or (new keys) what the gateway forwards for the apikey. `optional` routes take a
   * missing or invalid token as anon (Storage's allowInvalidJwt).
   */
  async function authenticate(req, { optional = false } = {}) {
    const { apikey, authorization } = req.headers;
    let jwt = bearerOf(authorization ?? '');
    if (ctx.keys.mode === 'new' && apikey !== undefined) {
      jwt = ctx.keys.forwardedToken({ apikey, authorization }, { nowMs: nowMs(ctx) }).token ?? '';
    }
    if (!jwt && optional) return ANON;
    try {
      const claims = await verifyToken(jwt, ctx.keys.verifier, { nowMs: nowMs(ctx) });
      const role = typeof claims.role === 'string' && claims.role ? claims.role : 'anon';
      return { role, owner: typeof claims.sub === 'string' ? claims.sub : undefined, claims, jwt };
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      if (optional) return ANON;
      throw ERRORS.AccessDenied(joseMessage(err));
    }
  }

  /** fn(client) in a transaction as `who`; pg errors become Storage errors. */
  async function asRole(who, fn) {
    try {
      return await withCallerTransaction(ctx.pool, { role: who.role, claims: who.claims }, fn);
    } catch (err) {
      throw typeof err?.severity === 'string' ? fromDbError(err) : err;
    }
  }

  /** The bucket's row, read as the service role (as Storage reads buckets), or NoSuchBucket. */
  async function bucketRow(bucketId) {
    const sql = 'select id, file_size_limit, allowed_mime_types from storage.buckets where id = $1';
    const row = await asRole(SERVICE, async (c) => (await c.query(sql, [bucketId])).rows[0]);
    if (!row) throw ERRORS.NoSuchBucket();
    return row;
  }

  async function findObject(who, bucketId, name) {
    await bucketRow(bucketId);
    // Storage answers a caller without a valid token as if a private bucket did not exist.
    if (!who.jwt && who !== SERVICE) throw ERRORS.NoSuchBucket();
    const sql = `select id, name, version, bucket_id, metadata, user_metadata, updated_at, created_at
                   from storage.objects where name = $1 and bucket_id = $2`;
    const row = await asRole(who, async (c) => (await c.query(sql, [name, bucketId])).rows[0]);
    if (!row) throw ERRORS.NoSuchKey();
    return row;
  }

  async function upload(req, who, bucketId, objectName) {
    const bucket = await bucketRow(bucketId);
    const mimeType = String(req.headers['content-type'] || 'application/octet-stream');
    // storage-js sends a Blob or a File as multipart/form-data: say so, not "mime type not supported".
    if (mimeType.startsWith('multipart/form-data')) {
      throw ERRORS.Validation('multipart uploads are not served by the local Storage stand-in: send the file as ' +
        'the body');
    }
    validateMimeType(mimeType, bucket.allowed_mime_types ?? []);
    mustBeValidKey(objectName, bucketId);
    const limit = Math.min(globalLimit, bucket.file_size_limit === null ? Infinity : Number(bucket.file_size_limit));
    if (Number(req.headers['content-length']) > limit) throw ERRORS.EntityTooLarge();
    const data = await readBody(req, limit, ERRORS.EntityTooLarge);
    const isUpsert = req.method === 'PUT' || req.headers['x-upsert'] === 'true';
    const metadata = {
      eTag: `"${crypto.createHash('md5').update(data).digest('hex')}"`, size: data.length, mimetype: mimeType,
      cacheControl: req.headers['cache-control'] ?? 'no-cache', lastModified: new Date(nowMs(ctx)).toISOString(),
      contentLength: data.length, httpStatusCode: 200,
    };
    const target = objectFile(bucketId, objectName);
    fs.mkdirSync(stagingDir, { recursive: true });
    const staged = path.join(stagingDir, `${crypto.randomUUID()}.part`);
    fs.writeFileSync(staged, data);
    let moved = false;
    try {
      const id = await asRole(who, async (c) => {
        const owner = /^[0-9a-f-]{36}$/i.test(who.owner ?? '') ? who.owner : null;
        const { rows } = await c.query(
          `insert into storage.objects (bucket_id, name, owner, owner_id, metadata, version)
           values ($1, $2, $3, $4, $5::jsonb, $6)
           ${isUpsert ? `on conflict (name, bucket_id) do update set metadata = excluded.metadata,
             version = excluded.version, owner = excluded.owner, owner_id = excluded.owner_id` : ''}
           returning id`,
          [bucketId, objectName, owner, who.owner ?? null, JSON.stringify(metadata), crypto.randomUUID()],
        ); // a duplicate name is 23505: 409 KeyAlreadyExists (fromDbError)
        // The row is in (not yet committed): move the file into place before commit.
        try {
          fs.mkdirSync(path.dirname(target), { recursive: true });
          fs.renameSync(staged, target);
        } catch (err) {
          if (!['ENOTDIR', 'EISDIR', 'EEXIST'].includes(err.code)) throw err;
          // S3 keys are no folders: a/b beside a/b/c is fine on Storage, not on a file system.
          throw ERRORS.Validation(`the local storage folder cannot hold ${bucketId}/${objectName} beside ` +
            'an object of the same path prefix');
        }
        moved = true;
        return rows[0].id;
      });
      return { Id: id, Key: `${bucketId}/${objectName}` };
    } catch (err) {
      if (moved && !isUpsert) fs.rmSync(target, { force: true });
      throw err;
    } finally {
      fs.rmSync(staged, { force: true });
    }
  }

  /** The file's bytes with Storage's headers (one byte range honoured). */
  function renderAsset(req, res, obj, { download, expires }) {
    const md = obj.metadata ?? {};
    const file = objectFile(obj.bucket_id, obj.name);
    let size;
    try {
      size = fs.statSync(file).size;
    } catch {
      throw ERRORS.NoSuchKey();
    }
    const headers = {
      ...corsHeaders(req, EXPOSED),
      'Accept-Ranges': 'bytes',
      'Content-Type': md.mimetype ?? 'application/octet-stream',
      'X-Content-Type-Options': 'nosniff',
      ...(md.eTag ? { ETag: md.eTag } : {}),
      ...(md.lastModified ? { 'Last-Modified': new Date(md.lastModified).toUTCString() } : {}),
      ...(expires ? { Expires: expires } : md.cacheControl ? { 'Cache-Control': md.cacheControl } : {}),
    };
    if (download !== null) {
      const name = encodeURIComponent(download);
      headers['Content-Disposition'] = download === ''
        ? 'attachment;'
        : `attachment; filename=${name}; filename*=UTF-8''${name}`;
    }
    let start = 0;
    let end = size - 1;
    let status = 200;
    // bytes=<first>-[<last>], the form readHead and media elements send (a suffix range: whole file).
    const range = String(req.headers.range ?? '').match(/^bytes=(\d+)-(\d*)$/);
    if (range) {
      start = Number(range[1]);
      if (range[2] !== '') end = Math.min(end, Number(range[2]));
      if (start > end || start >= size) throw ERRORS.InvalidRange();
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = String(size === 0 ? 0 : end - start + 1);
    res.writeHead(status, headers);
    if (size === 0) return res.end();
    const stream = fs.createReadStream(file, { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  /** body[property] of a JSON request body (up to 1 MiB), with fastify's refusals. */
  async function required(req, property) {
    const body = await readJson(req, 1024 * 1024, {
      tooLarge: () => new StorageError(413, 'EntityTooLarge', 'Payload Too Large', 'Request body is too large', 413),
      invalid: () => ERRORS.Validation("Body is not valid JSON but content-type is set to 'application/json'"),
    });
    if (!(property in body)) throw ERRORS.Validation(`body must have required property '${property}'`);
    return body[property];
  }

  /** POST /object/sign: a download URL signed with Storage's own secret (HS256), whatever signs users' tokens. */
  async function signUrl(req, res, bucketId, name) {
    const who = await authenticate(req);
    const expiresIn = await required(req, 'expiresIn');
    if (!Number.isInteger(expiresIn)) throw ERRORS.Validation('body/expiresIn must be integer');
    if (expiresIn < 1) throw ERRORS.Validation('body/expiresIn must be >= 1');
    if (expiresIn > MAX_EXPIRES_IN) {
      throw new StorageError(400, 'InvalidParameter', 'InvalidParameter', 'Invalid Parameter expiresIn');
    }
    await findObject(who, bucketId, name);
    const iat = Math.floor(nowMs(ctx) / 1000);
    const token = await signJwt({ url: `${bucketId}/${name}`, scope: 'download', iat, exp: iat + expiresIn }, secret);
    return sendJson(req, res, 200, { signedURL: `/object/sign/${bucketId}/${name}?token=${token}` });
  }

  /** verifyObjectSignature of src/storage/object.ts: the token signs this object for download. */
  async function verifySignedUrl(token, bucketId, name) {
    if (token === null) throw ERRORS.Validation("querystring must have required property 'token'");
    let payload;
    try {
      payload = await verifyToken(token, { hmacSecret: secret }, { nowMs: nowMs(ctx) });
    } catch (err) {
      throw err instanceof TokenError ? ERRORS.InvalidJWT(joseMessage(err)) : err;
    }
    if (payload.scope === undefined ? 'upsert' in payload : payload.scope !== 'download') {
      throw ERRORS.InvalidSignature('Token is not scoped for download');
    }
    if (payload.url !== `${bucketId}/${name}`) throw ERRORS.InvalidSignature();
    return payload;
  }

  /** DELETE /object/{bucket}: Storage's deleteObjects (src/http/routes/object/deleteObjects.ts). */
  async function removeObjects(req, res, bucketId) {
    const who = await authenticate(req);
    const prefixes = await required(req, 'prefixes');
    if (!Array.isArray(prefixes) || prefixes.some((x) => typeof x !== 'string')) {
      throw ERRORS.Validation('body/prefixes must be array');
    }
    if (prefixes.length < 1) throw ERRORS.Validation('body/prefixes must NOT have fewer than 1 items');
    if (prefixes.length > 1000) throw ERRORS.Validation('body/prefixes must NOT have more than 1000 items');
    await bucketRow(bucketId);
    const rows = await asRole(who, async (c) => {
      // As the Storage API does for the deletes it serves (bootstrap.sql storage.protect_delete).
      await c.query("select set_config('storage.allow_delete_query', 'true', true)");
      return (await c.query(
        `delete from storage.objects where bucket_id = $1 and name = any($2::text[]) returning id, name, bucket_id,
           owner, owner_id, version, metadata, user_metadata, created_at, updated_at, last_accessed_at`,
        [bucketId, prefixes],
      )).rows;
    });
    // The rows are gone (committed): now their files, as Storage deletes from its backend after.
    for (const row of rows) fs.rmSync(objectFile(row.bucket_id, row.name), { force: true });
    return sendJson(req, res, 200, rows); // timestamps as ISO strings (Date.prototype.toJSON)
  }

  async function route(req, res, url) {
    const rest = url.pathname.slice(PREFIX.length);
    const only = rest.match(/^\/object\/([^/]+)\/?$/);
    const m = only ? null : rest.match(/^\/object(\/(?:authenticated|info|sign))?\/([^/]+)\/(.+)$/);
    if (!(only && req.method === 'DELETE') && !m) throw ERRORS.NotFound(req);
    const [, kind = '', rawBucket, rawName] = m ?? [null, 'bucket', only[1]]; // DELETE /object/{bucket}: no name
    let bucketId;
    let name;
    try {
      bucketId = decodeURIComponent(rawBucket);
      name = rawName === undefined ? null : decodeURIComponent(rawName);
    } catch {
      throw only ? ERRORS.NoSuchBucket() : ERRORS.InvalidKey(rawName);
    }
    const q = url.searchParams;
    const download = q.has('download') ? q.get('download') : null;
    switch (`${req.method} ${kind}`) {
      case 'DELETE bucket':
        return removeObjects(req, res, bucketId);
      case 'POST ': // upload (x-upsert: true replaces)
      case 'PUT ': // storage-js update(): replaces
        return sendJson(req, res, 200, await upload(req, await authenticate(req), bucketId, name));
      case 'GET ':
      case 'GET /authenticated': {
        const who = await authenticate(req, { optional: kind === '' });
        return renderAsset(req, res, await findObject(who, bucketId, name), { download });
      }
      case 'GET /info': {
        const obj = await findObject(await authenticate(req, { optional: true }), bucketId, name);
        const md = obj.metadata ?? {};
        return sendJson(req, res, 200, {
          id: obj.id, name: obj.name, version: obj.version, bucket_id: obj.bucket_id,
          size: md.size ?? null, content_type: md.mimetype ?? null, cache_control: md.cacheControl ?? null,
          etag: md.eTag ?? null, metadata: obj.user_metadata, last_modified: obj.updated_at, created_at: obj.created_at,
        }, md.eTag ? { ETag: md.eTag } : {});
      }
      case 'POST /sign':
        return signUrl(req, res, bucketId, name);
      case 'GET /sign': {
        const payload = await verifySignedUrl(q.get('token'), bucketId, name);
        const obj = await findObject(SERVICE, bucketId, name);
        return renderAsset(req, res, obj, { download, expires: new Date(payload.exp * 1000).toUTCString() });
      }
    }
    throw ERRORS.NotFound(req);
  }

  async function handle(req, res, url) {
    if (req.method === 'OPTIONS') return sendPreflight(req, res);
    try {
      await route(req, res, url);
    } catch (err) {
      // The client went away mid-body (a cancelled upload): nothing was stored, nobody to answer.
      if (!req.complete && (req.destroyed || req.socket?.destroyed)) {
        return ctx.log({ level: 'info', route: 'storage', path: url.pathname, msg: 'upload cancelled by client' });
      }
      if (!(err instanceof StorageError)) throw err; // server.mjs logs it and answers 500
      if (!res.headersSent) sendJson(req, res, err.httpStatus, err.body);
      else res.destroy();
    }
  }

  return { name: 'storage', prefix: PREFIX, handle, async close() {} };
}
