/*-------------------------------------------------------------------------
 *
 * debezium_event.c
 *	  pipeline.debezium_event(event, known_columns, apply_truncates): one
 *	  Debezium change event, as a pipeline with format => 'debezium' reads
 *	  it: its operation, the row it carries, its position (source.lsn) and
 *	  time.
 *
 * An event comes in one of the forms Kafka Connect writes:
 *	- the envelope {"before", "after", "source", "op", "ts_ms"}, alone or
 *	  wrapped as {"schema": ..., "payload": <envelope>} (JsonConverter with
 *	  schemas.enable);
 *	- the flattened record of the ExtractNewRecordState transform: the
 *	  row's columns, with the fields it adds ("__deleted", "__op", "__lsn",
 *	  "__source_ts_ms", ...) prefixed "__";
 *	- NULL: a Kafka tombstone (the event that lets log compaction forget a
 *	  deleted key), which carries nothing to apply; so does a logical
 *	  decoding message (op "m").
 *
 * The row is the "after" image, or "before" for a delete, whose key only
 * it holds.  With a schema, values of Debezium's logical types (dates and
 * times as epoch counts, decimals as two's-complement bytes in base64,
 * bytes in base64, JSON as text) are turned into the text PostgreSQL
 * reads them from.  What cannot be followed exactly is an error, so that
 * the batch quarantines the event with the reason and the raw event: an
 * event that is not an object or not an envelope, an unknown operation,
 * a missing image, a column Debezium could not read (an unchanged TOASTed
 * value, "__debezium_unavailable_value"), a column the target does not
 * have when known_columns is given, and a truncate unless apply_truncates
 * (its record is then {}: it has no row, only its position).  All are data
 * exceptions (SQLSTATE 22000), which quarantine a row rather than fail
 * the run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "model.h"
#include "sources/sources.h"

PG_FUNCTION_INFO_V1(pipeline_debezium_event);

/* What Debezium writes for a value it did not read (REPLICA IDENTITY DEFAULT). */
#define UNAVAILABLE_VALUE "__debezium_unavailable_value"
#define UNAVAILABLE_BYTES "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="

/* The columns of the pipeline.debezium_event type. */
enum
{
	EVENT_OP,
	EVENT_RECORD,
	EVENT_LSN,
	EVENT_TS_MS,
	EVENT_SOURCE,
	EVENT_BEFORE,
	EVENT_AFTER,
	EVENT_NCOLUMNS
};

/* A field of the row's schema, as Kafka Connect describes it. */
typedef struct FieldSchema
{
	char	   *field;
	char	   *type;			/* int32, int64, string, bytes, struct... */
	char	   *name;			/* its logical type, or NULL */
	JsonbValue *parameters;		/* object, or NULL */
} FieldSchema;

/* What the row is read with: its schema, and the target's columns. */
typedef struct RowReading
{
	FieldSchema *fields;
	int			nfields;
	char	  **known;			/* NULL: any column is taken */
	int			nknown;
	bool		truncates;		/* a truncate is read (apply_truncates), not
								 * an error */
} RowReading;

/*
 * What a call keeps for the next ones of its statement (fn_extra): the
 * result's descriptor, and the target's columns when they are the same on
 * every call (a constant, as the batch statement passes them).
 */
typedef struct EventCall
{
	TupleDesc	desc;
	bool		known_kept;
	char	  **known;
	int			nknown;
} EventCall;

/*
 * malformed
 *		Errors for an event the pipeline cannot follow exactly.
 */
