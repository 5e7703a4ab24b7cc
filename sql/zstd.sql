-- pipeline.zstd_compress and zstd_decompress: byte-for-byte round trips at
-- several levels, frames other compressors write (no content size, several
-- frames), and corrupt input: random bytes, every truncation and every bit
-- flip of a valid value raise an error (a flip zstd cannot notice may only
-- give back the original), never a crash and never other data.
CALL number_ids_from(150000);
SET client_min_messages = warning;
\set VERBOSITY terse

CREATE TEMP TABLE events_json AS
SELECT convert_to(string_agg(format('{"id": %s, "at": "2026-11-23T10:%s:00Z", "kind": "order", "amount": %s}',
                                    g, lpad((g % 60)::text, 2, '0'), g % 977), E'\n'), 'UTF8') AS d
  FROM generate_series(1, 5000) g;
SELECT l AS level,
       pipeline.zstd_decompress(pipeline.zstd_compress(d, l)) = d AS round_trip,
       length(pipeline.zstd_compress(d, l)) * 5 < length(d) AS five_times_smaller
  FROM events_json, unnest(ARRAY[-5, 1, 3, 9, 19]) l ORDER BY l;
SELECT pipeline.zstd_decompress(pipeline.zstd_compress(''::bytea)) = ''::bytea AS empty_round_trip;
-- 1 MB of incompressible bytes
SELECT pipeline.zstd_decompress(pipeline.zstd_compress(r)) = r AS random_round_trip,
       length(r) AS bytes
  FROM (SELECT decode(string_agg(md5(g::text), ''), 'hex') AS r FROM generate_series(1, 65536) g) x;
-- 20 MB: above 16 MB of declared content, the output grows in steps
SELECT pipeline.zstd_decompress(pipeline.zstd_compress(big)) = big AS large_round_trip,
       length(pipeline.zstd_compress(big)) < 10000 AS tiny
  FROM (SELECT convert_to(repeat('pipeline ', 2222223), 'UTF8') AS big) x;
-- a frame without its content size (a raw block "hello", as streaming
-- compressors write), and two frames one after the other
SELECT convert_from(pipeline.zstd_decompress('\x28b52ffd000029000068656c6c6f'::bytea), 'UTF8') AS streamed;
SELECT convert_from(pipeline.zstd_decompress(pipeline.zstd_compress('abc') || pipeline.zstd_compress('def')),
                    'UTF8') AS two_frames;

-- Bad arguments and input.
SELECT pipeline.zstd_compress('x', 0);
SELECT pipeline.zstd_compress('x', 23);
SELECT pipeline.zstd_decompress('');
SELECT pipeline.zstd_decompress('not zstd at all');
SELECT pipeline.zstd_decompress('\x28b52ffd000029000068656c6c'::bytea);   -- the streamed frame, cut short
\set VERBOSITY default
SELECT pipeline.zstd_decompress('\x28b52ffd'::bytea);
\set VERBOSITY terse

-- Fuzzing.  outcome(input, original) says what decompressing gave.
CREATE FUNCTION pg_temp.outcome(input bytea, original bytea) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN CASE WHEN pipeline.zstd_decompress(input) = original THEN 'original' ELSE 'other data' END;
EXCEPTION WHEN data_corrupted OR program_limit_exceeded THEN
    RETURN 'error';
END $$;
SELECT setseed(0.42);
-- 3000 random inputs of 0 to 300 bytes, half of them behind zstd's magic number
SELECT pg_temp.outcome(CASE WHEN g % 2 = 0 THEN '\x28b52ffd'::bytea ELSE ''::bytea END || r, NULL) AS outcome,
       count(*)
  FROM generate_series(1, 3000) g,
       LATERAL (SELECT coalesce(decode(string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), ''), 'hex'), '')
                  FROM generate_series(1, (random() * 300)::int + g * 0)) x(r)
 GROUP BY 1 ORDER BY 1;
-- every truncation of a compressed value
SELECT pg_temp.outcome(substr(c, 1, n), d) AS outcome, count(*)
  FROM (SELECT d, pipeline.zstd_compress(d) AS c
          FROM (SELECT convert_to(repeat('pipeline ', 200) || 'end', 'UTF8') AS d) y) x,
       generate_series(0, length(c) - 1) n
 GROUP BY 1 ORDER BY 1;
-- every single-bit flip of a compressed value
SELECT pg_temp.outcome(set_bit(c, b, 1 - get_bit(c, b)), d) AS outcome, count(*)
  FROM (SELECT d, pipeline.zstd_compress(d) AS c
          FROM (SELECT convert_to(repeat('pipeline ', 200) || 'end', 'UTF8') AS d) y) x,
       generate_series(0, length(c) * 8 - 1) b
 GROUP BY 1 ORDER BY 1;
