-- A notification the deliverer could not hand over is tried again later, not on every pass
-- (activities/notify.py): `attempts` counts the failed hand-overs, `next_attempt_at` is when the
-- row is due again (back-off doubling from 1 minute, at most 4 hours apart), and `given_up_at`
-- marks a row the deliverer stopped trying after its last attempt. Given-up rows are kept, never
-- deleted: an operator can put one back (docs/OPERATIONS.md 2.5). Without them a
-- head of undeliverable rows (sealed under a key the deliverer no longer holds, recipients the
-- transport refuses for good) was taken first on every pass and held back every other row.

ALTER TABLE notifications
    ADD COLUMN attempts        integer     NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN given_up_at     timestamptz;

-- The deliverer's queue: undelivered rows not given up, never tried first, then by when due.
CREATE INDEX notifications_due ON notifications (next_attempt_at NULLS FIRST, created_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
