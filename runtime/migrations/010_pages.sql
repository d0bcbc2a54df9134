-- The page store (issue 17 item 1): lists that grow with a formasi (the answers to a close, a
-- ranking's lines, the optimalisasi candidates) are kept here as pages, and workflows pass their
-- references (domain/pages.py PageRef: the SHA-256 of the body and its item count) instead of the
-- lists, so that no payload grows with the quota. A page is written once and never changed; its
-- digest is its key. The body is sealed with the payload keys (runtime/sealed.py, bound to
-- "pages/<digest>"): it holds scores, birth dates and majors. Every item is also in a history (a
-- journey's answer to the close), so the store can be rebuilt and is never a decision's only copy.

CREATE TABLE pages (
    digest      text        PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    kind        text        NOT NULL CHECK (kind IN ('close-replies', 'ranking-lines', 'candidates')),
    owner       text        NOT NULL,   -- the workflow id that wrote it (a formasi), for operators
    items       integer     NOT NULL CHECK (items >= 0),
    body        bytea       NOT NULL,   -- sealed
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pages_owner ON pages (owner);
