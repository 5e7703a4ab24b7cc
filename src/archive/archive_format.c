/*-------------------------------------------------------------------------
 *
 * archive_format.c
 *	  The archive's batch format, and reading batches back:
 *	  pipeline.archived_rows, archived_rows_jsonb and archive_unpack.
 *
 * A batch holds consumed staging rows in (_xid, _seq) order.  Each column
 * of each row is kept as its type's text output, written and read with the
 * settings that text depends on pinned (ISO dates, UTC, shortest exact
 * floats, hex bytea, the C monetary locale, XML content), so that a value
 * comes back from its type's input function bit for bit, whatever the
 * session's settings were when it was archived or are when it is read.
 * Text rather than the binary send/receive form: it names no type or enum
 * oid, so a batch stays readable after pg_dump/pg_restore, and every type
 * has one.
 *
 * The uncompressed payload:
 *
 *	"PLA1"					magic and format version
 *	uint16 ncols			columns per row: the batch's columns list
 *	per row, per column:	int32 length (-1 for NULL), then its bytes
 *
 * integers in network byte order.  The batch row records the payload's
 * length and CRC-32C; both are checked before anything is decoded, and the
 * decoder checks every length against what is left, so a damaged batch
 * raises data_corrupted (XX001) and never yields other rows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include "model.h"
#include "archive/archive.h"
#include "base/base.h"

PG_FUNCTION_INFO_V1(pipeline_archived_rows);
PG_FUNCTION_INFO_V1(pipeline_archived_rows_jsonb);
PG_FUNCTION_INFO_V1(pipeline_archive_unpack);

#define ARCHIVE_MAGIC "PLA1"

/* How archived_rows_jsonb renders a column (the batch's columns list says). */
typedef enum ColumnKind
{
	KIND_STRING,
	KIND_NUMBER,
	KIND_BOOLEAN,
	KIND_JSON
} ColumnKind;

/* The columns a batch was archived with. */
typedef struct ArchivedColumns
{
	int			n;
	char	  **names;
	ColumnKind *kinds;
} ArchivedColumns;

/* A batch being decoded, row by row. */
typedef struct ArchiveReader
{
	int64		batch_id;
	const char *data;			/* the uncompressed payload */
	size_t		len;
	size_t		pos;
	int			ncols;
	int64		rows_left;
	char	  **values;			/* the current row; NULL for a NULL */
} ArchiveReader;

/* The settings text forms depend on, and the values they are pinned to. */
static const char *const pinned_formats[][2] = {
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
	{"TimeZone", "UTC"},
	{"extra_float_digits", "1"},
	{"bytea_output", "hex"},
	{"lc_monetary", "C"},
	{"xmloption", "content"}
};

/*
 * pipeline_archive_pin_formats
 *		Pins the settings that types' text forms depend on, until
 *		pipeline_archive_unpin_formats(returned level); an error unpins
 *		them with the (sub)transaction.
 */
