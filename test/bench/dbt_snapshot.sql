-- dbt's snapshot of table src into snap, after its first run, as
-- dbt-postgres renders its snapshot materialization for
--   strategy = 'check', check_cols = 'all', unique_key = 'id',
--   hard_deletes = 'invalidate'
-- (dbt-adapters: macros/materializations/snapshots/snapshot.sql,
-- helpers.sql, strategies.sql; dbt-postgres: snapshot_merge.sql): a
-- staging table of insertions, updates and deletes, then an UPDATE that
-- closes versions and an INSERT of the new ones, in one transaction.  The
-- catalog queries dbt runs in between (new columns) are left out: the
-- schema does not change.  snapshot.sh times it against the pipeline.
BEGIN;
CREATE TEMPORARY TABLE snap__dbt_tmp AS (
    WITH snapshot_query AS (
        SELECT * FROM src
    ),
    snapshotted_data AS (
        SELECT *, id AS dbt_unique_key
          FROM snap
         WHERE dbt_valid_to IS NULL
    ),
    insertions_source_data AS (
        SELECT *, id AS dbt_unique_key,
               now()::timestamp without time zone AS dbt_updated_at,
               now()::timestamp without time zone AS dbt_valid_from,
               coalesce(nullif(now()::timestamp without time zone, now()::timestamp without time zone), NULL) AS dbt_valid_to,
               md5(coalesce(cast(id AS varchar), '') || '|' || coalesce(cast(now()::timestamp without time zone AS varchar), '')) AS dbt_scd_id
          FROM snapshot_query
    ),
    updates_source_data AS (
        SELECT *, id AS dbt_unique_key,
               now()::timestamp without time zone AS dbt_updated_at,
               now()::timestamp without time zone AS dbt_valid_from,
               now()::timestamp without time zone AS dbt_valid_to
          FROM snapshot_query
    ),
    deletes_source_data AS (
        SELECT *, id AS dbt_unique_key
          FROM snapshot_query
    ),
    insertions AS (
        SELECT 'insert' AS dbt_change_type, source_data.*
          FROM insertions_source_data AS source_data
          LEFT OUTER JOIN snapshotted_data ON snapshotted_data.dbt_unique_key = source_data.dbt_unique_key
         WHERE snapshotted_data.dbt_unique_key IS NULL
            OR (snapshotted_data.dbt_unique_key IS NOT NULL AND (
                   (snapshotted_data."id" != source_data."id"
                    OR ((snapshotted_data."id" IS NULL) AND NOT (source_data."id" IS NULL))
                    OR ((NOT snapshotted_data."id" IS NULL) AND (source_data."id" IS NULL))
                    OR snapshotted_data."name" != source_data."name"
                    OR ((snapshotted_data."name" IS NULL) AND NOT (source_data."name" IS NULL))
                    OR ((NOT snapshotted_data."name" IS NULL) AND (source_data."name" IS NULL))
                    OR snapshotted_data."amount" != source_data."amount"
                    OR ((snapshotted_data."amount" IS NULL) AND NOT (source_data."amount" IS NULL))
                    OR ((NOT snapshotted_data."amount" IS NULL) AND (source_data."amount" IS NULL))
                    OR snapshotted_data."status" != source_data."status"
                    OR ((snapshotted_data."status" IS NULL) AND NOT (source_data."status" IS NULL))
                    OR ((NOT snapshotted_data."status" IS NULL) AND (source_data."status" IS NULL)))))
    ),
    updates AS (
        SELECT 'update' AS dbt_change_type, source_data.*, snapshotted_data.dbt_scd_id
          FROM updates_source_data AS source_data
          JOIN snapshotted_data ON snapshotted_data.dbt_unique_key = source_data.dbt_unique_key
         WHERE (snapshotted_data."id" != source_data."id"
                OR ((snapshotted_data."id" IS NULL) AND NOT (source_data."id" IS NULL))
                OR ((NOT snapshotted_data."id" IS NULL) AND (source_data."id" IS NULL))
                OR snapshotted_data."name" != source_data."name"
                OR ((snapshotted_data."name" IS NULL) AND NOT (source_data."name" IS NULL))
                OR ((NOT snapshotted_data."name" IS NULL) AND (source_data."name" IS NULL))
                OR snapshotted_data."amount" != source_data."amount"
                OR ((snapshotted_data."amount" IS NULL) AND NOT (source_data."amount" IS NULL))
                OR ((NOT snapshotted_data."amount" IS NULL) AND (source_data."amount" IS NULL))
                OR snapshotted_data."status" != source_data."status"
                OR ((snapshotted_data."status" IS NULL) AND NOT (source_data."status" IS NULL))
                OR ((NOT snapshotted_data."status" IS NULL) AND (source_data."status" IS NULL)))
    ),
    deletes AS (
        SELECT 'delete' AS dbt_change_type, source_data.*,
               now()::timestamp without time zone AS dbt_valid_from,
               now()::timestamp without time zone AS dbt_updated_at,
               now()::timestamp without time zone AS dbt_valid_to,
               snapshotted_data.dbt_scd_id
          FROM snapshotted_data
          LEFT JOIN deletes_source_data AS source_data ON snapshotted_data.dbt_unique_key = source_data.dbt_unique_key
         WHERE source_data.dbt_unique_key IS NULL
    )
    SELECT * FROM insertions
    UNION ALL
    SELECT * FROM updates
    UNION ALL
    SELECT * FROM deletes
);
UPDATE snap
   SET dbt_valid_to = DBT_INTERNAL_SOURCE.dbt_valid_to
  FROM snap__dbt_tmp AS DBT_INTERNAL_SOURCE
 WHERE DBT_INTERNAL_SOURCE.dbt_scd_id::text = snap.dbt_scd_id::text
   AND DBT_INTERNAL_SOURCE.dbt_change_type::text IN ('update'::text, 'delete'::text)
   AND snap.dbt_valid_to IS NULL;
INSERT INTO snap ("id", "name", "amount", "status", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to", "dbt_scd_id")
SELECT DBT_INTERNAL_SOURCE."id", DBT_INTERNAL_SOURCE."name", DBT_INTERNAL_SOURCE."amount", DBT_INTERNAL_SOURCE."status",
       DBT_INTERNAL_SOURCE."dbt_updated_at", DBT_INTERNAL_SOURCE."dbt_valid_from", DBT_INTERNAL_SOURCE."dbt_valid_to",
       DBT_INTERNAL_SOURCE."dbt_scd_id"
  FROM snap__dbt_tmp AS DBT_INTERNAL_SOURCE
 WHERE DBT_INTERNAL_SOURCE.dbt_change_type::text = 'insert'::text;
COMMIT;
DROP TABLE snap__dbt_tmp;