static void
pg_attribute_noreturn()
malformed(const char *message, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("malformed debezium event: %s", message),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

/*
 * member
 *		An object's member, or NULL when it has none.
 */
static JsonbValue *
member(JsonbContainer *object, const char *key)
{
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

/*
 * is_object
 *		Whether a value is a JSON object.
 */
static bool
is_object(const JsonbValue *v)
{
	return v != NULL && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

/*
 * string_of
 *		A string value as C text, or NULL for any other value.
 */
static char *
string_of(const JsonbValue *v)
{
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * int8_of
 *		A number (or a string of digits) as int64; 'found' says whether
 *		there was one.
 */
static int64
int8_of(const JsonbValue *v, bool *found)
{
	*found = true;
	if (v != NULL && v->type == jbvNumeric)
		return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if (v != NULL && v->type == jbvString)
		return DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(string_of(v))));
	*found = false;
	return 0;
}

/*
 * jsonb_datum
 *		A value (an object, usually) as a jsonb Datum.
 */
static Datum
jsonb_datum(JsonbValue *v)
{
	return JsonbPGetDatum(JsonbValueToJsonb(v));
}

/* ------------------------------------------------------------ the schema */

/*
 * read_schema_fields
 *		The fields of a struct schema ({"type": "struct", "fields": [...]}).
 */
static void
read_schema_fields(JsonbValue *schema, RowReading *reading)
{
	JsonbValue *fields = is_object(schema) ? member(schema->val.binary.data, "fields") : NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	if (fields == NULL || fields->type != jbvBinary || !JsonContainerIsArray(fields->val.binary.data))
		return;
	reading->fields = palloc0(sizeof(FieldSchema) * JsonContainerSize(fields->val.binary.data));
	it = JsonbIteratorInit(fields->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		FieldSchema *f;
		JsonbContainer *c;

		if (tok != WJB_ELEM || !is_object(&v))
			continue;
		c = v.val.binary.data;
		f = &reading->fields[n];
		f->field = string_of(member(c, "field"));
		f->type = string_of(member(c, "type"));
		f->name = string_of(member(c, "name"));
		f->parameters = member(c, "parameters");
		if (f->field != NULL)
			n++;
	}
	reading->nfields = n;
}

/*
 * image_schema
 *		The schema of the envelope's image named 'image' ("before" or
 *		"after"): the struct field of that name.
 */
static JsonbValue *
image_schema(JsonbValue *schema, const char *image)
{
	JsonbValue *fields = member(schema->val.binary.data, "fields");
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (fields == NULL || fields->type != jbvBinary || !JsonContainerIsArray(fields->val.binary.data))
		return NULL;
	it = JsonbIteratorInit(fields->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_ELEM || !is_object(&v))
			continue;
		name = string_of(member(v.val.binary.data, "field"));
		if (name != NULL && strcmp(name, image) == 0)
			return memcpy(palloc(sizeof(JsonbValue)), &v, sizeof(JsonbValue));
	}
	return NULL;
}

/*
 * field_schema
 *		The schema of a column of the row, or NULL.
 */
static const FieldSchema *
field_schema(const RowReading *reading, const char *column)
{
	for (int i = 0; i < reading->nfields; i++)
		if (strcmp(reading->fields[i].field, column) == 0)
			return &reading->fields[i];
	return NULL;
}

/* ------------------------------------------------------- logical types */

/*
 * floor_div
 *		a / b rounded down, for epoch counts before 1970.
 */
static int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/*
 * string_value
 *		A string JsonbValue.
 */
static JsonbValue
string_value(char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = s;
	v.val.string.len = strlen(s);
	return v;
}

/*
 * decimal_text
 *		The text of a Kafka Connect decimal: a big-endian two's-complement
 *		integer (base64) scaled down by 'scale' digits.
 */
static char *
decimal_text(const char *base64, int scale)
{
	int			len = strlen(base64);
	unsigned char *bytes = palloc(pg_b64_dec_len(len) + 1);
	int			n = pg_b64_decode(base64, len, (char *) bytes, pg_b64_dec_len(len));
	Datum		acc = NumericGetDatum(int64_to_numeric(0));
	Datum		base = NumericGetDatum(int64_to_numeric(256));
	char	   *digits;
	bool		negative;
	int			ndigits;

	if (n < 0)
		malformed("a decimal is not base64", psprintf("The value is \"%s\".", base64),
				  "Set decimal.handling.mode to precise (with a schema) or string on the connector.");
	for (int i = 0; i < n; i++)
		acc = DirectFunctionCall2(numeric_add, DirectFunctionCall2(numeric_mul, acc, base),
								  NumericGetDatum(int64_to_numeric(bytes[i])));
	if (n > 0 && (bytes[0] & 0x80))
		acc = DirectFunctionCall2(numeric_sub, acc,
								  DirectFunctionCall2(numeric_power, base,
													  NumericGetDatum(int64_to_numeric(n))));
	digits = DatumGetCString(DirectFunctionCall1(numeric_out, acc));
	/* numeric_power gives a scaled result: keep the integer part */
	if (strchr(digits, '.'))
		*strchr(digits, '.') = '\0';
	negative = digits[0] == '-';
	if (negative)
		digits++;
	ndigits = strlen(digits);
	if (scale <= 0)
		return psprintf("%s%s", negative ? "-" : "", digits);
	if (ndigits <= scale)
		digits = psprintf("%0*d%s", scale - ndigits + 1, 0, digits);
	ndigits = strlen(digits);
	return psprintf("%s%.*s.%s", negative ? "-" : "", ndigits - scale, digits, digits + ndigits - scale);
}

/*
 * scale_of
 *		The "scale" member of an object, as a number or a string.
 */
static int
scale_of(JsonbValue *object)
{
	bool		found;
	int64		scale = is_object(object) ? int8_of(member(object->val.binary.data, "scale"), &found) : 0;

	if (scale < 0 || scale > NUMERIC_MAX_DISPLAY_SCALE)
		malformed(psprintf("a decimal's scale %lld is out of range", (long long) scale),
				  psprintf("A scale is 0 to %d.", NUMERIC_MAX_DISPLAY_SCALE),
				  "Stage the events the connector writes, unchanged.");
	return (int) scale;
}

/*
 * epoch_value
 *		A date, time or timestamp counted from the epoch in 'unit'
 *		microseconds (or, when 'unit' is negative, in units of 1/-unit
 *		microseconds), as ISO 8601 text.
 */
static JsonbValue
epoch_value(int64 count, int64 unit, Oid type)
{
	int64		usecs = 0;
	int64		shift = (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	bool		valid;
	Datum		d;

	if (unit > 0)
		valid = !pg_mul_s64_overflow(count, unit, &usecs);
	else
		valid = true, usecs = unit < 0 ? floor_div(count, -unit) : 0;
	/* (a date counts days: unit 0) */
	if (type == DATEOID)
	{
		valid = count > PG_INT32_MIN && count < PG_INT32_MAX &&
			IS_VALID_DATE(count + UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE);
		d = DateADTGetDatum((DateADT) (count + UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE));
	}
	else if (type == TIMEOID)
	{
		valid = valid && usecs >= 0 && usecs <= USECS_PER_DAY;
		d = TimeADTGetDatum((TimeADT) usecs);
	}
	else
	{
		valid = valid && !pg_sub_s64_overflow(usecs, shift, &usecs) && IS_VALID_TIMESTAMP(usecs);
		d = TimestampGetDatum(usecs);
	}
	if (!valid)
		malformed(psprintf("a %s of %lld is out of range", format_type_be(type), (long long) count),
				  "Debezium counts dates in days and times in milli-, micro- or nanoseconds from 1970-01-01.",
				  "Stage the events the connector writes, unchanged.");
	return string_value(JsonEncodeDateTime(NULL, d, type, NULL));
}

/*
 * logical_value
 *		A value of one of Debezium's logical types as PostgreSQL reads it;
 *		false when the value needs no change.
 */
static bool
logical_value(const FieldSchema *f, JsonbValue *v, JsonbValue *out)
{
	static const struct
	{
		const char *name;
		Oid			type;
		int64		unit;		/* microseconds per count; negative: counts
								 * per microsecond */
	}			epochs[] = {
		{"io.debezium.time.Date", DATEOID, 0},
		{"org.apache.kafka.connect.data.Date", DATEOID, 0},
		{"io.debezium.time.Time", TIMEOID, 1000},
		{"org.apache.kafka.connect.data.Time", TIMEOID, 1000},
		{"io.debezium.time.MicroTime", TIMEOID, 1},
		{"io.debezium.time.NanoTime", TIMEOID, -1000},
		{"io.debezium.time.Timestamp", TIMESTAMPOID, 1000},
		{"org.apache.kafka.connect.data.Timestamp", TIMESTAMPOID, 1000},
		{"io.debezium.time.MicroTimestamp", TIMESTAMPOID, 1},
		{"io.debezium.time.NanoTimestamp", TIMESTAMPOID, -1000},
	};
	bool		found;

	if (v->type == jbvNull)
		return false;
	for (int i = 0; f->name && i < lengthof(epochs); i++)
	{
		if (strcmp(f->name, epochs[i].name) != 0)
			continue;
		*out = epoch_value(int8_of(v, &found), epochs[i].unit, epochs[i].type);
		return found;
	}
	if (f->name && strcmp(f->name, "org.apache.kafka.connect.data.Decimal") == 0 && v->type == jbvString)
	{
		*out = string_value(decimal_text(string_of(v), scale_of(f->parameters)));
		return true;
	}
	if (f->name && strcmp(f->name, "io.debezium.data.VariableScaleDecimal") == 0 && is_object(v))
	{
		char	   *bytes = string_of(member(v->val.binary.data, "value"));

		if (bytes == NULL)
			return false;
		*out = string_value(decimal_text(bytes, scale_of(v)));
		return true;
	}
	if (f->name && strcmp(f->name, "io.debezium.data.Json") == 0 && v->type == jbvString)
	{
		Jsonb	   *parsed = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(string_of(v))));

		if (!JsonbExtractScalar(&parsed->root, out))
		{
			out->type = jbvBinary;
			out->val.binary.data = &parsed->root;
			out->val.binary.len = VARSIZE(parsed) - VARHDRSZ;
		}
		return true;
	}
	if (f->type && strcmp(f->type, "bytes") == 0 && f->name == NULL && v->type == jbvString)
	{
		char	   *raw = string_of(v);
		int			len = strlen(raw);
		char	   *bytes = palloc(pg_b64_dec_len(len) + 1);
		int			n = pg_b64_decode(raw, len, bytes, pg_b64_dec_len(len));
		char	   *hex;

		if (n < 0)
			malformed(psprintf("column \"%s\" is not base64", f->field),
					  "Debezium writes bytes in base64.", "Stage the events the connector writes, unchanged.");
		hex = palloc(n * 2 + 3);
		hex[0] = '\\';
		hex[1] = 'x';
		hex[hex_encode(bytes, n, hex + 2) + 2] = '\0';
		*out = string_value(hex);
		return true;
	}
	return false;
}

