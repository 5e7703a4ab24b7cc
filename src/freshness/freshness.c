/*-------------------------------------------------------------------------
 *
 * freshness.c
 *	  Freshness checks: how old the newest data of a relation may be.
 *
 * A check finds the newest data of a relation: max(column) read as the
 * check's owner (the aggregate over the raw column, so that an index on it
 * answers without a scan, converted to timestamptz afterwards), or without
 * a column the end of the last run that changed the relation, from the run
 * history (its owner must still be allowed to read the relation: the
 * history tells when it changed).  It then compares its age with
 * warn_after and error_after, or with a daily deadline.  No data at all is stale.  A check that cannot be
 * evaluated (relation gone, privileges revoked, a timeout) is UNKNOWN.
 * Every result is kept; a change of state raises an alert.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "freshness/freshness.h"
#include "pipeline_catalog/pipeline_catalog.h"

PG_FUNCTION_INFO_V1(pipeline_add_freshness_check);
PG_FUNCTION_INFO_V1(pipeline_alter_freshness_check);
PG_FUNCTION_INFO_V1(pipeline_drop_freshness_check);
PG_FUNCTION_INFO_V1(pipeline_check_freshness);

/* A check, as stored in pipeline.freshness_checks (text as stored). */
typedef struct FreshnessCheck
{
	int64		id;
	Oid			relation;
	char	   *column;			/* NULL: the last run that changed it */
	char	   *filter;
	char	   *warn_after;		/* interval text, or NULL */
	char	   *error_after;
	char	   *deadline;		/* time text, or NULL */
	char	   *timezone;
	char	   *schedule;		/* cron text, or NULL */
	Oid			owner;
	char	   *search_path;
} FreshnessCheck;

#define CHECK_COLUMNS \
	"id, relation, column_name, filter, warn_after::text, error_after::text, " \
	"deadline::text, timezone, schedule, owner, search_path"

/* The outcome of one evaluation. */
typedef struct FreshnessResult
{
	const char *status;
	bool		has_latest;
	TimestampTz latest;
	char	   *lag;			/* interval text, or NULL */
	char	   *message;
	char	   *sqlstate;
} FreshnessResult;

/*
 * text_or_null
 *		Column 'col' of the last SPI result as a C string, NULL for NULL.
 */
static char *
text_or_null(int col)
{
	bool		isnull;

	(void) pipeline_result_datum(0, col, &isnull);
	return isnull ? NULL : pipeline_result_text(0, col);
}

/*
 * load_check
 *		Reads a check as the extension; with 'lock', row-locked until the end
 *		of the transaction (one evaluation of a check at a time).  Returns
 *		false when it does not exist.
 */
static bool
load_check(int64 id, bool lock, FreshnessCheck *check)
{
	PipelineUserContext ctx;
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum(id);
	bool		found;

	pipeline_become_internal(&ctx);
	found = pipeline_exec(psprintf("SELECT " CHECK_COLUMNS " FROM pipeline.freshness_checks "
								   "WHERE id = $1%s", lock ? " FOR UPDATE" : ""),
						  1, &type, &value, NULL, !lock, 1) == 1;
	if (found)
	{
		bool		isnull;

		check->id = id;
		check->relation = DatumGetObjectId(pipeline_result_datum(0, 1, &isnull));
		check->column = text_or_null(2);
		check->filter = text_or_null(3);
		check->warn_after = text_or_null(4);
		check->error_after = text_or_null(5);
		check->deadline = text_or_null(6);
		check->timezone = text_or_null(7);
		check->schedule = text_or_null(8);
		check->owner = DatumGetObjectId(pipeline_result_datum(0, 9, &isnull));
		check->search_path = text_or_null(10);
	}
	pipeline_restore_user(&ctx);
	return found;
}

/*
 * check_name
 *		How messages name a check.
 */
static char *
check_name(const FreshnessCheck *check)
{
	return psprintf("freshness check %lld", (long long) check->id);
}

/*
 * load_check_to_manage
 *		The check with the given id, which the current user must own (or be a
 *		member of its owner, or a superuser).
 */
