-- Less personal data in clear (issue 14 item 8). The read model keeps only what its readers need
-- (docs/ARCHITECTURE.md, "What the read model keeps, and for whom"); what a report said lives in
-- the journeys' histories, encrypted by the payload codec, where the audit tools read it.
--
-- - applicants.name stays: the public announcements list names (client/announcements.py).
-- - applicants.category (a needs category, disabilitas among them) and applicants.terminal_reason
--   (a DIS reason as an instansi wrote it) have no reader: the portal and `lookup` read the
--   journey's own state, never these columns.
-- - decisions.input held each decision's input: administrative findings, appeal texts, SKB
--   components, health notes, the refusals of a registration (birth dates among them). No reader:
--   the trail's skeleton (when, stage, outcome, actor, rule version and digest) stays.
-- - stage_reports.content held every accepted report whole (health findings, interview panel
--   scores, missing documents, a withdrawal's reason). Its one reader, the SKD announcement, needs
--   the subtest scores the rules publish: only those stay, other kinds keep an empty object.
-- - notifications.text and notice said what a report said (each failing document's reason, a DIS
--   reason) and the NIP. Their reader, the deliverer (activities/notify.py), needs them until the
--   notification is handed over: new rows carry them sealed (runtime/sealed.py: AES-256-GCM under
--   the payload key, bound to the row) in `sealed`, with text '' and notice NULL. Rows already
--   delivered lose their text here; rows written before, still undelivered, keep theirs until
--   delivered (the deliverer empties them then).
-- Every row stays; only these values go.

ALTER TABLE applicants DROP COLUMN category;
ALTER TABLE applicants DROP COLUMN terminal_reason;
ALTER TABLE decisions DROP COLUMN input;

UPDATE stage_reports
SET content = CASE
    WHEN kind = 'skd' THEN jsonb_build_object(
        'twk', content -> 'twk', 'tiu', content -> 'tiu', 'tkp', content -> 'tkp')
    ELSE '{}'::jsonb
END;

-- And never again: a writer that still sends a whole report (a worker of older code) fails and
-- retries instead of storing it.
ALTER TABLE stage_reports ADD CONSTRAINT stage_reports_published_part_only CHECK (
    content = '{}'::jsonb OR (kind = 'skd' AND content - 'twk' - 'tiu' - 'tkp' = '{}'::jsonb)
);

COMMENT ON COLUMN stage_reports.content IS
    'what the announcements publish of the report: an SKD report''s twk, tiu and tkp; {} otherwise';

ALTER TABLE notifications ADD COLUMN sealed bytea;
UPDATE notifications SET text = '', notice = NULL WHERE delivered_at IS NOT NULL;
ALTER TABLE notifications ADD CONSTRAINT notifications_sealed_or_clear CHECK (
    sealed IS NULL OR (text = '' AND notice IS NULL)
);