/* ------------------------------------------------------------- the row */

/*
 * refuse_unavailable
 *		Errors for a column whose value Debezium did not read: an unchanged
 *		TOASTed value of a table without REPLICA IDENTITY FULL.  Taking the
 *		placeholder would store it; leaving the column out would keep a
 *		value the row may no longer have.
 */
static void
refuse_unavailable(const char *column, const JsonbValue *v)
{
	char	   *s = string_of(v);

	if (s == NULL || (strcmp(s, UNAVAILABLE_VALUE) != 0 && strcmp(s, UNAVAILABLE_BYTES) != 0))
		return;
	malformed(psprintf("column \"%s\" holds no value", column),
			  psprintf("Debezium wrote \"%s\" for \"%s\": the value was not in the change it read (an unchanged TOASTed value).",
					   UNAVAILABLE_VALUE, column),
			  "ALTER TABLE ... REPLICA IDENTITY FULL on the captured table, then requeue or discard the event.");
}

/*
 * refuse_unknown
 *		Errors for a column the target does not have, when the pipeline
 *		fails on schema changes (on_schema_change => 'fail').
 */
static void
refuse_unknown(const RowReading *reading, const char *column)
{
	for (int i = 0; i < reading->nknown; i++)
		if (strcmp(reading->known[i], column) == 0)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("debezium event has column \"%s\", which the target does not have", column),
			 errdetail("The captured table's schema changed; on_schema_change is 'fail'."),
			 errhint("Add the column to the target, or set on_schema_change => 'ignore' to leave such columns out; then requeue the event.")));
}

