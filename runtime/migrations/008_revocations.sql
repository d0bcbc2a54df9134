-- Revocations (issue 14 item 4): a DIS or a dismissal after the applicant's journey ended, recorded
-- in the applicant's aftermath (workflows/aftermath.py, id "<journey id>/after") and written here
-- for the announcements and the portal. One row per decision, in the aftermath's order. The
-- reason is not kept (issue 14 item 8: report contents live in the histories); the aftermath's
-- state query and `audit.py trail` show it.

CREATE TABLE revocations (
    round_id          text        NOT NULL,
    applicant_id      text        NOT NULL,   -- registration number (pseudonym of the NIK)
    seq               integer     NOT NULL,   -- its order among the applicant's revocations
    code              text        NOT NULL CHECK (code IN ('DIS', 'DIBERHENTIKAN')),
    at                timestamptz NOT NULL,   -- when the aftermath decided it
    journey_terminal  text        NOT NULL,   -- what the journey had ended as (PNS, TL, ...)
    decree_no         text,                   -- a dismissal's decree number
    reported_by       text        NOT NULL,
    report_id         text        NOT NULL,
    PRIMARY KEY (round_id, applicant_id, seq)
);
CREATE INDEX revocations_round ON revocations (round_id);