static void
load_check_to_manage(int64 id, bool lock, FreshnessCheck *check)
{
	if (!load_check(id, lock, check))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("freshness check %lld does not exist", (long long) id),
				 errdetail("No freshness check with that id is defined in this database."),
				 errhint("See SELECT id, relation FROM pipeline.freshness for the checks you can manage.")));
	pipeline_check_role(check->owner, check_name(check));
}

/*
 * invalid
 *		Errors about a setting of a check the caller passed.
 */
static void
invalid(const char *message, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

/*
 * relation_refusal
 *		Why 'owner' may not run a check on 'relid' (an error message), or
 *		NULL.  A check reads the relation: it needs USAGE on its schema and
 *		SELECT on it (on the column when it has one, on some column when it
 *		reads the run history instead, as count(*) would), even when it
 *		reads only the run history: that tells when the relation changed.
 */
static char *
relation_refusal(Oid relid, const char *column, Oid owner)
{
	AttrNumber	attnum = column ? get_attnum(relid, column) : InvalidAttrNumber;
	char	   *rel;

	if (!OidIsValid(get_rel_namespace(relid)))
		return psprintf("relation with OID %u does not exist", relid);
	if (pipeline_namespace_aclcheck(get_rel_namespace(relid), owner, ACL_USAGE) != ACLCHECK_OK)
		return psprintf("permission denied for schema %s",
						quote_identifier(get_namespace_name(get_rel_namespace(relid))));
	if (pg_class_aclcheck(relid, owner, ACL_SELECT) == ACLCHECK_OK)
		return NULL;
	rel = pipeline_qualified_name(relid);
	if (column == NULL &&
		pg_attribute_aclcheck_all(relid, owner, ACL_SELECT, ACLMASK_ANY) != ACLCHECK_OK)
		return psprintf("permission denied for relation %s", rel);
	if (column != NULL && (attnum == InvalidAttrNumber ||
						   pg_attribute_aclcheck(relid, attnum, owner, ACL_SELECT) != ACLCHECK_OK))
		return psprintf("permission denied for column \"%s\" of relation %s", column, rel);
	return NULL;
}

/*
 * validate_access
 *		The check's owner must be allowed to read what the check reads.
 */
static void
validate_access(const FreshnessCheck *check)
{
	char	   *refusal = relation_refusal(check->relation, check->column, check->owner);

	if (refusal != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", refusal),
				 errdetail("A freshness check runs as its owner, role \"%s\", and reads the relation: the newest value of its column or, without a column, when a pipeline last changed it.",
						   GetUserNameFromId(check->owner, false)),
				 errhint("GRANT SELECT on the relation (or the column) and USAGE on its schema to that role first.")));
}

/*
 * validate_column
 *		The column must exist and be a timestamp, timestamptz or date.
 */
static void
validate_column(Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);
	Oid			type;
	char	   *rel = pipeline_qualified_name(relid);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation %s does not exist", column, rel),
				 errdetail("A freshness check reads the newest value of that column."),
				 errhint("Pass the name of a timestamp column of %s, or no column to use the last merge into it.",
						 rel)));
	type = get_atttype(relid, attnum);
	if (type != TIMESTAMPTZOID && type != TIMESTAMPOID && type != DATEOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation %s is of type %s", column, rel,
						format_type_be(type)),
				 errdetail("A freshness check needs a timestamp with time zone, timestamp or date column."),
				 errhint("Pick another column, or add a check on an expression through a view.")));
}

/*
 * validate_last_merge
 *		Without a column, the relation must be the target of a pipeline.
 */
static void
validate_last_merge(Oid relid)
{
	if (!pipeline_is_target(relid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation %s is not the target of any pipeline",
						pipeline_qualified_name(relid)),
				 errdetail("Without a column, a freshness check uses the end of the last run that changed the relation."),
				 errhint("Pass column_name => the relation's timestamp column.")));
}

/*
 * freshness_query
 *		The statement that finds the newest data of a check, as timestamptz:
 *		the aggregate over the raw column (an index on it answers max()), the
 *		time zone applied to its one result.
 */
static char *
freshness_query(const FreshnessCheck *check)
{
	Oid			type = get_atttype(check->relation, get_attnum(check->relation, check->column));
	const char *convert = "m";

	if (type == TIMESTAMPOID)
		convert = "m AT TIME ZONE $1";
	else if (type == DATEOID)
		convert = "m::timestamp AT TIME ZONE $1";
	return psprintf("SELECT %s FROM (SELECT max(%s) AS m FROM %s%s%s%s) newest",
					convert, quote_identifier(check->column),
					pipeline_qualified_name(check->relation),
					check->filter ? " WHERE (" : "", check->filter ? check->filter : "",
					check->filter ? ")" : "");
}

