-- Least privilege for the gateway (docs/OPERATIONS.md 1.1): the process that answers the internet
-- (the portal, the public pages, the service and operator APIs) connects as casn_gateway, which
-- owns nothing and may do only what the gateway's own code does. It reads what the pages and
-- answers show, appends the announcements it drafts, the access log and the survey's answers, and
-- keeps the portal's accounts and sessions; it may not rewrite or delete a projection or a decision
-- (the workers' casn_runtime may), nor read what no page shows (the NIPs, the decisions' table,
-- the outbox's messages, the boards).
--
-- casn_gateway is made beside the owner, as casn_runtime is: by runtime/embedded.py, by
-- deploy/readmodel-db/init.sql, or by the database's administrator, who may make it a NOLOGIN role
-- and grant it to the gateways' login roles. A table a later migration makes is granted to it by
-- name, if the gateway needs it: the owner's default privileges give it nothing.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'casn_gateway') THEN
        RAISE EXCEPTION 'role casn_gateway does not exist: the gateways connect as it; '
            'create it as the database''s administrator (docs/OPERATIONS.md 1.1) and migrate again';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO casn_gateway;

-- Which migrations the schema holds: checked at start (runtime/migrate.py check_schema).
GRANT SELECT ON schema_migrations TO casn_gateway;

-- Read for the portal's status pages, the public pages and the operators' reads: the applicants'
-- projection and the stage reports an announcement lists, revocations, the panels' seats, the
-- ranking pages an announcement is drafted from, the sanctions register a registration is checked
-- against (and the calendar its rounds are counted on), and which tables a purge cleared.
GRANT SELECT ON applicants, stage_reports, revocations, panel_seats, pages, sanctions,
    sanction_calendar, personal_data_purges TO casn_gateway;

-- The outbox's backlog for /metrics (runtime/metrics.py counts the rows not yet delivered): that
-- column alone, not the messages.
GRANT SELECT (delivered_at) ON notifications TO casn_gateway;

-- Appended to, never changed (their triggers refuse UPDATE and DELETE too): the announcements the
-- operator API drafts and publishes, who read an applicant's record; and the survey's answers and
-- that an applicant gave them (client/survey.py record_answers).
GRANT SELECT, INSERT ON publications, publication_rows, access_log, skm_responses, skm_taken
    TO casn_gateway;
GRANT USAGE ON SEQUENCE access_log_id_seq TO casn_gateway;

-- The portal's accounts (a password rehashed in place, an account removed) and sessions (made,
-- ended, expired): gateway/accounts.py.
GRANT SELECT, INSERT, UPDATE, DELETE ON portal_accounts, portal_sessions TO casn_gateway;
