-- A notification's facts (domain/notices.py: outcome, failing documents with their reasons, the
-- cause of an ending), rendered in the configured language when delivered (activities/notify.py).
-- NULL on rows written before notices existed: their recorded text is delivered as it is.

ALTER TABLE notifications ADD COLUMN notice jsonb;