/* State shared with a probe or evaluation in a subtransaction. */
typedef struct NewestQuery
{
	const FreshnessCheck *check;
	bool		probe;			/* only plan and check privileges */
	bool		found;
	TimestampTz latest;
} NewestQuery;

/*
 * run_newest_query
 *		Runs the check's query as its owner (pipeline_try callback).
 */
static void
run_newest_query(void *arg)
{
	NewestQuery *q = (NewestQuery *) arg;
	PipelineUserContext ctx;
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(q->check->timezone);
	char	   *sql = freshness_query(q->check);
	bool		isnull;

	if (q->probe)
		sql = psprintf("SELECT * FROM (%s) probe WHERE false", sql);
	pipeline_become_role(q->check->owner, q->check->search_path, &ctx);
	if (pipeline_exec(sql, 1, &type, &value, NULL, true, 1) == 1)
	{
		Datum		d = pipeline_result_datum(0, 0, &isnull);

		q->found = !isnull;
		if (!isnull)
			q->latest = DatumGetTimestampTz(d);
	}
	pipeline_restore_user(&ctx);
}

/*
 * parse_interval
 *		An interval from its text; errors unless it is positive.
 */
static Interval *
parse_interval(const char *text, const char *what)
{
	Interval   *i = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(text),
														  ObjectIdGetDatum(InvalidOid),
														  Int32GetDatum(-1)));
	Interval	zero = {0};

	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(i),
										  IntervalPGetDatum(&zero))) <= 0)
		invalid(psprintf("%s must be positive", what),
				psprintf("%s was %s.", what, text),
				"Pass an interval such as '15 minutes'.");
	return i;
}

/*
 * compare_thresholds
 *		Compares a check's warn_after with its error_after (both set).
 */
static int
compare_thresholds(const FreshnessCheck *check)
{
	Interval   *warn = parse_interval(check->warn_after, "warn_after");
	Interval   *error = parse_interval(check->error_after, "error_after");

	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(warn),
											 IntervalPGetDatum(error)));
}

/*
 * validate_settings
 *		Checks the thresholds, time zone, filter and schedule of a check the
 *		current user is about to store.
 */
static void
validate_settings(FreshnessCheck *check)
{
	NewestQuery q = {check, true, false, 0};
	ErrorData  *edata;

	if (check->warn_after)
		(void) parse_interval(check->warn_after, "warn_after");
	if (check->error_after)
		(void) parse_interval(check->error_after, "error_after");
	if (check->warn_after == NULL && check->error_after == NULL && check->deadline == NULL)
		invalid("a freshness check needs warn_after, error_after or deadline",
				"Without them no age of the data is ever too old.",
				"Pass warn_after => '15 minutes', error_after => '1 hour', or deadline => '06:00'.");
	if (check->warn_after && check->error_after && check->deadline == NULL &&
		compare_thresholds(check) >= 0)
		invalid("warn_after must be shorter than error_after",
				psprintf("warn_after is %s and error_after is %s.", check->warn_after,
						 check->error_after),
				"A check warns first, then fails: pass a smaller warn_after.");
	if (pg_tzset(check->timezone) == NULL)
		invalid(psprintf("time zone \"%s\" is not recognized", check->timezone),
				"The time zone applies to timestamp and date columns and to the deadline.",
				"Use a name from pg_timezone_names, such as 'Europe/Paris' or 'UTC'.");
	if (check->column == NULL)
	{
		if (check->filter != NULL)
			invalid("a filter needs a column",
					"Without a column the check reads the run history, which a filter cannot narrow.",
					"Pass column_name, or leave out the filter.");
		validate_access(check);
		validate_last_merge(check->relation);
	}
	else
	{
		validate_column(check->relation, check->column);
		if (check->filter != NULL)
			pipeline_require_expression(check->filter,
										psprintf("filter for %s",
												 pipeline_qualified_name(check->relation)));
		validate_access(check);
		edata = pipeline_try(run_newest_query, &q);
		if (edata != NULL)
			ereport(ERROR,
					(errcode(edata->sqlerrcode),
					 errmsg("invalid filter for %s: %s",
							pipeline_qualified_name(check->relation), edata->message),
					 errdetail("The check runs: %s", freshness_query(check)),
					 errhint("Write the filter as a boolean SQL expression over the relation's columns.")));
	}
	pipeline_cron_validate_schedule(check->schedule);
	pipeline_cron_refuse_schedule(check->owner, check->schedule);
}