int
pipeline_archive_pin_formats(void)
{
	int			level = NewGUCNestLevel();

	for (int i = 0; i < lengthof(pinned_formats); i++)
		(void) set_config_option(pinned_formats[i][0], pinned_formats[i][1], PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * pipeline_archive_unpin_formats
 *		Restores the settings pipeline_archive_pin_formats pinned.
 */
void
pipeline_archive_unpin_formats(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * pipeline_archive_columns
 *		A relation's columns as a batch records them -- a jsonb array of
 *		{"name", "type", "kind"} in column order, _xid and _seq included --
 *		and their fingerprint: the md5 of their names and types.  The caller
 *		is connected to SPI.
 */
void
pipeline_archive_columns(Oid relid, Jsonb **columns, char **fingerprint)
{
	Oid			type = OIDOID;
	Datum		value = ObjectIdGetDatum(relid);
	PipelineUserContext ctx;
	bool		isnull;

	pipeline_become_internal(&ctx);
	pipeline_exec("SELECT coalesce(jsonb_agg(jsonb_build_object('name', a.attname, "
				  "'type', format_type(a.atttypid, a.atttypmod), "
				  "'kind', CASE WHEN b.oid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, "
				  "'numeric'::regtype, 'float4'::regtype, 'float8'::regtype) THEN 'number' "
				  "WHEN b.oid = 'bool'::regtype THEN 'boolean' "
				  "WHEN b.oid IN ('json'::regtype, 'jsonb'::regtype) THEN 'json' "
				  "ELSE 'string' END) ORDER BY a.attnum), '[]'), "
				  "md5(coalesce(string_agg(quote_ident(a.attname) || ' ' || "
				  "format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum), '')) "
				  "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
				  "JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
				  "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
				  1, &type, &value, NULL, true, 1);
	*columns = DatumGetJsonbPCopy(pipeline_result_datum(0, 0, &isnull));
	*fingerprint = pipeline_result_text(0, 1);
	pipeline_restore_user(&ctx);
}

/* ------------------------------------------------------------- writing */

/*
 * pipeline_archive_encoder
 *		An encoder of the rows of an SPI result whose archived columns are
 *		'first' (from 1) to the last, in the batch format; its buffer holds
 *		the header of an empty batch.
 */
ArchiveEncoder *
pipeline_archive_encoder(TupleDesc desc, int first)
{
	ArchiveEncoder *enc = palloc0(sizeof(ArchiveEncoder));

	enc->first = first;
	enc->ncols = desc->natts - first + 1;
	enc->output = palloc(sizeof(FmgrInfo) * enc->ncols);
	for (int i = 0; i < enc->ncols; i++)
	{
		Oid			func;
		bool		varlena;

		getTypeOutputInfo(TupleDescAttr(desc, first - 1 + i)->atttypid, &func, &varlena);
		fmgr_info(func, &enc->output[i]);
	}
	initStringInfo(&enc->buf);
	pipeline_archive_encoder_reset(enc);
	return enc;
}

/*
 * pipeline_archive_encoder_reset
 *		Empties the encoder's batch.
 */
void
pipeline_archive_encoder_reset(ArchiveEncoder *enc)
{
	resetStringInfo(&enc->buf);
	appendBinaryStringInfo(&enc->buf, ARCHIVE_MAGIC, 4);
	pq_sendint16(&enc->buf, (uint16) enc->ncols);
	enc->rows = 0;
}

/*
 * pipeline_archive_encode_row
 *		Appends a row of the SPI result to the batch.  The caller has pinned
 *		the formats; the text forms are allocated in the current memory
 *		context, which the caller resets now and then.
 */
void
pipeline_archive_encode_row(ArchiveEncoder *enc, HeapTuple tuple, TupleDesc desc)
{
	for (int i = 0; i < enc->ncols; i++)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, enc->first + i, desc, &isnull);
		char	   *text;
		size_t		len;

		if (isnull)
		{
			pq_sendint32(&enc->buf, (uint32) -1);
			continue;
		}
		text = OutputFunctionCall(&enc->output[i], d);

		len = strlen(text);
		pq_sendint32(&enc->buf, (uint32) len);
		appendBinaryStringInfo(&enc->buf, text, len);
	}
	enc->rows++;
}

/*
 * pipeline_archive_checksum
 *		The CRC-32C of a payload.
 */
uint32
pipeline_archive_checksum(const char *data, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);
	return crc;
}

/* ------------------------------------------------------------- reading */

/*
 * corrupt
 *		Reports a damaged batch.
 */
static void corrupt(int64 batch_id, const char *detail) pg_attribute_noreturn();
static void
corrupt(int64 batch_id, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("archive batch %lld is corrupt", (long long) batch_id),
			 errdetail_internal("%s", detail),
			 errhint("Its rows cannot be read back; restore pipeline.archive_batches from a backup.")));
}

/*
 * column_field
 *		Field 'key' of the i-th object of a batch's columns list, as text.
 */
