-- c. What dbt-postgres runs for an incremental model with
--      config(materialized='incremental', unique_key='order_id',
--             incremental_strategy='delete+insert',
--             post_hook='update bench.watermark set last_id = ...')
-- on an existing target, as modelled on dbt-labs/dbt-adapters
-- dbt/include/global_project/macros/materializations/models/incremental/
-- incremental.sql (BEGIN; the model into a temporary relation with
-- get_create_table_as_sql(True, ...); the strategy SQL; post hooks inside
-- the transaction; COMMIT), merge.sql default__get_delete_insert_merge_sql
-- (a string unique_key gives "delete from <target> where (<key>) in (select
-- (<key>) from <tmp>)" then "insert into <target> (<cols>) (select <cols>
-- from <tmp>)"), and dbt-labs/dbt-postgres adapters.sql
-- postgres__create_table_as ("create temporary table <tmp> as (<sql>)").
-- Left out: dbt's metadata queries (columns of both relations) between the
-- statements, a few milliseconds.
--
-- The model (the SELECT below) reads new rows through the same watermark
-- as the hand-written job (is_incremental() branch), keeps the latest event
-- per key (DISTINCT ON, like the others) and drops events older than the
-- target's row, since delete+insert itself replaces rows unconditionally.
BEGIN;
create temporary table "target__dbt_tmp120000000000"
  as (
    select distinct on (order_id) order_id, customer_id, amount, status, updated_at, payload
      from bench.staging s
     where s.ingest_id > (select last_id from bench.watermark)
       and not exists (select 1 from bench.target t
                        where t.order_id = s.order_id and t.updated_at > s.updated_at)
     order by order_id, updated_at desc
  );
delete from "bench"."target"
    where (
        order_id) in (
        select (order_id)
        from "target__dbt_tmp120000000000"
    );
insert into "bench"."target" ("order_id", "customer_id", "amount", "status", "updated_at", "payload")
    (
        select "order_id", "customer_id", "amount", "status", "updated_at", "payload"
        from "target__dbt_tmp120000000000"
    );
update bench.watermark set last_id = (select max(ingest_id) from bench.staging);
COMMIT;
