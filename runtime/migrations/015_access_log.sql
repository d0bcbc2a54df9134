-- Who read an applicant's record through the gateway, and how (an operator's lookup, by
-- registration number or by NIK): accounted for, so that an inspector can ask who looked at an
-- applicant, and an agency can answer for every access to personal data. The NIK itself is never
-- kept: a lookup by NIK is kept under the registration number the round's key gives it.
-- Append-only, like the publications: the database refuses UPDATE, DELETE and TRUNCATE.

CREATE TABLE access_log (
    id            bigserial   PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    round_id      text        NOT NULL,
    applicant_id  text        NOT NULL,   -- the registration number (a pseudonym of the NIK)
    reader        text        NOT NULL,   -- the identity of the API key that asked
    what          text        NOT NULL CHECK (what IN ('lookup')),
    by_nik        boolean     NOT NULL,   -- asked by NIK (the NIK is not kept)
    found         boolean     NOT NULL,   -- false: no journey of that number in the round
    request_id    text        NOT NULL DEFAULT ''
);

CREATE INDEX access_log_by_applicant ON access_log (round_id, applicant_id, at);
CREATE INDEX access_log_by_reader ON access_log (reader, at);

CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: the access log is append-only', TG_OP, TG_TABLE_NAME;
END
$$;

CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();
