-- Enqueue from SQL, in the app's own transaction: an app table whose insert trigger creates a job
-- (README, "Enqueue from SQL, in your own transaction"). The app's write and its job commit
-- together or not at all: a rollback leaves neither, a quota refusal aborts the app's insert.
-- The trigger function is SECURITY DEFINER (it may call create_job, which only service_role may
-- call); users still cannot call create_job themselves, and RLS decides whose job it is.
-- Acted out by end users (authenticated) writing the app's table through the Data API.
begin;
select plan(17);

-- Helpers for acting out behaviour, temporary so they vanish with the session:
--   uid(name) / create_users(names) named test users with fixed uuids, inserted into auth.users
--   authenticate_as(name)           act as that user (role authenticated, their JWT claims)
--   clear_authentication()          back to the connecting role
--   t(offset) / travel_to(at)       the test clock: 2030-01-01 00:00 UTC + offset; spool.now()
--   error_of(sql)                   '<SQLSTATE> <HINT>' of the error sql raises, or 'no error'
create function pg_temp.uid(p_name text) returns uuid language sql immutable
  as $$ select md5('spool-test:' || p_name)::uuid $$;
create function pg_temp.create_users(variadic p_names text[]) returns void language sql
  as $$ insert into auth.users (id, aud, role, email)
        select pg_temp.uid(n), 'authenticated', 'authenticated', n || '@spool.test'
        from unnest(p_names) n $$;
create function pg_temp.authenticate_as(p_name text) returns void language plpgsql as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims',
    json_build_object('sub', pg_temp.uid(p_name), 'role', 'authenticated')::text, true);
end $$;
create function pg_temp.clear_authentication() returns void language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '', true);
  reset role;
end $$;
create function pg_temp.t(p_offset interval default '0') returns timestamptz language sql immutable
  as $$ select '2030-01-01 00:00:00+00'::timestamptz + p_offset $$;
create function pg_temp.travel_to(p_at timestamptz) returns void language sql
  as $$ select set_config('spool.now', p_at::text, true) $$;
create function pg_temp.error_of(p_sql text) returns text language plpgsql as $$
declare
  v_state text;
  v_hint text;
begin
  execute p_sql;
  return 'no error';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_hint = pg_exception_hint;
  return v_state || ' ' || coalesce(nullif(v_hint, ''), '-');
end $$;
grant execute on all functions in schema pg_temp to authenticated, service_role;

select pg_temp.create_users('alice', 'bob');
select pg_temp.travel_to(pg_temp.t());

-- The app's side, as its own migration would write it (the README's example) ---------------------

create table public.invoices (
  id      bigint generated always as identity primary key,
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  amount  numeric(12, 2) not null check (amount > 0)
);
alter table public.invoices enable row level security;
create policy "Users can add their own invoices" on public.invoices
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy "Users can view their own invoices" on public.invoices
  for select to authenticated using (user_id = (select auth.uid()));
grant select, insert on public.invoices to authenticated;

create schema private;
create function private.enqueue_invoice_email()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform public.create_job(new.user_id, 'send-invoice', jsonb_build_object('invoice_id', new.id));
  return new;
end;
$$;
revoke execute on function private.enqueue_invoice_email() from public, anon, authenticated, service_role;
create trigger invoices_enqueue_email
  after insert on public.invoices
  for each row execute function private.enqueue_invoice_email();

-- The insert creates the job, in the same transaction ------------------------------------------------

select pg_temp.authenticate_as('alice');
insert into public.invoices (amount) values (42.00) returning id as invoice \gset
select is(
  (select jsonb_build_object('type', type, 'status', status, 'input', input) from public.jobs
    where input ->> 'invoice_id' = :'invoice'),
  jsonb_build_object('type', 'send-invoice', 'status', 'pending', 'input', jsonb_build_object('invoice_id', :'invoice'::bigint)),
  'alice''s insert created a pending send-invoice job for her invoice, and she can see it');
select is((select count(*) from public.jobs where type = 'send-invoice'), 1::bigint,
  'one invoice, one job');
select pg_temp.clear_authentication();
select is((select user_id from public.jobs where input ->> 'invoice_id' = :'invoice'), pg_temp.uid('alice'),
  'the job belongs to the invoice''s owner');
select is((select j.xmin::text from public.jobs j where j.input ->> 'invoice_id' = :'invoice'),
          (select i.xmin::text from public.invoices i where i.id = :'invoice'::bigint),
  'the job row and the invoice row were written by the same transaction');

-- A rollback leaves neither --------------------------------------------------------------------------

select pg_temp.authenticate_as('alice');
savepoint before_second;
insert into public.invoices (amount) values (7.50) returning id as rolled_back \gset
select is((select count(*) from public.jobs where input ->> 'invoice_id' = :'rolled_back'), 1::bigint,
  'inside the transaction the second invoice has its job');
rollback to savepoint before_second;
select is((select count(*) from public.invoices where id = :'rolled_back'::bigint), 0::bigint,
  'after a rollback the invoice is gone');
select is((select count(*) from public.jobs where input ->> 'invoice_id' = :'rolled_back'), 0::bigint,
  'and so is its job: no job for a write that never happened');

-- A quota refusal aborts the app's insert too ------------------------------------------------------

select pg_temp.clear_authentication();
update spool.settings set max_active_jobs_per_user = 1;
select pg_temp.authenticate_as('bob');
select is(pg_temp.error_of($$ insert into public.invoices (amount) values (10) $$), 'no error',
  'bob''s first invoice is accepted (his one active job)');
select is(pg_temp.error_of($$ insert into public.invoices (amount) values (20) $$), 'PT429 quota_active_jobs',
  'his second is refused by create_job''s quota (PT429, HTTP 429 through the Data API)');
select is((select array_agg(amount order by id) from public.invoices), array[10.00]::numeric[],
  'and the refused insert wrote no invoice: the app''s write fails with its job');
select pg_temp.clear_authentication();
select is((select count(*) from public.jobs where user_id = pg_temp.uid('bob')), 1::bigint,
  'nor a job');
update spool.settings set max_active_jobs_per_user = 100;

-- Who may do what ----------------------------------------------------------------------------------

select pg_temp.authenticate_as('alice');
select is(pg_temp.error_of(format($$ select public.create_job(%L, 'send-invoice', '{"invoice_id": 999}') $$, pg_temp.uid('alice'))),
  '42501 -', 'a user cannot call create_job directly (service_role only)');
select is(pg_temp.error_of($$ select private.enqueue_invoice_email() $$), '42501 -',
  'nor the trigger function');
select is(pg_temp.error_of(format($$ insert into public.invoices (user_id, amount) values (%L, 5) $$, pg_temp.uid('bob'))),
  '42501 -', 'RLS refuses an invoice for another user, so the definer trigger never enqueues in their name');
select is((select count(*) from public.invoices), 1::bigint, 'alice sees only her own invoice');
select pg_temp.clear_authentication();
select is((select count(*) from public.jobs where user_id = pg_temp.uid('bob')), 1::bigint,
  'bob has no job alice made for him');
select is((select count(*) from public.jobs where type = 'send-invoice'), 2::bigint,
  'in all: one job per committed invoice');

select * from finish();
rollback;
