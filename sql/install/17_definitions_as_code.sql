-- Definitions as code: pipeline.export() writes every definition the
-- calling role may see as one JSON document, in the terms of the calls that
-- make them (create_pipeline, add_check, set_failure_policy, create_step,
-- add_freshness_check, set_retention, add_alert_route), defaults left out;
-- pipeline.apply(document) makes the database match a document, through
-- those same calls, as the calling role (doc/reference.md, "Definitions as
-- code").  A document is made of items, each one call: export and apply
-- both flatten a document into items (definition_items), and apply diffs
-- the items by identity.

-- An object without its members whose value is JSON null (those nested
-- inside are kept: a columns object maps a left-out column to null).
CREATE FUNCTION pipeline.definition_strip(object jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') FROM jsonb_each(object) e WHERE jsonb_typeof(e.value) <> 'null'
$$;
COMMENT ON FUNCTION pipeline.definition_strip(jsonb) IS
    'an object without its members whose value is JSON null (nested ones kept)';

-- "a string", "an array": what a JSON value is, for error messages.
CREATE FUNCTION pipeline.definition_kind_of(given jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT CASE WHEN jsonb_typeof(given) IN ('array', 'object') THEN 'an ' ELSE 'a ' END || jsonb_typeof(given) $$;
COMMENT ON FUNCTION pipeline.definition_kind_of(jsonb) IS
    'what a JSON value is ("a string", "an array"), for the errors of pipeline.apply';

-- A member of a document's path, as jq writes it: .name, or ["any name"].
CREATE FUNCTION pipeline.definition_step(name text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT CASE WHEN name ~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN '.' || name ELSE '[' || to_jsonb(name)::text || ']' END $$;
COMMENT ON FUNCTION pipeline.definition_step(text) IS
    'a member of a pipeline document''s path as jq writes it: .name or ["any name"]';

-- The SQL a document value passes as an argument of type 'type', or an
-- error naming 'path' when the value is not of that type.
CREATE FUNCTION pipeline.definition_argument(path text, given jsonb, type regtype, made text[] DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    wanted text := CASE
        WHEN type IN ('bigint'::regtype, 'integer'::regtype, 'real'::regtype, 'double precision'::regtype) THEN 'number'
        WHEN type = 'boolean'::regtype THEN 'boolean'
        WHEN type IN ('text[]'::regtype, 'regclass[]'::regtype) THEN 'array'
        WHEN type = 'jsonb'::regtype THEN NULL
        ELSE 'string' END;
    refused text;
BEGIN
    IF pg_catalog.jsonb_typeof(given) = 'null' THEN
        RETURN 'NULL::' || type::text;
    END IF;
    IF wanted IS NOT NULL AND (pg_catalog.jsonb_typeof(given) <> wanted OR wanted = 'array' AND
           EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(given) = 'array' THEN given ELSE '[]' END) e
                    WHERE pg_catalog.jsonb_typeof(e) <> 'string')) THEN
        RAISE EXCEPTION 'invalid pipeline document at %', path
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('The value must be %s; it is %s.',
                                  CASE wanted WHEN 'array' THEN 'an array of strings' ELSE 'a ' || wanted END,
                                  CASE WHEN pg_catalog.jsonb_typeof(given) = 'array' THEN 'an array of ' ||
                                       (SELECT pg_catalog.string_agg(DISTINCT pg_catalog.jsonb_typeof(e) || 's', ' and ') FROM pg_catalog.jsonb_array_elements(given) e)
                                  ELSE pipeline.definition_kind_of(given) END),
                  HINT = pg_catalog.format('Write it as the argument of type %s of the function that makes it.', type);
    END IF;
    -- a value its type refuses (an interval, a fraction for an integer, a
    -- relation that does not exist but for one the document makes) is
    -- refused at its place
    IF wanted IN ('string', 'number') AND NOT (type = 'regclass'::regtype AND pipeline.definition_relation(given #>> '{}') = ANY (coalesce(made, '{}'))) THEN
        BEGIN
            EXECUTE pg_catalog.format('SELECT %L::%s', given #>> '{}', type);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS refused = MESSAGE_TEXT;
            RAISE EXCEPTION 'invalid pipeline document at %', path
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = pg_catalog.format('The value is not of type %s: %s.', type, refused),
                      HINT = CASE WHEN type = 'regclass'::regtype THEN 'Name a table that exists, schema-qualified.'
                                  ELSE pg_catalog.format('Write it as the argument of type %s of the function that makes it.', type) END;
        END;
    END IF;
    -- each relation of an array, at its place in it
    IF type = 'regclass[]'::regtype THEN
        PERFORM pipeline.definition_argument(path || '[' || (e.n - 1) || ']', e.v, 'regclass', made)
           FROM pg_catalog.jsonb_array_elements(given) WITH ORDINALITY e(v, n);
    END IF;
    RETURN CASE
        WHEN wanted = 'array' THEN pg_catalog.format('ARRAY(SELECT pg_catalog.jsonb_array_elements_text(%L::jsonb))::%s', given, type)
        WHEN wanted IS NULL THEN pg_catalog.format('%L::jsonb', given)
        ELSE pg_catalog.format('%L::%s', given #>> '{}', type) END;
END $$;
COMMENT ON FUNCTION pipeline.definition_argument(text, jsonb, regtype, text[]) IS
    'apply: the SQL passing a document value as an argument of a type, or an error naming its place';

-- "SELECT f(a => ..., b => ...)": a call of 'function' with the fixed
-- arguments 'fixed' and those of the document object 'args' at 'path'
-- (each checked against the function's parameters: an unknown key or a
-- value of the wrong type is an error naming its place).
CREATE FUNCTION pipeline.definition_call(path text, function regprocedure, fixed jsonb, args jsonb,
                                         made text[] DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
#variable_conflict use_column
DECLARE
    params text[];
    types oid[];
    list text[] := '{}';
    entry record;
    i integer;
    missing text;
BEGIN
    SELECT proargnames, ARRAY(SELECT pg_catalog.unnest(proargtypes)) INTO params, types FROM pg_catalog.pg_proc WHERE oid = function;
    -- an argument without a default is needed
    SELECT p INTO missing FROM pg_catalog.pg_proc f, pg_catalog.unnest(params[1:f.pronargs - f.pronargdefaults]) p
     WHERE f.oid = function AND NOT (fixed || args) ? p LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'invalid pipeline document at %', path
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('%s needs %s.', function::regproc, pg_catalog.quote_ident(missing)),
                  HINT = pg_catalog.format('Give it %s.', pg_catalog.quote_ident(missing));
    END IF;
    FOR entry IN SELECT key, value FROM pg_catalog.jsonb_each(fixed || args) ORDER BY key LOOP
        i := pg_catalog.array_position(params, entry.key);
        IF i IS NULL OR entry.key = ANY (ARRAY(SELECT pg_catalog.jsonb_object_keys(fixed))) AND args ? entry.key THEN
            RAISE EXCEPTION 'invalid pipeline document at %', path || pipeline.definition_step(entry.key)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = pg_catalog.format('%s takes no %s%s.', function::regproc,
                                      pg_catalog.quote_ident(entry.key),
                                      CASE WHEN i IS NOT NULL THEN ' here: the document says it elsewhere' END),
                      HINT = pg_catalog.format('Its keys are the arguments of %s: %s.', function::regproc,
                                    pg_catalog.array_to_string(ARRAY(SELECT p FROM pg_catalog.unnest(params) p
                                                          WHERE NOT fixed ? p ORDER BY p), ', '));
        END IF;
        list := list || pg_catalog.format('%I => %s', entry.key,
                               pipeline.definition_argument(path || pipeline.definition_step(entry.key), entry.value, types[i]::regtype,
                                                           made));
    END LOOP;
    RETURN pg_catalog.format('SELECT %I.%I(%s)', (SELECT n.nspname FROM pg_catalog.pg_proc f JOIN pg_catalog.pg_namespace n
                                                    ON n.oid = f.pronamespace WHERE f.oid = function),
                             (SELECT f.proname FROM pg_catalog.pg_proc f WHERE f.oid = function),
                             pg_catalog.array_to_string(list, ', '));
END $$;
COMMENT ON FUNCTION pipeline.definition_call(text, regprocedure, jsonb, jsonb, text[]) IS
    'apply: the call making a document item, its keys and values checked against the function''s parameters';

-- The object at 'path' of a document, or an error when it is not one.
CREATE FUNCTION pipeline.definition_object(path text, given jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF given IS NULL OR jsonb_typeof(given) = 'null' THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(given) <> 'object' THEN
        RAISE EXCEPTION 'invalid pipeline document at %', path
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value must be an object; it is %s.', pipeline.definition_kind_of(given)),
                  HINT = 'See pipeline.export() for the shape of a document.';
    END IF;
    RETURN given;
END $$;
COMMENT ON FUNCTION pipeline.definition_object(text, jsonb) IS
    'apply: the JSON object at a place of a document, or an error naming it';

-- A document's items: one row per call that makes a definition -- its kind,
-- its identity (unique within the kind; a check's is [pipeline, check] as
-- JSON), where it is in the document, the pipeline it belongs to, and the
-- call's arguments as the document writes them.  Errors naming the place
-- of anything that is not where it may be.
CREATE FUNCTION pipeline.definition_items(document jsonb)
    RETURNS TABLE (kind text, identity text, path text, pipeline text, args jsonb)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    p record;
    c record;
    f record;
    section record;
    unknown text;
    fpath text;
BEGIN
    IF document IS NULL OR jsonb_typeof(document) <> 'object' THEN
        RAISE EXCEPTION 'invalid pipeline document'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('A document is a JSON object; this is %s.', coalesce(pipeline.definition_kind_of(document), 'NULL')),
                  HINT = 'See pipeline.export() for the shape of a document.';
    END IF;
    SELECT k INTO unknown FROM jsonb_object_keys(document) k
     WHERE k NOT IN ('version', 'pipelines', 'steps', 'freshness_checks', 'retention', 'alert_routes') ORDER BY k LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'invalid pipeline document at %', pipeline.definition_step(unknown)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('A document has no section %s.', quote_ident(unknown)),
                  HINT = 'Its sections are version, pipelines, steps, freshness_checks, retention and alert_routes.';
    END IF;
    IF document ? 'version' AND document->'version' <> '1' THEN
        RAISE EXCEPTION 'invalid pipeline document at .version'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('This extension reads documents of version 1; this one says %s.', document->'version'),
                  HINT = 'Export the document again with this version of the extension.';
    END IF;
    -- a section given is made whole: null is no empty section, but a mistake
    FOR unknown IN SELECT k FROM jsonb_object_keys(document) k WHERE k <> 'version' ORDER BY k LOOP
        IF jsonb_typeof(document->unknown) <> 'object' THEN
            RAISE EXCEPTION 'invalid pipeline document at %', pipeline.definition_step(unknown)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('A section must be an object; it is %s.', pipeline.definition_kind_of(document->unknown)),
                      HINT = 'Write {} to have none, or leave the section out to leave it alone.';
        END IF;
    END LOOP;
    FOR p IN SELECT key, value FROM jsonb_each(pipeline.definition_object('.pipelines', document->'pipelines')) ORDER BY key LOOP
        fpath := '.pipelines' || pipeline.definition_step(p.key);
        kind := 'pipeline'; identity := p.key; path := fpath; pipeline := p.key;
        args := pipeline.definition_object(fpath, p.value) - 'checks' - 'failure_policy';
        RETURN NEXT;
        FOR c IN SELECT key, value FROM jsonb_each(pipeline.definition_object(fpath || '.checks', p.value->'checks')) ORDER BY key LOOP
            kind := 'check'; identity := jsonb_build_array(p.key, c.key)::text; path := fpath || '.checks' || pipeline.definition_step(c.key);
            args := pipeline.definition_object(path, c.value);
            RETURN NEXT;
        END LOOP;
        IF p.value->'failure_policy' IS NOT NULL AND jsonb_typeof(p.value->'failure_policy') <> 'null' THEN
            kind := 'failure_policy'; identity := p.key; path := fpath || '.failure_policy';
            args := pipeline.definition_object(path, p.value->'failure_policy');
            RETURN NEXT;
        END IF;
    END LOOP;
    FOR p IN SELECT key, value FROM jsonb_each(pipeline.definition_object('.steps', document->'steps')) ORDER BY key LOOP
        fpath := '.steps' || pipeline.definition_step(p.key);
        kind := 'step'; identity := p.key; path := fpath; pipeline := p.key;
        args := pipeline.definition_object(fpath, p.value) - 'failure_policy';
        RETURN NEXT;
        IF p.value->'failure_policy' IS NOT NULL AND jsonb_typeof(p.value->'failure_policy') <> 'null' THEN
            kind := 'step_failure_policy'; identity := p.key; path := fpath || '.failure_policy';
            args := pipeline.definition_object(path, p.value->'failure_policy');
            RETURN NEXT;
        END IF;
    END LOOP;
    FOR section IN SELECT * FROM (VALUES ('freshness_checks', 'freshness_check'), ('retention', 'retention'),
                                         ('alert_routes', 'alert_route')) v(name, kind) LOOP
        FOR f IN SELECT key, value FROM jsonb_each(pipeline.definition_object('.' || section.name, document->section.name))
                  ORDER BY key LOOP
            kind := section.kind; identity := f.key; pipeline := NULL;
            path := '.' || section.name || pipeline.definition_step(f.key);
            args := pipeline.definition_object(path, f.value);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;
COMMENT ON FUNCTION pipeline.definition_items(jsonb) IS
    'a document''s items, one per call that makes a definition: kind, identity, place, pipeline, arguments';

-- The table a change log mirrors: the target of the pipelines writing it,
-- or the captured table (NULL for any other relation, or for the target of
-- pipelines row-level security hides from the caller: no function of the
-- extension is SECURITY DEFINER).
CREATE FUNCTION pipeline.change_log_relation(log regclass) RETURNS regclass
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT coalesce((SELECT u.target FROM pipeline.pipeline_defs u WHERE u.change_log = log ORDER BY u.id LIMIT 1),
                (SELECT c.relation FROM pipeline.captures c WHERE c.change_log = log))
$$;
COMMENT ON FUNCTION pipeline.change_log_relation(regclass) IS
    'the table a change log mirrors (a pipeline target, a captured table), or NULL';

-- The arguments of create_pipeline that made a pipeline, as a document
-- writes them: the source as given (a pipeline reading another's target,
-- or a captured table, is stored reading its change log), the defaults the
-- definition filled in left out (delete_when of a change log, an
-- aggregate's source_key from the mirrored table's primary key, the
-- defaults of a format, the __deleted column of hard_deletes
-- 'new_record'), except_columns as the columns object keeps them
-- ({"column": null}).  A change log's deletes turned off are written
-- "false": an empty delete_when would get the default again.
CREATE FUNCTION pipeline.pipeline_arguments(d pipeline.pipeline_defs) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'source', coalesce(up.target, d.source)::text,
    'owner', CASE WHEN d.owner::oid <> current_user::regrole::oid THEN d.owner::text END,
    'target', d.target::text,
    'key', to_jsonb(d.key),
    'strategy', nullif(d.strategy, 'merge'),
    'sequence_by', CASE WHEN d.format = 'debezium' AND d.strategy IN ('merge', 'aggregate')
                             AND d.sequence_by = '_lsn' THEN NULL ELSE d.sequence_by END,
    'delete_when', CASE WHEN up.target IS NOT NULL AND d.strategy <> 'append'
                        THEN CASE WHEN d.delete_when = '_op = ''delete''' THEN NULL
                                  ELSE coalesce(d.delete_when, 'false') END
                        WHEN d.format = 'debezium' AND d.strategy <> 'append' AND d.delete_when = '_op = ''d'''
                        THEN NULL
                        ELSE d.delete_when END,
    'columns', nullif(CASE WHEN d.hard_deletes = 'new_record' THEN d.columns - '__deleted' ELSE d.columns END,
                      '{}'),
    'filter', d.filter,
    'on_schema_change', nullif(d.on_schema_change, 'ignore'),
    'batch_size', nullif(d.batch_size, 100000),
    'schedule', nullif(d.schedule, 'manual'),
    'tombstone_retention', nullif(d.tombstone_retention, '7 days')::text,
    'statement_timeout', d.statement_timeout::text,
    'track_history', to_jsonb(d.track_history),
    'source_key', CASE WHEN up.target IS NOT NULL AND d.strategy = 'aggregate'
                            AND d.source_key = ARRAY(SELECT a.attname::text FROM pg_index i
                                                     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                                                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                                                     WHERE i.indrelid = up.target AND i.indisprimary ORDER BY k.n)
                       THEN NULL ELSE to_jsonb(d.source_key) END,
    'group_filter', d.group_filter,
    'joins', (SELECT jsonb_agg(jsonb_build_object(
                  'table', j.dimension::text, 'as', j.alias, 'type', j.kind,
                  'on', (SELECT jsonb_object_agg(s, c) FROM unnest(j.source_columns, j.dimension_columns) u(s, c)))
                  ORDER BY j.position)
              FROM pipeline.pipeline_joins j WHERE j.pipeline_id = d.id),
    'format', d.format,
    'ignore_null_updates', to_jsonb(d.ignore_null_updates),
    'hard_deletes', CASE WHEN d.format = 'snapshot' AND d.hard_deletes = CASE d.strategy WHEN 'scd2' THEN 'invalidate'
                                                                           ELSE 'delete' END
                         THEN NULL ELSE d.hard_deletes END,
    'max_delete_share', CASE WHEN d.format = 'snapshot' AND d.max_delete_share = 0.5 THEN NULL ELSE d.max_delete_share END,
    'on_truncate', CASE WHEN d.format = 'debezium' AND d.on_truncate = 'quarantine' THEN NULL ELSE d.on_truncate END,
    'extract_id', d.extract_id))
FROM (SELECT pipeline.change_log_relation(d.source) AS target) up
$$;
COMMENT ON FUNCTION pipeline.pipeline_arguments(pipeline.pipeline_defs) IS
    'export: the create_pipeline arguments that made a pipeline, defaults left out';

-- The arguments of add_check that made a check (its kind but the default,
-- expression; its action but the default, quarantine).
CREATE FUNCTION pipeline.check_arguments(c pipeline.checks) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'kind', nullif(c.kind, 'expression'), 'expression', c.expression, 'column_name', c.column_name,
    'accepted_values', to_jsonb(c.accepted_values), 'min_value', c.min_value, 'max_value', c.max_value,
    'pattern', c.pattern, 'ref_table', c.ref_table::text, 'ref_column', c.ref_column,
    'unique_scope', c.unique_scope, 'min_rows', c.min_rows, 'max_rows', c.max_rows,
    'action', nullif(c.action, 'quarantine'), 'warn_if', c.warn_if, 'error_if', c.error_if, 'mostly', c.mostly))
$$;
COMMENT ON FUNCTION pipeline.check_arguments(pipeline.checks) IS
    'export: the add_check arguments that made a check, defaults left out';

-- The arguments of create_step that made a step: its upstreams in their
-- order, the relations it declares, its owner when not the caller, the
-- defaults left out.
CREATE FUNCTION pipeline.step_arguments(s pipeline.steps) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'command', s.command,
    'owner', CASE WHEN s.owner::oid <> current_user::regrole::oid THEN s.owner::text END,
    'after', (SELECT jsonb_agg(coalesce(d.name, o.name) ORDER BY u.position)
                FROM pipeline.step_upstreams u
                LEFT JOIN pipeline.pipeline_defs d ON d.id = u.upstream_pipeline
                LEFT JOIN pipeline.steps o ON o.id = u.upstream_step
               WHERE u.step_id = s.id),
    'statement_timeout', s.statement_timeout::text,
    'reads', (SELECT jsonb_agg(r::text) FROM unnest(s.reads) r),
    'writes', (SELECT jsonb_agg(w::text) FROM unnest(s.writes) w),
    'schedule', nullif(s.schedule, 'manual')))
$$;
COMMENT ON FUNCTION pipeline.step_arguments(pipeline.steps) IS
    'export: the create_step arguments that made a step, defaults left out';

-- A failure policy as a document writes it (NULL when it is the settings').
CREATE FUNCTION pipeline.failure_policy_arguments(retry_base_ms integer, retry_max_ms integer,
                                                  suspend_after_failures integer) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT nullif(pipeline.definition_strip(jsonb_build_object(
    'retry_base', (retry_base_ms * interval '1 ms')::text,
    'retry_max', (retry_max_ms * interval '1 ms')::text,
    'suspend_after_failures', suspend_after_failures)), '{}')
$$;
COMMENT ON FUNCTION pipeline.failure_policy_arguments(integer, integer, integer) IS
    'export: the set_failure_policy arguments of a pipeline''s or step''s own policy';

-- A freshness check's name in a document: its relation, then its column in
-- parentheses and its filter after "where", when it has them, and its
-- owner after "by" when that is not the caller.
CREATE FUNCTION pipeline.freshness_label(relation text, column_name text, filter text, owner text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT relation || coalesce(' (' || column_name || ')', '') || coalesce(' where ' || filter, '')
       || coalesce(' by ' || nullif(owner, current_user::regrole::text), '')
$$;
COMMENT ON FUNCTION pipeline.freshness_label(text, text, text, text) IS
    'a freshness check''s name in a document: relation, (column), where filter, by owner (another role)';

-- The arguments of add_alert_route that made each alert route (the
-- superuser's: a route's URL is a credential), by name.
CREATE FUNCTION pipeline.alert_route_arguments() RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT coalesce((
        SELECT jsonb_object_agg(a.name, pipeline.definition_strip(jsonb_build_object(
                   'url', a.url, 'format', nullif(a.format, 'json'), 'owner', CASE WHEN a.owner::oid <> current_user::regrole::oid THEN a.owner::text END,
                   'kinds', to_jsonb(a.kinds), 'pipelines', to_jsonb(a.pipelines),
                   'relations', to_jsonb(a.relations::text[]),
                   'min_severity', nullif(a.min_severity, 'warning'),
                   'timeout', nullif(a.timeout_ms * interval '1 ms', interval '5 s')::text,
                   'retry_base', nullif(a.retry_base_ms * interval '1 ms', interval '1 s')::text,
                   'retry_max', nullif(a.retry_max_ms * interval '1 ms', interval '5 min')::text,
                   'enabled', nullif(a.enabled, true))))
        FROM pipeline.alert_routes a), '{}')
$$;
COMMENT ON FUNCTION pipeline.alert_route_arguments() IS
    'export: the add_alert_route arguments that made each alert route, by name (superusers)';

CREATE FUNCTION pipeline.export() RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'version', 1,
    'pipelines', coalesce((
        SELECT jsonb_object_agg(d.name, pipeline.pipeline_arguments(d)
            || pipeline.definition_strip(jsonb_build_object(
                 'checks', (SELECT jsonb_object_agg(c.name, pipeline.check_arguments(c))
                            FROM pipeline.checks c WHERE c.pipeline_id = d.id),
                 'failure_policy', pipeline.failure_policy_arguments(d.retry_base_ms, d.retry_max_ms,
                                                                     d.suspend_after_failures))))
        FROM pipeline.pipeline_defs d), '{}'),
    'steps', coalesce((
        SELECT jsonb_object_agg(s.name, pipeline.step_arguments(s)
            || pipeline.definition_strip(jsonb_build_object(
                 'failure_policy', pipeline.failure_policy_arguments(s.retry_base_ms, s.retry_max_ms,
                                                                     s.suspend_after_failures))))
        FROM pipeline.steps s), '{}'),
    'freshness_checks', coalesce((
        SELECT jsonb_object_agg(pipeline.freshness_label(f.relation::text, f.column_name, f.filter, f.owner::text),
                                pipeline.definition_strip(jsonb_build_object(
                                    'relation', f.relation::text, 'column_name', f.column_name, 'filter', f.filter,
                                    'owner', CASE WHEN f.owner::oid <> current_user::regrole::oid THEN f.owner::text END,
                                    'warn_after', f.warn_after::text, 'error_after', f.error_after::text,
                                    'deadline', f.deadline::text, 'timezone', nullif(f.timezone, 'UTC'),
                                    'schedule', f.schedule)))
        FROM pipeline.freshness_checks f WHERE pg_has_role(f.owner, 'USAGE')), '{}'),
    'retention', coalesce((
        SELECT jsonb_object_agg(r.source::text, pipeline.definition_strip(jsonb_build_object(
                   'keep', r.keep::text, 'archive', nullif(r.archive, true),
                   'compression_level', nullif(r.compression_level, 3),
                   'dictionary_size', nullif(r.dictionary_size, 0), 'batch_rows', nullif(r.batch_rows, 10000),
                   'archive_keep', r.archive_keep::text)))
        FROM pipeline.retention r JOIN pg_class s ON s.oid = r.source
        WHERE pg_has_role(s.relowner, 'USAGE')), '{}'),
    'alert_routes', CASE WHEN has_table_privilege('pipeline.alert_routes', 'SELECT')
                         THEN pipeline.alert_route_arguments() END))
$$;
COMMENT ON FUNCTION pipeline.export() IS
    'every definition the current role may see -- pipelines with their checks and failure policies, steps with theirs, freshness checks, retention, and (superusers) alert routes -- as one JSON document for pipeline.apply';

-- The function that makes an item of each kind, and the values it fills in
-- itself when given none (beside its parameters' defaults), which a
-- document may leave out.
CREATE FUNCTION pipeline.definition_function(kind text, OUT function regprocedure, OUT filled jsonb)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT CASE kind
         WHEN 'pipeline' THEN 'pipeline.create_pipeline(text, regclass, text, text[], text, text, text, jsonb, text, text, bigint, text, interval, interval, text[], text[], text, jsonb, text, text[], text[], text, real, text, text)'
         WHEN 'check' THEN 'pipeline.add_check(text, text, text, text, text, text[], text, text, text, regclass, text, text, bigint, bigint, text, text, text, double precision)'
         WHEN 'failure_policy' THEN 'pipeline.set_failure_policy(text, interval, interval, integer)'
         WHEN 'step' THEN 'pipeline.create_step(text, text, text[], interval, regclass[], regclass[], text)'
         WHEN 'step_failure_policy' THEN 'pipeline.set_failure_policy(text, interval, interval, integer)'
         WHEN 'freshness_check' THEN 'pipeline.add_freshness_check(regclass, text, interval, interval, text, text, time without time zone, text)'
         WHEN 'retention' THEN 'pipeline.set_retention(regclass, interval, boolean, integer, integer, integer, interval)'
         WHEN 'alert_route' THEN 'pipeline.add_alert_route(text, text, text, regrole, text[], text[], regclass[], text, interval, interval, interval, boolean)'
       END::regprocedure,
       CASE kind WHEN 'check' THEN '{"kind": "expression", "action": "quarantine"}'::jsonb
                 WHEN 'pipeline' THEN jsonb_build_object('owner', current_user::regrole::text)
                 WHEN 'step' THEN jsonb_build_object('owner', current_user::regrole::text)
                 WHEN 'freshness_check' THEN jsonb_build_object('owner', current_user::regrole::text)
                 WHEN 'alert_route' THEN jsonb_build_object('owner', current_user::regrole::text)
                 ELSE '{}' END
$$;
COMMENT ON FUNCTION pipeline.definition_function(text) IS
    'apply: the function making a document item of a kind, and what it fills in by default';

-- A relation's name as export writes it (schema-qualified, quoted where
-- needed), resolved with the caller's search_path; the name as given when
-- there is no such relation (yet: a target that apply creates).
CREATE FUNCTION pipeline.definition_relation(name text) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN coalesce((SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.oid = pg_catalog.to_regclass(name)), name);
EXCEPTION WHEN invalid_name THEN
    -- (not a name: the function given it says so, at its place)
    RETURN name;
END $$;
COMMENT ON FUNCTION pipeline.definition_relation(text) IS
    'apply: a relation''s name as export writes it, resolved with the caller''s search_path';

-- An item's arguments as export writes them, to compare: relations
-- qualified, intervals and times as PostgreSQL prints them, and what
-- changes nothing left out -- JSON nulls, a parameter's default, a value
-- the function fills in by itself.
CREATE FUNCTION pipeline.definition_normal(kind text, args jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET intervalstyle = postgres
    AS $$
#variable_conflict use_column
DECLARE
    f record;
    entry record;
    i integer;
    type regtype;
    normal jsonb;
    fallback jsonb;
    result jsonb := '{}';
    params text[];
    types oid[];
BEGIN
    f := pipeline.definition_function(kind);
    SELECT proargnames, ARRAY(SELECT pg_catalog.unnest(proargtypes)) INTO params, types FROM pg_catalog.pg_proc WHERE oid = f.function;
    FOR entry IN SELECT key, value FROM pg_catalog.jsonb_each(args) LOOP
        i := pg_catalog.array_position(params, entry.key);
        -- (a pipeline's, a step's and a freshness check's owner is the document's own key)
        CONTINUE WHEN i IS NULL AND entry.key <> 'owner' OR pg_catalog.jsonb_typeof(entry.value) = 'null';
        type := CASE WHEN i IS NULL THEN 'regrole'::regtype ELSE types[i] END;
        normal := CASE
            WHEN type = 'regrole'::regtype THEN pg_catalog.to_jsonb((entry.value #>> '{}')::regrole::text)
            WHEN type = 'interval'::regtype THEN pg_catalog.to_jsonb((entry.value #>> '{}')::interval)
            WHEN type = 'time'::regtype THEN pg_catalog.to_jsonb((entry.value #>> '{}')::time)
            WHEN type = 'regclass'::regtype OR entry.key = 'target' THEN
                pg_catalog.to_jsonb(pipeline.definition_relation(entry.value #>> '{}'))
            WHEN type = 'regclass[]'::regtype THEN
                (SELECT pg_catalog.jsonb_agg(pipeline.definition_relation(r))
                   FROM pg_catalog.jsonb_array_elements_text(entry.value) r)
            ELSE entry.value END;
        EXECUTE 'SELECT pg_catalog.to_jsonb(' || coalesce(pg_catalog.pg_get_function_arg_default(f.function, i), 'NULL::text') || ')'
            INTO fallback;
        IF normal IS DISTINCT FROM fallback AND normal IS DISTINCT FROM f.filled->entry.key THEN
            result := result || pg_catalog.jsonb_build_object(entry.key, normal);
        END IF;
    END LOOP;
    RETURN result;
END $$;
COMMENT ON FUNCTION pipeline.definition_normal(text, jsonb) IS
    'apply: an item''s arguments as export writes them, to compare';

-- The call dropping an item of a kind (NULL: none; setting it again
-- replaces it, and a failure policy is dropped by setting its defaults).
CREATE FUNCTION pipeline.definition_drop(kind text, identity text, pipeline text, args jsonb) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT CASE kind
    WHEN 'pipeline' THEN format('SELECT pipeline.drop_pipeline(%L)', identity)
    WHEN 'check' THEN format('SELECT pipeline.drop_check(%L, %L)', pipeline, identity::jsonb->>1)
    WHEN 'failure_policy' THEN format('SELECT pipeline.set_failure_policy(%L)', identity)
    WHEN 'step' THEN format('SELECT pipeline.drop_step(%L)', identity)
    WHEN 'step_failure_policy' THEN format('SELECT pipeline.set_failure_policy(%L)', identity)
    WHEN 'freshness_check' THEN format('SELECT pipeline.drop_freshness_check(f.id) FROM pipeline.freshness_checks f '
                                       'WHERE f.relation = %L::regclass AND f.column_name IS NOT DISTINCT FROM %L '
                                       'AND f.filter IS NOT DISTINCT FROM %L AND f.owner = %L::regrole',
                                       args->>'relation', args->>'column_name', args->>'filter',
                                       coalesce(args->>'owner', current_user::text))
    WHEN 'retention' THEN format('SELECT pipeline.drop_retention(%L)', identity)
    WHEN 'alert_route' THEN format('SELECT pipeline.drop_alert_route(%L)', identity)
END
$$;
COMMENT ON FUNCTION pipeline.definition_drop(text, text, text, jsonb) IS
    'apply: the call dropping a definition';

-- What makes the database match 'document': one row per item of the
-- document's sections and of the database's in those sections (a section
-- the document leaves out is left alone), in the order apply makes them,
-- with the call dropping the old item (drop_sql: apply runs every drop
-- first, in drop_order) and the call making the new one (make_sql, as the
-- role run_as when the document names an owner).
CREATE FUNCTION pipeline.definition_plan(document jsonb)
    RETURNS TABLE (step integer, action text, kind text, object text, detail text, data_loss boolean,
                   drop_order integer, drop_sql text, make_sql text, run_as text)
    LANGUAGE plpgsql VOLATILE
    AS $$
#variable_conflict use_column
DECLARE
    sections text[] := ARRAY(SELECT pg_catalog.jsonb_object_keys(document)
                             WHERE pg_catalog.jsonb_typeof(document) = 'object');
    kept_reader record;
BEGIN
    CREATE TEMP TABLE pg_temp.pipeline_plan ON COMMIT DROP AS
    WITH items AS MATERIALIZED (SELECT * FROM pipeline.definition_items(document)),
    made AS MATERIALIZED (SELECT coalesce(pg_catalog.array_agg(pipeline.definition_relation(i.args->>'target')), '{}') AS targets
                            FROM items i WHERE i.kind = 'pipeline'),
    called AS MATERIALIZED (
        SELECT w.*, w.args->>'owner' AS run_as,
               pipeline.definition_call(w.path, (pipeline.definition_function(w.kind)).function,
                   CASE w.kind WHEN 'pipeline' THEN pg_catalog.jsonb_build_object('name', w.identity)
                               WHEN 'check' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline, 'check_name',
                                   w.identity::jsonb->>1)
                               WHEN 'failure_policy' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline)
                               WHEN 'step' THEN pg_catalog.jsonb_build_object('step_name', w.identity)
                               WHEN 'step_failure_policy' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline)
                               WHEN 'retention' THEN pg_catalog.jsonb_build_object('source', w.identity)
                               WHEN 'alert_route' THEN pg_catalog.jsonb_build_object('name', w.identity)
                               ELSE '{}' END,
                   CASE WHEN w.kind IN ('pipeline', 'step', 'freshness_check') THEN w.args - 'owner' ELSE w.args END,
                   (SELECT m.targets FROM made m)) AS make_sql,
               -- an owner the document names is a role (checked here, before anything changes)
               CASE WHEN w.kind IN ('pipeline', 'step', 'freshness_check') AND w.args ? 'owner'
                    THEN pipeline.definition_argument(w.path || '.owner', w.args->'owner', 'regrole') END AS owner_checked
          FROM items w),
    wanted AS (SELECT w.*, pipeline.definition_normal(w.kind, w.args) AS normal FROM called w),
    wanted_keyed AS (
        SELECT w.*, CASE w.kind
                      WHEN 'freshness_check' THEN pipeline.freshness_label(w.normal->>'relation', w.normal->>'column_name',
                                                                           w.normal->>'filter', w.normal->>'owner')
                      WHEN 'retention' THEN pipeline.definition_relation(w.identity)
                      ELSE w.identity END AS key
          FROM wanted w),
    current AS (
        SELECT c.*, c.identity AS key,
               d.strategy = 'aggregate' OR d.row_state IS NOT NULL OR d.group_state IS NOT NULL
                   OR EXISTS (SELECT 1 FROM pipeline.pipeline_joins j WHERE j.pipeline_id = d.id) AS unshapable,
               d.tombstones IS NOT NULL AS has_tombstones
          FROM pipeline.definition_items(pipeline.export()) c
          LEFT JOIN pipeline.pipeline_defs d ON c.kind = 'pipeline' AND d.name = c.identity
         WHERE CASE c.kind WHEN 'pipeline' THEN 'pipelines' WHEN 'check' THEN 'pipelines'
                           WHEN 'failure_policy' THEN 'pipelines' WHEN 'freshness_check' THEN 'freshness_checks'
                           WHEN 'step' THEN 'steps' WHEN 'step_failure_policy' THEN 'steps'
                           WHEN 'retention' THEN 'retention' ELSE 'alert_routes' END = ANY (sections)),
    compared AS (
        SELECT w.kind AS w_kind, c.kind AS c_kind, coalesce(w.kind, c.kind) AS kind, coalesce(w.key, c.key) AS key,
               coalesce(w.path, c.path) AS object, coalesce(w.pipeline, c.pipeline) AS pipeline,
               w.normal, c.args AS current_args, w.make_sql, w.run_as, c.unshapable, c.has_tombstones,
               pipeline.definition_drop(c.kind, c.identity, c.pipeline, c.args) AS drop_sql,
               ARRAY(SELECT e.key FROM pg_catalog.jsonb_each(coalesce(w.normal, '{}') || coalesce(c.args, '{}')) e
                      WHERE (w.normal->e.key) IS DISTINCT FROM (c.args->e.key) ORDER BY e.key) AS changed
          FROM wanted_keyed w FULL JOIN current c ON c.kind = w.kind AND c.key = w.key)
    SELECT x.*,
           CASE WHEN x.c_kind IS NULL THEN 'create' WHEN x.w_kind IS NULL THEN 'drop'
                WHEN x.changed = '{}' THEN 'unchanged'
                -- what alter_pipeline changes in place (not the settings that
                -- shaped the state an aggregate, joins or a row state keep)
                WHEN x.kind = 'pipeline' AND x.changed <@ ARRAY['batch_size', 'schedule', 'tombstone_retention',
                                                                 'statement_timeout', 'track_history', 'on_schema_change',
                                                                 'key', 'sequence_by', 'delete_when', 'columns', 'filter']
                     AND NOT (x.unshapable AND x.changed && ARRAY['key', 'sequence_by', 'delete_when', 'columns', 'filter'])
                     AND (x.normal ? 'key' OR NOT 'key' = ANY (x.changed))
                     THEN 'alter'
                WHEN x.kind IN ('failure_policy', 'step_failure_policy', 'retention') THEN 'alter'
                -- alter_step changes all but who owns it
                WHEN x.kind = 'step' AND NOT 'owner' = ANY (x.changed) THEN 'alter'
                WHEN x.kind = 'alert_route' THEN 'alter'
                ELSE 'replace' END AS action
      FROM compared x;

    -- a pipeline (or step) dropped or replaced takes its checks and policy
    -- with it: those of the document are made again
    UPDATE pg_temp.pipeline_plan p SET action = 'create', drop_sql = NULL
     WHERE p.kind IN ('check', 'failure_policy', 'step_failure_policy') AND p.make_sql IS NOT NULL
       AND p.pipeline IN (SELECT r.key FROM pg_temp.pipeline_plan r
                           WHERE r.kind IN ('pipeline', 'step') AND r.action IN ('drop', 'replace'));
    UPDATE pg_temp.pipeline_plan p SET drop_sql = NULL
     WHERE p.kind IN ('check', 'failure_policy', 'step_failure_policy') AND p.action = 'drop'
       AND p.pipeline IN (SELECT r.key FROM pg_temp.pipeline_plan r
                           WHERE r.kind IN ('pipeline', 'step') AND r.action IN ('drop', 'replace'));

    -- a pipeline replaced while another that stays reads its target cannot
    -- be dropped: refused here, before anything changes
    SELECT r.object, pg_catalog.string_agg(d2.name, ', ' ORDER BY d2.name) AS readers INTO kept_reader
      FROM pg_temp.pipeline_plan r
      JOIN pipeline.pipeline_defs d ON d.name = r.key
      JOIN pipeline.pipeline_defs d2 ON d2.source = d.change_log AND d2.id <> d.id
     WHERE r.kind = 'pipeline' AND r.action = 'replace'
       AND NOT EXISTS (SELECT 1 FROM pg_temp.pipeline_plan o
                        WHERE o.kind = 'pipeline' AND o.key = d2.name AND o.action IN ('drop', 'replace'))
     GROUP BY r.object ORDER BY r.object LIMIT 1;
    IF kept_reader.object IS NULL THEN
        -- nor one that steps of the document still run after
        SELECT r.object, pg_catalog.string_agg(o.key, ', ' ORDER BY o.key) AS readers INTO kept_reader
          FROM pg_temp.pipeline_plan r
          JOIN pg_temp.pipeline_plan o ON o.kind = 'step' AND o.action NOT IN ('drop', 'replace')
                                      AND o.normal->'after' ? r.key
         WHERE r.kind = 'pipeline' AND r.action = 'drop'
         GROUP BY r.object ORDER BY r.object LIMIT 1;
        IF kept_reader.object IS NOT NULL THEN
            RAISE EXCEPTION 'cannot apply % of the pipeline document: the pipeline would be dropped, and steps % run after it',
                            kept_reader.object, kept_reader.readers
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = 'The document drops the pipeline, and its steps section still names it in their after.',
                      HINT = 'Keep the pipeline, or take it out of those steps'' after.';
        END IF;
    END IF;
    IF kept_reader.object IS NOT NULL THEN
        RAISE EXCEPTION 'cannot apply % of the pipeline document: the pipeline would be dropped and made again, and % read its target',
                        kept_reader.object, kept_reader.readers
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'A pipeline other pipelines read cannot be dropped; what changed is a setting alter_pipeline does not change.',
                  HINT = 'Change only the settings alter_pipeline changes, or make the readers again too (take them out of the document, apply, put them back).';
    END IF;

    -- a step that stays but stops running after a pipeline or step, or runs
    -- after one the plan drops or makes again, would hold the drop back:
    -- before the drops, its upstreams are cut to those that stay (and an
    -- on_upstream step left with none made manual meanwhile); after the
    -- makes, its alter sets them as the document says
    ALTER TABLE pg_temp.pipeline_plan ADD COLUMN pre_sql text;
    WITH gone AS (SELECT r.key FROM pg_temp.pipeline_plan r
                   WHERE r.kind IN ('pipeline', 'step') AND r.action IN ('drop', 'replace')),
    kept AS (
        SELECT p.key, ARRAY(SELECT e.a FROM pg_catalog.jsonb_array_elements_text(p.current_args->'after')
                                            WITH ORDINALITY e(a, n)
                             WHERE coalesce(p.normal->'after', '[]') ? e.a AND e.a NOT IN (SELECT g.key FROM gone g)
                             ORDER BY e.n) AS after
          FROM pg_temp.pipeline_plan p
         WHERE p.kind = 'step' AND p.action IN ('alter', 'unchanged')
           AND EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements_text(coalesce(p.current_args->'after', '[]')) e(a)
                        WHERE NOT coalesce(p.normal->'after', '[]') ? e.a OR e.a IN (SELECT g.key FROM gone g))),
    cut AS (SELECT k.key, k.after,
                   k.after = '{}' AND p.current_args->>'schedule' = 'on_upstream' AS made_manual
              FROM kept k JOIN pg_temp.pipeline_plan p ON p.kind = 'step' AND p.key = k.key)
    UPDATE pg_temp.pipeline_plan p
       SET pre_sql = pg_catalog.format('SELECT pipeline.alter_step(step_name => %L, after => %L::text[]%s)', c.key, c.after,
                                       CASE WHEN c.made_manual THEN ', schedule => ''manual''' ELSE '' END),
           current_args = pipeline.definition_strip(p.current_args || pg_catalog.jsonb_build_object(
                              'after', CASE WHEN c.after <> '{}' THEN pg_catalog.to_jsonb(c.after) END,
                              'schedule', CASE WHEN NOT c.made_manual THEN p.current_args->'schedule' END)),
           action = 'alter'
      FROM cut c WHERE p.kind = 'step' AND p.key = c.key;
    UPDATE pg_temp.pipeline_plan p SET changed = ARRAY['after'] WHERE p.pre_sql IS NOT NULL AND p.changed = '{}';

    RETURN QUERY
    WITH RECURSIVE
    -- pipelines made, after the pipelines whose targets they read or join
    making AS (SELECT p.key, pipeline.definition_relation(p.normal->>'target') AS target,
                      ARRAY[pipeline.definition_relation(p.normal->>'source')]
                        || ARRAY(SELECT pipeline.definition_relation(j->>'table')
                                   FROM pg_catalog.jsonb_array_elements(coalesce(p.normal->'joins', '[]')) j) AS reads
                 FROM pg_temp.pipeline_plan p WHERE p.kind = 'pipeline' AND p.action IN ('create', 'replace', 'alter')),
    depth AS (SELECT m.key, m.target, 0 AS depth FROM making m
               WHERE NOT EXISTS (SELECT 1 FROM making u WHERE u.target = ANY (m.reads) AND u.key <> m.key)
              UNION ALL
              SELECT m.key, m.target, d.depth + 1 FROM making m JOIN depth d ON d.target = ANY (m.reads) AND d.key <> m.key
               WHERE d.depth < 1000),
    made_depth AS (SELECT d.key, pg_catalog.max(d.depth) AS depth FROM depth d GROUP BY d.key),
    -- steps made, after the steps they run after
    making_steps AS (SELECT p.key, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(coalesce(p.normal->'after', '[]')))
                                   AS after
                       FROM pg_temp.pipeline_plan p WHERE p.kind = 'step' AND p.action IN ('create', 'replace', 'alter')),
    step_depth AS (SELECT m.key, 0 AS depth FROM making_steps m
                    WHERE NOT EXISTS (SELECT 1 FROM making_steps u WHERE u.key = ANY (m.after) AND u.key <> m.key)
                   UNION ALL
                   SELECT m.key, d.depth + 1 FROM making_steps m JOIN step_depth d ON d.key = ANY (m.after) AND d.key <> m.key
                    WHERE d.depth < 1000),
    made_step_depth AS (SELECT d.key, pg_catalog.max(d.depth) AS depth FROM step_depth d GROUP BY d.key),
    -- steps dropped, after the steps running after them
    defined_steps AS (SELECT s.id, s.name, 0 AS depth FROM pipeline.steps s
                       WHERE NOT EXISTS (SELECT 1 FROM pipeline.step_upstreams u
                                          WHERE u.step_id = s.id AND u.upstream_step IS NOT NULL)
                      UNION ALL
                      SELECT s.id, s.name, g.depth + 1 FROM pipeline.steps s
                        JOIN pipeline.step_upstreams u ON u.step_id = s.id JOIN defined_steps g ON g.id = u.upstream_step
                       WHERE g.depth < 1000),
    defined_step_depth AS (SELECT g.name, pg_catalog.max(g.depth) AS depth FROM defined_steps g GROUP BY g.name),
    -- pipelines dropped, after the pipelines reading their targets
    defined AS (SELECT d.name, 0 AS depth FROM pipeline.pipeline_defs d
                 WHERE NOT EXISTS (SELECT 1 FROM pipeline.pipeline_defs u WHERE u.change_log = d.source)
                UNION ALL
                SELECT d.name, g.depth + 1 FROM pipeline.pipeline_defs d
                  JOIN pipeline.pipeline_defs u ON u.change_log = d.source JOIN defined g ON g.name = u.name
                 WHERE g.depth < 1000),
    defined_depth AS (SELECT g.name, pg_catalog.max(g.depth) AS depth FROM defined g GROUP BY g.name),
    ordered AS (
        SELECT p.*,
               CASE p.kind WHEN 'pipeline' THEN 1 WHEN 'step' THEN 3 WHEN 'step_failure_policy' THEN 4 ELSE 2 END
                   AS phase,
               coalesce(md.depth, sd.depth) AS make_depth, coalesce(dd.depth, ds.depth) AS drop_depth,
               CASE WHEN p.kind = 'pipeline' AND p.action IN ('drop', 'replace') THEN
                   (SELECT b.pending_rows FROM pipeline.backlog(p.key, quiet => true) b) END AS pending,
               CASE WHEN p.kind = 'pipeline' AND p.action IN ('drop', 'replace') THEN
                   (SELECT pg_catalog.count(*) FROM pipeline.quarantine q WHERE q.pipeline = p.key) END AS quarantined
          FROM pg_temp.pipeline_plan p
          LEFT JOIN made_depth md ON md.key = p.key AND p.kind = 'pipeline'
          LEFT JOIN defined_depth dd ON dd.name = p.key AND p.kind = 'pipeline'
          LEFT JOIN made_step_depth sd ON sd.key = p.key AND p.kind = 'step'
          LEFT JOIN defined_step_depth ds ON ds.name = p.key AND p.kind = 'step')
    SELECT (pg_catalog.row_number() OVER (ORDER BY o.phase, o.make_depth, o.kind, o.object))::integer,
           o.action, o.kind, o.object,
           CASE WHEN o.action IN ('create', 'unchanged') THEN NULL
                ELSE pg_catalog.concat_ws('; ',
                    CASE WHEN o.action <> 'drop' THEN 'changes ' || pg_catalog.array_to_string(o.changed, ', ') END,
                    CASE WHEN o.kind = 'pipeline' AND o.action = 'replace'
                         THEN 'dropped and made again: its cursor, history and quarantine go, and the staged rows it has not archived are read again' END,
                    CASE WHEN o.kind = 'pipeline' AND o.action = 'alter' AND 'key' = ANY (o.changed)
                         THEN 'a new key, by which the target''s rows no longer match the events' END,
                    CASE WHEN o.kind = 'pipeline' AND o.action = 'alter' AND o.has_tombstones
                         THEN 'the deletes it remembers are forgotten (an older event may bring a deleted row back)' END,
                    CASE WHEN o.pending IS NULL AND o.kind = 'pipeline' AND o.action IN ('drop', 'replace')
                         THEN 'its staged rows could not be counted' END,
                    CASE WHEN o.pending = 1 THEN 'a staged row not merged yet is left behind'
                         WHEN o.pending > 1 THEN pg_catalog.format('%s staged rows not merged yet are left behind', o.pending) END,
                    CASE WHEN o.quarantined = 1 THEN 'a quarantined row goes with it'
                         WHEN o.quarantined > 1 THEN pg_catalog.format('%s quarantined rows go with it', o.quarantined) END,
                    CASE WHEN o.kind = 'freshness_check' AND o.action = 'replace' THEN 'its results and alerts go with it' END)
           END,
           o.kind = 'pipeline' AND (o.action = 'replace'
               OR o.action = 'alter' AND ('key' = ANY (o.changed) OR o.has_tombstones)
               OR o.action = 'drop' AND (o.pending IS DISTINCT FROM 0 OR o.quarantined > 0)),
           (pg_catalog.row_number() OVER (ORDER BY CASE WHEN o.pre_sql IS NOT NULL THEN 0
                                                        WHEN o.kind = 'pipeline' THEN 2 ELSE 1 END,
                                                   -o.drop_depth, o.kind, o.object))::integer,
           CASE WHEN o.action IN ('drop', 'replace') THEN o.drop_sql ELSE o.pre_sql END,
           CASE WHEN o.action IN ('create', 'replace') OR o.action = 'alter' AND o.kind NOT IN ('pipeline', 'step')
                THEN o.make_sql
                WHEN o.action = 'alter' AND o.kind = 'pipeline' THEN
                    pipeline.definition_alter('pipeline.alter_pipeline(text, text[], text, text, jsonb, text, text, bigint, text, interval, text, interval, text[])',
                        o.key, o.normal, o.current_args,
                        '{"columns": "{}", "on_schema_change": "ignore", "batch_size": "100000", "schedule": "manual",
                          "tombstone_retention": "7 days", "statement_timeout": "0", "track_history": "{}"}')
                WHEN o.action = 'alter' THEN
                    pipeline.definition_alter('pipeline.alter_step(text, text, text[], interval, regclass[], regclass[], text)',
                        o.key, o.normal, o.current_args,
                        '{"after": "{}", "statement_timeout": "0", "reads": "{}", "writes": "{}", "schedule": "manual"}')
           END,
           o.run_as
      FROM ordered o;
    DROP TABLE pg_temp.pipeline_plan;
END $$;
COMMENT ON FUNCTION pipeline.definition_plan(jsonb) IS
    'apply: the plan making the database match a document, in order, with the calls';

-- "SELECT pipeline.alter_pipeline(...)" (or alter_step): the settings of
-- the pipeline (or step) 'name' that differ between its arguments
-- 'current' and 'wanted' (both normalised), a setting the document leaves
-- out set back to what 'defaults' says.
CREATE FUNCTION pipeline.definition_alter(alter regprocedure, name text, wanted jsonb, current jsonb, defaults jsonb)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT format('SELECT %s(%I => %L%s)', alter::regproc, p.proargnames[1], name,
              string_agg(format(', %I => %s', e.key,
                  CASE WHEN wanted ? e.key THEN pipeline.definition_argument('', wanted->e.key, t.type)
                       ELSE format('%L::%s', coalesce(defaults->>e.key, ''), t.type) END), '' ORDER BY e.key))
  FROM pg_proc p
  CROSS JOIN jsonb_each(wanted || current) e
  CROSS JOIN LATERAL (SELECT p.proargtypes[array_position(p.proargnames, e.key) - 1]::regtype AS type) t
 WHERE p.oid = alter AND wanted->e.key IS DISTINCT FROM current->e.key
 GROUP BY p.proargnames
$$;
COMMENT ON FUNCTION pipeline.definition_alter(regprocedure, text, jsonb, jsonb, jsonb) IS
    'apply: the alter_pipeline (or alter_step) call changing a definition''s settings to a document''s';

-- Runs a step of apply, as role 'run_as' when the document names an owner
-- (the caller must be a member of it), back as 'caller_role' after; an
-- error is the step's, prefixed with its place in the document.
CREATE FUNCTION pipeline.definition_execute(object text, sql text, run_as text, caller_role text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    message text;
    err_detail text;
    err_hint text;
    state text;
BEGIN
    -- (SET ROLE asks only the session's user: a role the session set
    -- itself to must be a member of the owner too)
    IF run_as IS NOT NULL AND NOT pg_catalog.pg_has_role(current_user, run_as, 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" is not a member of role "%"', current_user, run_as
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The document names it the owner of this definition, which apply makes as that role.',
                  HINT = 'Apply the document as a member of that role, or leave the owner out to own the definition yourself.';
    END IF;
    IF run_as IS NOT NULL THEN
        PERFORM pg_catalog.set_config('role', run_as, true);
    END IF;
    EXECUTE sql;
    IF run_as IS NOT NULL THEN
        PERFORM pg_catalog.set_config('role', caller_role, true);
    END IF;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, err_detail = PG_EXCEPTION_DETAIL,
                            err_hint = PG_EXCEPTION_HINT, state = RETURNED_SQLSTATE;
    RAISE EXCEPTION 'cannot apply % of the pipeline document: %', object, message
        USING ERRCODE = state,
              DETAIL = coalesce(nullif(err_detail, '') || ' ', '') || 'Nothing of the document was applied.',
              HINT = coalesce(nullif(err_hint, ''), 'Mend the document at that place.');
END $$;
COMMENT ON FUNCTION pipeline.definition_execute(text, text, text, text) IS
    'apply: runs one step of the plan (as the owner the document names), its error prefixed with its place';

CREATE FUNCTION pipeline.apply(document jsonb, dry_run boolean DEFAULT true, allow_data_loss boolean DEFAULT false)
    RETURNS TABLE (step integer, action text, kind text, object text, detail text, data_loss boolean)
    LANGUAGE plpgsql VOLATILE
    AS $$
#variable_conflict use_column
DECLARE
    plan record;
    losses text;
    caller_role text := pg_catalog.current_setting('role');
BEGIN
    IF dry_run IS NULL OR allow_data_loss IS NULL THEN
        RAISE EXCEPTION 'dry_run and allow_data_loss of pipeline.apply must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  DETAIL = 'They say whether to change anything, and whether a change may lose data.',
                  HINT = 'Pass true or false.';
    END IF;
    -- one apply at a time: each plans against what the one before did
    -- (whose changes a READ COMMITTED statement sees once it has the lock)
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pipeline.apply'));
    CREATE TEMP TABLE pg_temp.pipeline_apply_plan ON COMMIT DROP AS SELECT * FROM pipeline.definition_plan(document);
    SELECT pg_catalog.string_agg(p.object, ', ' ORDER BY p.step) INTO losses
      FROM pg_temp.pipeline_apply_plan p WHERE p.data_loss;
    IF losses IS NOT NULL AND dry_run THEN
        RAISE WARNING 'applying this pipeline document would lose data: %', losses
            USING DETAIL = 'The plan''s rows with data_loss say how.',
                  HINT = 'Apply it with allow_data_loss => true once that is what you want.';
    ELSIF losses IS NOT NULL AND NOT allow_data_loss THEN
        RAISE EXCEPTION 'applying this pipeline document would lose data: %', losses
            USING ERRCODE = 'object_in_use',
                  DETAIL = 'Nothing was changed. pipeline.apply(document) (a dry run) lists the plan and says how.',
                  HINT = 'Apply it with allow_data_loss => true once that is what you want.';
    END IF;
    IF NOT dry_run THEN
        -- every drop first (the readers of a pipeline's target before it),
        -- then every make in step order
        FOR plan IN SELECT p.object, p.drop_sql AS sql, NULL::text AS run_as FROM pg_temp.pipeline_apply_plan p
                     WHERE p.drop_sql IS NOT NULL ORDER BY p.drop_order LOOP
            PERFORM pipeline.definition_execute(plan.object, plan.sql, plan.run_as, caller_role);
        END LOOP;
        FOR plan IN SELECT p.object, p.make_sql AS sql, p.run_as FROM pg_temp.pipeline_apply_plan p
                     WHERE p.make_sql IS NOT NULL ORDER BY p.step LOOP
            PERFORM pipeline.definition_execute(plan.object, plan.sql, plan.run_as, caller_role);
        END LOOP;
    END IF;
    RETURN QUERY SELECT p.step, p.action, p.kind, p.object, p.detail, p.data_loss
                   FROM pg_temp.pipeline_apply_plan p ORDER BY p.step;
    DROP TABLE pg_temp.pipeline_apply_plan;
END $$;
COMMENT ON FUNCTION pipeline.apply(jsonb, boolean, boolean) IS
    'makes the definitions of the document''s sections match it (create, alter, replace, drop), as the current role, in one transaction; returns the plan, and with dry_run (the default) only the plan; a change that would lose data needs allow_data_loss';
