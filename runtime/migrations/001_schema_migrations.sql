-- The schema_migrations table itself is created by runtime/migrate.py before any file runs.
-- This first migration only marks the start of the versioned history; it changes nothing.
SELECT 1;
