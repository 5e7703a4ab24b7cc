-- Definitions as code: pipeline.export() writes every definition the
-- calling role may see as one JSON document, in the terms of the calls that
-- make them (create_pipeline, add_check, set_failure_policy,
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
    LANGUAGE plpgsql IMMUTABLE
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
    IF jsonb_typeof(given) = 'null' THEN
        RETURN 'NULL::' || type::text;
    END IF;
    IF wanted IS NOT NULL AND (jsonb_typeof(given) <> wanted OR wanted = 'array' AND
           EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(given) = 'array' THEN given ELSE '[]' END) e
                    WHERE jsonb_typeof(e) <> 'string')) THEN
        RAISE EXCEPTION 'invalid pipeline document at %', path
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value must be %s; it is %s.',
                                  CASE wanted WHEN 'array' THEN 'an array of strings' ELSE 'a ' || wanted END,
                                  CASE WHEN jsonb_typeof(given) = 'array' THEN 'an array of ' ||
                                       (SELECT string_agg(DISTINCT jsonb_typeof(e) || 's', ' and ') FROM jsonb_array_elements(given) e)
                                  ELSE pipeline.definition_kind_of(given) END),
                  HINT = format('Write it as the argument of type %s of the function that makes it.', type);
    END IF;
    -- a value its type refuses (an interval, a relation that does not
    -- exist but for one the document makes) is refused at its place
    IF wanted = 'string' AND NOT (type = 'regclass'::regtype AND pipeline.definition_relation(given #>> '{}') = ANY (coalesce(made, '{}'))) THEN
        BEGIN
            EXECUTE format('SELECT %L::%s', given #>> '{}', type);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS refused = MESSAGE_TEXT;
            RAISE EXCEPTION 'invalid pipeline document at %', path
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value is not of type %s: %s.', type, refused),
                      HINT = CASE WHEN type = 'regclass'::regtype THEN 'Name a table that exists, schema-qualified.'
                                  ELSE format('Write it as the argument of type %s of the function that makes it.', type) END;
        END;
    END IF;
    RETURN CASE
        WHEN wanted = 'array' THEN format('ARRAY(SELECT jsonb_array_elements_text(%L::jsonb))::%s', given, type)
        WHEN wanted IS NULL THEN format('%L::jsonb', given)
        ELSE format('%L::%s', given #>> '{}', type) END;
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
BEGIN
    SELECT proargnames, ARRAY(SELECT unnest(proargtypes)) INTO params, types FROM pg_proc WHERE oid = function;
    FOR entry IN SELECT key, value FROM jsonb_each(fixed || args) ORDER BY key LOOP
        i := array_position(params, entry.key);
        IF i IS NULL OR entry.key = ANY (ARRAY(SELECT jsonb_object_keys(fixed))) AND args ? entry.key THEN
            RAISE EXCEPTION 'invalid pipeline document at %', path || pipeline.definition_step(entry.key)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('%s takes no %s%s.', function::regproc,
                                      quote_ident(entry.key),
                                      CASE WHEN i IS NOT NULL THEN ' here: the document says it elsewhere' END),
                      HINT = format('Its keys are the arguments of %s: %s.', function::regproc,
                                    array_to_string(ARRAY(SELECT p FROM unnest(params) p
                                                          WHERE NOT fixed ? p ORDER BY p), ', '));
        END IF;
        list := list || format('%I => %s', entry.key,
                               pipeline.definition_argument(path || pipeline.definition_step(entry.key), entry.value, types[i]::regtype,
                                                           made));
    END LOOP;
    RETURN format('SELECT %s(%s)', function::regproc, array_to_string(list, ', '));
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
-- its identity (unique within the kind), where it is in the document, the
-- pipeline it belongs to, and the call's arguments as the document writes
-- them.  Errors naming the place of anything that is not where it may be.
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
     WHERE k NOT IN ('version', 'pipelines', 'freshness_checks', 'retention', 'alert_routes') ORDER BY k LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'invalid pipeline document at %', pipeline.definition_step(unknown)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('A document has no section %s.', quote_ident(unknown)),
                  HINT = 'Its sections are version, pipelines, freshness_checks, retention and alert_routes.';
    END IF;
    IF document ? 'version' AND document->'version' <> '1' THEN
        RAISE EXCEPTION 'invalid pipeline document at .version'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('This extension reads documents of version 1; this one says %s.', document->'version'),
                  HINT = 'Export the document again with this version of the extension.';
    END IF;
    FOR p IN SELECT key, value FROM jsonb_each(pipeline.definition_object('.pipelines', document->'pipelines')) ORDER BY key LOOP
        fpath := '.pipelines' || pipeline.definition_step(p.key);
        kind := 'pipeline'; identity := p.key; path := fpath; pipeline := p.key;
        args := pipeline.definition_object(fpath, p.value) - 'checks' - 'failure_policy';
        RETURN NEXT;
        FOR c IN SELECT key, value FROM jsonb_each(pipeline.definition_object(fpath || '.checks', p.value->'checks')) ORDER BY key LOOP
            kind := 'check'; identity := p.key || '.' || c.key; path := fpath || '.checks' || pipeline.definition_step(c.key);
            args := pipeline.definition_object(path, c.value);
            RETURN NEXT;
        END LOOP;
        IF p.value->'failure_policy' IS NOT NULL AND jsonb_typeof(p.value->'failure_policy') <> 'null' THEN
            kind := 'failure_policy'; identity := p.key; path := fpath || '.failure_policy';
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

-- The arguments of create_pipeline that made a pipeline, as a document
-- writes them: the source as given (a pipeline reading another's target is
-- stored reading that target's change log), the defaults the definition
-- filled in left out (delete_when of a change log, an aggregate's
-- source_key from the target's primary key), except_columns as the
-- columns object keeps them ({"column": null}).
CREATE FUNCTION pipeline.pipeline_arguments(d pipeline.pipeline_defs) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT pipeline.definition_strip(jsonb_build_object(
    'source', coalesce(up.target, d.source)::text,
    'target', d.target::text,
    'key', to_jsonb(d.key),
    'strategy', nullif(d.strategy, 'merge'),
    'sequence_by', d.sequence_by,
    'delete_when', CASE WHEN up.target IS NOT NULL AND d.strategy <> 'append'
                             AND d.delete_when = '_op = ''delete''' THEN NULL ELSE d.delete_when END,
    'columns', nullif(d.columns, '{}'),
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
                  'table', j.dimension::text, 'as', j.alias, 'kind', j.kind,
                  'on', (SELECT jsonb_object_agg(s, c) FROM unnest(j.source_columns, j.dimension_columns) u(s, c)))
                  ORDER BY j.position)
              FROM pipeline.pipeline_joins j WHERE j.pipeline_id = d.id),
    'format', d.format,
    'ignore_null_updates', to_jsonb(d.ignore_null_updates),
    'hard_deletes', d.hard_deletes,
    'max_delete_share', d.max_delete_share,
    'on_truncate', d.on_truncate,
    'extract_id', d.extract_id))
FROM (SELECT (SELECT u.target FROM pipeline.pipeline_defs u WHERE u.change_log = d.source) AS target) up
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

-- A freshness check's name in a document: its relation, then its column in
-- parentheses and its filter after "where", when it has them.
CREATE FUNCTION pipeline.freshness_label(relation text, column_name text, filter text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT relation || coalesce(' (' || column_name || ')', '') || coalesce(' where ' || filter, '') $$;
COMMENT ON FUNCTION pipeline.freshness_label(text, text, text) IS
    'a freshness check''s name in a document: relation, (column), where filter';

-- The arguments of add_alert_route that made each alert route (the
-- superuser's: a route's URL is a credential), by name.
CREATE FUNCTION pipeline.alert_route_arguments() RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    SET intervalstyle = postgres
    AS $$
SELECT coalesce((
        SELECT jsonb_object_agg(a.name, pipeline.definition_strip(jsonb_build_object(
                   'url', a.url, 'format', nullif(a.format, 'json'), 'owner', a.owner::text,
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
                 'failure_policy', nullif(pipeline.definition_strip(jsonb_build_object(
                     'retry_base', (d.retry_base_ms * interval '1 ms')::text,
                     'retry_max', (d.retry_max_ms * interval '1 ms')::text,
                     'suspend_after_failures', d.suspend_after_failures)), '{}'))))
        FROM pipeline.pipeline_defs d), '{}'),
    'freshness_checks', coalesce((
        SELECT jsonb_object_agg(pipeline.freshness_label(f.relation::text, f.column_name, f.filter),
                                pipeline.definition_strip(jsonb_build_object(
                                    'relation', f.relation::text, 'column_name', f.column_name, 'filter', f.filter,
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
    'every definition the current role may see -- pipelines with their checks and failure policies, freshness checks, retention, and (superusers) alert routes -- as one JSON document for pipeline.apply';

-- The function that makes an item of each kind, and the values it fills in
-- itself when given none (beside its parameters' defaults), which a
-- document may leave out.
CREATE FUNCTION pipeline.definition_function(kind text, OUT function regprocedure, OUT filled jsonb)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT CASE kind
         WHEN 'pipeline' THEN 'pipeline.create_pipeline(text, regclass, text, text[], text, text, text, jsonb, text, text, bigint, text, interval, interval, text[], text[], text, jsonb, text, text[], text[], text, real, text, text)'
         WHEN 'check' THEN 'pipeline.add_check(text, text, text, text, text, text[], text, text, text, regclass, text, text, bigint, bigint, text, text, text, double precision)'
         WHEN 'failure_policy' THEN 'pipeline.set_failure_policy(text, interval, interval, integer)'
         WHEN 'freshness_check' THEN 'pipeline.add_freshness_check(regclass, text, interval, interval, text, text, time without time zone, text)'
         WHEN 'retention' THEN 'pipeline.set_retention(regclass, interval, boolean, integer, integer, integer, interval)'
         WHEN 'alert_route' THEN 'pipeline.add_alert_route(text, text, text, regrole, text[], text[], regclass[], text, interval, interval, interval, boolean)'
       END::regprocedure,
       CASE kind WHEN 'check' THEN '{"kind": "expression", "action": "quarantine"}' ELSE '{}' END::jsonb
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
        CONTINUE WHEN i IS NULL OR pg_catalog.jsonb_typeof(entry.value) = 'null' OR f.filled->entry.key = entry.value;
        type := types[i];
        normal := CASE
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
        IF normal IS DISTINCT FROM fallback THEN
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
    WHEN 'check' THEN format('SELECT pipeline.drop_check(%L, %L)', pipeline, substr(identity, length(pipeline) + 2))
    WHEN 'failure_policy' THEN format('SELECT pipeline.set_failure_policy(%L)', identity)
    WHEN 'freshness_check' THEN format('SELECT pipeline.drop_freshness_check(f.id) FROM pipeline.freshness_checks f '
                                       'WHERE f.relation = %L::regclass AND f.column_name IS NOT DISTINCT FROM %L '
                                       'AND f.filter IS NOT DISTINCT FROM %L AND pg_has_role(f.owner, ''USAGE'')',
                                       args->>'relation', args->>'column_name', args->>'filter')
    WHEN 'retention' THEN format('SELECT pipeline.drop_retention(%L)', identity)
    WHEN 'alert_route' THEN format('SELECT pipeline.drop_alert_route(%L)', identity)
END
$$;
COMMENT ON FUNCTION pipeline.definition_drop(text, text, text, jsonb) IS
    'apply: the call dropping a definition';

-- What makes the database match 'document': one row per item of the
-- document's sections and of the database's in those sections (a section
-- the document leaves out is left alone), in the order apply takes them.
CREATE FUNCTION pipeline.definition_plan(document jsonb)
    RETURNS TABLE (step integer, action text, kind text, object text, detail text, data_loss boolean,
                   drop_sql text, make_sql text)
    LANGUAGE plpgsql VOLATILE
    AS $$
#variable_conflict use_column
DECLARE
    sections text[] := ARRAY(SELECT pg_catalog.jsonb_object_keys(document)
                             WHERE pg_catalog.jsonb_typeof(document) = 'object');
    recreated text[];
BEGIN
    CREATE TEMP TABLE pg_temp.pipeline_plan ON COMMIT DROP AS
    WITH items AS MATERIALIZED (SELECT * FROM pipeline.definition_items(document)),
    made AS MATERIALIZED (SELECT pg_catalog.array_agg(pipeline.definition_relation(i.args->>'target')) AS targets
                            FROM items i WHERE i.kind = 'pipeline'),
    called AS MATERIALIZED (
        SELECT w.*, pipeline.definition_call(w.path, (pipeline.definition_function(w.kind)).function,
                   CASE w.kind WHEN 'pipeline' THEN pg_catalog.jsonb_build_object('name', w.identity)
                               WHEN 'check' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline, 'check_name',
                                   pg_catalog.substr(w.identity, pg_catalog.length(w.pipeline) + 2))
                               WHEN 'failure_policy' THEN pg_catalog.jsonb_build_object('pipeline_name', w.pipeline)
                               WHEN 'retention' THEN pg_catalog.jsonb_build_object('source', w.identity)
                               WHEN 'alert_route' THEN pg_catalog.jsonb_build_object('name', w.identity)
                               ELSE '{}' END, w.args, (SELECT m.targets FROM made m)) AS make_sql
          FROM items w),
    wanted AS (SELECT w.*, pipeline.definition_normal(w.kind, w.args) AS normal FROM called w),
    wanted_keyed AS (
        SELECT w.*, CASE w.kind
                      WHEN 'freshness_check' THEN pipeline.freshness_label(w.normal->>'relation', w.normal->>'column_name', w.normal->>'filter')
                      WHEN 'retention' THEN pipeline.definition_relation(w.identity)
                      ELSE w.identity END AS key
          FROM wanted w),
    current AS (
        SELECT c.*, c.identity AS key FROM pipeline.definition_items(pipeline.export()) c
         WHERE CASE c.kind WHEN 'pipeline' THEN 'pipelines' WHEN 'check' THEN 'pipelines'
                           WHEN 'failure_policy' THEN 'pipelines' WHEN 'freshness_check' THEN 'freshness_checks'
                           WHEN 'retention' THEN 'retention' ELSE 'alert_routes' END = ANY (sections))
    SELECT coalesce(w.kind, c.kind) AS kind, coalesce(w.key, c.key) AS key, coalesce(w.path, c.path) AS object,
           coalesce(w.pipeline, c.pipeline) AS pipeline,
           CASE WHEN c.kind IS NULL THEN 'create' WHEN w.kind IS NULL THEN 'drop'
                WHEN w.normal = c.args THEN 'unchanged'
                WHEN w.kind = 'pipeline' AND NOT EXISTS (
                     SELECT 1 FROM pg_catalog.jsonb_each(w.normal || c.args) e
                      WHERE (w.normal->e.key) IS DISTINCT FROM (c.args->e.key)
                        AND e.key NOT IN ('key', 'sequence_by', 'delete_when', 'columns', 'filter', 'on_schema_change',
                                          'batch_size', 'schedule', 'tombstone_retention', 'statement_timeout', 'track_history'))
                     THEN 'alter'
                WHEN w.kind IN ('failure_policy', 'retention') THEN 'alter'
                ELSE 'replace' END AS action,
           (SELECT pg_catalog.string_agg(e.key, ', ' ORDER BY e.key) FROM pg_catalog.jsonb_each(coalesce(w.normal, '{}') || coalesce(c.args, '{}')) e
             WHERE (w.normal->e.key) IS DISTINCT FROM (c.args->e.key)) AS changed,
           w.normal, c.args AS current_args, w.make_sql,
           pipeline.definition_drop(c.kind, c.identity, c.pipeline, c.args) AS drop_sql
      FROM wanted_keyed w FULL JOIN current c ON c.kind = w.kind AND c.key = w.key;

    -- a pipeline dropped or replaced takes its checks and policy with it:
    -- those of the document are made again
    recreated := ARRAY(SELECT p.key FROM pg_temp.pipeline_plan p WHERE p.kind = 'pipeline' AND p.action IN ('drop', 'replace'));
    UPDATE pg_temp.pipeline_plan p SET action = 'create', drop_sql = NULL
     WHERE p.kind IN ('check', 'failure_policy') AND p.pipeline = ANY (recreated) AND p.make_sql IS NOT NULL;
    UPDATE pg_temp.pipeline_plan p SET drop_sql = NULL
     WHERE p.kind IN ('check', 'failure_policy') AND p.pipeline = ANY (recreated) AND p.action = 'drop';

    RETURN QUERY
    WITH RECURSIVE
    -- pipelines to make, after the pipelines whose targets they read
    making AS (SELECT p.key, p.normal->>'source' AS source, pipeline.definition_relation(p.normal->>'target') AS target
                 FROM pg_temp.pipeline_plan p WHERE p.kind = 'pipeline' AND p.action IN ('create', 'replace', 'alter')),
    depth AS (SELECT m.key, m.target, 0 AS depth FROM making m
               WHERE NOT EXISTS (SELECT 1 FROM making u WHERE u.target = m.source AND u.key <> m.key)
              UNION ALL
              SELECT m.key, m.target, d.depth + 1 FROM making m JOIN depth d ON d.target = m.source AND d.key <> m.key
               WHERE d.depth < 1000),
    -- pipelines to drop, after the pipelines reading their targets
    defined AS (SELECT d.name, 0 AS depth FROM pipeline.pipeline_defs d
                 WHERE NOT EXISTS (SELECT 1 FROM pipeline.pipeline_defs u WHERE u.change_log = d.source)
                UNION ALL
                SELECT d.name, g.depth + 1 FROM pipeline.pipeline_defs d
                  JOIN pipeline.pipeline_defs u ON u.change_log = d.source JOIN defined g ON g.name = u.name
                 WHERE g.depth < 1000),
    ordered AS (
        SELECT p.*,
               -- drops first, pipelines before what belongs to them
               CASE WHEN p.action = 'drop' AND p.kind <> 'pipeline' THEN 1
                    WHEN p.kind = 'pipeline' AND p.action IN ('drop', 'replace') THEN 2
                    WHEN p.kind = 'pipeline' THEN 3
                    ELSE 4 END AS phase,
               (SELECT max(d.depth) FROM depth d WHERE d.key = p.key) AS made_depth,
               (SELECT max(g.depth) FROM defined g WHERE g.name = p.key AND p.kind = 'pipeline') AS defined_depth
          FROM pg_temp.pipeline_plan p)
    SELECT (row_number() OVER (ORDER BY o.phase, CASE WHEN o.phase = 2 THEN -o.defined_depth END,
                                         o.made_depth, o.kind, o.object))::integer,
           o.action, o.kind, o.object,
           CASE o.action
               WHEN 'create' THEN NULL
               WHEN 'unchanged' THEN NULL
               WHEN 'drop' THEN CASE WHEN o.kind = 'pipeline' THEN
                   (SELECT CASE WHEN b.pending_rows = 1 THEN 'a staged row not merged yet is left behind'
                                WHEN b.pending_rows > 1 THEN pg_catalog.format('%s staged rows not merged yet are left behind', b.pending_rows) END
                      FROM pipeline.backlog(o.key, quiet => true) b) END
               ELSE 'changes ' || o.changed ||
                    CASE WHEN o.kind = 'pipeline' AND o.action = 'replace'
                         THEN ': dropped and created again, its cursor, history and quarantine lost, the staged rows it has not archived read again'
                         WHEN o.kind = 'pipeline' AND o.current_args->'key' IS DISTINCT FROM o.normal->'key'
                         THEN ': a new key, by which the target''s existing rows no longer match the events'
                         ELSE '' END
           END,
           o.kind = 'pipeline' AND (o.action = 'replace'
               OR o.action = 'alter' AND o.current_args->'key' IS DISTINCT FROM o.normal->'key'
               OR o.action = 'drop' AND coalesce((SELECT b.pending_rows > 0 FROM pipeline.backlog(o.key, quiet => true) b), false)),
           CASE WHEN o.action IN ('drop', 'replace') THEN o.drop_sql END,
           CASE WHEN o.action IN ('create', 'replace') OR o.action = 'alter' AND o.kind <> 'pipeline' THEN o.make_sql
                WHEN o.action = 'alter' THEN pipeline.definition_alter(o.key, o.normal, o.current_args) END
      FROM ordered o;
    DROP TABLE pg_temp.pipeline_plan;
END $$;
COMMENT ON FUNCTION pipeline.definition_plan(jsonb) IS
    'apply: the plan making the database match a document, in order, with the calls';

-- "SELECT pipeline.alter_pipeline(...)": the settings of pipeline 'name'
-- that differ between its arguments 'current' and 'wanted' (both
-- normalised), a setting the document leaves out set back to its default.
CREATE FUNCTION pipeline.definition_alter(name text, wanted jsonb, current jsonb) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
SELECT format('SELECT pipeline.alter_pipeline(name => %L%s)', name, string_agg(format(', %I => %s', e.key,
           CASE WHEN wanted ? e.key THEN pipeline.definition_argument('', wanted->e.key, t.type)
                ELSE format('%L::%s', CASE e.key WHEN 'columns' THEN '{}' WHEN 'on_schema_change' THEN 'ignore'
                                                 WHEN 'batch_size' THEN '100000' WHEN 'schedule' THEN 'manual'
                                                 WHEN 'tombstone_retention' THEN '7 days' WHEN 'statement_timeout' THEN '0'
                                                 WHEN 'track_history' THEN '{}' ELSE '' END, t.type) END), '' ORDER BY e.key))
  FROM jsonb_each(wanted || current) e
  CROSS JOIN LATERAL (SELECT p.proargtypes[array_position(p.proargnames, e.key) - 1]::regtype AS type
                        FROM pg_proc p
                       WHERE p.oid = 'pipeline.alter_pipeline(text, text[], text, text, jsonb, text, text, bigint, text, interval, text, interval, text[])'::regprocedure) t
 WHERE wanted->e.key IS DISTINCT FROM current->e.key
$$;
COMMENT ON FUNCTION pipeline.definition_alter(text, jsonb, jsonb) IS
    'apply: the alter_pipeline call changing a pipeline''s settings to a document''s';

CREATE FUNCTION pipeline.apply(document jsonb, dry_run boolean DEFAULT true, allow_data_loss boolean DEFAULT false)
    RETURNS TABLE (step integer, action text, kind text, object text, detail text, data_loss boolean)
    LANGUAGE plpgsql VOLATILE
    AS $$
#variable_conflict use_column
DECLARE
    plan record;
    losses text;
    message text;
    err_detail text;
    err_hint text;
    state text;
BEGIN
    IF dry_run IS NULL OR allow_data_loss IS NULL THEN
        RAISE EXCEPTION 'dry_run and allow_data_loss of pipeline.apply must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  DETAIL = 'They say whether to change anything, and whether a change may lose data.',
                  HINT = 'Pass true or false.';
    END IF;
    -- one apply at a time: each plans against what the one before did
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
        FOR plan IN SELECT * FROM pg_temp.pipeline_apply_plan p ORDER BY p.step LOOP
            BEGIN
                IF plan.drop_sql IS NOT NULL THEN
                    EXECUTE plan.drop_sql;
                END IF;
                IF plan.make_sql IS NOT NULL THEN
                    EXECUTE plan.make_sql;
                END IF;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, err_detail = PG_EXCEPTION_DETAIL,
                                        err_hint = PG_EXCEPTION_HINT, state = RETURNED_SQLSTATE;
                RAISE EXCEPTION 'cannot apply % of the pipeline document: %', plan.object, message
                    USING ERRCODE = state,
                          DETAIL = coalesce(nullif(err_detail, '') || ' ', '') || 'Nothing of the document was applied.',
                          HINT = coalesce(nullif(err_hint, ''), 'Mend the document at that place.');
            END;
        END LOOP;
    END IF;
    RETURN QUERY SELECT p.step, p.action, p.kind, p.object, p.detail, p.data_loss
                   FROM pg_temp.pipeline_apply_plan p ORDER BY p.step;
    DROP TABLE pg_temp.pipeline_apply_plan;
END $$;
COMMENT ON FUNCTION pipeline.apply(jsonb, boolean, boolean) IS
    'makes the definitions of the document''s sections match it (create, alter, replace, drop), as the current role, in one transaction; returns the plan, and with dry_run (the default) only the plan; a change that would lose data needs allow_data_loss';
