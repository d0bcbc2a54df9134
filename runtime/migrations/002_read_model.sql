-- The read model: derived from the workflows' histories, rebuildable from them.
-- Every write is keyed so that a retried activity writes nothing twice.

CREATE TABLE applicants (
    round_id        text        NOT NULL,
    applicant_id    text        NOT NULL,   -- registration number (pseudonym of the NIK)
    formasi_code    text        NOT NULL,
    name            text        NOT NULL,
    category        text        NOT NULL,
    stage           text        NOT NULL,
    admin           text,
    skd_code        text,
    skd_total       integer,
    skb_score       numeric(9,3),
    final_score     numeric(9,3),
    final_code      text,
    placed_formasi  text,
    terminal        text,
    terminal_reason text        NOT NULL DEFAULT '',
    sanction_rounds integer     NOT NULL DEFAULT 0,
    tmt             date,
    version         integer     NOT NULL,   -- journey's projection counter: older writes never win
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, applicant_id)
);
CREATE INDEX applicants_formasi ON applicants (round_id, formasi_code);

CREATE TABLE decisions (
    round_id      text        NOT NULL,
    applicant_id  text        NOT NULL,
    seq           integer     NOT NULL,
    at            timestamptz NOT NULL,
    stage         text        NOT NULL,
    outcome       text        NOT NULL,
    actor         text        NOT NULL,
    input         jsonb       NOT NULL,
    rule_version  text        NOT NULL,
    rules_digest  text        NOT NULL,
    PRIMARY KEY (round_id, applicant_id, seq)
);

CREATE TABLE stage_reports (
    round_id      text        NOT NULL,
    applicant_id  text        NOT NULL,
    report_id     text        NOT NULL,
    kind          text        NOT NULL,
    content       jsonb       NOT NULL,
    PRIMARY KEY (round_id, applicant_id, report_id)
);

CREATE TABLE notifications (
    round_id      text        NOT NULL,
    applicant_id  text        NOT NULL,
    key           text        NOT NULL,
    text          text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    PRIMARY KEY (round_id, applicant_id, key)
);

-- NIP: one per appointed person, enforced by the database (primary key and unique NIP).
CREATE TABLE nips (
    round_id      text        NOT NULL,
    applicant_id  text        NOT NULL,
    nip           text        NOT NULL UNIQUE,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (round_id, applicant_id)
);
CREATE TABLE nip_serials (
    prefix        text        PRIMARY KEY,  -- birth date + TMT + gender: the first 15 digits
    last_serial   integer     NOT NULL
);