/*
 * decide
 *		The state of a check whose newest data is 'latest' (NULL: none), with
 *		its lag.  Wall-clock arithmetic of the deadline form happens in the
 *		check's time zone.
 */
static void
decide(const FreshnessCheck *check, FreshnessResult *result)
{
	Oid			types[5] = {TIMESTAMPTZOID, TEXTOID, INTERVALOID, INTERVALOID, TIMEOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	PipelineUserContext ctx;

	values[0] = TimestampTzGetDatum(result->latest);
	nulls[0] = result->has_latest ? ' ' : 'n';
	values[1] = CStringGetTextDatum(check->timezone);
	values[2] = check->warn_after ? DirectFunctionCall3(interval_in, CStringGetDatum(check->warn_after),
														ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)) : 0;
	nulls[2] = check->warn_after ? ' ' : 'n';
	values[3] = check->error_after ? DirectFunctionCall3(interval_in, CStringGetDatum(check->error_after),
														 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)) : 0;
	nulls[3] = check->error_after ? ' ' : 'n';
	values[4] = check->deadline ? DirectFunctionCall1(time_in, CStringGetDatum(check->deadline)) : 0;
	nulls[4] = check->deadline ? ' ' : 'n';

	pipeline_become_internal(&ctx);
	pipeline_exec("WITH t AS (SELECT now() AT TIME ZONE $2 AS local_now, "
				  "                  $1 AT TIME ZONE $2 AS local_latest, "
				  "                  date_trunc('day', now() AT TIME ZONE $2) AS today) "
				  "SELECT CASE "
				  "  WHEN $1 IS NULL THEN 'FAIL' "
				  "  WHEN $5 IS NULL THEN CASE "
				  "    WHEN now() - $1 > $4 THEN 'FAIL' "
				  "    WHEN now() - $1 > $3 THEN 'WARN' ELSE 'PASS' END "
				  "  WHEN local_latest >= today THEN 'PASS' "
				  "  WHEN local_now >= today + $5 THEN 'FAIL' "
				  "  WHEN local_latest < today - interval '1 day' THEN 'FAIL' "
				  "  WHEN local_now >= today + $5 - $3 THEN 'WARN' ELSE 'PASS' END, "
				  "  (now() - $1)::text, "
				  "  CASE WHEN $5 IS NULL OR local_latest >= today THEN NULL "
				  "       WHEN local_now >= today + $5 THEN "
				  "         'no data of ' || today::date || ' by its deadline ' || $5 || ' ' || $2 "
				  "       WHEN local_latest < today - interval '1 day' THEN "
				  "         'no data of ' || (today - interval '1 day')::date "
				  "       ELSE 'data of ' || today::date || ' due by ' || $5 || ' ' || $2 END "
				  "FROM t",
				  5, types, values, nulls, true, 1);
	result->status = pipeline_result_text(0, 0);
	result->lag = text_or_null(1);
	if (result->message == NULL)
		result->message = text_or_null(2);
	pipeline_restore_user(&ctx);
}

/*
 * newest_merge
 *		The end of the last run of a pipeline into the relation that changed
 *		it (rows inserted, updated or deleted): no scan of the relation.
 */
static void
newest_merge(const FreshnessCheck *check, FreshnessResult *result)
{
	result->has_latest = pipeline_last_change(check->relation, &result->latest);
	if (!result->has_latest)
		result->message = "no run has changed the relation yet";
}

/*
 * evaluate
 *		Finds the newest data of a check and decides its state.  An error
 *		while reading the relation makes the result UNKNOWN.
 */
