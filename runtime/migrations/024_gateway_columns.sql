-- The gateway's role by column (docs/OPERATIONS.md 1.1): 023_gateway_role granted casn_gateway
-- whole tables, so SQL injection or code execution in the process that answers the internet read
-- every column of them: who was sanctioned and why, an applicant's sanction and TMT, who looked
-- up whom (access_log), which operator purged what. Here each table keeps only the columns the
-- gateway's own queries name (gateway/, and the client/, activities/ and runtime/ code it calls;
-- tests/test_secured_postgres.py GATEWAY_COLUMNS lists each with its reader), and the sanctions
-- register is read one subject at a time, through a function, not as a table.
--
-- Table privileges are taken back first: revoking a table's privilege revokes its column
-- privileges too, so the grants below are all that is left. DELETE, which PostgreSQL grants by
-- table only, stays on the portal's accounts and sessions alone.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'casn_gateway') THEN
        RAISE EXCEPTION 'role casn_gateway does not exist: the gateways connect as it; '
            'create it as the database''s administrator (docs/OPERATIONS.md 1.1) and migrate again';
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM casn_gateway;

-- Which migrations the schema holds: checked at start (runtime/migrate.py check_schema).
GRANT SELECT (version, name, checksum) ON schema_migrations TO casn_gateway;

-- The applicants' projection: the announcement a publisher drafts (client/announcements.py: the
-- names are published), the funnels (client/status.py, client/national.py), a panellist's sheet
-- (client/panels.py), the late endings the public pages mark (client/publication.py) and the
-- journeys per stage of /metrics. Not sanction_rounds (who withdrew after passing), tmt, version,
-- updated_at.
GRANT SELECT (round_id, applicant_id, formasi_code, name, stage, admin, skd_code, skd_total,
    skb_score, final_score, final_code, placed_formasi, terminal) ON applicants TO casn_gateway;

-- An SKD announcement's subtest scores (client/announcements.py): the table holds nothing else
-- (007_less_personal_data).
GRANT SELECT (round_id, applicant_id, report_id, kind, content) ON stage_reports TO casn_gateway;

-- A revocation's code and date, on the public pages: not its decree, report or reporter.
GRANT SELECT (round_id, applicant_id, seq, code, at) ON revocations TO casn_gateway;

-- A panellist's sheet and the candidate codes (client/panels.py).
GRANT SELECT (round_id, applicant_id, component, panellists) ON panel_seats TO casn_gateway;

-- A ranking page by its digest, sealed (client/standings.py, activities/pages.py PageStore.get).
GRANT SELECT (digest, kind, body) ON pages TO casn_gateway;

-- When a round's personal data was purged (activities/purges.py purged_on): not by whom, nor why.
GRANT SELECT (round_id, purged_at) ON personal_data_purges TO casn_gateway;

-- The outbox's backlog for /metrics (runtime/metrics.py): that column alone.
GRANT SELECT (delivered_at) ON notifications TO casn_gateway;

-- The rounds the sanctions count over. A registration checked at the gateway puts its round on
-- the calendar first, and its national round when that is learnt later (activities/sanctions.py
-- record_round: INSERT ... ON CONFLICT (round_id) DO UPDATE SET period): 023 granted no write, so
-- every online registration failed as casn_gateway.
GRANT SELECT (round_id, registration_opens, period), INSERT (round_id, registration_opens, period),
    UPDATE (period) ON sanction_calendar TO casn_gateway;

-- The sanctions register one subject at a time: the entries of the subject a registration is
-- checked for (activities/sanctions.py find_bars), never the register whole. The subject is a
-- keyed hash of a NIK, so a caller must know the NIK and the pseudonym key to ask about anyone.
CREATE OR REPLACE FUNCTION sanction_entries(wanted text) RETURNS SETOF sanctions
    LANGUAGE sql STABLE SECURITY DEFINER ROWS 2
    SET search_path = pg_catalog, pg_temp
    AS 'SELECT * FROM public.sanctions WHERE subject = wanted';
COMMENT ON FUNCTION sanction_entries(text) IS
    'the sanctions register''s entries of one subject, for the roles that may not read it whole';
REVOKE ALL ON FUNCTION sanction_entries(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sanction_entries(text) TO casn_gateway, casn_runtime;

-- The announcements the operator API drafts and publishes (client/publication.py), appended and
-- read back; their rows for the public lookup.
GRANT SELECT (round_id, seq, stage, instansi, body, body_sha256, signature, signed_by,
        published_at, corrects, row_count),
    INSERT (round_id, seq, stage, instansi, body, body_sha256, prev_sha256, signature, signed_by,
        published_at, corrects, row_count)
    ON publications TO casn_gateway;
GRANT SELECT (round_id, seq, applicant_id, formasi_code, row),
    INSERT (round_id, seq, applicant_id, formasi_code, row) ON publication_rows TO casn_gateway;

-- Who read an applicant's record (client/access_log.py record_access): written, never read back.
GRANT INSERT (round_id, applicant_id, reader, what, by_nik, found, request_id) ON access_log
    TO casn_gateway;

-- The survey (client/survey.py): that an applicant answered a stage, and the answers, summed
-- for the operators' IKM without the day they came in.
GRANT SELECT (round_id, applicant_id, stage), INSERT (round_id, applicant_id, stage) ON skm_taken
    TO casn_gateway;
GRANT SELECT (round_id, instansi, stage, answers),
    INSERT (round_id, instansi, stage, answers, submitted_on) ON skm_responses TO casn_gateway;

-- The portal's accounts (a password checked, rehashed in place; an account made, or removed
-- when its registration was refused) and sessions (made, read, ended, expired): gateway/accounts.py.
-- A session is never changed in place.
GRANT SELECT (round_id, applicant_id, password_hash), INSERT (round_id, applicant_id, password_hash),
    UPDATE (password_hash, rehashed_at), DELETE ON portal_accounts TO casn_gateway;
GRANT SELECT (token_sha256, round_id, applicant_id, expires_at),
    INSERT (token_sha256, round_id, applicant_id, expires_at), DELETE ON portal_sessions
    TO casn_gateway;