static char *
column_field(int64 batch_id, Jsonb *columns, int i, const char *key)
{
	JsonbValue *column = getIthJsonbValueFromContainer(&columns->root, i);
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	if (column == NULL || column->type != jbvBinary ||
		(v = findJsonbValueFromContainer(column->val.binary.data, JB_FOBJECT, &k)) == NULL ||
		v->type != jbvString)
		corrupt(batch_id, psprintf("Column %d of its columns list has no \"%s\".", i + 1, key));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * archived_columns
 *		The names and kinds of a batch's columns.
 */
static ArchivedColumns *
archived_columns(const ArchivedBatch *b)
{
	ArchivedColumns *cols = palloc0(sizeof(ArchivedColumns));

	if (!JB_ROOT_IS_ARRAY(b->columns) || JB_ROOT_IS_SCALAR(b->columns))
		corrupt(b->id, "Its columns list is not a JSON array.");
	cols->n = JB_ROOT_COUNT(b->columns);
	cols->names = palloc(sizeof(char *) * Max(cols->n, 1));
	cols->kinds = palloc(sizeof(ColumnKind) * Max(cols->n, 1));
	for (int i = 0; i < cols->n; i++)
	{
		char	   *kind = column_field(b->id, b->columns, i, "kind");

		cols->names[i] = column_field(b->id, b->columns, i, "name");
		cols->kinds[i] = strcmp(kind, "number") == 0 ? KIND_NUMBER :
			strcmp(kind, "boolean") == 0 ? KIND_BOOLEAN :
			strcmp(kind, "json") == 0 ? KIND_JSON : KIND_STRING;
	}
	return cols;
}

/*
 * archived_column
 *		The position of a column in the batch's columns list, or -1.
 */
static int
archived_column(const ArchivedColumns *cols, const char *name)
{
	for (int i = 0; i < cols->n; i++)
		if (strcmp(cols->names[i], name) == 0)
			return i;
	return -1;
}

/*
 * reader_open
 *		Decompresses a batch and checks its length, checksum and header.
 */
static void
reader_open(ArchiveReader *r, const ArchivedBatch *b, int ncols)
{
	const char *why = NULL;
	uint16		ncols_stored;
	bytea	   *raw = pipeline_zstd_decompress_bytes(VARDATA_ANY(b->payload),
													 VARSIZE_ANY_EXHDR(b->payload),
													 b->dictionary, &why);
	uint32		crc;

	if (raw == NULL)
		corrupt(b->id, psprintf("Its payload is not valid zstd%s: %s.",
								b->dictionary ? " for its dictionary" : "", why));
	r->batch_id = b->id;
	r->data = VARDATA(raw);
	r->len = VARSIZE(raw) - VARHDRSZ;
	if ((int64) r->len != b->raw_bytes)
		corrupt(b->id, psprintf("Its payload holds %zu bytes; the batch records %lld.",
								r->len, (long long) b->raw_bytes));
	crc = pipeline_archive_checksum(r->data, r->len);
	if (crc != (uint32) b->checksum)
		corrupt(b->id, psprintf("The CRC-32C of its payload is %08X; the batch records %08X.",
								crc, (uint32) b->checksum));
	if (r->len < PIPELINE_ARCHIVE_HEADER_SIZE || memcmp(r->data, ARCHIVE_MAGIC, 4) != 0)
		corrupt(b->id, "Its payload does not start with the archive format's header.");
	memcpy(&ncols_stored, r->data + 4, 2);
	r->ncols = (int) pg_ntoh16(ncols_stored);
	if (r->ncols != ncols)
		corrupt(b->id, psprintf("Its payload has %d columns per row; its columns list has %d.",
								r->ncols, ncols));
	r->pos = PIPELINE_ARCHIVE_HEADER_SIZE;
	r->rows_left = b->row_count;
	r->values = palloc(sizeof(char *) * Max(ncols, 1));
}

/*
 * reader_next
 *		Decodes the next row into r->values, in the current memory context;
 *		false after the last one.
 */
static bool
reader_next(ArchiveReader *r)
{
	if (r->rows_left == 0)
	{
		if (r->pos != r->len)
			corrupt(r->batch_id, "Its payload goes on after its last row.");
		return false;
	}
	for (int i = 0; i < r->ncols; i++)
	{
		uint32		n;

		if (r->len - r->pos < 4)
			corrupt(r->batch_id, "Its payload ends inside a row.");
		memcpy(&n, r->data + r->pos, 4);
		n = pg_ntoh32(n);
		r->pos += 4;
		if (n == (uint32) -1)
		{
			r->values[i] = NULL;
			continue;
		}
		if (n > r->len - r->pos || memchr(r->data + r->pos, '\0', n) != NULL)
			corrupt(r->batch_id, "A value in its payload is longer than what is left of it, or holds a zero byte.");
		r->values[i] = pnstrdup(r->data + r->pos, n);
		r->pos += n;
	}
	r->rows_left--;
	return true;
}

/*
 * put_typed_rows
 *		Decodes a batch into a tuplestore of rows of 'desc': each column from
 *		the archived column of the same name (NULL when there is none).
 */
static void
put_typed_rows(const ArchivedBatch *b, TupleDesc desc, Tuplestorestate *store)
{
	ArchivedColumns *cols = archived_columns(b);
	ArchiveReader r;
	int			natts = desc->natts;
	int		   *from = palloc(sizeof(int) * Max(natts, 1));
	FmgrInfo   *input = palloc(sizeof(FmgrInfo) * Max(natts, 1));
	Oid		   *ioparam = palloc(sizeof(Oid) * Max(natts, 1));
	Datum	   *values = palloc(sizeof(Datum) * Max(natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(natts, 1));
	MemoryContext row_context = AllocSetContextCreate(CurrentMemoryContext, "archived row",
													  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	int			level;

	for (int i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Oid			func;

		from[i] = att->attisdropped ? -1 : archived_column(cols, NameStr(att->attname));
		if (from[i] < 0)
			continue;
		getTypeInputInfo(att->atttypid, &func, &ioparam[i]);
		fmgr_info(func, &input[i]);
	}

	level = pipeline_archive_pin_formats();
	reader_open(&r, b, cols->n);
	old = MemoryContextSwitchTo(row_context);
	while (reader_next(&r))
	{
		for (int i = 0; i < natts; i++)
		{
			nulls[i] = from[i] < 0 || r.values[from[i]] == NULL;
			values[i] = nulls[i] ? (Datum) 0 :
				InputFunctionCall(&input[i], r.values[from[i]], ioparam[i],
								  TupleDescAttr(desc, i)->atttypmod);
		}
		tuplestore_putvalues(store, desc, values, nulls);
		MemoryContextReset(row_context);
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(row_context);
	pipeline_archive_unpin_formats(level);
}

/*
 * json_value
 *		One archived value as a jsonb value: numbers, booleans and JSON as
 *		such, everything else (and NaN or infinite numbers) as its text.
 */
static JsonbValue
json_value(ColumnKind kind, char *text)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = text;

	v.val.string.len = strlen(text);
	if (kind == KIND_BOOLEAN)
	{
		v.type = jbvBool;
		v.val.boolean = strcmp(text, "t") == 0;
	}
	else if (kind == KIND_NUMBER)
	{
		Numeric		n = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
															ObjectIdGetDatum(InvalidOid),
															Int32GetDatum(-1)));

		if (!numeric_is_nan(n) && !numeric_is_inf(n))
		{
			v.type = jbvNumeric;
			v.val.numeric = n;
		}
	}
	else if (kind == KIND_JSON)
	{
		Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));

		v.type = jbvBinary;
		v.val.binary.data = &j->root;
		v.val.binary.len = VARSIZE(j) - VARHDRSZ;
	}
	return v;
}