static void
evaluate(const FreshnessCheck *check, FreshnessResult *result)
{
	memset(result, 0, sizeof(*result));
	if (check->column == NULL)
	{
		/*
		 * the run history is the extension's: its owner's privilege is
		 * checked here
		 */
		result->message = relation_refusal(check->relation, NULL, check->owner);
		if (result->message != NULL)
		{
			result->status = "UNKNOWN";
			result->sqlstate = unpack_sql_state(ERRCODE_INSUFFICIENT_PRIVILEGE);
			return;
		}
		newest_merge(check, result);
	}
	else
	{
		NewestQuery q = {check, false, false, 0};
		ErrorData  *edata = pipeline_try(run_newest_query, &q);

		if (edata != NULL)
		{
			result->status = "UNKNOWN";
			result->message = edata->message;
			result->sqlstate = unpack_sql_state(edata->sqlerrcode);
			return;
		}
		result->has_latest = q.found;
		result->latest = q.latest;
		if (!q.found)
			result->message = check->filter ? "no row matches the filter" : "no row has a value in the column";
	}
	decide(check, result);
}

/*
 * raise_alert
 *		Tells of a check's change of state (see alerts.c).
 */
static void
raise_alert(const FreshnessCheck *check, const char *previous, const FreshnessResult *result)
{
	PipelineAlert alert = {0};
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	char	   *relation = pipeline_qualified_name(check->relation);

	values[0] = Int64GetDatum(check->id);
	values[1] = CStringGetTextDatum(relation);
	values[2] = result->lag ? CStringGetTextDatum(result->lag) : (Datum) 0;
	nulls[2] = result->lag ? ' ' : 'n';
	pipeline_exec("SELECT jsonb_build_object('check_id', $1, 'relation', $2, 'lag', $3)::text",
				  3, types, values, nulls, true, 1);

	alert.kind = "freshness";
	alert.severity = strcmp(result->status, "PASS") == 0 ? "info"
		: strcmp(result->status, "FAIL") == 0 ? "error" : "warning";
	alert.check_id = check->id;
	alert.subject = relation;
	alert.previous_state = previous;
	alert.state = result->status;
	alert.message = result->message;
	alert.owner = check->owner;
	alert.details = pipeline_result_text(0, 0);
	pipeline_raise_alert(&alert);
}

/*
 * record_result
 *		Keeps a result, and raises an alert when the state changed (a first
 *		result changes the state unless it passes).
 */
