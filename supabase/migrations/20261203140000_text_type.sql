-- The text kind's limits (README "Add your own job type", step 4). Each attempt is a paid OpenAI
-- call: retry once at most; a chat answer takes seconds, so time an attempt out after 120 s.
insert into spool.job_types (type, max_attempts, timeout_seconds) values ('text', 2, 120);