/*
 * read_row
 *		The row of an image or a flattened record, with its logical values
 *		turned into PostgreSQL text; fields prefixed "__" (added by
 *		ExtractNewRecordState) are left out when 'flattened', and gathered
 *		in *added (without the prefix); 'added' is not set otherwise.
 */
static Datum
read_row(JsonbContainer *record, const RowReading *reading, bool flattened, Datum *added)
{
	JsonbParseState *row = NULL;
	JsonbParseState *extra = NULL;
	JsonbIterator *it = JsonbIteratorInit(record);
	JsonbValue	v;
	JsonbValue	key;
	JsonbIteratorToken tok;

	pushJsonbValue(&row, WJB_BEGIN_OBJECT, NULL);
	if (flattened)
		pushJsonbValue(&extra, WJB_BEGIN_OBJECT, NULL);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *column;
		const FieldSchema *f;
		JsonbValue	converted;

		if (tok == WJB_KEY)
		{
			key = v;
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		column = pnstrdup(key.val.string.val, key.val.string.len);
		if (flattened && strncmp(column, "__", 2) == 0)
		{
			JsonbValue	bare = string_value(column + 2);

			pushJsonbValue(&extra, WJB_KEY, &bare);
			pushJsonbValue(&extra, WJB_VALUE, &v);
			continue;
		}
		refuse_unavailable(column, &v);
		if (reading->known)
			refuse_unknown(reading, column);
		f = field_schema(reading, column);
		pushJsonbValue(&row, WJB_KEY, &key);
		pushJsonbValue(&row, WJB_VALUE, (f && logical_value(f, &v, &converted)) ? &converted : &v);
	}
	if (flattened)
		*added = jsonb_datum(pushJsonbValue(&extra, WJB_END_OBJECT, NULL));
	return jsonb_datum(pushJsonbValue(&row, WJB_END_OBJECT, NULL));
}

