-- Append-only roles for an Engagement Ledger on PostgreSQL: the same as
--   ledger --as admin:ops --db postgresql://OWNER@HOST/DB?schema=SCHEMA init --postgres-roles
-- for those who keep their database set-up in SQL.
--
-- Run it with psql as the user that owns the ledger's tables (it needs CREATEROLE), after the
-- ledger's tables exist (`ledger --as admin:ops init`, then `ledger --as admin:ops projections
-- run` so the read models' tables exist too):
--
--   psql "postgresql://ledger@127.0.0.1:5433/ledger" -v schema=public -v prefix=ledger_public \
--        -f docs/postgres-roles.sql
--   psql ... -c 'GRANT ledger_public_writer TO alice'      -- a person or a writing service
--   psql ... -c 'GRANT ledger_public_projector TO follower' -- a `projections run --follow`
--
-- Running it again is harmless. What the roles may do (docs/decisions.md, "Reliability"):
--   <prefix>_writer     reads everything; INSERT and SELECT only on the history
--                       (engagements_events, engagements_snapshots) and ledger_keys; appends
--                       events through the owner's SECURITY DEFINER function
--                       ledger_insert_events; keeps the read models (member of the projector).
--   <prefix>_projector  SELECT on the history and keys; SELECT, INSERT, UPDATE, DELETE on the
--                       derived tables (rm_*, ledger_projection_tracking).
-- Neither may UPDATE, DELETE or TRUNCATE the history: changing it needs the owner.

\set ON_ERROR_STOP on
\set writer :prefix '_writer'
\set projector :prefix '_projector'

BEGIN;
SELECT pg_advisory_xact_lock(hashtext('ledger roles'));

-- The roles, unless they exist. NOLOGIN: grant them to login roles.
SELECT format('CREATE ROLE %I NOLOGIN', r) FROM unnest(ARRAY[:'projector', :'writer']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec

GRANT USAGE ON SCHEMA :"schema" TO :"projector", :"writer";
GRANT :"projector" TO :"writer";

-- Tables made later by the owner (a read model rebuilt under a new schema version) are derived.
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema"
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"projector";

-- The history: read by both, appended by the writer, changed by nobody but the owner.
REVOKE ALL ON :"schema".engagements_events, :"schema".engagements_snapshots
  FROM :"projector", :"writer";
GRANT SELECT ON :"schema".engagements_events, :"schema".engagements_snapshots TO :"projector";
GRANT SELECT, INSERT ON :"schema".engagements_events, :"schema".engagements_snapshots
  TO :"writer";
REVOKE ALL ON FUNCTION :"schema".ledger_insert_events(:"schema".stored_event_uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION :"schema".ledger_insert_events(:"schema".stored_event_uuid[])
  TO :"writer";

-- The contractors' keys (only on an encrypted ledger): added by the writer; deleted only by
-- `forget-contractor`, run as the owner.
SELECT format('REVOKE ALL ON %I.ledger_keys FROM %I, %I', :'schema', :'projector', :'writer'),
       format('GRANT SELECT ON %I.ledger_keys TO %I', :'schema', :'projector'),
       format('GRANT SELECT, INSERT ON %I.ledger_keys TO %I', :'schema', :'writer')
 WHERE to_regclass(format('%I.ledger_keys', :'schema')) IS NOT NULL \gexec

-- The derived tables that exist now.
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO %I', schemaname, tablename,
              :'projector')
  FROM pg_tables
 WHERE schemaname = :'schema'
   AND (tablename LIKE 'rm\_%' OR tablename = 'ledger_projection_tracking') \gexec

COMMIT;
