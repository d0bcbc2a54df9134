-- The purges of a round's personal data (UU 27/2022 "PDP": personal data is deleted or
-- anonymised once its purpose has ended; docs/OPERATIONS.md 8, `starter.py purge-personal-data`).
-- One row per batch of a table's rows cleared or deleted, written in the batch's own transaction,
-- so that this record holds exactly what was purged even when a run stops half-way. Its rows
-- name no applicant: the round, the table, what was done to it and how many rows.
-- `audit.py check-read-model` reads it to compare only what a purged round keeps.
-- Append-only, like the access log (migration 015): the database refuses UPDATE, DELETE and
-- TRUNCATE, so that nobody can hide a purge, or claim one that was not made.

CREATE TABLE personal_data_purges (
    id              bigserial   PRIMARY KEY,
    run_id          uuid        NOT NULL,   -- one run of the command; its batches share it
    round_id        text        NOT NULL,
    table_name      text        NOT NULL,
    action          text        NOT NULL CHECK (action IN ('cleared', 'deleted')),
    columns         text[]      NOT NULL,   -- the columns cleared; '{}' when rows were deleted
    rows            integer     NOT NULL CHECK (rows > 0),
    purged_at       timestamptz NOT NULL DEFAULT now(),
    purged_by       text        NOT NULL,   -- the identity the operator gave (--as)
    os_user         text        NOT NULL,   -- the operating-system user who ran the command
    round_ended_at  timestamptz,            -- the end the retention was counted from
    retention_days  integer     NOT NULL CHECK (retention_days >= 1),
    override_reason text                    -- given to purge before the end plus the retention
);

CREATE INDEX personal_data_purges_round ON personal_data_purges (round_id, purged_at);

CREATE FUNCTION personal_data_purges_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: the record of purges is append-only', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER personal_data_purges_append_only BEFORE UPDATE OR DELETE ON personal_data_purges
    FOR EACH ROW EXECUTE FUNCTION personal_data_purges_append_only();
CREATE TRIGGER personal_data_purges_no_truncate BEFORE TRUNCATE ON personal_data_purges
    FOR EACH STATEMENT EXECUTE FUNCTION personal_data_purges_append_only();

COMMENT ON TABLE personal_data_purges IS
    'Each batch of a round''s personal data purged: who, when, what, how many rows (migration 020)';
