/*-------------------------------------------------------------------------
 *
 * zstd.c
 *	  SQL access to zstd: pipeline.zstd_compress and zstd_decompress.
 *
 * Compressed values are standard zstd frames (the `zstd` command reads
 * them) with the content size and a checksum of the content, so that
 * corruption is reported instead of returned.  Decompression accepts any
 * zstd input: several frames one after another, and frames without a
 * content size (written by streaming compressors), which are decompressed
 * in steps.  Its output is limited to what a bytea can hold; anything that
 * is not valid zstd, is truncated or fails its checksum raises an error,
 * before much memory is spent on it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include <zstd.h>

#include "pipeline.h"

PG_FUNCTION_INFO_V1(pipeline_zstd_compress);
PG_FUNCTION_INFO_V1(pipeline_zstd_decompress);

/* The largest bytea content: what decompression may produce. */
#define MAX_CONTENT ((size_t) (MaxAllocSize - VARHDRSZ))

/* Above this declared size, the output grows as the data proves real. */
#define LARGE_CONTENT ((unsigned long long) 16 * 1024 * 1024)

/* Contexts kept for the life of the backend (zstd allocates them). */
static ZSTD_CCtx *cctx = NULL;
static ZSTD_DCtx *dctx = NULL;

/*
 * out_of_memory
 *		zstd could not allocate its working memory.
 */
static void
out_of_memory(void) pg_attribute_noreturn();
static void
out_of_memory(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("out of memory"),
			 errdetail("zstd could not allocate its working memory."),
			 errhint("Retry when the server has more free memory.")));
}

/*
 * too_large
 *		Reports content larger than a bytea can hold.
 */
static void
too_large(void) pg_attribute_noreturn();
static void
too_large(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("decompressed value too large"),
			 errdetail("It exceeds the largest bytea value, 1 GB."),
			 errhint("Decompress it outside the database.")));
}

/*
 * corrupt
 *		Reports input that is not valid zstd.
 */
static void
corrupt(const char *why) pg_attribute_noreturn();
static void
corrupt(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid zstd data: %s", why),
			 errdetail("The value is not a complete zstd frame, or it was damaged."),
			 errhint("Pass a value made by pipeline.zstd_compress or another zstd compressor.")));
}

/*
 * pipeline_zstd_compress
 *		SQL: pipeline.zstd_compress(data bytea, level int DEFAULT 3) -> bytea.
 */
Datum
pipeline_zstd_compress(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	int32		level = PG_GETARG_INT32(1);
	size_t		len = VARSIZE_ANY_EXHDR(in);
	size_t		bound = ZSTD_compressBound(len);
	bytea	   *out;
	size_t		n;

	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel() || level == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("zstd compression level %d is out of range", level),
				 errdetail("Levels go from %d (fastest) to %d (smallest), without 0.",
						   ZSTD_minCLevel(), ZSTD_maxCLevel()),
				 errhint("3 is zstd's default; 19 and up are slow.")));
	if (bound > MAX_CONTENT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value too large to compress"),
				 errdetail("Its compressed form could exceed the largest bytea value."),
				 errhint("Compress smaller pieces.")));
	if (cctx == NULL && (cctx = ZSTD_createCCtx()) == NULL)
		out_of_memory();
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);

	out = palloc(VARHDRSZ + bound);
	n = ZSTD_compress2(cctx, VARDATA(out), bound, VARDATA_ANY(in), len);
	if (ZSTD_isError(n))
		elog(ERROR, "zstd compression failed: %s", ZSTD_getErrorName(n));
	SET_VARSIZE(out, VARHDRSZ + n);
	PG_RETURN_BYTEA_P(out);
}

/*
 * decompress_streaming
 *		Decompresses input whose size the frames do not state, growing the
 *		output as needed, up to MAX_CONTENT.
 */
static bytea *
decompress_streaming(const char *src, size_t len)
{
	size_t		cap = Min(Max(len * 4, 1024), MAX_CONTENT);
	bytea	   *out = palloc(VARHDRSZ + cap);
	ZSTD_inBuffer input = {src, len, 0};
	ZSTD_outBuffer output = {VARDATA(out), cap, 0};
	size_t		ret = 1;

	ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	while (input.pos < input.size || ret != 0)
	{
		if (output.pos == output.size)
		{
			if (cap >= MAX_CONTENT)
				too_large();
			cap = Min(cap * 2, MAX_CONTENT);
			out = repalloc(out, VARHDRSZ + cap);
			output.dst = VARDATA(out);
			output.size = cap;
		}
		CHECK_FOR_INTERRUPTS();
		ret = ZSTD_decompressStream(dctx, &output, &input);
		if (ZSTD_isError(ret))
			corrupt(ZSTD_getErrorName(ret));
		/* all input read, output not full, and a frame still open: truncated */
		if (ret != 0 && input.pos == input.size && output.pos < output.size)
			corrupt("the input ends inside a frame");
	}
	SET_VARSIZE(out, VARHDRSZ + output.pos);
	return out;
}

/*
 * content_size
 *		The total content size the input's frames declare, walking them one
 *		after another; ZSTD_CONTENTSIZE_UNKNOWN when a frame does not say,
 *		ZSTD_CONTENTSIZE_ERROR when a frame is malformed or cut short.
 */
static unsigned long long
content_size(const char *src, size_t len)
{
	unsigned long long total = 0;

	while (len > 0)
	{
		unsigned long long size = ZSTD_getFrameContentSize(src, len);
		size_t		frame;

		if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
			return size;
		frame = ZSTD_findFrameCompressedSize(src, len);
		if (ZSTD_isError(frame))
			return ZSTD_CONTENTSIZE_ERROR;
		total += size;
		if (total > MAX_CONTENT)
			return total;		/* the caller refuses it: no need to read on */
		src += frame;
		len -= frame;
	}
	return total;
}

/*
 * pipeline_zstd_decompress
 *		SQL: pipeline.zstd_decompress(data bytea) -> bytea.
 */
Datum
pipeline_zstd_decompress(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	const char *src = VARDATA_ANY(in);
	size_t		len = VARSIZE_ANY_EXHDR(in);
	unsigned long long size;
	bytea	   *out;
	size_t		n;

	if (dctx == NULL && (dctx = ZSTD_createDCtx()) == NULL)
		out_of_memory();
	if (len == 0)
		corrupt("it is empty");
	size = content_size(src, len);
	if (size == ZSTD_CONTENTSIZE_ERROR)
		corrupt("its frames are malformed or truncated");
	if (size != ZSTD_CONTENTSIZE_UNKNOWN && size > MAX_CONTENT)
		too_large();
	/*
	 * Frames that do not state their size, or state a large one, are
	 * decompressed in steps: a damaged header must not make us allocate a
	 * gigabyte before the data is found wrong.
	 */
	if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > LARGE_CONTENT)
		PG_RETURN_BYTEA_P(decompress_streaming(src, len));
	out = palloc(VARHDRSZ + size);
	n = ZSTD_decompressDCtx(dctx, VARDATA(out), size, src, len);
	if (ZSTD_isError(n))
		corrupt(ZSTD_getErrorName(n));
	if (n != size)
		corrupt("its content is shorter than its frames declare");
	SET_VARSIZE(out, VARHDRSZ + n);
	PG_RETURN_BYTEA_P(out);
}
