-- Least privilege for the processes (docs/OPERATIONS.md 1.1): the workers and gateways connect as
-- casn_runtime, which owns nothing. The owner (the role that runs these migrations, `casn` in the
-- embedded stack and in docker-compose.yml) keeps the schema; only a table's owner can ALTER it,
-- DISABLE or DROP its triggers, TRUNCATE or DROP it. So a gateway taken over from the internet can
-- no more rewrite a signed announcement in place than any other client: the append-only tables'
-- triggers hold, and those tables are not even granted UPDATE or DELETE.
--
-- casn_runtime is made beside the owner, not here (the owner cannot create roles): by
-- runtime/embedded.py, by deploy/readmodel-db/init.sql, or by the database's administrator, who
-- may make it a NOLOGIN role and grant it to the login roles of the workers and gateways.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'casn_runtime') THEN
        RAISE EXCEPTION 'role casn_runtime does not exist: the workers and gateways connect as it; '
            'create it as the database''s administrator (docs/OPERATIONS.md 1.1) and migrate again';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO casn_runtime;

-- Every table at least read and appended to, as the default privileges below give a later one
-- (a table an operator made by hand in the schema too); more only by name, below.
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO casn_runtime;

-- Which migrations the schema holds: a process checks it before it starts, and refuses a schema
-- that is behind (runtime/migrate.py check_schema); it never migrates.
REVOKE INSERT ON schema_migrations FROM casn_runtime;

-- Written once, never changed: the signed announcements and their rows, who read an applicant's
-- record, the record of purges (all four refuse UPDATE, DELETE and TRUNCATE by trigger too), and
-- the NIPs issued (one per person). Also the calendar of rounds the sanctions count over.
GRANT SELECT, INSERT ON publications, publication_rows, access_log, personal_data_purges, nips,
    sanction_calendar TO casn_runtime;

-- The calendar's period (021_sanction_periods) is filled in once, when the API first learns which
-- national round a round already on the calendar joined (activities/sanctions.py): that column
-- alone may be written again, never a round's opening date.
GRANT UPDATE (period) ON sanction_calendar TO casn_runtime;

-- The projections, rewritten as the journeys move (newer versions win) and repaired from the
-- histories (audit.py check-read-model --repair); the portal's accounts and sessions; the pages,
-- boards and outbox; and what `starter.py purge-personal-data` clears or deletes.
GRANT SELECT, INSERT, UPDATE, DELETE ON applicants, decisions, stage_reports, notifications,
    nip_serials, sanctions, revocations, pages, round_boards, panel_seats, portal_accounts,
    portal_sessions, skm_taken TO casn_runtime;

-- The survey's answers: rewritten in place and re-ordered by `starter.py survey-mix` (an UPDATE
-- of every row, then CLUSTER, which needs MAINTAIN: PostgreSQL 17 or later), never deleted.
GRANT SELECT, INSERT, UPDATE, MAINTAIN ON skm_responses TO casn_runtime;

GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO casn_runtime;

-- A table made by a later migration can be read and appended to at once; a migration that wants
-- more grants it by name, beside the table. runtime/migrate.py refuses a migration run that
-- leaves a table the runtime role cannot read.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO casn_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO casn_runtime;
