-- Index pages (issue 17 item 1): a formasi folds the references it carries into one page of
-- references (kind 'page-index', domain/pages.py PageFold) when they reach 64, so that what it
-- carries and records stays bounded however many applicants answered. The page's body is the
-- list of references; its digest commits to every page under it.

ALTER TABLE pages DROP CONSTRAINT pages_kind_check;
ALTER TABLE pages ADD CONSTRAINT pages_kind_check
    CHECK (kind IN ('close-replies', 'ranking-lines', 'candidates', 'page-index'));
