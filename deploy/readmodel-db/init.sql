-- The read model's role, made once, when the readmodel-db volume is first initialised
-- (PostgreSQL's image runs /docker-entrypoint-initdb.d/*.sql with psql, as its superuser).
-- The image makes its POSTGRES_USER a superuser, and every worker and gateway connects as the read
-- model's role: so that role is not the image's user but this one, which owns its database and
-- nothing else, as the embedded PostgreSQL's is (runtime/embedded.py). The workers and gateways
-- refuse a role that is a superuser (docs/OPERATIONS.md, section 1).
\set password `cat /run/secrets/readmodel_db_password`
CREATE ROLE casn LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'password';
CREATE DATABASE casn OWNER casn;
