-- Names that need quoting: spaces, mixed case, reserved words, quotes,
-- 63-byte identifiers.
CALL number_ids_from(60000);
SET client_min_messages = warning;
CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Order Items" ("Order Id" int, "select" text, "User" text, "Qty ""x""" int,
                                         "order" int);
SELECT pipeline.create_pipeline('order items "silver"', '"Sales Data"."Order Items"',
    '"Sales Data"."Clean Items"', key => ARRAY['Order Id'], sequence_by => 'order',
    delete_when => $$"select" = 'd'$$, columns => '{"User": "upper(\"User\")"}') > 0 AS created;
INSERT INTO "Sales Data"."Order Items" VALUES (1, 'u', 'ann', 2, 1), (1, 'u', 'ann', 3, 2), (2, 'u', 'bob', 1, 1),
                                                (2, 'd', NULL, NULL, 5);
CALL pipeline.run('order items "silver"');
SELECT * FROM "Sales Data"."Clean Items" ORDER BY 1;
SELECT "Order Id", "order" FROM "Sales Data"."Clean Items_tombstones" ORDER BY 1;

-- 63-byte table and column names; the tombstone table's name is truncated
-- and kept unique.
CREATE TABLE "Sales Data".t63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    (c63_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb int, v int, op text);
SELECT pipeline.create_pipeline('p63', '"Sales Data".t63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    '"Sales Data".u63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    key => ARRAY['c63_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'], sequence_by => 'v',
    delete_when => $$op = 'd'$$) > 0 AS created;
SELECT pipeline.create_pipeline('p63 again', '"Sales Data".t63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    '"Sales Data".u63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    key => ARRAY['c63_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'], sequence_by => 'v',
    delete_when => $$op = 'd'$$) > 0 AS created_second;
SELECT relname, length(relname) FROM pg_class WHERE relnamespace = '"Sales Data"'::regnamespace
   AND relkind = 'r' ORDER BY 1;
INSERT INTO "Sales Data".t63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa VALUES (1, 1, 'u'), (2, 1, 'u'), (2, 2, 'd');
CALL pipeline.run('p63');
CALL pipeline.run('p63 again');
SELECT * FROM "Sales Data".u63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;

-- A 64-byte pipeline name is refused.
\set VERBOSITY terse
SELECT pipeline.create_pipeline(repeat('x', 64), '"Sales Data"."Order Items"', '"Sales Data".x', key => ARRAY['Order Id']);
\set VERBOSITY default

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines ORDER BY name;
DROP SCHEMA "Sales Data" CASCADE;
