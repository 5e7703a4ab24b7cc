/*-------------------------------------------------------------------------
 *
 * archive.h
 *	  Consumed staging rows leave for compressed archive batches: the
 *	  archive pass and retention (archive.c), the batch format
 *	  (archive_format.c), and zstd (zstd.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_ARCHIVE_H
#define PIPELINE_ARCHIVE_H

#include "model.h"

/* archive_format.c: a batch's rows, encoded (see the file comment) */
#define PIPELINE_ARCHIVE_HEADER_SIZE 6

typedef struct ArchiveEncoder
{
	int			first;			/* first archived column of the rows (from 1) */
	int			ncols;
	FmgrInfo   *output;			/* each column's output function */
	StringInfoData buf;			/* the uncompressed payload so far */
	int			rows;
} ArchiveEncoder;

/* A batch as pipeline.archive_batches holds it, to be read back. */
typedef struct ArchivedBatch
{
	int64		id;
	Oid			source;			/* InvalidOid once the table was dropped */
	char	   *source_name;
	bytea	   *payload;
	int64		raw_bytes;
	int64		checksum;
	int64		row_count;
	Jsonb	   *columns;
	char	   *fingerprint;
	bytea	   *dictionary;		/* NULL: none */
} ArchivedBatch;

/* zstd.c */
extern void pipeline_zstd_check_level(int level);
extern bytea *pipeline_zstd_compress_bytes(const char *src, size_t len, int level,
										   const bytea *dictionary);
extern bytea *pipeline_zstd_decompress_bytes(const char *src, size_t len,
											 const bytea *dictionary, const char **why);
extern bytea *pipeline_zstd_train(const char *samples, const size_t *sizes, unsigned nsamples,
								  size_t capacity, const char **why);

/* archive_format.c */
extern int	pipeline_archive_pin_formats(void);
extern void pipeline_archive_unpin_formats(int level);
extern void pipeline_archive_columns(Oid relid, Jsonb **columns, char **fingerprint);
extern ArchiveEncoder *pipeline_archive_encoder(TupleDesc desc, int first);
extern void pipeline_archive_encoder_reset(ArchiveEncoder *enc);
extern void pipeline_archive_encode_row(ArchiveEncoder *enc, HeapTuple tuple, TupleDesc desc);
extern uint32 pipeline_archive_checksum(const char *data, size_t len);

/* archive.c */
extern void pipeline_archive_new_reader(Oid source);
extern void pipeline_archive_after_run(const PipelineDef *def);

#endif							/* PIPELINE_ARCHIVE_H */
