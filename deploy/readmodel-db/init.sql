-- The read model's roles, made once, when the readmodel-db volume is first initialised
-- (PostgreSQL's image runs /docker-entrypoint-initdb.d/*.sql with psql, as its superuser).
-- The image makes its POSTGRES_USER a superuser; the engine uses two roles of its own instead, as
-- the embedded PostgreSQL does (runtime/embedded.py), and refuses a superuser (docs/OPERATIONS.md
-- 1.3):
--
-- - casn owns the read model's database and schema and runs the migrations: only the one-shot
--   `migrate` service logs in as it.
-- - casn_runtime is what the workers and the notifier log in as: it owns nothing, and the
--   migrations grant it what they do (runtime/migrations/022_runtime_role.sql), so none of them
--   can disable an append-only table's triggers, truncate or drop a table.
-- - casn_gateway is what the gateways log in as: it owns nothing either, and is granted less
--   (runtime/migrations/023_gateway_role.sql): no UPDATE or DELETE of a projection or a decision.
--
-- A volume made before casn_runtime or casn_gateway existed gets them by hand: docs/OPERATIONS.md
-- 1.1.
\set owner_password `cat /run/secrets/readmodel_db_owner_password`
\set runtime_password `cat /run/secrets/readmodel_db_runtime_password`
\set gateway_password `cat /run/secrets/readmodel_db_gateway_password`
CREATE ROLE casn LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
CREATE ROLE casn_runtime LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'runtime_password';
CREATE ROLE casn_gateway LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'gateway_password';
CREATE DATABASE casn OWNER casn;
