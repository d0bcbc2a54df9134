-- Pages of offers (issue 17 item 1, patch optimalisasi-continues): an allocation that makes more
-- than 500 offers answers them as pages (kind 'allocated-offers', domain/pages.py OFFERS) that
-- the round reads one by one, so that the allocation's result does not grow with the seats it
-- fills.

ALTER TABLE pages DROP CONSTRAINT pages_kind_check;
ALTER TABLE pages ADD CONSTRAINT pages_kind_check
    CHECK (kind IN ('close-replies', 'ranking-lines', 'candidates', 'page-index', 'offered-applicants',
                    'allocated-offers'));
