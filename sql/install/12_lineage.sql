/* -------------------------------------------------------------- lineage */

/*
 * Lineage catalog (lineage.c): the edges of each pipeline, recomputed by
 * parse analysis of its definition whenever it is saved.  A column edge
 * has both column names, a row edge (filter, delete_when, sequence_by: it
 * decides whether a row lands) no target column, a table edge neither.
 */
CREATE TABLE pipeline.lineage_edges (
    pipeline_id     bigint NOT NULL
                    REFERENCES pipeline.pipeline_defs (id) ON DELETE CASCADE,
    source          regclass NOT NULL,
    source_column   text,
    target          regclass NOT NULL,
    target_column   text,
    lineage_type    text NOT NULL CHECK (lineage_type IN ('DIRECT', 'INDIRECT')),
    subtype         text CHECK (subtype IN ('IDENTITY', 'TRANSFORMATION', 'AGGREGATION',
                                            'FILTER', 'CONDITIONAL', 'SORT', 'GROUP_BY',
                                            'JOIN')),
    origin          text NOT NULL CHECK (origin IN ('pipeline', 'mapping', 'filter',
                                                    'delete_when', 'sequence_by', 'joins')),
    transformation  text,
    CHECK ((source_column IS NULL) = (subtype IS NULL)),
    CHECK (source_column IS NOT NULL OR target_column IS NULL),
    UNIQUE NULLS NOT DISTINCT (pipeline_id, source, source_column, target, target_column,
                               lineage_type, subtype, origin)
);
CREATE INDEX ON pipeline.lineage_edges (source);
CREATE INDEX ON pipeline.lineage_edges (target);
COMMENT ON TABLE pipeline.lineage_edges IS
    'lineage of each pipeline from parse analysis of its definition (read pipeline.lineage, which adds views and checks privileges)';
COMMENT ON COLUMN pipeline.lineage_edges.source IS
    'the relation read; for a pipeline reading a change log, the relation the log records';
COMMENT ON COLUMN pipeline.lineage_edges.target_column IS
    'the target column computed; NULL on an edge of the filter, delete_when or sequence_by, which decides whether a whole row lands';
COMMENT ON COLUMN pipeline.lineage_edges.lineage_type IS
    'DIRECT: the value flows into the target; INDIRECT: it only decides which value or which row (CASE conditions, filters, subquery conditions)';
COMMENT ON COLUMN pipeline.lineage_edges.transformation IS
    'the expression of the definition the edge comes from';
SELECT pg_catalog.pg_extension_config_dump('pipeline.lineage_edges', '');
ALTER TABLE pipeline.lineage_edges ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON pipeline.lineage_edges
    USING (pipeline.may_manage(pipeline_id));
GRANT SELECT ON pipeline.lineage_edges TO PUBLIC;

