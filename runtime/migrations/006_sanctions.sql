-- The sanctions register (issue 14): who may not register, across rounds.
-- Keyed by the NIK's sanction subject, never the NIK: HMAC-SHA256 of the NIK under the
-- deployment's pseudonym key with the fixed label "casn-sanction-subject" (client/sanctions.py),
-- the same in every round, unlike the per-round registration number.

CREATE TABLE sanctions (
    subject      text        NOT NULL CHECK (subject ~ '^[0-9a-f]{64}$'),
    kind         text        NOT NULL CHECK (kind IN ('APS', 'national_list')),
    -- APS: "<round>/<registration number>" of the journey that ended in it; a national list:
    -- the list's source. With the subject, a retried or re-run write lands on the same row.
    origin       text        NOT NULL,
    imposed_by   text        NOT NULL,   -- APS: the sanctioning round; a list: its source
    imposed_at   timestamptz NOT NULL DEFAULT now(),
    -- Either a number of rounds (counted as client/sanctions.py's docstring says) or a last day.
    rounds       integer     CHECK (rounds BETWEEN 1 AND 10),
    barred_until date,
    reason       text        NOT NULL,
    PRIMARY KEY (kind, origin, subject),
    CHECK ((rounds IS NULL) <> (barred_until IS NULL))
);
CREATE INDEX sanctions_subject ON sanctions (subject);

-- The rounds "the next N rounds" are counted over: each round by its registration opening,
-- recorded when the register first checks a registration of it.
CREATE TABLE sanction_calendar (
    round_id           text        PRIMARY KEY,
    registration_opens timestamptz NOT NULL
);
CREATE INDEX sanction_calendar_opens ON sanction_calendar (registration_opens);
