// Auth stand-in at /auth/v1, shaped like GoTrue (supabase/auth). For now the part the Edge
// Functions use: GET /auth/v1/user (supabase-js auth.getUser(jwt)), which verifies the session
// token and returns the user. Sign-up, refresh and sign-out are added with the web client.
//
// Errors use GoTrue's API-version 2024-01-01 shape {"code": "<error_code>", "message": "..."}
// with the X-Supabase-Api-Version header, which auth-js reads.

const API_VERSION = '2024-01-01';

function send(res, status, body) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'x-supabase-api-version': API_VERSION,
    'access-control-allow-origin': '*',
  });
  res.end(JSON.stringify(body));
}

/** The User JSON GoTrue returns for a row of auth.users. */
export function userJson(row) {
  return {
    id: row.id,
    aud: row.aud ?? 'authenticated',
    role: row.role ?? 'authenticated',
    email: row.email ?? '',
    phone: row.phone ?? '',
    app_metadata: row.raw_app_meta_data ?? {},
    user_metadata: row.raw_user_meta_data ?? {},
    identities: [],
    created_at: row.created_at,
    updated_at: row.updated_at,
    last_sign_in_at: row.last_sign_in_at,
    is_anonymous: row.is_anonymous === true,
  };
}

export function create(ctx) {
  return {
    name: 'auth',
    prefix: '/auth/v1',
    async handle(req, res, url) {
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'access-control-allow-origin': '*',
          'access-control-allow-headers': 'authorization, x-client-info, apikey, content-type, x-supabase-api-version',
          'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
        });
        return res.end();
      }
      const route = url.pathname.slice('/auth/v1'.length);
      if (!req.headers.apikey) {
        return send(res, 401, { code: 'no_api_key', message: 'No API key found in request' });
      }
      if (req.method === 'GET' && route === '/user') {
        const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
        if (!token) return send(res, 401, { code: 'no_authorization', message: 'This endpoint requires a Bearer token' });
        let claims;
        try {
          claims = ctx.keys.verify(token);
        } catch (err) {
          return send(res, 403, { code: 'bad_jwt', message: `invalid JWT: ${err.message}` });
        }
        if (!claims.sub) {
          return send(res, 403, { code: 'bad_jwt', message: 'invalid claim: missing sub claim' });
        }
        const { rows } = await ctx.adminPool.query('select * from auth.users where id = $1', [claims.sub]);
        if (rows.length === 0) {
          return send(res, 403, { code: 'user_not_found', message: 'User from sub claim in JWT does not exist' });
        }
        return send(res, 200, userJson(rows[0]));
      }
      return send(res, 404, { code: 'not_found', message: `no auth route ${req.method} ${route}` });
    },
  };
}
