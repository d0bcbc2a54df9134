-- The read model's roles and database, made when the readmodel-db volume is first initialised
-- (PostgreSQL's image runs /docker-entrypoint-initdb.d/*.sql with psql, as its superuser), and
-- made again by hand on a volume of an older release that lacks some (docs/OPERATIONS.md 1.1): each
-- is made only if missing, so running the script again changes nothing that exists.
-- The image makes its POSTGRES_USER a superuser; the engine uses roles of its own instead, as
-- the embedded PostgreSQL does (runtime/embedded.py), and refuses a superuser (docs/OPERATIONS.md
-- 1.1):
--
-- - casn owns the read model's database and schema and runs the migrations: only the one-shot
--   `migrate` service logs in as it.
-- - casn_runtime is what the workers and the notifier log in as: it owns nothing, and the
--   migrations grant it what they do (runtime/migrations/022_runtime_role.sql), so none of them
--   can disable an append-only table's triggers, truncate or drop a table.
-- - casn_gateway is what the gateways log in as: it owns nothing either, and is granted less
--   (runtime/migrations/023_gateway_role.sql, 024_gateway_columns.sql): no UPDATE or DELETE of a
--   projection or a decision, only the columns its pages and answers show.
--
-- The passwords are read from the secrets' files (the folder: psql variable `secrets`, by default
-- /run/secrets, where the compose file mounts them), never from a command line, and a role that
-- exists keeps its own. The migrations cannot make these roles themselves: that takes CREATEROLE,
-- which the schema's owner does not have (docs/OPERATIONS.md 1.1 says why).
\if :{?secrets}
\else
\set secrets /run/secrets
\endif

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'casn') AS make_owner,
    NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'casn_runtime') AS make_runtime,
    NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'casn_gateway') AS make_gateway,
    NOT EXISTS (SELECT FROM pg_database WHERE datname = 'casn') AS make_database \gset

\if :make_owner
\set given `grep -qs . :'secrets'/readmodel_db_owner_password && echo true || echo false`
\if :given
\set owner_password `cat :'secrets'/readmodel_db_owner_password`
CREATE ROLE casn LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
\unset owner_password
\else
DO $$ BEGIN RAISE EXCEPTION 'role casn not made: no password in the secret readmodel_db_owner_password'; END $$;
\endif
\endif
\if :make_runtime
\set given `grep -qs . :'secrets'/readmodel_db_runtime_password && echo true || echo false`
\if :given
\set runtime_password `cat :'secrets'/readmodel_db_runtime_password`
CREATE ROLE casn_runtime LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'runtime_password';
\unset runtime_password
\else
DO $$ BEGIN RAISE EXCEPTION 'role casn_runtime not made: no password in the secret readmodel_db_runtime_password'; END $$;
\endif
\endif
\if :make_gateway
\set given `grep -qs . :'secrets'/readmodel_db_gateway_password && echo true || echo false`
\if :given
\set gateway_password `cat :'secrets'/readmodel_db_gateway_password`
CREATE ROLE casn_gateway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'gateway_password';
\unset gateway_password
\else
DO $$ BEGIN RAISE EXCEPTION 'role casn_gateway not made: no password in the secret readmodel_db_gateway_password'; END $$;
\endif
\endif
\if :make_database
CREATE DATABASE casn OWNER casn;
\endif
