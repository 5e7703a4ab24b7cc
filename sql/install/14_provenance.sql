/* ---------------------------------------------------- row-level provenance */

CREATE FUNCTION pipeline.cursor_rule_between(row_alias text, before text, before_xid text,
                                             before_seq text, after text, after_xid text,
                                             after_seq text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'pipeline_cursor_rule_between'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pipeline.cursor_rule_between(text, text, text, text, text, text, text) IS
    'internal: the SQL condition on the staged row row_alias that the cursor after (snapshot, partial position) has consumed and the cursor before has not; its arguments are SQL expressions';

/*
 * The staged rows of a run: pending at its start and consumed at its end
 * (run_log.cursor_before, cursor_after), read from the source and from the
 * source's archive batches, where retention moved them.
 */
CREATE FUNCTION pipeline.run_staged_rows(run_id bigint)
    RETURNS TABLE (_xid xid8, _seq bigint, staged_row jsonb)
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
      l pipeline.run_log;
      src regclass;
    BEGIN
      SELECT r.* INTO l FROM pipeline.run_log r WHERE r.run_id = $1;
      SELECT d.source INTO src FROM pipeline.pipeline_defs d WHERE d.id = l.pipeline_id;
      IF NOT FOUND OR l.kind <> 'run' OR l.cursor_before IS NULL OR l.cursor_after IS NULL THEN
          RAISE EXCEPTION 'run % has no recorded staged rows', $1
                USING ERRCODE = 'undefined_object',
                      DETAIL = 'Staged rows are recorded for finished runs of kind run of pipelines the current role may manage; requeue runs read the quarantine.',
                      HINT = 'Find runs in pipeline.runs; the rows a requeue run read are in pipeline.quarantine_log (requeue_run_id).';
      END IF;
      /* the archive holds every row and column: refused rather than filtered */
      PERFORM pipeline.may_read_every_row(src, quiet => false);
      /* consumed at the end, pending at the start: the cursor rule (cursor_rule.c) */
      RETURN QUERY EXECUTE format(
          'SELECT s._xid, s._seq, to_jsonb(s) - ''_xid'' - ''_seq'' FROM ('
          'SELECT * FROM %1$s UNION ALL SELECT a.* FROM pipeline.archive_batches b '
          'LEFT JOIN pipeline.archive_dictionaries d ON d.id = b.dictionary_id '
          'CROSS JOIN LATERAL pipeline.archive_unpack(b, d.dictionary, NULL::%1$s) a '
          'WHERE b.source = %2$L::regclass AND b.last_xid >= pg_snapshot_xmin($4)) s '
          'WHERE %3$s ORDER BY s._xid, s._seq', src, src::text,
          pipeline.cursor_rule_between('s', '$4', '$5', '$6', '$1', '$2', '$3'))
        USING l.cursor_after, l.cursor_after_xid, l.cursor_after_seq,
              l.cursor_before, l.cursor_before_xid, l.cursor_before_seq;
    END
    $$;
COMMENT ON FUNCTION pipeline.run_staged_rows(bigint) IS
    'the staged rows a run consumed (merged, filtered, quarantined or dropped), in order, from its source (a change log for a pipeline on a pipeline)';

CREATE FUNCTION pipeline.current_run_id(pipeline_id bigint) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
      SELECT max(l.run_id) FROM pipeline.run_log l
       WHERE l.pipeline_id = $1 AND l.status = 'running' AND l.backend_pid = pg_backend_pid()
    $$;
COMMENT ON FUNCTION pipeline.current_run_id(bigint) IS
    'the run of the pipeline this session is running now (NULL outside one); the mapping of a provenance column';

/*
 * The definition of a pipeline the current role may manage (row-level
 * security of pipeline_defs), for the provenance functions below.
 */
CREATE FUNCTION pipeline.managed_definition(pipeline_name text) RETURNS pipeline.pipeline_defs
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
      d pipeline.pipeline_defs;
    BEGIN
      SELECT * INTO d FROM pipeline.pipeline_defs p WHERE p.name = pipeline_name;
      IF NOT FOUND THEN
          RAISE EXCEPTION 'pipeline "%" does not exist', pipeline_name
                USING ERRCODE = 'undefined_object',
                      DETAIL = 'There is no pipeline of that name that the current role may manage.',
                      HINT = 'List pipelines with SELECT name FROM pipeline.pipelines.';
      END IF;
      RETURN d;
    END
    $$;
COMMENT ON FUNCTION pipeline.managed_definition(text) IS
    'internal: the definition of a pipeline the current role may manage, or an error';

CREATE FUNCTION pipeline.add_provenance_column(relation regclass, column_name text) RETURNS void
    AS 'MODULE_PATHNAME', 'pipeline_add_provenance_column'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION pipeline.add_provenance_column(regclass, text) IS
    'internal: adds a bigint column to a table when missing, as the table''s owner (the caller must be a member of it or a superuser)';

/*
 * Provenance column: a target column mapped to the run that writes the
 * row.  The scalar subquery is evaluated once per batch statement.  The
 * column is added as the target's owner, whoever enables provenance.
 */
CREATE FUNCTION pipeline.enable_provenance(pipeline_name text, column_name text DEFAULT '__run_id')
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
      d pipeline.pipeline_defs := pipeline.managed_definition(pipeline_name);
    BEGIN
      PERFORM pipeline.add_provenance_column(d.target, column_name);
      PERFORM pipeline.alter_pipeline(pipeline_name, columns => d.columns || jsonb_build_object(
          column_name, format('(SELECT pipeline.current_run_id(%s))', d.id)));
    END
    $$;
COMMENT ON FUNCTION pipeline.enable_provenance(text, text) IS
    'adds a bigint column to the pipeline''s target (when missing) that each merged row gets the id of the run that wrote or last changed it';

CREATE FUNCTION pipeline.disable_provenance(pipeline_name text, column_name text DEFAULT '__run_id')
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
      d pipeline.pipeline_defs := pipeline.managed_definition(pipeline_name);
    BEGIN
      IF d.columns->>column_name IS NULL THEN
          RAISE EXCEPTION 'pipeline "%" keeps no provenance in column "%"', pipeline_name, column_name
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Its columns mapping does not map that column.',
                      HINT = 'Name the column given to enable_provenance.';
      END IF;
      PERFORM pipeline.alter_pipeline(pipeline_name,
          columns => d.columns || jsonb_build_object(column_name, NULL::text));
    END
    $$;
COMMENT ON FUNCTION pipeline.disable_provenance(text, text) IS
    'stops writing the provenance column (it stays in the target with its last values; new rows get NULL)';
