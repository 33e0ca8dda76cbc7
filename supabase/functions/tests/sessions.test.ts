// A signed-out session ends access to the functions at once, not at token expiry: requireUser
// asks Auth about every token, and Auth (the local stand-in, like GoTrue) refuses one whose
// session_id no longer names a session. Runs the jobs API and a creator in this process against
// the local stack, in whichever key mode it runs (ES256 tokens verified by the JWKS first, or
// HS256 ones).
import { readProviderConfig } from '../_jobs/providers.ts';
import assert from 'node:assert/strict';
import { createJobHandler } from '../_jobs/create.ts';
import { KINDS_BY_TYPE } from '../_jobs/kinds/index.ts';
import { EnvReader, readSupabaseEnv } from '../_shared/env.ts';
import { jobsHandler } from '../jobs/api.ts';
import {
  assertError,
  call,
  createUser,
  functionEnv,
  integration,
  theStack,
} from './support/api-stack.ts';

function jobs() {
  const reader = functionEnv();
  const env = readSupabaseEnv(reader);
  reader.done();
  return jobsHandler(env, readProviderConfig(new EnvReader(() => undefined), {}));
}

Deno.test({
  name: 'after POST /auth/v1/logout?scope=global the old access token gets 401 from the functions',
  ...integration,
  async fn() {
    const alice = await createUser();
    const bob = await createUser();
    const list = jobs();
    const image = createJobHandler(KINDS_BY_TYPE.image, {
      reader: functionEnv({ OPENAI_API_KEY: 'sk-test' }),
    });
    assert.equal((await call(list, '/jobs', { method: 'GET', token: alice.token })).status, 200);

    const s = theStack();
    const out = await fetch(`${s.url}/auth/v1/logout?scope=global`, {
      method: 'POST',
      headers: { apikey: s.anonKey, authorization: `Bearer ${alice.token}` },
    });
    assert.equal(out.status, 204, await out.text());

    const listed = await call(list, '/jobs', { method: 'GET', token: alice.token });
    assertError(listed, 401, 'invalid_token', 'jobs list');
    const created = await call(image, '/image', { token: alice.token, body: { prompt: 'a fox' } });
    assertError(created, 401, 'invalid_token', 'image creator');
    const health = await call(list, '/jobs/health', { method: 'GET', token: alice.token });
    assertError(health, 401, 'invalid_token', 'health');
    // Another user's session is untouched.
    assert.equal((await call(list, '/jobs', { method: 'GET', token: bob.token })).status, 200);
  },
});
