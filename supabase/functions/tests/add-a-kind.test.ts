// README "Add your own job type", followed for the `text` kind: every file the section names
// (with its example type `summary` read as `text`) exists and does what the step says, so the
// section and the code cannot drift apart.
import assert from 'node:assert/strict';
import { KINDS } from '../_jobs/kinds/index.ts';
import text from '../_jobs/kinds/text.ts';
import { HANDLERS } from '../job-worker/handlers/index.ts';

const ROOT = new URL('../../../', import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

/** The README's "Add your own job type" section. */
function section(): string {
  const readme = read('README.md');
  const start = readme.indexOf('## Add your own job type');
  assert.ok(start >= 0, 'the README has the section');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

Deno.test("the README's steps name the files the text kind was added in, and each does its part", async () => {
  const steps = section();
  const named = [...steps.matchAll(/`(supabase\/[^`]*summary[^`]*)`/g)].map((m) =>
    m[1].replaceAll('summary', 'text')
  );
  assert.deepEqual(
    [...new Set(named)].sort(),
    [
      'supabase/functions/_jobs/kinds/text.ts',
      'supabase/functions/job-worker/handlers/text.ts',
      'supabase/functions/tests/text.test.ts',
      'supabase/functions/text/index.ts',
      'supabase/migrations/<timestamp>_text_type.sql',
    ],
    'the steps name the descriptor, the handler, the creator, the limits and the tests',
  );

  // 1. The descriptor, and its line in KINDS.
  assert.equal(text.type, 'text');
  assert.ok(KINDS.includes(text), '_jobs/kinds/index.ts lists it');
  // 2. The handler, and its line in HANDLERS.
  assert.equal(typeof (await HANDLERS.text()).default, 'function');
  // 3. The creator: one line over the create path, and its config.toml entry.
  const creator = read('supabase/functions/text/index.ts');
  assert.match(creator, /Deno\.serve\(createJobHandler\(kind\)\)/);
  assert.match(creator, /from '\.\.\/_jobs\/kinds\/text\.ts'/);
  assert.match(read('supabase/config.toml'), /\[functions\.text\]\nverify_jwt = true\n/);
  // 4. The limits: a migration with the type's row.
  const migrations = [...Deno.readDirSync(new URL('supabase/migrations/', ROOT))]
    .map((e) => e.name).filter((n) => n.endsWith('_text_type.sql'));
  assert.equal(migrations.length, 1, 'one <timestamp>_text_type.sql migration');
  assert.match(
    read(`supabase/migrations/${migrations[0]}`),
    /insert into spool\.job_types \(type[^)]*\) values \('text'/,
  );
  // 5. The tests exist (this suite runs them).
  assert.ok(read('supabase/functions/tests/text.test.ts').includes('Deno.test('));
});
