// Contract: the web client's job states (web/src/lib/job-states.ts) are one vocabulary with the
// server's (supabase/functions/_jobs/kind.ts, itself checked against the SQL enum). Run with Deno,
// which loads both sides as they are: `deno test -A web/tests/job-states.contract.test.ts` (npm
// test runs web/tests/*.contract.test.ts). The job kinds themselves are no longer mirrored in the
// browser: it reads them from GET /jobs/kinds (web/src/lib/kinds.ts, tested by kinds.test.ts).
import assert from 'node:assert/strict';
import {
  JOB_STATES as SERVER_STATES,
  TERMINAL_STATES as SERVER_TERMINAL,
} from '../../supabase/functions/_jobs/kind.ts';
import { JOB_STATES, TERMINAL_STATES } from '../src/lib/job-states.ts';

Deno.test('job states are one vocabulary with the server', () => {
  assert.deepEqual([...JOB_STATES], [...SERVER_STATES]);
  assert.deepEqual([...TERMINAL_STATES].sort(), [...SERVER_TERMINAL].sort());
});
