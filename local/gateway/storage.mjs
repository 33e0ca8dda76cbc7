// The Storage stand-in at /storage/v1: the object API Spool uses, on Supabase Storage's wire format
// (storage-js in supabase-js talks to it unchanged).
//
// Files live on disk under <ctx.stateDir>/storage/<bucket>/<path>; their rows live in
// storage.objects. Every row is read and written in a transaction that impersonates the caller
// (set_config('role', <claims.role>, true) + request.jwt.claims, as Storage does), so the RLS
// policies of the migrations decide who may upload, read, sign, list and delete; service_role
// bypasses RLS, as on Supabase. The caller's token is verified as the stack's keys sign them
// (keys.mjs: HS256 in legacy mode, ES256 against the JWKS in new mode, where a request carrying
// only an sb_ API key gets the gateway's minted JWT for its role); signed-URL tokens are Storage's
// own HS256 tokens in both modes. Uploads stage the file, insert or upsert the row as the caller,
// move the file into place, then commit: a refused row leaves no file behind.
//
// Where the stand-in is stricter than Storage (src/storage/limits.ts, uploader.ts, object.ts):
//   - object names: Storage checks only the characters; its S3 backend then refuses keys over
//     1,024 bytes ("<project ref>/<bucket>/<name>/<version uuid>"), and Postgres' btree index on
//     storage.objects refuses ~2,700. Here a name over MAX_KEY_BYTES (what fits that S3 key) or
//     with a segment over 255 bytes (a file name on disk) is 400 InvalidKey, before any write.
//   - MIME types: Storage compares only the first two '/' parts with allowed_mime_types, so
//     "image/png/html" passes an image/png bucket and is served back as that. Here the type must
//     also be one RFC 9110 type/subtype (no third part, no parameters): else 415 InvalidMimeType.
//   - deleting an object the caller may not delete: Storage answers AccessDenied (403 in the
//     body) when it exists and NoSuchKey (404) when not, which tells a caller what exists in
//     folders it cannot read. Here both are NoSuchKey.
//   - downloads carry X-Content-Type-Options: nosniff (Storage sends none), so a browser never
//     renders a stored file as anything but its declared type.
//
// Errors are Storage's: {"statusCode": "<internal status>", "code", "error", "message"} with HTTP
// 400 unless the internal status is 500 (src/http/error-handler.ts); unknown routes answer 404.
//
// Routes: POST|PUT /object/{bucket}/{path} (upload, x-upsert; update), GET|HEAD
// /object[/authenticated]/{bucket}/{path}, GET /object/public/{bucket}/{path}, GET
// /object/info[/authenticated|/public]/{bucket}/{path}, POST /object/sign/{bucket}[/{path}],
// GET /object/sign/{bucket}/{path}?token=, POST|PUT /object/upload/sign/{bucket}/{path},
// POST /object/list/{bucket}, DELETE /object/{bucket} (prefixes) and /object/{bucket}/{path},
// GET /bucket and /bucket/{id}. Not here: TUS resumable uploads, S3 protocol, image transforms,
// move/copy, list-v2, bucket writes.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  BodyTooLarge,
  corsHeaders,
  drainBody,
  nowMs,
  parseSize,
  readBody,
  readConfigSection,
  sendPreflight,
  TokenError,
  verifyHs256,
  verifyToken,
  withCallerTransaction,
} from './shared.mjs';
import { signJwt } from './keys.mjs';

const PREFIX = '/storage/v1';
const EXPOSED_HEADERS =
  'Content-Length, Content-Type, Content-Range, Content-Disposition, Accept-Ranges, ETag, Last-Modified, Cache-Control, Expires, X-Robots-Tag';