/*
 * row_jsonb
 *		The current row as a jsonb object of its columns, but _xid and _seq.
 */
static Datum
row_jsonb(const ArchivedColumns *cols, ArchiveReader *r)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < cols->n; i++)
	{
		JsonbValue	key;
		JsonbValue	value;

		if (strcmp(cols->names[i], PIPELINE_XID_COLUMN) == 0 ||
			strcmp(cols->names[i], PIPELINE_SEQ_COLUMN) == 0)
			continue;
		key.type = jbvString;
		key.val.string.val = cols->names[i];
		key.val.string.len = strlen(cols->names[i]);
		pushJsonbValue(&state, WJB_KEY, &key);
		if (r->values[i] == NULL)
			value.type = jbvNull;
		else
			value = json_value(cols->kinds[i], r->values[i]);
		pushJsonbValue(&state, WJB_VALUE, &value);
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(result));
}

/*
 * put_jsonb_rows
 *		Decodes a batch into a tuplestore of (_xid, _seq, raw_row jsonb).
 */
static void
put_jsonb_rows(const ArchivedBatch *b, TupleDesc desc, Tuplestorestate *store)
{
	ArchivedColumns *cols = archived_columns(b);
	int			xid_col = archived_column(cols, PIPELINE_XID_COLUMN);
	int			seq_col = archived_column(cols, PIPELINE_SEQ_COLUMN);
	ArchiveReader r;
	MemoryContext row_context = AllocSetContextCreate(CurrentMemoryContext, "archived row",
													  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	int			level;

	if (xid_col < 0 || seq_col < 0)
		corrupt(b->id, "Its columns list has no _xid or no _seq.");
	level = pipeline_archive_pin_formats();
	reader_open(&r, b, cols->n);
	old = MemoryContextSwitchTo(row_context);
	while (reader_next(&r))
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (r.values[xid_col] == NULL || r.values[seq_col] == NULL)
			corrupt(b->id, "A row in its payload has no _xid or no _seq.");
		values[0] = DirectFunctionCall1(xid8in, CStringGetDatum(r.values[xid_col]));
		values[1] = DirectFunctionCall1(int8in, CStringGetDatum(r.values[seq_col]));
		values[2] = row_jsonb(cols, &r);
		tuplestore_putvalues(store, desc, values, nulls);
		MemoryContextReset(row_context);
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(row_context);
	pipeline_archive_unpin_formats(level);
}

/* --------------------------------------------------------- SQL functions */

/*
 * refuse_partial_reader
 *		For a batch the calling role cannot see: when the role may read some
 *		of the batch's table (so that it knows of the table and its
 *		archive), the error saying why it may not read the batch, which
 *		holds every row and column (read_access.c).  Else nothing, and the
 *		batch does not exist for the role.
 */
static void
refuse_partial_reader(int64 batch_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(batch_id);
	bool		isnull;
	Oid			source;

	if (pipeline_exec_internal("SELECT source::oid FROM pipeline.archive_batches "
							   "WHERE id = $1 AND source IS NOT NULL", 1, &type, &value, NULL) != 1)
		return;
	source = DatumGetObjectId(pipeline_result_datum(0, 0, &isnull));
	if (pg_class_aclcheck(source, GetUserId(), ACL_SELECT) == ACLCHECK_OK ||
		pg_attribute_aclcheck_all(source, GetUserId(), ACL_SELECT, ACLMASK_ANY) == ACLCHECK_OK)
		pipeline_require_read_every_row(source, GetUserId(),
										psprintf("Archive batch %lld", (long long) batch_id));
}

/*
 * load_batch
 *		Reads a batch (and its dictionary) as the calling role, through
 *		row-level security: a role reads the batches of the tables it may
 *		read whole (read_access.c).  The caller is connected to SPI.
 */
static ArchivedBatch *
load_batch(int64 batch_id)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(batch_id);
	ArchivedBatch *b = palloc0(sizeof(ArchivedBatch));
	bool		isnull;
	Datum		d;

	if (pipeline_exec("SELECT b.id, coalesce(b.source::oid, 0), b.source_name, b.payload, "
					  "b.raw_bytes, b.checksum, b.row_count, b.columns, b.schema_fingerprint, "
					  "d.dictionary FROM pipeline.archive_batches b "
					  "LEFT JOIN pipeline.archive_dictionaries d ON d.id = b.dictionary_id "
					  "WHERE b.id = $1", 1, &type, &value, NULL, true, 1) != 1)
	{
		refuse_partial_reader(batch_id);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("archive batch %lld does not exist", (long long) batch_id),
				 errdetail("No batch of that id is in pipeline.archive_batches, or you may not read it: a role reads the archives of the tables it may read whole."),
				 errhint("See SELECT id, source, row_count FROM pipeline.archive_batches.")));
	}
	b->id = batch_id;
	b->source = DatumGetObjectId(pipeline_result_datum(0, 1, &isnull));
	b->source_name = pipeline_result_text(0, 2);
	b->payload = DatumGetByteaPCopy(pipeline_result_datum(0, 3, &isnull));
	b->raw_bytes = pipeline_result_int64(0, 4);
	b->checksum = pipeline_result_int64(0, 5);
	b->row_count = pipeline_result_int64(0, 6);
	b->columns = DatumGetJsonbPCopy(pipeline_result_datum(0, 7, &isnull));
	b->fingerprint = pipeline_result_text(0, 8);
	d = pipeline_result_datum(0, 9, &isnull);
	b->dictionary = isnull ? NULL : DatumGetByteaPCopy(d);
	return b;
}