/* ----------------------------------------------------------- the event */

/*
 * check_op
 *		The operation of an event: c (create), r (read, by a snapshot), u
 *		(update), d (delete) or t (truncate).
 */
static char
check_op(const char *op, const RowReading *reading)
{
	if (op == NULL || strlen(op) != 1 || strchr("crudt", op[0]) == NULL)
		malformed(psprintf("unknown operation \"%s\"", op ? op : "(none)"),
				  "A Debezium event's op is c (create), r (read), u (update), d (delete) or t (truncate).",
				  "Stage the events the connector writes, unchanged.");
	if (op[0] == 't' && !reading->truncates)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("debezium truncate event is not applied"),
				 errdetail("The captured table was truncated; its rows' delete events were not sent."),
				 errhint("Create the pipeline with on_truncate => 'apply' for the target to follow truncates, or truncate the target yourself and discard this event from the quarantine.")));
	return op[0];
}

/*
 * read_envelope
 *		An envelope's operation, row (after, or before for a delete),
 *		images and source.
 */
static void
read_envelope(JsonbContainer *envelope, JsonbValue *schema, RowReading *reading,
			  Datum *values, bool *nulls)
{
	char		op = check_op(string_of(member(envelope, "op")), reading);
	const char *image = op == 'd' ? "before" : "after";
	JsonbValue *before = member(envelope, "before");
	JsonbValue *after = member(envelope, "after");
	JsonbValue *row = op == 'd' ? before : after;
	JsonbValue *source = member(envelope, "source");
	JsonbValue *ts = NULL;
	bool		found;

	if (op == 't')
		row = NULL;				/* a truncate has no row: its record is {} */
	else if (!is_object(row))
		malformed(psprintf("%s event without its %s image", op == 'd' ? "a delete" : "an insert or update", image),
				  psprintf("\"%s\" is %s.", image, row ? "not an object" : "missing"),
				  op == 'd' ? "A delete's key is in before: the captured table needs a primary key or REPLICA IDENTITY." :
				  "Stage the events the connector writes, unchanged.");
	if (schema && row)
		read_schema_fields(image_schema(schema, image), reading);
	values[EVENT_OP] = CStringGetTextDatum(psprintf("%c", op));
	values[EVENT_RECORD] = row ? read_row(row->val.binary.data, reading, false, NULL) :
		DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	nulls[EVENT_OP] = nulls[EVENT_RECORD] = false;
	if (is_object(before))
		values[EVENT_BEFORE] = jsonb_datum(before), nulls[EVENT_BEFORE] = false;
	if (is_object(after))
		values[EVENT_AFTER] = jsonb_datum(after), nulls[EVENT_AFTER] = false;
	if (is_object(source))
	{
		values[EVENT_SOURCE] = jsonb_datum(source), nulls[EVENT_SOURCE] = false;
		values[EVENT_LSN] = Int64GetDatum(int8_of(member(source->val.binary.data, "lsn"), &found));
		nulls[EVENT_LSN] = !found;
		ts = member(source->val.binary.data, "ts_ms");
	}
	values[EVENT_TS_MS] = Int64GetDatum(int8_of(ts ? ts : member(envelope, "ts_ms"), &found));
	nulls[EVENT_TS_MS] = !found;
}

