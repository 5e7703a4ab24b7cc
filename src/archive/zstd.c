/*-------------------------------------------------------------------------
 *
 * zstd.c
 *	  zstd for the extension: the SQL functions pipeline.zstd_compress and
 *	  zstd_decompress, and the same compression, with a dictionary when
 *	  given one, for the archive's batches (archive.c), whose dictionaries
 *	  are trained here too.
 *
 * Compressed values are standard zstd frames (the `zstd` command reads
 * them) with the content size and a checksum of the content, so that
 * corruption is reported instead of returned.  Decompression accepts any
 * zstd input: several frames one after another, and frames without a
 * content size (written by streaming compressors), which are decompressed
 * in steps.  Its output is limited to what a bytea can hold; anything that
 * is not valid zstd, is truncated or fails its checksum is refused, before
 * much memory is spent on it.
 *
 * The contexts are kept for the life of the backend; each use resets them
 * with their parameters, which also forgets a dictionary an earlier use
 * loaded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include <zdict.h>
#include <zstd.h>

#include "model.h"
#include "archive/archive.h"

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
static void out_of_memory(void) pg_attribute_noreturn();
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
static void too_large(void) pg_attribute_noreturn();
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
 * pipeline_zstd_check_level
 *		Errors unless 'level' is a zstd compression level.
 */
void
pipeline_zstd_check_level(int level)
{
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel() || level == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("zstd compression level %d is out of range", level),
				 errdetail("Levels go from %d (fastest) to %d (smallest), without 0.",
						   ZSTD_minCLevel(), ZSTD_maxCLevel()),
				 errhint("3 is zstd's default; 19 and up are slow.")));
}

/*
 * pipeline_zstd_compress_bytes
 *		A zstd frame of len bytes at src, with its content size and
 *		checksum, compressed at 'level' (checked by the caller) with the
 *		dictionary when one is given.
 */
bytea *
pipeline_zstd_compress_bytes(const char *src, size_t len, int level, const bytea *dictionary)
{
	size_t		bound = ZSTD_compressBound(len);
	bytea	   *out;
	size_t		n;

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
	if (dictionary != NULL &&
		ZSTD_isError(ZSTD_CCtx_loadDictionary(cctx, VARDATA_ANY(dictionary),
											  VARSIZE_ANY_EXHDR(dictionary))))
		out_of_memory();

	out = palloc(VARHDRSZ + bound);
	n = ZSTD_compress2(cctx, VARDATA(out), bound, src, len);
	if (ZSTD_isError(n))
		elog(ERROR, "zstd compression failed: %s", ZSTD_getErrorName(n));
	SET_VARSIZE(out, VARHDRSZ + n);
	return out;
}

/*
 * decompress_streaming
 *		Decompresses input whose size the frames do not state, growing the
 *		output as needed, up to MAX_CONTENT.  NULL (and *why) when the input
 *		is not valid zstd.  The caller has reset dctx.
 */
static bytea *
decompress_streaming(const char *src, size_t len, const char **why)
{
	size_t		cap = Min(Max(len * 4, 1024), MAX_CONTENT);
	bytea	   *out = palloc(VARHDRSZ + cap);
	ZSTD_inBuffer input = {src, len, 0};
	ZSTD_outBuffer output = {VARDATA(out), cap, 0};
	size_t		ret = 1;

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
		{
			*why = ZSTD_getErrorName(ret);
			return NULL;
		}
		/* all input read, output not full, and a frame still open: truncated */
		if (ret != 0 && input.pos == input.size && output.pos < output.size)
		{
			*why = "the input ends inside a frame";
			return NULL;
		}
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
 * pipeline_zstd_decompress_bytes
 *		The content of the zstd frames in len bytes at src, decompressed with
 *		the dictionary when one is given.  Returns NULL, with the reason in
 *		*why, when the input is not valid, complete zstd (or needs another
 *		dictionary); errors when the content would not fit a bytea.
 */
bytea *
pipeline_zstd_decompress_bytes(const char *src, size_t len, const bytea *dictionary,
							   const char **why)
{
	unsigned long long size;
	bytea	   *out;
	size_t		n;

	if (dctx == NULL && (dctx = ZSTD_createDCtx()) == NULL)
		out_of_memory();
	if (len == 0)
	{
		*why = "it is empty";
		return NULL;
	}
	size = content_size(src, len);
	if (size == ZSTD_CONTENTSIZE_ERROR)
	{
		*why = "its frames are malformed or truncated";
		return NULL;
	}
	if (size != ZSTD_CONTENTSIZE_UNKNOWN && size > MAX_CONTENT)
		too_large();
	ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	if (dictionary != NULL &&
		ZSTD_isError(ZSTD_DCtx_loadDictionary(dctx, VARDATA_ANY(dictionary),
											  VARSIZE_ANY_EXHDR(dictionary))))
		out_of_memory();

	/*
	 * Frames that do not state their size, or state a large one, are
	 * decompressed in steps: a damaged header must not make us allocate a
	 * gigabyte before the data is found wrong.
	 */
	if (size == ZSTD_CONTENTSIZE_UNKNOWN || size > LARGE_CONTENT)
		return decompress_streaming(src, len, why);
	out = palloc(VARHDRSZ + size);
	n = ZSTD_decompressDCtx(dctx, VARDATA(out), size, src, len);
	if (ZSTD_isError(n))
	{
		*why = ZSTD_getErrorName(n);
		return NULL;
	}
	if (n != size)
	{
		*why = "its content is shorter than its frames declare";
		return NULL;
	}
	SET_VARSIZE(out, VARHDRSZ + n);
	return out;
}

/*
 * pipeline_zstd_train
 *		A zstd dictionary of at most 'capacity' bytes trained on nsamples
 *		samples laid end to end at 'samples' (sizes[i] bytes each); NULL,
 *		with zstd's reason in *why, when training fails (too few or too
 *		uniform samples).
 */
bytea *
pipeline_zstd_train(const char *samples, const size_t *sizes, unsigned nsamples,
					size_t capacity, const char **why)
{
	bytea	   *dict = palloc(VARHDRSZ + capacity);
	size_t		n;

	n = ZDICT_trainFromBuffer(VARDATA(dict), capacity, samples, sizes, nsamples);
	if (ZDICT_isError(n))
	{
		*why = ZDICT_getErrorName(n);
		return NULL;
	}
	SET_VARSIZE(dict, VARHDRSZ + n);
	return dict;
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

	pipeline_zstd_check_level(level);
	PG_RETURN_BYTEA_P(pipeline_zstd_compress_bytes(VARDATA_ANY(in), VARSIZE_ANY_EXHDR(in),
												   level, NULL));
}

/*
 * pipeline_zstd_decompress
 *		SQL: pipeline.zstd_decompress(data bytea) -> bytea.
 */
Datum
pipeline_zstd_decompress(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	const char *why = NULL;
	bytea	   *out = pipeline_zstd_decompress_bytes(VARDATA_ANY(in), VARSIZE_ANY_EXHDR(in),
													 NULL, &why);

	if (out == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid zstd data: %s", why),
				 errdetail("The value is not a complete zstd frame, or it was damaged."),
				 errhint("Pass a value made by pipeline.zstd_compress or another zstd compressor.")));
	PG_RETURN_BYTEA_P(out);
}
