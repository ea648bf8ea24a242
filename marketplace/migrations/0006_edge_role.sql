-- min_profile: phase0
-- Seed §1.1/§1.2: the edge functions have 15 database connections, and the 16th is
-- refused by Postgres itself ("too many connections for role"), whichever process
-- asks. phase0 connects as this role; its CONNECTION LIMIT is that wall. Superusers
-- ignore CONNECTION LIMIT, so the role is an ordinary one with data privileges only.
-- A role is cluster-wide: a second database migrating at the same moment may create
-- it first, which is fine.

DO $$
BEGIN
    CREATE ROLE edge_functions LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
        PASSWORD 'edge_functions';
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

ALTER ROLE edge_functions CONNECTION LIMIT 15;

GRANT USAGE ON SCHEMA public TO edge_functions;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO edge_functions;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO edge_functions;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO edge_functions;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO edge_functions;