/*
 * read_flattened
 *		A flattened record's operation (from __deleted or __op), row and
 *		added fields (as source: lsn, source_ts_ms, ...).
 */
static void
read_flattened(JsonbContainer *record, JsonbValue *schema, RowReading *reading,
			   Datum *values, bool *nulls)
{
	JsonbValue *deleted = member(record, "__deleted");
	char	   *op = string_of(member(record, "__op"));
	char	   *deleted_text = deleted ? (deleted->type == jbvBool ? (deleted->val.boolean ? "true" : "false") :
										  string_of(deleted)) : NULL;
	Datum		added;
	JsonbValue *lsn;
	JsonbValue *ts;
	bool		found;

	if (deleted == NULL && op == NULL)
		malformed("a flattened event without __deleted or __op",
				  "Without them a delete cannot be told from an update.",
				  "Configure ExtractNewRecordState with delete.handling.mode=rewrite (delete.tombstone.handling.mode=rewrite) or add.fields=op.");
	if (deleted_text && strcmp(deleted_text, "true") == 0)
		op = "d";
	else if (op == NULL)
		op = "u";
	if (schema)
		read_schema_fields(schema, reading);
	values[EVENT_OP] = CStringGetTextDatum(psprintf("%c", check_op(op, reading)));
	values[EVENT_RECORD] = read_row(record, reading, true, &added);
	values[EVENT_SOURCE] = added;
	nulls[EVENT_OP] = nulls[EVENT_RECORD] = nulls[EVENT_SOURCE] = false;
	lsn = member(record, "__lsn");
	values[EVENT_LSN] = Int64GetDatum(int8_of(lsn ? lsn : member(record, "__source_lsn"), &found));
	nulls[EVENT_LSN] = !found;
	ts = member(record, "__source_ts_ms");
	values[EVENT_TS_MS] = Int64GetDatum(int8_of(ts ? ts : member(record, "__ts_ms"), &found));
	nulls[EVENT_TS_MS] = !found;
}

/*
 * is_json_null
 *		Whether a scalar jsonb is null.
 */
static bool
is_json_null(Jsonb *scalar)
{
	JsonbValue	v;

	return JsonbExtractScalar(&scalar->root, &v) && v.type == jbvNull;
}

