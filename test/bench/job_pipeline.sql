-- a. The pipeline: one call merges every pending staged row, exactly once,
-- latest event per key wins, stale events are discarded; the cursor
-- advances in the same transaction as each batch.  (The batch_size, 1000000
-- or the default 100000, is set when bench.reset creates the pipeline.)
CALL pipeline.run('bench');
