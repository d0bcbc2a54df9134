-- The applicant portal's accounts and sessions (gateway/accounts.py). Keyed by the registration
-- number, a keyed pseudonym of the NIK: no NIK, no name, no birth date is stored here. Unlike the
-- read model these rows are not derived from the histories: a password is known only here.

CREATE TABLE portal_accounts (
    round_id       text        NOT NULL,
    applicant_id   text        NOT NULL,   -- registration number
    password_hash  text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    rehashed_at    timestamptz,            -- when a login re-hashed it under new parameters
    PRIMARY KEY (round_id, applicant_id)
);

-- A session is known by the SHA-256 of its token: the token itself lives only in the
-- applicant's cookie, so a copy of this table opens no session.
CREATE TABLE portal_sessions (
    token_sha256   bytea       PRIMARY KEY CHECK (length(token_sha256) = 32),
    round_id       text        NOT NULL,
    applicant_id   text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    FOREIGN KEY (round_id, applicant_id)
        REFERENCES portal_accounts (round_id, applicant_id) ON DELETE CASCADE
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);
CREATE INDEX portal_sessions_account ON portal_sessions (round_id, applicant_id);
