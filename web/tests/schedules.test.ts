// Unit tests of web/src/lib/schedule-words.ts (how the Schedules view and the Repeat option tell
// and check a schedule), in Deno: the interval text PostgREST returns, the words for it, and the
// checks made before a schedule is sent (the server makes them again).
//
//   deno test -A web/tests/schedules.test.ts
import assert from 'node:assert/strict';
import {
  describeEvery,
  describeRecurrence,
  everyText,
  formatSlot,
  parseInterval,
  type Recurrence,
  recurrenceOf,
  recurrenceProblem,
  type Schedule,
} from '../src/lib/schedule-words.ts';

Deno.test('parseInterval reads Postgres interval output as PostgREST sends it', () => {
  assert.equal(parseInterval('00:15:00'), 900);
  assert.equal(parseInterval('06:00:00'), 21_600);
  assert.equal(parseInterval('1 day'), 86_400);
  assert.equal(parseInterval('2 days 03:00:00'), 183_600);
  assert.equal(parseInterval('1 day 00:00:30.5'), 86_430);
  assert.equal(parseInterval('1 mon'), null);
  assert.equal(parseInterval(''), null);
});

Deno.test('describeEvery and describeRecurrence say how often, in words', () => {
  assert.equal(describeEvery('00:15:00'), 'every 15 minutes');
  assert.equal(describeEvery('01:00:00'), 'every hour');
  assert.equal(describeEvery('1 day'), 'every day');
  assert.equal(describeEvery('7 days'), 'every 7 days');
  assert.equal(describeEvery('1 day 02:00:00'), 'every 1 day 2 hours');
  assert.equal(describeEvery('oddly'), 'every oddly');
  assert.equal(
    describeRecurrence({ cron: '0 9 * * 1-5', every: null, timezone: 'Europe/Paris' }),
    'cron 0 9 * * 1-5 (Europe/Paris)',
  );
  assert.equal(
    describeRecurrence({ cron: null, every: '06:00:00', timezone: 'UTC' }),
    'every 6 hours',
  );
});

Deno.test('recurrenceProblem refuses what cannot be a schedule before it is sent', () => {
  const cron = (c: string, tz = 'UTC'): Recurrence => ({
    mode: 'cron',
    cron: c,
    count: 1,
    unit: 'days',
    timezone: tz,
  });
  const every = (count: number, unit: Recurrence['unit']): Recurrence => ({
    mode: 'every',
    cron: '',
    count,
    unit,
    timezone: 'UTC',
  });
  assert.equal(recurrenceProblem(cron('0 9 * * *')), null);
  assert.equal(recurrenceProblem(cron('@daily')), null);
  assert.match(recurrenceProblem(cron('  '))!, /Write a cron expression/);
  assert.match(recurrenceProblem(cron('0 9 * *'))!, /5 fields.*has 4/);
  assert.match(recurrenceProblem(cron('0 9 * * *', ' '))!, /time zone/);
  assert.equal(recurrenceProblem(every(15, 'minutes')), null);
  assert.match(recurrenceProblem(every(0, 'hours'))!, /1 or more/);
  assert.match(recurrenceProblem(every(1.5, 'hours'))!, /1 or more/);
  assert.match(recurrenceProblem(every(NaN, 'days'))!, /1 or more/);
  assert.match(recurrenceProblem(every(367, 'days'))!, /366 days at most/);
  assert.equal(everyText(every(2, 'hours')), '2 hours');
});

Deno.test("recurrenceOf gives a stored schedule's recurrence back, to preview its runs", () => {
  const row = { cron: null, every: '1 day 06:00:00', timezone: 'Asia/Tokyo' } as Schedule;
  assert.deepEqual(recurrenceOf(row), {
    mode: 'every',
    cron: '',
    count: 1800,
    unit: 'minutes',
    timezone: 'Asia/Tokyo',
  });
  assert.equal(everyText(recurrenceOf(row)), '1800 minutes');
  const cron = { cron: '*/5 * * * *', every: null, timezone: 'UTC' } as Schedule;
  assert.equal(recurrenceOf(cron).cron, '*/5 * * * *');
});

Deno.test("formatSlot shows an instant on the schedule's clock, naming the zone", () => {
  const at = '2026-12-04T08:00:00+00:00';
  assert.match(formatSlot(at, 'Europe/Paris'), /9:00.*Europe\/Paris$/);
  assert.match(formatSlot(at, 'UTC'), /8:00.*UTC$/);
  // A zone the browser does not know: its own clock, no zone named.
  assert.doesNotMatch(formatSlot(at, 'Mars/Olympus'), /Mars/);
});