static void
record_result(const FreshnessCheck *check, const FreshnessResult *result)
{
	Oid			types[6] = {INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	PipelineUserContext ctx;
	char	   *previous = NULL;

	values[0] = Int64GetDatum(check->id);
	pipeline_become_internal(&ctx);
	if (pipeline_exec("SELECT status FROM pipeline.freshness_results WHERE check_id = $1 "
					  "ORDER BY id DESC LIMIT 1", 1, types, values, NULL, true, 1) == 1)
		previous = pipeline_result_text(0, 0);

	values[1] = CStringGetTextDatum(result->status);
	values[2] = TimestampTzGetDatum(result->latest);
	nulls[2] = result->has_latest ? ' ' : 'n';
	values[3] = result->lag ? CStringGetTextDatum(result->lag) : (Datum) 0;
	nulls[3] = result->lag ? ' ' : 'n';
	values[4] = result->message ? CStringGetTextDatum(result->message) : (Datum) 0;
	nulls[4] = result->message ? ' ' : 'n';
	values[5] = result->sqlstate ? CStringGetTextDatum(result->sqlstate) : (Datum) 0;
	nulls[5] = result->sqlstate ? ' ' : 'n';
	pipeline_exec("INSERT INTO pipeline.freshness_results (check_id, status, latest, lag, "
				  "message, sqlstate) VALUES ($1, $2, $3, $4::interval, $5, $6)",
				  6, types, values, nulls, false, 0);
	pipeline_purge_history("freshness_results", "checked_at", "check_id", check->id);
	pipeline_restore_user(&ctx);

	if (previous ? strcmp(previous, result->status) != 0 : strcmp(result->status, "PASS") != 0)
		raise_alert(check, previous, result);
}

/*
 * arg_as_text
 *		Any argument as its text output, NULL for SQL NULL.
 */
static char *
arg_as_text(FunctionCallInfo fcinfo, int n, Oid type)
{
	Oid			out;
	bool		varlena;

	if (PG_ARGISNULL(n))
		return NULL;
	getTypeOutputInfo(type, &out, &varlena);
	return OidOutputFunctionCall(out, PG_GETARG_DATUM(n));
}

/*
 * store_check
 *		Updates the check with check->id, or inserts a new one (replacing the
 *		one with the same relation, owner, column and filter); returns its id.
 *		An update that would make it the same as another check is refused.
 */
static int64
store_check(const FreshnessCheck *check)
{
	Oid			types[11] = {OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, OIDOID, TEXTOID, INT8OID};
	Datum		values[11];
	char		nulls[11];
	const char *texts[7] = {check->column, check->filter, check->warn_after, check->error_after,
	check->deadline, check->timezone, check->schedule};
	PipelineUserContext ctx;
	int64		id;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = ObjectIdGetDatum(check->relation);
	for (int i = 0; i < 7; i++)
	{
		values[i + 1] = texts[i] ? CStringGetTextDatum(texts[i]) : (Datum) 0;
		nulls[i + 1] = texts[i] ? ' ' : 'n';
	}
	values[8] = ObjectIdGetDatum(check->owner);
	values[9] = CStringGetTextDatum(check->search_path);
	values[10] = Int64GetDatum(check->id);

	pipeline_become_internal(&ctx);
	if (check->id != 0 &&
		pipeline_exec("SELECT id FROM pipeline.freshness_checks WHERE relation = $1 AND owner = $9 "
					  "AND coalesce(column_name, '') = coalesce($2, '') "
					  "AND coalesce(filter, '') = coalesce($3, '') AND id <> $11",
					  11, types, values, nulls, true, 1) == 1)
	{
		int64		other = pipeline_result_int64(0, 0);

		pipeline_restore_user(&ctx);
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("another freshness check already watches %s with this column and filter",
						pipeline_qualified_name(check->relation)),
				 errdetail("Freshness check %lld has the same relation, column and filter; a role has one check of each.",
						   (long long) other),
				 errhint("Alter or drop freshness check %lld instead, or give this one another filter.",
						 (long long) other)));
	}
	if (check->id != 0)
		pipeline_exec("UPDATE pipeline.freshness_checks SET filter = $3, "
					  "warn_after = $4::interval, error_after = $5::interval, deadline = $6::time, "
					  "timezone = $7, schedule = $8, altered_at = now() "
					  "WHERE id = $11 AND relation = $1 AND owner = $9 "
					  "AND column_name IS NOT DISTINCT FROM $2 RETURNING id",
					  11, types, values, nulls, false, 1);
	else
		pipeline_exec("INSERT INTO pipeline.freshness_checks AS c (relation, column_name, filter, "
					  "warn_after, error_after, deadline, timezone, schedule, owner, search_path) "
					  "VALUES ($1, $2, $3, $4::interval, $5::interval, $6::time, $7, $8, $9, $10) "
					  "ON CONFLICT (relation, owner, coalesce(column_name, ''), coalesce(filter, '')) "
					  "DO UPDATE SET warn_after = excluded.warn_after, error_after = excluded.error_after, "
					  "deadline = excluded.deadline, timezone = excluded.timezone, "
					  "schedule = excluded.schedule, search_path = excluded.search_path, "
					  "altered_at = now() RETURNING id",
					  10, types, values, nulls, false, 1);
	id = pipeline_result_int64(0, 0);
	pipeline_restore_user(&ctx);
	return id;
}

/*
 * pipeline_add_freshness_check
 *		SQL: pipeline.add_freshness_check(relation, column_name, warn_after,
 *		error_after, schedule, filter, deadline, timezone) -> id.
 */
Datum
pipeline_add_freshness_check(PG_FUNCTION_ARGS)
{
	FreshnessCheck check = {0};

	pipeline_check_version(ERROR);
	if (PG_ARGISNULL(0))
		invalid("relation must not be null", "A freshness check watches one relation.",
				"Pass the relation, such as 'silver.orders'.");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check.relation = PG_GETARG_OID(0);
	check.column = pipeline_text_arg(fcinfo, 1);
	check.warn_after = arg_as_text(fcinfo, 2, INTERVALOID);
	check.error_after = arg_as_text(fcinfo, 3, INTERVALOID);
	check.schedule = pipeline_cron_normalize_schedule(pipeline_text_arg(fcinfo, 4));
	check.filter = pipeline_text_arg(fcinfo, 5);
	check.deadline = arg_as_text(fcinfo, 6, TIMEOID);
	check.timezone = PG_ARGISNULL(7) ? "UTC" : text_to_cstring(PG_GETARG_TEXT_PP(7));
	check.owner = GetUserId();
	check.search_path = GetConfigOptionByName("search_path", NULL, false);
	validate_settings(&check);
	check.id = store_check(&check);
	SPI_finish();
	PG_RETURN_INT64(check.id);
}

