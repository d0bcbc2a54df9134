-- Published announcements (client/publication.py): signed by an operator of the round and
-- chained by hash, per round. Append-only: a correction is a new publication naming the one it
-- corrects, never an update, so the database refuses UPDATE, DELETE and TRUNCATE on both tables.

CREATE TABLE publications (
    round_id      text        NOT NULL,
    seq           integer     NOT NULL CHECK (seq >= 1),          -- 1, 2, ... per round
    stage         text        NOT NULL CHECK (stage IN ('admin', 'skd', 'final')),
    instansi      text        NOT NULL,
    body          text        NOT NULL,   -- canonical JSON, exactly as hashed and signed
    body_sha256   text        NOT NULL CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
    prev_sha256   text        NOT NULL CHECK (prev_sha256 ~ '^[0-9a-f]{64}$'),  -- zeros for seq 1
    signature     text        NOT NULL,   -- detached JWS (Ed25519) by signed_by
    signed_by     text        NOT NULL,
    published_at  timestamptz NOT NULL,
    corrects      integer     CHECK (corrects IS NULL OR corrects < seq),
    row_count     integer     NOT NULL,
    PRIMARY KEY (round_id, seq),
    UNIQUE (round_id, prev_sha256),       -- one successor per publication: the chain cannot fork
    FOREIGN KEY (round_id, corrects) REFERENCES publications (round_id, seq)
);

-- Each published row once more, by registration number: the public lookup reads these instead
-- of every body of the round.
CREATE TABLE publication_rows (
    round_id      text        NOT NULL,
    seq           integer     NOT NULL,
    applicant_id  text        NOT NULL,
    formasi_code  text        NOT NULL,
    row           jsonb       NOT NULL,
    PRIMARY KEY (round_id, applicant_id, seq),
    FOREIGN KEY (round_id, seq) REFERENCES publications (round_id, seq)
);

CREATE FUNCTION publications_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: publications are append-only; publish a correction instead',
        TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER publications_append_only BEFORE UPDATE OR DELETE ON publications
    FOR EACH ROW EXECUTE FUNCTION publications_append_only();
CREATE TRIGGER publications_no_truncate BEFORE TRUNCATE ON publications
    FOR EACH STATEMENT EXECUTE FUNCTION publications_append_only();
CREATE TRIGGER publication_rows_append_only BEFORE UPDATE OR DELETE ON publication_rows
    FOR EACH ROW EXECUTE FUNCTION publications_append_only();
CREATE TRIGGER publication_rows_no_truncate BEFORE TRUNCATE ON publication_rows
    FOR EACH STATEMENT EXECUTE FUNCTION publications_append_only();