/*
 * batch_id_arg
 *		The batch_id argument; NULL is an error.
 */
static int64
batch_id_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch_id must not be null"),
				 errdetail("Archived rows are read one batch at a time."),
				 errhint("Pass an id from pipeline.archive_batches.")));
	return PG_GETARG_INT64(0);
}

/*
 * check_row_type
 *		Errors unless 'rowtype' is the row type of the batch's staging table
 *		and the table still has the columns the batch was archived with.
 */
static void
check_row_type(const ArchivedBatch *b, Oid rowtype)
{
	Oid			relid = OidIsValid(rowtype) ? get_typ_typrelid(rowtype) : InvalidOid;
	Jsonb	   *columns;
	char	   *fingerprint;

	if (!OidIsValid(b->source))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the staging table of archive batch %lld was dropped", (long long) b->id),
				 errdetail("The batch holds rows of %s, which no longer exists.", b->source_name),
				 errhint("Read them with pipeline.archived_rows_jsonb(%lld).", (long long) b->id)));
	if (relid != b->source)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("archive batch %lld holds rows of %s, not of type %s", (long long) b->id,
						pipeline_qualified_name(b->source),
						OidIsValid(rowtype) ? format_type_be(rowtype) : "unknown"),
				 errdetail("Typed read-back returns the row type of the batch's staging table."),
				 errhint("Pass NULL::%s as row_type.", pipeline_qualified_name(b->source))));
	pipeline_archive_columns(b->source, &columns, &fingerprint);
	if (strcmp(fingerprint, b->fingerprint) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("table %s changed its columns since archive batch %lld was written",
						pipeline_qualified_name(b->source), (long long) b->id),
				 errdetail("The batch's schema fingerprint is %s; the table's is now %s.",
						   b->fingerprint, fingerprint),
				 errhint("Read the batch with pipeline.archived_rows_jsonb(%lld), which gives its columns as they were.",
						 (long long) b->id)));
}