/*
 * pipeline_alter_freshness_check
 *		SQL: pipeline.alter_freshness_check(id, warn_after, error_after,
 *		schedule, filter, deadline, timezone); NULL keeps a setting.
 */
Datum
pipeline_alter_freshness_check(PG_FUNCTION_ARGS)
{
	FreshnessCheck check;

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	load_check_to_manage(PG_GETARG_INT64(0), true, &check);
	if (!PG_ARGISNULL(1))
		check.warn_after = arg_as_text(fcinfo, 1, INTERVALOID);
	if (!PG_ARGISNULL(2))
		check.error_after = arg_as_text(fcinfo, 2, INTERVALOID);
	if (!PG_ARGISNULL(3))
		check.schedule = pipeline_cron_normalize_schedule(pipeline_text_arg(fcinfo, 3));
	if (!PG_ARGISNULL(4))
	{
		check.filter = pipeline_text_arg(fcinfo, 4);
		if (check.filter[0] == '\0')
			check.filter = NULL;
	}
	if (!PG_ARGISNULL(5))
		check.deadline = arg_as_text(fcinfo, 5, TIMEOID);
	if (!PG_ARGISNULL(6))
		check.timezone = pipeline_text_arg(fcinfo, 6);
	validate_settings(&check);
	store_check(&check);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_drop_freshness_check
 *		SQL: pipeline.drop_freshness_check(id, if_exists).
 */
Datum
pipeline_drop_freshness_check(PG_FUNCTION_ARGS)
{
	FreshnessCheck check;
	PipelineUserContext ctx;
	Oid			type = INT8OID;
	Datum		value = PG_GETARG_DATUM(0);

	pipeline_check_version(ERROR);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!PG_ARGISNULL(1) && PG_GETARG_BOOL(1) && !load_check(PG_GETARG_INT64(0), false, &check))
	{
		ereport(NOTICE,
				(errmsg("freshness check %lld does not exist, skipping",
						(long long) PG_GETARG_INT64(0))));
		SPI_finish();
		PG_RETURN_VOID();
	}
	load_check_to_manage(PG_GETARG_INT64(0), true, &check);
	pipeline_become_internal(&ctx);
	pipeline_exec("DELETE FROM pipeline.freshness_checks WHERE id = $1", 1, &type, &value,
				  NULL, false, 0);
	pipeline_restore_user(&ctx);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * pipeline_check_freshness
 *		SQL: pipeline.check_freshness(id): evaluates a check now, records the
 *		result (and an alert on a change of state) and returns it.
 */
Datum
pipeline_check_freshness(PG_FUNCTION_ARGS)
{
	FreshnessCheck check;
	FreshnessResult result;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	MemoryContext callcxt = CurrentMemoryContext;
	HeapTuple	tuple;

	pipeline_check_version(ERROR);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "check_freshness must return a record");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	load_check_to_manage(PG_GETARG_INT64(0), true, &check);
	evaluate(&check, &result);
	record_result(&check, &result);

	MemoryContextSwitchTo(callcxt);
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Int64GetDatum(check.id);
	values[1] = ObjectIdGetDatum(check.relation);
	values[2] = CStringGetTextDatum(result.status);
	values[3] = TimestampTzGetDatum(result.latest);
	nulls[3] = !result.has_latest;
	values[4] = result.lag ? DirectFunctionCall3(interval_in, CStringGetDatum(result.lag),
												 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)) : 0;
	nulls[4] = result.lag == NULL;
	values[5] = result.message ? CStringGetTextDatum(result.message) : (Datum) 0;
	nulls[5] = result.message == NULL;
	tuple = heap_form_tuple(tupdesc, values, nulls);
	SPI_finish();
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
