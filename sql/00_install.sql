-- Installing the extension: its objects, each with a comment.
CREATE EXTENSION pipeline;

SELECT extversion, extrelocatable, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pipeline';

-- Every function, table, view and sequence of the extension, and whether it
-- is documented with COMMENT ON (sequences are documented by their table).
SELECT pg_describe_object(d.classid, d.objid, 0) AS object,
       obj_description(d.objid, c.relname) IS NOT NULL AS commented
  FROM pg_depend d
  JOIN pg_class c ON c.oid = d.classid
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pipeline')
   AND d.deptype = 'e'
   AND NOT (d.classid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S')
 ORDER BY 1;

-- The clock starts at offset zero with a generation of its own.
SELECT xid_offset, generation <> 0 AS has_generation FROM pipeline.clock;
SELECT pipeline.current_xid() = pg_current_xact_id() AS same_as_core_xid;

-- Roles read the catalog through row-level security, and cannot write it.
SELECT relname, relrowsecurity FROM pg_class
 WHERE relnamespace = 'pipeline'::regnamespace AND relkind = 'r' ORDER BY 1;
SELECT has_table_privilege('public', 'pipeline.pipeline_defs', 'INSERT') AS public_can_insert_defs,
       has_table_privilege('public', 'pipeline.cursors', 'UPDATE') AS public_can_update_cursors;

-- A helper for the later files: the SQLSTATE, message, detail and hint of
-- the error a statement raises (or 'no error').  The name of the role that
-- runs the tests (the owner of what they create: pipeline_ci under
-- test/check.sh, another under make installcheck) reads <test user>.
CREATE FUNCTION public.error_of(statement text)
    RETURNS TABLE (code text, message text, detail text, hint text)
    LANGUAGE plpgsql AS $$
DECLARE
    tester text := '\m' || session_user || '\M';
BEGIN
    EXECUTE statement;
    RETURN QUERY SELECT 'no error'::text, NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    message := regexp_replace(message, tester, '<test user>', 'g');
    detail := regexp_replace(detail, tester, '<test user>', 'g');
    hint := regexp_replace(hint, tester, '<test user>', 'g');
    RETURN NEXT;
END $$;

-- Helpers for the later files: a run whose result row is not printed, and
-- what the last run of a pipeline did (without its run id).
CREATE PROCEDURE public.run_quietly(name text) LANGUAGE plpgsql AS $$
DECLARE
    id bigint; st text; n1 bigint; n2 bigint; n3 bigint; n4 bigint; n5 bigint; n6 bigint;
    n7 bigint; nb int;
BEGIN
    CALL pipeline.run(name, NULL, id, st, n1, n2, n3, n4, n5, n6, n7, nb);
END $$;
CREATE FUNCTION public.last_run(name text) RETURNS TABLE (status text, read bigint, inserted bigint,
    updated bigint, deleted bigint, stale bigint, quarantined bigint) LANGUAGE sql AS $$
    SELECT status, rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale, rows_quarantined
      FROM pipeline.runs WHERE pipeline = name ORDER BY run_id DESC LIMIT 1 $$;

-- Each later file numbers the extension's ids (runs, pipelines, quarantined
-- rows, checks...) from a base of its own, so that the ids in its expected
-- output do not depend on which files ran before it.
CREATE PROCEDURE public.number_ids_from(base bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    seq regclass;
BEGIN
    FOR seq IN
        SELECT pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)::regclass
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'pipeline' AND c.relkind = 'r' AND a.attidentity <> ''
    LOOP
        PERFORM setval(seq, base);
    END LOOP;
END $$;
