-- The rounds' boards (issue 17 item 3): a round writes what its journeys are judged by (its
-- rules, formasi, registration window, TMT and seal secret: a RoundBoard, domain/messages.py)
-- here before it acknowledges any change of it, and a starting journey reads it instead of
-- asking the round workflow by query, so a registration burst no longer queues on the round's
-- workflow task. One row per round workflow; `version` only ever grows (a write of an older one
-- changes nothing). The body is sealed with the payload keys (runtime/sealed.py, bound to
-- "round-boards/<workflow_id>/<version>"): it holds the round's seal secret. Every board is the
-- round's state at a point of its history, so the table can be rebuilt by replaying the round.

CREATE TABLE round_boards (
    workflow_id text        PRIMARY KEY,
    version     bigint      NOT NULL CHECK (version >= 0),
    body        bytea       NOT NULL,   -- sealed
    written_at  timestamptz NOT NULL DEFAULT now()
);
