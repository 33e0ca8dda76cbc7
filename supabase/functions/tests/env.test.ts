import assert from 'node:assert/strict';
import { EnvError, EnvReader, readSupabaseEnv } from '../_shared/env.ts';

const reader = (vars: Record<string, string>) => new EnvReader((name) => vars[name]);

Deno.test('the Supabase env accepts the legacy service key and every named secret key', () => {
  const r = reader({
    SUPABASE_URL: 'https://ref.supabase.co/',
    SUPABASE_ANON_KEY: 'anon-jwt',
    SUPABASE_SERVICE_ROLE_KEY: 'service-jwt',
    SUPABASE_SECRET_KEYS: '{"default": "sb_secret_a", "ci": "sb_secret_b"}',
  });
  const env = readSupabaseEnv(r);
  r.done();
  assert.equal(env.url, 'https://ref.supabase.co');
  assert.equal(env.secretKey, 'service-jwt');
  assert.deepEqual(env.acceptedSecretKeys, ['service-jwt', 'sb_secret_a', 'sb_secret_b']);
});

Deno.test('the Supabase env works with the new API keys alone', () => {
  const r = reader({
    SUPABASE_URL: 'https://ref.supabase.co',
    SUPABASE_PUBLISHABLE_KEY: 'sb_publishable_x',
    SUPABASE_SECRET_KEY: 'sb_secret_x',
  });
  const env = readSupabaseEnv(r);
  r.done();
  assert.equal(env.anonKey, 'sb_publishable_x');
  assert.equal(env.secretKey, 'sb_secret_x');
  assert.deepEqual(env.acceptedSecretKeys, ['sb_secret_x']);
});

Deno.test('a missing or malformed variable fails fast, naming every problem at once', () => {
  const r = reader({ SUPABASE_URL: 'ftp://nope', SUPABASE_SECRET_KEYS: '[1,2]' });
  readSupabaseEnv(r);
  assert.throws(() => r.done(), (err: unknown) => {
    assert.ok(err instanceof EnvError);
    assert.deepEqual(err.problems, [
      'SUPABASE_URL must be an http(s) URL',
      'SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEY is not set',
      'SUPABASE_SECRET_KEYS must be a JSON object of named keys',
      'SUPABASE_ANON_KEY or SUPABASE_PUBLISHABLE_KEY is not set',
    ]);
    return true;
  });
});
