-- Pages of offered applicants (issue 17 item 1, patch optimalisasi-continues): a round keeps the
-- applicant ids it has offered a seat in optimalisasi as pages of 500 (kind 'offered-applicants',
-- domain/pages.py OFFERED), so that neither its allocation's input nor what it carries when it
-- continues-as-new grows with the offers made.

ALTER TABLE pages DROP CONSTRAINT pages_kind_check;
ALTER TABLE pages ADD CONSTRAINT pages_kind_check
    CHECK (kind IN ('close-replies', 'ranking-lines', 'candidates', 'page-index', 'offered-applicants'));