const DEFAULT_GLOBAL_FILE_SIZE_LIMIT = 50 * 1024 * 1024;
const UPLOAD_SIGNED_URL_EXPIRATION_SECONDS = 7200;
const MAX_EXPIRES_IN = Math.floor(Number.MAX_SAFE_INTEGER / 1000);
const JSON_BODY_LIMIT = 1024 * 1024;
/** multipart/form-data overhead allowed on top of the file size limit while reading a body. */
const MULTIPART_SLACK = 1024 * 1024;
const VALID_OBJECT_KEY = /^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$/;
const VALID_BUCKET_NAME = /^[A-Za-z0-9_!.*'() &$=@;:+,?-]*$/;
const EMPTY_FOLDER_PLACEHOLDER = '.emptyFolderPlaceholder';

// ---------------------------------------------------------------------------------------------
// Errors (src/internal/errors/codes.ts)
// ---------------------------------------------------------------------------------------------

class StorageError extends Error {
  constructor({ httpStatusCode, code, error, message }, userStatusCode) {
    super(message);
    this.httpStatusCode = httpStatusCode;
    this.code = code;
    this.error = error ?? code;
    this.userStatusCode = userStatusCode ?? (httpStatusCode === 500 ? 500 : 400);
  }

  body() {
    return {
      statusCode: String(this.httpStatusCode),
      code: this.code,
      error: this.error,
      message: this.message,
    };
  }
}

const ERRORS = {
  NoSuchBucket: () =>
    new StorageError({
      httpStatusCode: 404,
      code: 'NoSuchBucket',
      error: 'Bucket not found',
      message: 'Bucket not found',
    }),
  NoSuchKey: () =>
    new StorageError({
      httpStatusCode: 404,
      code: 'NoSuchKey',
      error: 'not_found',
      message: 'Object not found',
    }),
  InvalidJWT: (message) =>
    new StorageError({
      httpStatusCode: 400,
      code: 'InvalidJWT',
      message: message || 'Invalid JWT',
    }),
  AccessDenied: (message) =>
    new StorageError({
      httpStatusCode: 403,
      code: 'AccessDenied',
      error: 'Unauthorized',
      message: message || 'Access denied',
    }),
  ResourceAlreadyExists: () =>
    new StorageError({
      httpStatusCode: 409,
      code: 'ResourceAlreadyExists',
      error: 'Duplicate',
      message: 'The resource already exists',
    }),
  KeyAlreadyExists: () =>
    new StorageError({
      httpStatusCode: 409,
      code: 'KeyAlreadyExists',
      error: 'Duplicate',
      message: 'The resource already exists',
    }),
  EntityTooLarge: (entity = 'object') =>
    new StorageError({
      httpStatusCode: 413,
      code: 'EntityTooLarge',
      error: 'Payload too large',
      message: `The ${entity} exceeded the maximum allowed size`,
    }),
  InvalidMimeType: (mimeType) =>
    new StorageError({
      httpStatusCode: 415,
      code: 'InvalidMimeType',
      error: 'invalid_mime_type',
      message: `mime type ${mimeType} is not supported`,
    }),
  InvalidKey: (key) =>
    new StorageError({ httpStatusCode: 400, code: 'InvalidKey', message: `Invalid key: ${key}` }),
  InvalidBucketName: () =>
    new StorageError({
      httpStatusCode: 400,
      code: 'InvalidBucketName',
      error: 'Invalid Input',
      message: 'Bucket name invalid',
    }),
  InvalidSignature: (message) =>
    new StorageError({
      httpStatusCode: 400,
      code: 'InvalidSignature',
      message: message || 'Invalid signature',
    }),
  ExpiredSignature: () =>
    new StorageError({
      httpStatusCode: 400,
      code: 'ExpiredToken',
      message: 'The provided token has expired.',
    }),
  InvalidRequest: (message) =>
    new StorageError({
      httpStatusCode: 400,
      code: 'InvalidRequest',
      message: message || 'Invalid Request',
    }),
  InvalidParameter: (parameter) =>
    new StorageError({
      httpStatusCode: 400,
      code: 'InvalidParameter',
      message: `Invalid Parameter ${parameter}`,
    }),
  NoContentProvided: () =>
    new StorageError({
      httpStatusCode: 400,
      code: 'InvalidRequest',
      message: 'No content provided',
    }),
  RelatedResourceNotFound: () =>
    new StorageError({
      httpStatusCode: 404,
      code: 'InvalidRequest',
      message: 'The related resource does not exist',
    }),
  ResourceLocked: () =>
    new StorageError({
      httpStatusCode: 423,
      code: 'ResourceLocked',
      message: 'The resource is locked',
    }),
  DatabaseTimeout: () =>
    new StorageError({
      httpStatusCode: 544,
      code: 'DatabaseTimeout',
      message: 'The connection to the database timed out',
    }, 544),
  DatabaseError: (code) =>
    new StorageError({
      httpStatusCode: 500,
      code: 'DatabaseError',
      message: `database error, code: ${code}`,
    }),
  InternalError: (message) =>
    new StorageError({
      httpStatusCode: 500,
      code: 'InternalError',
      error: 'Internal',
      message: message || 'Internal Server Error',
    }),
  /** Fastify's schema validation failures (FST_ERR_VALIDATION). */
  Validation: (message) =>
    new StorageError({
      httpStatusCode: 400,
      code: 'InvalidRequest',
      error: 'Bad Request',
      message,
    }),
};

/** A node-pg error as Storage maps it (src/storage/database/errors.ts, DBError.fromDBError). */
function fromDbError(err) {
  switch (err.code) {
    case '42501':
      return ERRORS.AccessDenied(
        err.message.includes('row-level security')
          ? 'new row violates row-level security policy'
          : err.message,
      );
    case '23505':
      return ERRORS.ResourceAlreadyExists();
    case '23503':
      return ERRORS.RelatedResourceNotFound();
    case '55P03':
      return ERRORS.ResourceLocked();
    case '57014':
      return ERRORS.DatabaseTimeout();
    case '22P02':
      return new StorageError({
        httpStatusCode: 400,
        code: 'InvalidParameter',
        message: err.message || 'Invalid value format or type conversion failed',
      });
    default:
      return ERRORS.DatabaseError(err.code);
  }
}

const isPgError = (err) => err && typeof err.code === 'string' && typeof err.severity === 'string';

/** What jose (Storage's JWT library) says about a token we refused. */
function joseMessage(err) {
  switch (err.reason) {
    case 'alg':
      return '"alg" (Algorithm) Header Parameter value not allowed';
    case 'signature':
      return 'signature verification failed';
    case 'expired':
      return '"exp" claim timestamp check failed';
    case 'nbf':
      return '"nbf" claim timestamp check failed';
    default:
      return 'Invalid Compact JWS';
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const isUuid = (s) =>
  typeof s === 'string' &&
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

/**
 * The longest object name, in UTF-8 bytes, that fits Storage's S3 key (1,024 bytes at most)
 * "<20-character project ref>/<bucket>/<name>/<36-character version>" for `bucketId`.
 */
export const maxKeyBytes = (bucketId) => 1024 - 20 - 1 - Buffer.byteLength(bucketId) - 1 - 1 - 36;
/** The longest segment of an object name: a file name on the stand-in's disk. */
const MAX_SEGMENT_BYTES = 255;

function mustBeValidKey(key, bucketId = '') {
  const segments = (key ?? '').split('/');
  if (
    !key || !VALID_OBJECT_KEY.test(key) || segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw ERRORS.InvalidKey(key ?? '');
  }
  if (
    Buffer.byteLength(key) > maxKeyBytes(bucketId) ||
    segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)
  ) {
    throw ERRORS.InvalidKey(key.length > 80 ? `${key.slice(0, 80)}… (too long)` : key);
  }
}

function mustBeValidBucketName(name) {
  if (
    !name || name.length > 100 || !VALID_BUCKET_NAME.test(name) || name === '.' || name === '..'
  ) {
    throw ERRORS.InvalidBucketName();
  }
}

/** One media type "type/subtype" of RFC 9110 tokens, without parameters. */
const MEDIA_TYPE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * validateMimeType of src/storage/uploader.ts (the first two '/' parts against the bucket's
 * list, `type/*` included), after a check Storage lacks: the whole value is one media type.
 */
function validateMimeType(mimeType, allowed) {
  if (!MEDIA_TYPE.test(mimeType)) throw ERRORS.InvalidMimeType(mimeType);
  const requested = mimeType.split('/');
  if (requested.length < 2) throw ERRORS.InvalidMimeType(mimeType);
  const [type, ext] = requested;
  for (const a of allowed) {
    const [aType, aExt] = a.split('/');
    if (aType === type && (aExt === '*' || aExt === ext)) return;
  }
  throw ERRORS.InvalidMimeType(mimeType);
}

/** Storage's objectSchema serialisation (fastify drops other columns; null strings become ""). */
function objectJson(row) {
  const out = { name: row.name };
  const str = (v) => (v === null ? '' : v);
  if (row.bucket_id !== undefined) out.bucket_id = str(row.bucket_id);
  if (row.owner !== undefined) out.owner = str(row.owner);
  if (row.owner_id !== undefined) out.owner_id = str(row.owner_id);
  if (row.version !== undefined) out.version = str(row.version);
  for (
    const k of ['id', 'updated_at', 'created_at', 'last_accessed_at', 'metadata', 'user_metadata']
  ) {
    if (row[k] !== undefined) out[k] = row[k] instanceof Date ? row[k].toISOString() : row[k];
  }
  return out;
}

function bucketJson(row) {
  return {
    id: row.id,
    name: row.name,
    owner: row.owner ?? '',
    owner_id: row.owner_id ?? '',
    public: Boolean(row.public),
    type: 'STANDARD',
    file_size_limit: row.file_size_limit === null ? null : Number(row.file_size_limit),
    allowed_mime_types: row.allowed_mime_types,
    created_at: row.created_at?.toISOString?.() ?? row.created_at,
    updated_at: row.updated_at?.toISOString?.() ?? row.updated_at,
  };
}

/** Sentinel used to roll back a permission test. */
class Rollback extends Error {}

// ---------------------------------------------------------------------------------------------
// The route
// ---------------------------------------------------------------------------------------------

export async function create(ctx) {
  const storageRoot = path.join(ctx.stateDir, 'storage');
  const stagingDir = path.join(ctx.stateDir, 'storage-staging');
  const storageConfig = readConfigSection(ctx.root, 'storage');
  const globalFileSizeLimit = parseSize(storageConfig.file_size_limit) ??
    DEFAULT_GLOBAL_FILE_SIZE_LIMIT;
  const secret = ctx.keys.jwtSecret;

  /** The file of an object; refuses names that would leave the bucket's folder. */
  const objectFile = (bucketId, name) => {
    const bucketDir = path.join(storageRoot, bucketId);
    const file = path.join(bucketDir, ...name.split('/'));
    if (!bucketDir.startsWith(storageRoot + path.sep) || !file.startsWith(bucketDir + path.sep)) {
      throw ERRORS.InvalidKey(name);
    }
    return file;
  };

  // --- responses -----------------------------------------------------------------------------

  function sendJson(req, res, status, body, headers = {}) {
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      ...corsHeaders(req, EXPOSED_HEADERS),
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(payload)),
      ...headers,
    });
    res.end(req.method === 'HEAD' ? undefined : payload);
  }

  function sendError(req, res, err) {
    sendJson(req, res, err.userStatusCode, err.body());
  }

  // --- auth and database ---------------------------------------------------------------------

  /**
   * The caller as Storage's jwt plugin sees it: { authenticated, role, owner, claims, jwt }.
   * `allowInvalid` routes treat a missing or bad token as anon instead of refusing it.
   */
  function authenticate(req, { allowInvalid = false } = {}) {
    let jwt = String(req.headers.authorization ?? '').replace(/^Bearer\s+/i, '').trim();
    if (ctx.keys.mode === 'new' && req.headers.apikey !== undefined) {
      // The gateway: a new API key alone (or repeated as the bearer) reaches Storage as the JWT
      // it mints for the key's role.
      jwt = ctx.keys.forwardedToken(
        { apikey: String(req.headers.apikey), authorization: req.headers.authorization },
        { nowMs: nowMs(ctx) },
      ).token ?? '';
    }
    const anon = {
      authenticated: false,
      role: 'anon',
      owner: undefined,
      claims: { role: 'anon' },
      jwt: '',
    };
    if (!jwt && allowInvalid) return anon;
    try {
      const claims = verifyToken(jwt, ctx.keys.verifier, { nowMs: nowMs(ctx) });
      return {
        authenticated: true,
        role: typeof claims.role === 'string' && claims.role ? claims.role : 'anon',
        owner: typeof claims.sub === 'string' ? claims.sub : undefined,
        claims,
        jwt,
      };
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      if (allowInvalid) return anon;
      throw ERRORS.AccessDenied(joseMessage(err));
    }
  }

  const SUPERUSER = {
    authenticated: true,
    role: 'service_role',
    owner: undefined,
    claims: { role: 'service_role' },
    jwt: '',
  };

  /** fn(client) in a transaction as `who` (caller or SUPERUSER); pg errors become Storage errors. */
  async function asRole(who, req, operation, fn) {
    try {
      return await withCallerTransaction(ctx.pool, {
        role: who.role,
        claims: who.claims,
        gucs: {
          'request.jwt.claim.role': who.role,
          'request.jwt': who.jwt,
          'request.jwt.claim.sub': who.claims.sub ?? '',
          'request.headers': JSON.stringify(Object.fromEntries(
            Object.entries(req.headers).filter(([k]) =>
              k !== 'authorization' && k !== 'apikey' && k !== 'cookie'
            ),
          )),
          'request.method': req.method,
          'request.path': req.url.slice(PREFIX.length).split('?')[0],
          'storage.operation': operation,
          'storage.allow_delete_query': 'true',
        },
      }, fn);
    } catch (err) {
      if (isPgError(err)) throw fromDbError(err);
      throw err;
    }
  }

  async function findBucket(req, bucketId) {
    return asRole(SUPERUSER, req, 'storage.bucket.get', async (c) => {
      const { rows } = await c.query(
        'select id, name, owner, owner_id, public, file_size_limit, allowed_mime_types, created_at, updated_at from storage.buckets where id = $1',
        [bucketId],
      );
      return rows[0] ?? null;
    });
  }

  async function findObject(who, req, bucketId, name, operation) {
    return asRole(who, req, operation, async (c) => {
      const { rows } = await c.query(
        'select id, name, version, bucket_id, metadata, user_metadata, updated_at, created_at from storage.objects where name = $1 and bucket_id = $2 limit 1',
        [name, bucketId],
      );
      if (!rows[0]) throw ERRORS.NoSuchKey();
      return rows[0];
    });
  }

  // --- JSON bodies (fastify's parser and schema checks) --------------------------------------

  async function readJson(req) {
    let buf;
    try {
      buf = await readBody(req, { limit: JSON_BODY_LIMIT });
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        throw new StorageError({
          httpStatusCode: 413,
          code: 'EntityTooLarge',
          error: 'Payload Too Large',
          message: 'Request body is too large',
        }, 413);
      }
      throw err;
    }
    const text = buf.toString('utf8');
    if (text.trim() === '') {
      if (String(req.headers['content-type'] ?? '').includes('application/json')) {
        throw ERRORS.Validation(
          "Body cannot be empty when content-type is set to 'application/json'",
        );
      }
      return {};
    }
    try {
      return JSON.parse(text);
    } catch {
      throw ERRORS.Validation(
        "Body is not valid JSON but content-type is set to 'application/json'",
      );
    }
  }

  function requireProperty(body, prop) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw ERRORS.Validation('body must be object');
    }
    if (!(prop in body)) throw ERRORS.Validation(`body must have required property '${prop}'`);
  }

  function assertExpiresIn(value) {
    if (!Number.isInteger(value)) throw ERRORS.Validation('body/expiresIn must be integer');
    if (value < 1) throw ERRORS.Validation('body/expiresIn must be >= 1');
    if (value > MAX_EXPIRES_IN) throw ERRORS.InvalidParameter('expiresIn');
  }

  // --- signed URL tokens ---------------------------------------------------------------------

  function signToken(claims, expiresIn) {
    const iat = Math.floor(nowMs(ctx) / 1000);
    // Storage signs these with its own secret (HS256), whatever signs the users' tokens.
    return signJwt({ ...claims, iat, exp: iat + expiresIn }, secret);
  }

  /** verifyObjectSignature of src/storage/object.ts. */
  function verifyObjectSignature(token, bucketId, name, scope) {
    if (token === undefined || token === null) {
      throw ERRORS.Validation("querystring must have required property 'token'");
    }
    let payload;
    try {
      payload = verifyHs256(token, secret, { nowMs: nowMs(ctx) });
    } catch (err) {
      if (err instanceof TokenError) throw ERRORS.InvalidJWT(joseMessage(err));
      throw err;
    }
    const validScope = scope === 'upload'
      ? payload.scope === 'upload' || (payload.scope === undefined && 'upsert' in payload)
      : payload.scope === 'download' || (payload.scope === undefined && !('upsert' in payload));
    if (!validScope) throw ERRORS.InvalidSignature(`Token is not scoped for ${scope}`);
    if (payload.url !== `${bucketId}/${name}`) throw ERRORS.InvalidSignature();
    if (typeof payload.exp !== 'number' || payload.exp * 1000 < nowMs(ctx)) {
      throw ERRORS.ExpiredSignature();
    }
    return payload;
  }

  // --- uploads -------------------------------------------------------------------------------

  /** fileUploadFromRequest of src/storage/uploader.ts, reading the body into memory. */
  async function fileFromRequest(req, bucket, objectName) {
    const emptyFolder = objectName.endsWith(EMPTY_FOLDER_PLACEHOLDER);
    let maxFileSize = 0;
    if (!emptyFolder) {
      maxFileSize = globalFileSizeLimit;
      if (bucket.file_size_limit !== null && bucket.file_size_limit !== undefined) {
        maxFileSize = Math.min(Number(bucket.file_size_limit), maxFileSize);
      }
    }
    const allowed = bucket.allowed_mime_types ?? [];
    const checkMime = (mime) => {
      if (allowed.length > 0 && !emptyFolder) validateMimeType(mime, allowed);
    };
    const contentType = String(req.headers['content-type'] ?? '');

    if (contentType.startsWith('multipart/form-data')) {
      let raw;
      try {
        raw = await readBody(req, { limit: maxFileSize + MULTIPART_SLACK });
      } catch (err) {
        if (err instanceof BodyTooLarge) throw ERRORS.EntityTooLarge();
        throw err;
      }
      let form;
      try {
        form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
      } catch {
        throw ERRORS.NoContentProvided();
      }
      let file = null;
      const fields = {};
      for (const [name, value] of form) {
        if (typeof value === 'string') fields[name] ??= value;
        else if (!file) file = value;
      }
      if (!file) throw ERRORS.NoContentProvided();
      const mimeType = fields.contentType || file.type || 'application/octet-stream';
      checkMime(mimeType);
      let userMetadata;
      const customMd = fields.metadata ?? fields.userMetadata;
      if (typeof customMd === 'string') {
        if (Buffer.byteLength(customMd) > 1024 * 1024) throw ERRORS.EntityTooLarge('user_metadata');
        try {
          userMetadata = JSON.parse(customMd);
        } catch {
          userMetadata = undefined;
        }
      }
      const data = Buffer.from(await file.arrayBuffer());
      return {
        data,
        mimeType,
        cacheControl: fields.cacheControl ? `max-age=${fields.cacheControl}` : 'no-cache',
        userMetadata,
        truncated: data.length > maxFileSize,
      };
    }

    const mimeType = contentType || 'application/octet-stream';
    checkMime(mimeType);
    let userMetadata;
    if (typeof req.headers['x-metadata'] === 'string') {
      try {
        userMetadata = JSON.parse(
          Buffer.from(req.headers['x-metadata'], 'base64').toString('utf8'),
        );
      } catch {
        userMetadata = undefined;
      }
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxFileSize) throw ERRORS.EntityTooLarge();
    let data;
    try {
      data = await readBody(req, { limit: maxFileSize });
    } catch (err) {
      if (err instanceof BodyTooLarge) throw ERRORS.EntityTooLarge();
      throw err;
    }
    return {
      data,
      mimeType,
      cacheControl: req.headers['cache-control'] ?? 'no-cache',
      userMetadata,
      truncated: false,
    };
  }

  /** Removes now-empty folders from `dir` up to (not including) the bucket folder. */
  function pruneEmptyDirs(dir, bucketId) {
    const stop = path.join(storageRoot, bucketId);
    let d = dir;
    while (d.startsWith(stop + path.sep)) {
      try {
        fs.rmdirSync(d);
      } catch {
        return;
      }
      d = path.dirname(d);
    }
  }

  /**
   * Uploads a request body as `who` (the caller, or SUPERUSER for signed uploads with the
   * token's owner). Returns { id, key }.
   */
  async function upload(req, who, { bucketId, objectName, owner, isUpsert, operation }) {
    mustBeValidBucketName(bucketId);
    const bucket = await findBucket(req, bucketId);
    if (!bucket) throw ERRORS.NoSuchBucket();
    const file = await fileFromRequest(req, bucket, objectName);
    mustBeValidKey(objectName, bucketId);
    if (file.truncated) throw ERRORS.EntityTooLarge();

    const metadata = {
      eTag: `"${crypto.createHash('md5').update(file.data).digest('hex')}"`,
      size: file.data.length,
      mimetype: file.mimeType,
      cacheControl: file.cacheControl,
      lastModified: new Date(nowMs(ctx)).toISOString(),
      contentLength: file.data.length,
      httpStatusCode: 200,
    };
    const version = crypto.randomUUID();
    const target = objectFile(bucketId, objectName);
    fs.mkdirSync(stagingDir, { recursive: true });
    const staged = path.join(stagingDir, `${crypto.randomUUID()}.part`);
    fs.writeFileSync(staged, file.data);
    let moved = false;
    try {
      const id = await asRole(who, req, operation, async (c) => {
        const values = [
          bucketId,
          objectName,
          isUuid(owner) ? owner : null,
          owner ?? null,
          JSON.stringify(metadata),
          file.userMetadata === undefined ? null : JSON.stringify(file.userMetadata),
          version,
        ];
        let objectId;
        if (isUpsert) {
          const { rows } = await c.query(
            `insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata, version)
             values ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)
             on conflict (name, bucket_id) do update
               set metadata = excluded.metadata, user_metadata = excluded.user_metadata,
                   version = excluded.version, owner = excluded.owner, owner_id = excluded.owner_id
             returning id`,
            values,
          );
          objectId = rows[0].id;
        } else {
          objectId = crypto.randomUUID();
          try {
            await c.query(
              `insert into storage.objects (id, bucket_id, name, owner, owner_id, metadata, user_metadata, version)
               values ($8, $1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)`,
              [...values, objectId],
            );
          } catch (err) {
            if (err.code === '23505') throw ERRORS.KeyAlreadyExists();
            throw err;
          }
        }
        // The row is in (not yet committed): move the file into place before commit.
        try {
          fs.mkdirSync(path.dirname(target), { recursive: true });
          fs.renameSync(staged, target);
        } catch (err) {
          if (['ENOTDIR', 'EISDIR', 'EEXIST'].includes(err.code)) {
            throw ERRORS.InvalidRequest(
              `the local storage folder cannot hold ${bucketId}/${objectName} beside an object of the same path prefix`,
            );
          }
          throw err;
        }
        moved = true;
        return objectId;
      });
      return { id, key: `${bucketId}/${objectName}` };
    } catch (err) {
      if (moved && !isUpsert) fs.rmSync(target, { force: true });
      throw err;
    } finally {
      fs.rmSync(staged, { force: true });
      if (!moved) pruneEmptyDirs(path.dirname(target), bucketId);
    }
  }

  /** Uploader.canUpload: the caller's insert (or upsert) is tried, then rolled back. */
  async function canUpload(req, who, { bucketId, objectName, isUpsert, metadata }) {
    mustBeValidKey(objectName, bucketId);
    try {
      await asRole(who, req, 'storage.object.upload_sign', async (c) => {
        const values = [
          bucketId,
          objectName,
          isUuid(who.owner) ? who.owner : null,
          who.owner ?? null,
          JSON.stringify(metadata),
          '1',
        ];
        if (isUpsert) {
          await c.query(
            `insert into storage.objects (bucket_id, name, owner, owner_id, metadata, version) values ($1, $2, $3, $4, $5::jsonb, $6)
             on conflict (name, bucket_id) do update set metadata = excluded.metadata, version = excluded.version,
               owner = excluded.owner, owner_id = excluded.owner_id returning *`,
            values,
          );
        } else {
          try {
            await c.query(
              'insert into storage.objects (bucket_id, name, owner, owner_id, metadata, version) values ($1, $2, $3, $4, $5::jsonb, $6)',
              values,
            );
          } catch (err) {
            if (err.code === '23505') throw ERRORS.KeyAlreadyExists();
            throw err;
          }
        }
        throw new Rollback();
      });
    } catch (err) {
      if (!(err instanceof Rollback)) throw err;
    }
  }

  // --- downloads -----------------------------------------------------------------------------

  /** The asset renderer: file bytes with Storage's headers (Range and If-None-Match honoured). */
  function renderAsset(req, res, obj, { download, expires, headOnly = false }) {
    const md = obj.metadata ?? {};
    const file = objectFile(obj.bucket_id, obj.name);
    let stat;
    try {
      stat = fs.statSync(file);
    } catch {
      return sendJson(req, res, 400, {
        error: 'Not found',
        message: 'The resource was not found',
        statusCode: '404',
        code: 'NoSuchKey',
      }, { 'Cache-Control': 'no-store' });
    }
    const headers = {
      ...corsHeaders(req, EXPOSED_HEADERS),
      'Accept-Ranges': 'bytes',
      'Content-Type': md.mimetype ?? 'application/octet-stream',
      'X-Robots-Tag': 'none',
      // Not sent by Storage: stricter here, so no browser sniffs a stored file into HTML.
      'X-Content-Type-Options': 'nosniff',
    };
    if (md.eTag) headers.ETag = md.eTag;
    const lastModified = md.lastModified ? new Date(md.lastModified) : stat.mtime;
    if (!Number.isNaN(lastModified.getTime())) {
      headers['Last-Modified'] = lastModified.toUTCString();
    }
    if (expires) headers.Expires = expires;
    else if (md.cacheControl) headers['Cache-Control'] = md.cacheControl;
    if (download !== undefined && download !== null) {
      if (download === '') headers['Content-Disposition'] = 'attachment;';
      else {
        const name = encodeURIComponent(download);
        headers['Content-Disposition'] = `attachment; filename=${name}; filename*=UTF-8''${name}`;
      }
    }
    if (md.eTag && req.headers['if-none-match'] === md.eTag) {
      res.writeHead(304, headers);
      return res.end();
    }
    let start = 0;
    let end = stat.size - 1;
    let status = 200;
    const range = String(req.headers.range ?? '').match(/^bytes=(\d*)-(\d*)$/);
    if (range && !headOnly && (range[1] !== '' || range[2] !== '')) {
      if (range[1] === '') start = Math.max(0, stat.size - Number(range[2]));
      else {
        start = Number(range[1]);
        if (range[2] !== '') end = Math.min(end, Number(range[2]));
      }
      if (start > end || start >= stat.size) {
        return sendJson(
          req,
          res,
          400,
          new StorageError({
            httpStatusCode: 400,
            code: 'InvalidRange',
            error: 'invalid_range',
            message: 'invalid range provided',
          }).body(),
        );
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${stat.size}`;
    }
    headers['Content-Length'] = String(stat.size === 0 ? 0 : end - start + 1);
    res.writeHead(status, headers);
    if (headOnly || req.method === 'HEAD' || stat.size === 0) return res.end();
    const stream = fs.createReadStream(file, { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  /** getObject / getObjectInfo's request handler: bucket check, then the row as caller. */
  async function lookupForRead(
    req,
    who,
    bucketId,
    objectName,
    operation,
    { publicRoute = false } = {},
  ) {
    const bucket = await findBucket(req, bucketId);
    if (!who.authenticated && !bucket?.public) throw ERRORS.NoSuchBucket();
    if (!bucket) throw ERRORS.NoSuchBucket();
    const reader = bucket.public || publicRoute ? SUPERUSER : who;
    return findObject(reader, req, bucketId, objectName, operation);
  }

  function infoJson(obj) {
    const md = obj.metadata ?? {};
    return {
      id: obj.id,
      name: obj.name,
      version: obj.version,
      bucket_id: obj.bucket_id,
      size: md.size ?? null,
      content_type: md.mimetype ?? null,
      cache_control: md.cacheControl ?? null,
      etag: md.eTag ?? null,
      metadata: obj.user_metadata,
      last_modified: obj.updated_at?.toISOString?.() ?? obj.updated_at,
      created_at: obj.created_at?.toISOString?.() ?? obj.created_at,
    };
  }

  // --- list ----------------------------------------------------------------------------------

  /** storage.search (v1): folders and files one level under prefix, names relative to it. */
  async function searchObjects(req, who, bucketId, body) {
    let prefix = body.prefix;
    if (prefix.length > 0 && !prefix.endsWith('/')) prefix = `${prefix}/`;
    const search = typeof body.search === 'string' ? body.search : '';
    const limit = Math.min(Number.isInteger(body.limit) ? body.limit : 100, 1500);
    const offset = Number.isInteger(body.offset) ? body.offset : 0;
    const column =
      ['name', 'updated_at', 'created_at', 'last_accessed_at'].includes(body.sortBy?.column)
        ? body.sortBy.column
        : 'name';
    const asc = String(body.sortBy?.order ?? 'asc').toLowerCase() !== 'desc';
    const full = prefix + search;
    const rows = await asRole(who, req, 'storage.object.list', async (c) => {
      const r = await c.query(
        `select name, id, updated_at, created_at, last_accessed_at, metadata from storage.objects
          where bucket_id = $1 and lower(left(name, length($2))) = lower($2)`,
        [bucketId, full],
      );
      return r.rows;
    });
    const folders = new Map();
    const files = [];
    for (const row of rows) {
      const rest = row.name.slice(full.length);
      const slash = rest.indexOf('/');
      if (slash >= 0) {
        const folder = row.name.slice(prefix.length, full.length + slash);
        const k = folder.toLowerCase();
        if (!folders.has(k)) folders.set(k, folder);
      } else {
        files.push({ ...row, name: row.name.slice(prefix.length) });
      }
    }
    const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
    const folderEntries = [...folders.values()].map((name) => ({
      name,
      id: null,
      updated_at: null,
      created_at: null,
      last_accessed_at: null,
      metadata: null,
    }));
    let entries;
    if (column === 'name') {
      entries = [...folderEntries, ...files].sort((a, b) =>
        cmp(a.name.toLowerCase(), b.name.toLowerCase()) * (asc ? 1 : -1)
      );
    } else {
      folderEntries.sort((a, b) => cmp(a.name, b.name) * (asc ? 1 : -1));
      files.sort((a, b) =>
        cmp(a[column]?.getTime?.() ?? 0, b[column]?.getTime?.() ?? 0) * (asc ? 1 : -1)
      );
      entries = [...folderEntries, ...files];
    }
    return entries.slice(offset, offset + limit).map((e) => ({
      name: e.name,
      id: e.id,
      updated_at: e.updated_at?.toISOString?.() ?? e.updated_at,
      created_at: e.created_at?.toISOString?.() ?? e.created_at,
      last_accessed_at: e.last_accessed_at?.toISOString?.() ?? e.last_accessed_at,
      metadata: e.metadata,
    }));
  }

  // --- delete --------------------------------------------------------------------------------

  function removeFiles(rows) {
    for (const row of rows) {
      const file = objectFile(row.bucket_id, row.name);
      fs.rmSync(file, { force: true });
      pruneEmptyDirs(path.dirname(file), row.bucket_id);
    }
  }

  // --- dispatch ------------------------------------------------------------------------------

  /** Splits "/{bucket}/{path...}" into [bucket, path] (decoded), or null. */
  function bucketAndPath(rest) {
    const m = rest.match(/^\/([^/]+)\/(.+)$/);
    if (!m) return null;
    try {
      return [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
    } catch {
      throw ERRORS.InvalidKey(m[2]);
    }
  }

  function onlyBucket(rest) {
    const m = rest.match(/^\/([^/]+)\/?$/);
    return m ? decodeURIComponent(m[1]) : null;
  }

  async function route(req, res, url) {
    const method = req.method;
    const p = url.pathname.slice(PREFIX.length);
    const q = url.searchParams;
    const notFound = () => {
      const e = new StorageError({
        httpStatusCode: 404,
        code: 'InvalidRequest',
        error: 'Not Found',
        message: `Route ${method}:${req.url.slice(PREFIX.length)} not found`,
      }, 404);
      return sendJson(req, res, 404, {
        statusCode: '404',
        error: 'Not Found',
        message: e.message,
        code: 'InvalidRequest',
      });
    };

    // Buckets (read only here).
    if (p === '/bucket' || p === '/bucket/') {
      if (method !== 'GET') return notFound();
      const who = authenticate(req);
      const rows = await asRole(
        who,
        req,
        'storage.bucket.list',
        async (c) =>
          (await c.query(
            'select id, name, owner, owner_id, public, file_size_limit, allowed_mime_types, created_at, updated_at from storage.buckets order by name',
          )).rows,
      );
      return sendJson(req, res, 200, rows.map(bucketJson));
    }
    const bucketMatch = p.match(/^\/bucket\/([^/]+)$/);
    if (bucketMatch) {
      if (method !== 'GET') return notFound();
      const who = authenticate(req);
      const id = decodeURIComponent(bucketMatch[1]);
      const row = await asRole(
        who,
        req,
        'storage.bucket.get',
        async (c) =>
          (await c.query(
            'select id, name, owner, owner_id, public, file_size_limit, allowed_mime_types, created_at, updated_at from storage.buckets where id = $1',
            [id],
          )).rows[0],
      );
      if (!row) throw ERRORS.NoSuchBucket();
      return sendJson(req, res, 200, bucketJson(row));
    }

    if (!p.startsWith('/object/')) return notFound();
    const o = p.slice('/object'.length); // "/..."

    // Signed upload URLs.
    if (o.startsWith('/upload/sign/')) {
      const bp = bucketAndPath(o.slice('/upload/sign'.length));
      if (!bp) return notFound();
      const [bucketId, objectName] = bp;
      if (method === 'POST') {
        const who = authenticate(req);
        const isUpsert = req.headers['x-upsert'] === 'true';
        const cl = req.headers['content-length'];
        await drainBody(req);
        const url = `${bucketId}/${objectName}`;
        await canUpload(req, who, {
          bucketId,
          objectName,
          isUpsert,
          metadata: {
            mimetype: req.headers['content-type'],
            contentLength: cl ? Number(cl) : undefined,
          },
        });
        const token = signToken(
          { owner: who.owner, url, upsert: isUpsert, scope: 'upload' },
          UPLOAD_SIGNED_URL_EXPIRATION_SECONDS,
        );
        return sendJson(req, res, 200, { url: `/object/upload/sign/${url}?token=${token}`, token });
      }
      if (method === 'PUT') {
        const payload = verifyObjectSignature(
          q.get('token') ?? undefined,
          bucketId,
          objectName,
          'upload',
        );
        const { key } = await upload(req, SUPERUSER, {
          bucketId,
          objectName,
          owner: payload.owner,
          isUpsert: Boolean(payload.upsert),
          operation: 'storage.object.upload_signed',
        });
        return sendJson(req, res, 200, { Key: key });
      }
      return notFound();
    }

    // Signed download URLs.
    if (o.startsWith('/sign/')) {
      const rest = o.slice('/sign'.length);
      if (method === 'POST') {
        const single = bucketAndPath(rest);
        if (single) {
          const who = authenticate(req);
          const [bucketId, objectName] = single;
          const body = await readJson(req);
          requireProperty(body, 'expiresIn');
          assertExpiresIn(body.expiresIn);
          await findObject(who, req, bucketId, objectName, 'storage.object.sign');
          const url = `${bucketId}/${objectName}`;
          const token = signToken({ url, scope: 'download' }, body.expiresIn);
          return sendJson(req, res, 200, { signedURL: `/object/sign/${url}?token=${token}` });
        }
        const bucketId = onlyBucket(rest);
        if (bucketId === null) return notFound();
        const who = authenticate(req);
        const body = await readJson(req);
        requireProperty(body, 'expiresIn');
        requireProperty(body, 'paths');
        assertExpiresIn(body.expiresIn);
        if (!Array.isArray(body.paths) || body.paths.some((x) => typeof x !== 'string')) {
          throw ERRORS.Validation('body/paths must be array');
        }
        if (body.paths.length < 1) {
          throw ERRORS.Validation('body/paths must NOT have fewer than 1 items');
        }
        const found = await asRole(
          who,
          req,
          'storage.object.sign_many',
          async (c) =>
            new Set(
              (await c.query(
                'select name from storage.objects where bucket_id = $1 and name = any($2::text[])',
                [bucketId, body.paths],
              )).rows.map((r) => r.name),
            ),
        );
        return sendJson(
          req,
          res,
          200,
          body.paths.map((objPath) => {
            if (!found.has(objPath)) {
              return {
                error: 'Either the object does not exist or you do not have access to it',
                path: objPath,
                signedURL: null,
              };
            }
            const url = `${bucketId}/${objPath}`;
            return {
              error: null,
              path: objPath,
              signedURL: `/object/sign/${url}?token=${
                signToken({ url, scope: 'download' }, body.expiresIn)
              }`,
            };
          }),
        );
      }
      if (method === 'GET') {
        const bp = bucketAndPath(rest);
        if (!bp) return notFound();
        const [bucketId, objectName] = bp;
        const payload = verifyObjectSignature(
          q.get('token') ?? undefined,
          bucketId,
          objectName,
          'download',
        );
        const obj = await findObject(
          SUPERUSER,
          req,
          bucketId,
          objectName,
          'storage.object.get_signed',
        );
        return renderAsset(req, res, obj, {
          download: q.has('download') ? q.get('download') : undefined,
          expires: new Date(payload.exp * 1000).toUTCString(),
        });
      }
      return notFound();
    }

    // Listing.
    if (o.startsWith('/list/')) {
      if (method !== 'POST') return notFound();
      const bucketId = onlyBucket(o.slice('/list'.length));
      if (bucketId === null) return notFound();
      const who = authenticate(req);
      const body = await readJson(req);
      requireProperty(body, 'prefix');
      if (typeof body.prefix !== 'string') throw ERRORS.Validation('body/prefix must be string');
      if (body.limit !== undefined && (!Number.isInteger(body.limit) || body.limit < 1)) {
        throw ERRORS.Validation('body/limit must be >= 1');
      }
      if (body.offset !== undefined && (!Number.isInteger(body.offset) || body.offset < 0)) {
        throw ERRORS.Validation('body/offset must be >= 0');
      }
      return sendJson(req, res, 200, await searchObjects(req, who, bucketId, body));
    }

    // Object info.
    if (o.startsWith('/info/')) {
      if (method !== 'GET') return notFound();
      let rest = o.slice('/info'.length);
      let mode = 'default';
      if (rest.startsWith('/authenticated/')) {
        mode = 'authenticated';
        rest = rest.slice('/authenticated'.length);
      } else if (rest.startsWith('/public/')) {
        mode = 'public';
        rest = rest.slice('/public'.length);
      }
      const bp = bucketAndPath(rest);
      if (!bp) return notFound();
      const who = mode === 'public'
        ? { ...SUPERUSER, authenticated: false }
        : authenticate(req, { allowInvalid: mode === 'default' });
      const obj = await lookupForRead(req, who, bp[0], bp[1], 'storage.object.info', {
        publicRoute: mode === 'public',
      });
      const md = obj.metadata ?? {};
      const headers = {};
      if (md.eTag) headers.ETag = md.eTag;
      if (md.cacheControl) headers['Cache-Control'] = md.cacheControl;
      return sendJson(req, res, md.httpStatusCode ?? 200, infoJson(obj), {
        ...headers,
        'Content-Type': 'application/json',
      });
    }

    // Public objects (no public bucket in Spool, but the route exists).
    if (o.startsWith('/public/')) {
      if (method !== 'GET' && method !== 'HEAD') return notFound();
      const bp = bucketAndPath(o.slice('/public'.length));
      if (!bp) return notFound();
      const bucket = await findBucket(req, bp[0]);
      if (!bucket?.public) throw ERRORS.NoSuchBucket();
      const obj = await findObject(SUPERUSER, req, bp[0], bp[1], 'storage.object.get_public');
      return renderAsset(req, res, obj, {
        download: q.has('download') ? q.get('download') : undefined,
        headOnly: method === 'HEAD',
      });
    }

    // Authenticated download / head.
    if (o.startsWith('/authenticated/')) {
      if (method !== 'GET' && method !== 'HEAD') return notFound();
      const bp = bucketAndPath(o.slice('/authenticated'.length));
      if (!bp) return notFound();
      const who = authenticate(req);
      const obj = await lookupForRead(req, who, bp[0], bp[1], 'storage.object.get_authenticated');
      return renderAsset(req, res, obj, {
        download: q.has('download') ? q.get('download') : undefined,
        headOnly: method === 'HEAD',
      });
    }

    // /object/{bucket} (bulk delete) and /object/{bucket}/{path}.
    const bucketOnly = onlyBucket(o);
    if (bucketOnly !== null) {
      if (method !== 'DELETE') return notFound();
      const who = authenticate(req);
      const body = await readJson(req);
      requireProperty(body, 'prefixes');
      if (!Array.isArray(body.prefixes) || body.prefixes.some((x) => typeof x !== 'string')) {
        throw ERRORS.Validation('body/prefixes must be array');
      }
      if (body.prefixes.length < 1) {
        throw ERRORS.Validation('body/prefixes must NOT have fewer than 1 items');
      }
      const rows = await asRole(
        who,
        req,
        'storage.object.delete_many',
        async (c) =>
          (await c.query(
            'delete from storage.objects where bucket_id = $1 and name = any($2::text[]) returning *',
            [bucketOnly, body.prefixes],
          )).rows,
      );
      removeFiles(rows);
      return sendJson(req, res, 200, rows.map(objectJson));
    }
    const bp = bucketAndPath(o);
    if (!bp) return notFound();
    const [bucketId, objectName] = bp;
    switch (method) {
      case 'POST':
      case 'PUT': {
        const who = authenticate(req);
        const { id, key } = await upload(req, who, {
          bucketId,
          objectName,
          owner: who.owner,
          isUpsert: method === 'PUT' || req.headers['x-upsert'] === 'true',
          operation: method === 'PUT' ? 'storage.object.update' : 'storage.object.upload',
        });
        return sendJson(req, res, 200, { Id: id, Key: key });
      }
      case 'GET':
      case 'HEAD': {
        const who = authenticate(req, { allowInvalid: true });
        const obj = await lookupForRead(
          req,
          who,
          bucketId,
          objectName,
          method === 'GET' ? 'storage.object.get' : 'storage.object.head',
        );
        return renderAsset(req, res, obj, {
          download: q.has('download') ? q.get('download') : undefined,
          headOnly: method === 'HEAD',
        });
      }
      case 'DELETE': {
        const who = authenticate(req);
        // One answer, NoSuchKey, whether the object is missing or only not the caller's to
        // delete (Storage says AccessDenied for the latter: an existence oracle).
        const rows = await asRole(
          who,
          req,
          'storage.object.delete',
          async (c) =>
            (await c.query(
              'delete from storage.objects where name = $1 and bucket_id = $2 returning *',
              [objectName, bucketId],
            )).rows,
        );
        if (rows.length === 0) throw ERRORS.NoSuchKey();
        removeFiles(rows);
        return sendJson(req, res, 200, { message: 'Successfully deleted' });
      }
      default:
        return notFound();
    }
  }

  async function handle(req, res, url) {
    if (req.method === 'OPTIONS') return sendPreflight(req, res);
    try {
      await route(req, res, url);
    } catch (err) {
      // The client went away mid-body (a cancelled upload: Node's "aborted", or readBody's
      // "closed before its body was read"): nothing was stored, nobody to answer, not an error.
      if (!req.complete && (req.destroyed || req.socket?.destroyed)) {
        ctx.log({
          level: 'info',
          route: 'storage',
          path: url.pathname,
          msg: 'upload cancelled by client',
        });
        return;
      }
      let e = err;
      if (!(e instanceof StorageError)) {
        if (isPgError(e)) e = fromDbError(e);
        else {
          ctx.log({
            level: 'error',
            route: 'storage',
            path: url.pathname,
            error: err?.stack ?? String(err),
          });
          e = ERRORS.InternalError();
        }
      }
      if (!req.complete) await drainBody(req);
      if (!res.headersSent) sendError(req, res, e);
      else res.destroy();
    }
  }

  return { name: 'storage', prefix: PREFIX, handle, async close() {} };
}
