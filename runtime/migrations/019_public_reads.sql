-- The public pages' reads (gateway/public.py), which anyone can send without an account or a rate
-- limit, read what they show and not the round: a lookup by registration number read every
-- applicants row of the round (`late_endings`: the whole table scanned for its DIS and APS) to
-- mark one applicant, ~40 ms a request at 400 k rows and growing with the round.
--
-- - applicants_late_endings: the round's DIS and APS only (client/publication.py LATE_ENDINGS;
--   the query names the same two codes, so the planner can prove the index applies), for a
--   publication's page, which marks every listed applicant who ended so after it.
-- - publication_rows_publication: the rows of one publication, for `audit.py verify-announcements`
--   (each row checked against its signed body) and for the foreign key to publications, whose
--   referencing side had no index of its own.
--
-- Built inside the migration's transaction (not CONCURRENTLY): writes to these tables wait while
-- they build, seconds at a national round's size. IF NOT EXISTS, so that an operator can build
-- them beforehand with CREATE INDEX CONCURRENTLY under these names (docs/OPERATIONS.md 5).

CREATE INDEX IF NOT EXISTS applicants_late_endings ON applicants (round_id, applicant_id)
    WHERE terminal IN ('DIS', 'APS');
CREATE INDEX IF NOT EXISTS publication_rows_publication ON publication_rows (round_id, seq);