/*
 * pipeline_archived_rows
 *		SQL: pipeline.archived_rows(batch_id, row_type anyelement)
 *		  -> SETOF anyelement.  A batch's rows as its staging table's rows.
 */
Datum
pipeline_archived_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		batch_id = batch_id_arg(fcinfo);
	Oid			rowtype = get_fn_expr_argtype(fcinfo->flinfo, 1);
	ArchivedBatch *b;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	b = load_batch(batch_id);
	check_row_type(b, rowtype);
	InitMaterializedSRF(fcinfo, 0);
	put_typed_rows(b, rsinfo->setDesc, rsinfo->setResult);
	SPI_finish();
	return (Datum) 0;
}

/*
 * pipeline_archived_rows_jsonb
 *		SQL: pipeline.archived_rows_jsonb(batch_id) -> (_xid, _seq, raw_row).
 */
Datum
pipeline_archived_rows_jsonb(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArchivedBatch *b;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	b = load_batch(batch_id_arg(fcinfo));
	InitMaterializedSRF(fcinfo, 0);
	put_jsonb_rows(b, rsinfo->setDesc, rsinfo->setResult);
	SPI_finish();
	return (Datum) 0;
}

/*
 * batch_attribute
 *		A field of a pipeline.archive_batches row; NULL is an error.
 */
static Datum
batch_attribute(HeapTupleHeader row, const char *name)
{
	bool		isnull;
	Datum		d = GetAttributeByName(row, name, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("archive batch has no %s", name),
				 errdetail("pipeline.archive_unpack reads a whole row of pipeline.archive_batches."),
				 errhint("Pass the row, as replay does: archive_unpack(b, dictionary, NULL::the_table).")));
	return d;
}

/*
 * pipeline_archive_unpack
 *		SQL: pipeline.archive_unpack(batch pipeline.archive_batches,
 *		dictionary bytea, row_type anyelement) -> SETOF anyelement.
 *		Internal, for replay: the batch row comes from the replay's own
 *		statement, so that it reads the archive and the staging table with
 *		one snapshot.  Columns are matched by name: a column added since is
 *		NULL, one dropped since is left out.
 */
Datum
pipeline_archive_unpack(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HeapTupleHeader row;
	ArchivedBatch b = {0};
	Oid			rowtype = get_fn_expr_argtype(fcinfo->flinfo, 2);

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!OidIsValid(rowtype) || !OidIsValid(get_typ_typrelid(rowtype)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("row_type must be a table's row type"),
				 errdetail("archive_unpack returns the rows of a batch as rows of a table."),
				 errhint("Pass NULL::the_table as row_type.")));
	row = PG_GETARG_HEAPTUPLEHEADER(0);
	b.id = DatumGetInt64(batch_attribute(row, "id"));
	b.payload = DatumGetByteaPP(batch_attribute(row, "payload"));
	b.raw_bytes = DatumGetInt64(batch_attribute(row, "raw_bytes"));
	b.checksum = DatumGetInt64(batch_attribute(row, "checksum"));
	b.row_count = DatumGetInt32(batch_attribute(row, "row_count"));
	b.columns = DatumGetJsonbP(batch_attribute(row, "columns"));
	b.dictionary = PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_PP(1);
	InitMaterializedSRF(fcinfo, 0);
	put_typed_rows(&b, rsinfo->setDesc, rsinfo->setResult);
	return (Datum) 0;
}