/* No SET clause, so that the planner inlines it into pipeline.lineage. */
CREATE FUNCTION pipeline.may_see(relation regclass) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
      SELECT coalesce(pg_catalog.has_table_privilege(relation, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')
                      OR pg_catalog.has_any_column_privilege(relation, 'SELECT,INSERT,UPDATE,REFERENCES'), false)
    $$;
COMMENT ON FUNCTION pipeline.may_see(regclass) IS
    'true when the current role holds some privilege on the relation (or on one of its columns); lineage shows only such relations';

CREATE FUNCTION pipeline.may_see_column(relation regclass, attnum smallint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
      SELECT coalesce(pg_catalog.has_column_privilege(relation, attnum, 'SELECT,INSERT,UPDATE,REFERENCES'), false)
    $$;
COMMENT ON FUNCTION pipeline.may_see_column(regclass, smallint) IS
    'true when the current role holds some privilege on the column (false for a column no longer there)';

/*
 * One row per edge: the stored edges, and the views and materialized views
 * that depend (pg_depend on their rewrite rule) on a relation of the graph,
 * transitively.  Not security_invoker: it reads every pipeline's edges and
 * shows those whose both ends the current role may see; a security barrier,
 * so that no function of a query on it sees the other edges first.  "stored" is read
 * once, so that the planner inlines it and a query on table edges skips
 * the column checks.
 */
CREATE VIEW pipeline.lineage WITH (security_barrier = true) AS
WITH RECURSIVE stored AS (
    SELECT d.name AS pipeline, e.*, sa.attnum AS source_attnum, ta.attnum AS target_attnum
      FROM pipeline.lineage_edges e
      JOIN pipeline.pipeline_defs d ON d.id = e.pipeline_id
      LEFT JOIN pg_attribute sa ON sa.attrelid = e.source AND sa.attname = e.source_column
                               AND NOT sa.attisdropped
      LEFT JOIN pg_attribute ta ON ta.attrelid = e.target AND ta.attname = e.target_column
                               AND NOT ta.attisdropped
     WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = e.source)
),
views (source, target) AS (
    SELECT dep.refobjid, rw.ev_class
      FROM pg_depend dep
      JOIN pg_rewrite rw ON rw.oid = dep.objid
     WHERE dep.classid = 'pg_rewrite'::regclass AND dep.refclassid = 'pg_class'::regclass
       AND dep.refobjid <> rw.ev_class
       AND (EXISTS (SELECT 1 FROM pipeline.lineage_edges e WHERE e.source = dep.refobjid)
            OR EXISTS (SELECT 1 FROM pipeline.lineage_edges e WHERE e.target = dep.refobjid)
            OR EXISTS (SELECT 1 FROM pipeline.step_relations e WHERE e.relation = dep.refobjid))
    UNION
    SELECT dep.refobjid, rw.ev_class
      FROM views v
      JOIN pg_depend dep ON dep.refobjid = v.target AND dep.refclassid = 'pg_class'::regclass
                        AND dep.classid = 'pg_rewrite'::regclass
      JOIN pg_rewrite rw ON rw.oid = dep.objid AND rw.ev_class <> v.target
)
SELECT s.pipeline,
       CASE WHEN s.source_column IS NULL THEN 'table' ELSE 'column' END AS level,
       s.source, s.source_column, s.target, s.target_column,
       s.lineage_type, s.subtype, s.origin, s.transformation, NULL::text AS step
  FROM stored s
 WHERE pipeline.may_see(s.source) AND pipeline.may_see(s.target)
   AND (s.source_column IS NULL OR pipeline.may_see_column(s.source, s.source_attnum))
   AND (s.target_column IS NULL OR pipeline.may_see_column(s.target, s.target_attnum))
UNION ALL
SELECT NULL, 'table', v.source::regclass, NULL, v.target::regclass, NULL, 'DIRECT', NULL,
       CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, NULL, NULL
  FROM views v
  JOIN pg_class c ON c.oid = v.target
 WHERE pipeline.may_see(v.source::regclass) AND pipeline.may_see(v.target::regclass)
UNION ALL
SELECT DISTINCT NULL, 'table', r.relation, NULL, w.relation, NULL, 'DIRECT', NULL, 'step', st.kind, st.name
  FROM pipeline.step_relations r
  JOIN pipeline.step_relations w ON w.step_id = r.step_id AND w.access = 'write' AND w.relation <> r.relation
  JOIN pipeline.steps st ON st.id = r.step_id
 WHERE r.access = 'read'
   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relation)
   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = w.relation)
   AND pipeline.may_see(r.relation) AND pipeline.may_see(w.relation);
COMMENT ON VIEW pipeline.lineage IS
    'one row per lineage edge (table: relation to relation through a pipeline, a view or a step; column: source column to target column), of the relations and columns the current role may see';
GRANT SELECT ON pipeline.lineage TO PUBLIC;

CREATE FUNCTION pipeline.relation_kind(relation regclass) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
      SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                            WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                            WHEN 'f' THEN 'foreign table' ELSE 'other' END
        FROM pg_class c WHERE c.oid = relation
    $$;
COMMENT ON FUNCTION pipeline.relation_kind(regclass) IS
    'internal: table, partitioned table, view, materialized view or foreign table';

/*
 * Impact analysis over the table edges.  The walk keeps (depth, relation,
 * via) triples only, so that a DAG's many paths collapse; each relation is
 * reported at its shortest distance, with what leads to it from the
 * relations one step nearer.  'down' walks from sources to targets,
 * otherwise back.  Each step reads only the edges of the relations just
 * reached (by index, through the lineage filter), never the whole view.
 */
