-- The satisfaction survey (SKM, issue 16 item 3; domain/skm.py, client/survey.py). Anonymous:
-- no report links an answer to an applicant's result.
--
-- - skm_responses holds the nine answers of one response with only what the results are
--   grouped by: the round, its instansi, the stage surveyed and the day. No applicant id, no
--   time of day, no serial: its id is a random uuid, so neither a column nor an ordering by id
--   follows the order the answers came in.
-- - skm_taken records only that an applicant answered a stage (so they answer it once); it is
--   written in the same transaction as the answers, and holds nothing of them.
-- Readers aggregate (client/survey.py survey_results): no report lists rows of skm_responses.

CREATE TABLE skm_responses (
    id            uuid     PRIMARY KEY DEFAULT gen_random_uuid(),
    round_id      text     NOT NULL,
    instansi      text     NOT NULL,
    stage         text     NOT NULL CHECK (stage IN ('registration', 'skd', 'end')),
    answers       smallint[] NOT NULL CHECK (
        cardinality(answers) = 9 AND array_ndims(answers) = 1
        AND 1 <= ALL (answers) AND 4 >= ALL (answers)
    ),
    submitted_on  date     NOT NULL
);
CREATE INDEX skm_responses_round ON skm_responses (round_id, stage);

CREATE TABLE skm_taken (
    round_id      text     NOT NULL,
    applicant_id  text     NOT NULL,   -- registration number (pseudonym of the NIK)
    stage         text     NOT NULL CHECK (stage IN ('registration', 'skd', 'end')),
    PRIMARY KEY (round_id, applicant_id, stage)
);

COMMENT ON TABLE skm_responses IS
    'SKM answers, anonymous: no applicant id, a day only, random ids (migration 009)';
COMMENT ON TABLE skm_taken IS
    'That an applicant answered a stage of the SKM, nothing of what they answered (migration 009)';