/*
 * is_message
 *		Whether an envelope carries a logical decoding message (op "m",
 *		pg_logical_emit_message), which changes no row.
 */
static bool
is_message(JsonbContainer *envelope)
{
	char	   *op = string_of(member(envelope, "op"));

	return op != NULL && strcmp(op, "m") == 0 && member(envelope, "message") != NULL;
}

/*
 * read_known
 *		The known_columns argument as C strings.
 */
static void
read_known(FunctionCallInfo fcinfo, char ***known, int *nknown)
{
	Datum	   *texts;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
					  &texts, NULL, nknown);
	*known = palloc(sizeof(char *) * Max(*nknown, 1));
	for (int i = 0; i < *nknown; i++)
		(*known)[i] = TextDatumGetCString(texts[i]);
}

/*
 * event_call
 *		This call's kept state, made on its statement's first call.
 */
static EventCall *
event_call(FunctionCallInfo fcinfo)
{
	EventCall  *call = fcinfo->flinfo->fn_extra;
	MemoryContext old;
	TupleDesc	desc;

	if (call != NULL)
		return call;
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	call = palloc0(sizeof(EventCall));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pipeline.debezium_event must return a composite type");
	call->desc = BlessTupleDesc(CreateTupleDescCopy(desc));
	if (!PG_ARGISNULL(1) && get_fn_expr_arg_stable(fcinfo->flinfo, 1))
	{
		read_known(fcinfo, &call->known, &call->nknown);
		call->known_kept = true;
	}
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = call;
	return call;
}

/*
 * pipeline_debezium_event
 *		SQL: pipeline.debezium_event(event jsonb, known_columns text[])
 *		-> pipeline.debezium_event.  An event that changes no row (a NULL
 *		event, the Kafka tombstone; a logical decoding message) gives a row
 *		of NULLs, which the pipeline skips.
 */
Datum
pipeline_debezium_event(PG_FUNCTION_ARGS)
{
	EventCall  *call = event_call(fcinfo);
	TupleDesc	desc = call->desc;
	Datum		values[EVENT_NCOLUMNS] = {0};
	bool		nulls[EVENT_NCOLUMNS];
	RowReading	reading = {0};
	Jsonb	   *event;
	JsonbContainer *envelope;
	JsonbValue *payload;
	JsonbValue *schema = NULL;

	memset(nulls, true, sizeof(nulls));
	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
	event = PG_GETARG_JSONB_P(0);
	if (call->known_kept)
	{
		reading.known = call->known;
		reading.nknown = call->nknown;
	}
	else if (!PG_ARGISNULL(1))
		read_known(fcinfo, &reading.known, &reading.nknown);
	reading.truncates = PG_NARGS() > 2 && !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	if (!JB_ROOT_IS_OBJECT(event))
		malformed(!JB_ROOT_IS_SCALAR(event) ? "the event is an array" :
				  is_json_null(event) ? "the event is JSON null" : "the event is not an object",
				  "An event is a JSON object: an envelope, a flattened record, or {\"schema\", \"payload\"}.",
				  "A Kafka tombstone is staged as SQL NULL, not as JSON.");
	envelope = &event->root;

	/* {"schema": ..., "payload": ...}: the payload, read with its schema */
	payload = member(envelope, "payload");
	if (payload != NULL && member(envelope, "schema") != NULL)
	{
		if (payload->type == jbvNull)
			PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
		if (!is_object(payload))
			malformed("the payload is not an object", "With a schema, the event is in \"payload\".",
					  "Stage the events the connector writes, unchanged.");
		schema = member(envelope, "schema");
		if (!is_object(schema))
			schema = NULL;
		envelope = payload->val.binary.data;
	}
	if (is_message(envelope))
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
	if (member(envelope, "op") != NULL &&
		(member(envelope, "source") || member(envelope, "after") || member(envelope, "before")))
		read_envelope(envelope, schema, &reading, values, nulls);
	else
		read_flattened(envelope, schema, &reading, values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