CREATE FUNCTION pipeline.lineage_walk(start regclass, max_depth integer, down boolean)
    RETURNS TABLE (relation regclass, depth integer, relation_kind text, via text[])
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
      /* PL/pgSQL keeps the plan: a SQL function would plan the lineage view at every call */
      RETURN QUERY
      WITH RECURSIVE walk (depth, relation, via) AS (
          SELECT 0, start, NULL::text
          UNION
          SELECT w.depth + 1, e.next, e.via
            FROM walk w
           CROSS JOIN LATERAL (SELECT l.target AS next, coalesce(l.pipeline, l.step, l.origin) AS via
                                 FROM pipeline.lineage l
                                WHERE down AND l.level = 'table' AND l.source = w.relation
                               UNION ALL
                               SELECT l.source, coalesce(l.pipeline, l.step, l.origin)
                                 FROM pipeline.lineage l
                                WHERE NOT down AND l.level = 'table' AND l.target = w.relation) e
           WHERE w.depth < coalesce(max_depth, 1000)),
      nearest AS (SELECT w.relation, min(w.depth) AS depth FROM walk w GROUP BY w.relation)
      SELECT n.relation, n.depth, pipeline.relation_kind(n.relation),
             array_agg(DISTINCT w.via ORDER BY w.via)
        FROM nearest n JOIN walk w ON w.relation = n.relation AND w.depth = n.depth
       WHERE n.depth > 0
       GROUP BY n.relation, n.depth
       ORDER BY n.depth, n.relation::text;
    END
    $$;
COMMENT ON FUNCTION pipeline.lineage_walk(regclass, integer, boolean) IS
    'internal: the walk of downstream (down) and upstream';

CREATE FUNCTION pipeline.downstream(relation regclass, depth integer DEFAULT NULL)
    RETURNS TABLE (relation regclass, depth integer, relation_kind text, via text[])
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT * FROM pipeline.lineage_walk($1, $2, true) $$;
COMMENT ON FUNCTION pipeline.downstream(regclass, integer) IS
    'impact analysis: the relations (targets, views, materialized views) computed from a relation, at most depth steps away (NULL: any), with the pipelines or views leading to each';

CREATE FUNCTION pipeline.upstream(relation regclass, depth integer DEFAULT NULL)
    RETURNS TABLE (relation regclass, depth integer, relation_kind text, via text[])
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT * FROM pipeline.lineage_walk($1, $2, false) $$;
COMMENT ON FUNCTION pipeline.upstream(regclass, integer) IS
    'the relations a relation is computed from, at most depth steps away (NULL: any), with the pipelines or views leading from each';

/*
 * Column lineage: every edge on the way from the staging columns to a
 * column, each at the shortest distance from it.  Row edges (no target
 * column) bear on every column of their target.
 */
CREATE FUNCTION pipeline.column_lineage(relation regclass, column_name text)
    RETURNS TABLE (depth integer, source regclass, source_column text, target regclass,
                   target_column text, pipeline text, lineage_type text, subtype text,
                   origin text, transformation text)
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2
                        AND a.attnum > 0 AND NOT a.attisdropped) THEN
          RAISE EXCEPTION 'column "%" of relation % does not exist', $2, $1
                USING ERRCODE = 'undefined_column',
                      DETAIL = 'column_lineage follows the lineage of one column of a relation.',
                      HINT = 'Name a column as it is spelled in the catalog, without SQL quoting.';
      END IF;
      /*
       * each step reads only the edges into one column, by index through
       * the lineage filter (OFFSET 0 keeps the planner from joining the
       * whole view instead)
       */
      RETURN QUERY
      WITH RECURSIVE walk (depth, relation, column_name) AS (
          SELECT 0, $1, $2
          UNION
          SELECT w.depth + 1, e.source, e.source_column
            FROM walk w
           CROSS JOIN LATERAL (SELECT l.source, l.source_column FROM pipeline.lineage l
                                WHERE l.level = 'column' AND l.target = w.relation
                                  AND (l.target_column = w.column_name OR l.target_column IS NULL)
                               OFFSET 0) e
           WHERE w.depth < 1000),
      nearest AS (SELECT w.relation, w.column_name, min(w.depth) AS depth
                    FROM walk w GROUP BY w.relation, w.column_name)
      SELECT min(n.depth)::integer + 1, e.source, e.source_column, e.target, e.target_column, e.pipeline,
             e.lineage_type, e.subtype, e.origin, e.transformation
        FROM nearest n
       CROSS JOIN LATERAL (SELECT * FROM pipeline.lineage l
                            WHERE l.level = 'column' AND l.target = n.relation
                              AND (l.target_column = n.column_name OR l.target_column IS NULL)
                           OFFSET 0) e
       GROUP BY e.source, e.source_column, e.target, e.target_column, e.pipeline,
                e.lineage_type, e.subtype, e.origin, e.transformation
       ORDER BY 1, e.target::text, e.target_column NULLS LAST, e.source::text, e.source_column,
                e.origin, e.lineage_type;
    END
    $$;
