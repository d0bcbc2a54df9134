-- The interview panels as they stand (issue 16 panels at issue 17's scale): for each applicant
-- and panel component with a pool, who sits on the panel now, after every conflict and review.
-- Written with the journey's row (activities/readmodel.py), from its PanelAssigned and
-- PanelChanged decisions, so that a panellist's sheet is one indexed read instead of a query to
-- every running journey of the round. `version` is the projection's (older writes never win).
-- Panellist identities are reporter ids, not personal data; the applicant is its registration
-- number, which the sheet turns into a candidate code before anyone outside the committee sees it.
-- Rebuildable from the histories: `audit.py check-read-model ROUND --repair` writes what is
-- missing (journeys that drew their panels before this table existed).

CREATE TABLE panel_seats (
    round_id      text        NOT NULL,
    applicant_id  text        NOT NULL,
    component     text        NOT NULL,
    panellists    text[]      NOT NULL,
    version       integer     NOT NULL,
    PRIMARY KEY (round_id, applicant_id, component)
);

CREATE INDEX panel_seats_by_panellist ON panel_seats USING gin (panellists);