COMMENT ON FUNCTION pipeline.column_lineage(regclass, text) IS
    'where a column comes from: every column edge on the way back to the staging columns, DIRECT (the value flows) or INDIRECT (it decides), with its expression';

CREATE FUNCTION pipeline.dot_quote(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT '"' || replace(replace(name, '\', '\\'), '"', '\"') || '"' $$;
COMMENT ON FUNCTION pipeline.dot_quote(text) IS
    'internal: a Graphviz DOT quoted string';

CREATE FUNCTION pipeline.dot_record_field(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT regexp_replace(name, '([\\{}|<>" ])', '\\\1', 'g') $$;
COMMENT ON FUNCTION pipeline.dot_record_field(text) IS
    'internal: text escaped for a field of a Graphviz record label, itself inside a DOT quoted string';

/*
 * Graphviz DOT of the lineage: relations as boxes (views dashed,
 * materialized views rounded), pipelines as ellipses and steps as hexagons
 * between them; edges that only decide are dashed.  With columns, a
 * relation is a record of its name (port t) and the columns on column
 * edges (ports c<attnum>, stacked in left-to-right ranks); column edges
 * leave a field on its east side and enter one on its west side, a row
 * edge enters the name.
 */
CREATE FUNCTION pipeline.lineage_dot(relation regclass DEFAULT NULL, columns boolean DEFAULT false)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
      WITH l AS MATERIALIZED (SELECT * FROM pipeline.lineage),
      near AS (
          SELECT $1 AS relation WHERE $1 IS NOT NULL
          UNION SELECT u.relation FROM pipeline.upstream($1) u WHERE $1 IS NOT NULL
          UNION SELECT d.relation FROM pipeline.downstream($1) d WHERE $1 IS NOT NULL),
      t AS (SELECT * FROM l WHERE l.level = 'table'
              AND ($1 IS NULL OR (l.source IN (SELECT relation FROM near)
                                  AND l.target IN (SELECT relation FROM near)))),
      rels AS (SELECT t.source AS relation FROM t UNION SELECT t.target FROM t
               UNION SELECT $1 WHERE $1 IS NOT NULL),
      cols AS (SELECT DISTINCT c.relation, a.attnum, a.attname::text AS name
                 FROM (SELECT l.source AS relation, l.source_column AS name FROM l
                        WHERE l.level = 'column'
                       UNION
                       SELECT l.target, l.target_column FROM l
                        WHERE l.level = 'column' AND l.target_column IS NOT NULL) c
                 JOIN pg_attribute a ON a.attrelid = c.relation AND a.attname = c.name
                WHERE $2 AND c.relation IN (SELECT r.relation FROM rels r)),
      fields AS (SELECT c.relation, string_agg('|<c' || c.attnum || '> ' || pipeline.dot_record_field(c.name),
                                               '' ORDER BY c.attnum) AS list
                   FROM cols c GROUP BY c.relation),
      /* with columns, a table edge joins a relation's title field (port t) */
      p AS (SELECT CASE WHEN $2 THEN ':t' ELSE '' END AS title),
      nodes (ord, line) AS (
          SELECT 1, '  ' || pipeline.dot_quote('rel:' || r.relation::text) || ' [shape='
                 || CASE WHEN $2 THEN 'record' ELSE 'box' END
                 || CASE pipeline.relation_kind(r.relation)
                         WHEN 'view' THEN ', style=dashed'
                         WHEN 'materialized view' THEN ', style=rounded' ELSE '' END
                 || ', label='
                 || CASE WHEN $2
                         THEN '"<t> ' || pipeline.dot_record_field(r.relation::text)
                              || coalesce(f.list, '') || '"'
                         ELSE pipeline.dot_quote(r.relation::text) END
                 || '];'
            FROM rels r LEFT JOIN fields f ON f.relation = r.relation
          UNION ALL
          SELECT 2, '  ' || pipeline.dot_quote('pipeline:' || p.pipeline)
                 || ' [shape=ellipse, style=filled, fillcolor="#dde8f7", label='
                 || pipeline.dot_quote(p.pipeline) || '];'
            FROM (SELECT DISTINCT t.pipeline FROM t WHERE t.pipeline IS NOT NULL) p
          UNION ALL
          SELECT 2, '  ' || pipeline.dot_quote('step:' || s.step)
                 || ' [shape=hexagon, style=filled, fillcolor="#e8f0dd", label='
                 || pipeline.dot_quote(s.step) || '];'
            FROM (SELECT DISTINCT t.step FROM t WHERE t.step IS NOT NULL) s),
      edges (ord, line) AS (
          SELECT 3, '  ' || pipeline.dot_quote('rel:' || t.source::text) || p.title || ' -> '
                 || pipeline.dot_quote('pipeline:' || t.pipeline)
                 || CASE WHEN t.lineage_type = 'INDIRECT' THEN ' [style=dashed];' ELSE ';' END
            FROM t, p WHERE t.pipeline IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('pipeline:' || t.pipeline) || ' -> '
                 || pipeline.dot_quote('rel:' || t.target::text) || p.title || ';'
            FROM t, p WHERE t.pipeline IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('rel:' || t.source::text) || p.title || ' -> '
                 || pipeline.dot_quote('step:' || t.step) || ';'
            FROM t, p WHERE t.step IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('step:' || t.step) || ' -> '
                 || pipeline.dot_quote('rel:' || t.target::text) || p.title || ';'
            FROM t, p WHERE t.step IS NOT NULL
          UNION
          SELECT 3, '  ' || pipeline.dot_quote('rel:' || t.source::text) || p.title || ' -> '
                 || pipeline.dot_quote('rel:' || t.target::text) || p.title || ' [style=dotted];'
            FROM t, p WHERE t.pipeline IS NULL AND t.step IS NULL
          UNION
          SELECT 4, '  ' || pipeline.dot_quote('rel:' || c.source::text) || ':c' || sa.attnum || ':e -> '
                 || pipeline.dot_quote('rel:' || c.target::text)
                 || coalesce(':c' || ta.attnum, ':t') || ':w'
                 || ' [color=gray40' || CASE WHEN c.lineage_type = 'INDIRECT' THEN ', style=dashed' ELSE '' END
                 || ', tooltip=' || pipeline.dot_quote(c.pipeline || ': ' || c.transformation) || '];'
            FROM l c
            JOIN pg_attribute sa ON sa.attrelid = c.source AND sa.attname = c.source_column
            LEFT JOIN pg_attribute ta ON ta.attrelid = c.target AND ta.attname = c.target_column
           WHERE $2 AND c.level = 'column'
             AND c.source IN (SELECT relation FROM rels) AND c.target IN (SELECT relation FROM rels))
      SELECT 'digraph lineage {' || E'\n'
             || '  rankdir=LR;' || E'\n'
             || '  node [fontname="Helvetica", fontsize=10];' || E'\n'
             || '  edge [color=gray20];' || E'\n'
             || coalesce((SELECT string_agg(x.line, E'\n' ORDER BY x.ord, x.line)
                            FROM (SELECT * FROM nodes UNION ALL SELECT * FROM edges) x) || E'\n', '')
             || '}' || E'\n'
    $$;
COMMENT ON FUNCTION pipeline.lineage_dot(regclass, boolean) IS
    'Graphviz DOT of the lineage the current role may see (of one relation: its upstream and downstream), with column edges when columns is true';
