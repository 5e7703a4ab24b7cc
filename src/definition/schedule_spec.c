/*-------------------------------------------------------------------------
 *
 * schedule_spec.c
 *	  A pipeline's or a step's schedule: when the background workers run
 *	  it.
 *
 * Four forms:
 *	  'manual'        never by itself; pipeline.run runs it.
 *	  'continuous'    whenever rows are committed to its source.
 *	  an interval     '30 seconds', '5 minutes', '1 hour': that long after
 *	                  the start of its previous run.
 *	  cron text       five fields (minute, hour, day of month, month, day of
 *	                  week; lists, ranges, steps, month and day names) or
 *	                  @hourly, @daily, @weekly, @monthly, @yearly.  Times are
 *	                  UTC, as pg_cron's.  When both day fields are
 *	                  restricted, a day matching either runs (as in cron).
 *
 * A step's schedule is 'manual', an interval, cron text, or 'on_upstream':
 * whenever a pipeline or step it runs after did new work and every one
 * ended its last run successfully.  A step is a statement, not a reader
 * of staged rows: 'continuous' means nothing for it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "common/int.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "model.h"
#include "base/base.h"
#include "definition/definition.h"

PG_FUNCTION_INFO_V1(pipeline_next_run_after);

/* How far ahead a cron text is searched for its next time (Feb 29 included). */
#define CRON_SEARCH_DAYS (366 * 9)

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"
};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* The @ forms and their five fields. */
static const struct
{
	const char *name;
	const char *fields;
}			cron_macros[] = {
	{"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},
	{"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

/*
 * invalid_schedule
 *		Errors about a schedule, with what was wrong.
 */
static void
invalid_schedule(const char *text, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid schedule \"%s\"", text),
			 errdetail("%s", why),
			 errhint("Use 'manual', 'continuous', an interval such as '30 seconds', or cron text "
					 "such as '*/5 * * * *' (UTC).")));
}

/*
 * parse_value
 *		A number or (for months and days of the week) a name, advancing *p.
 */
static int
parse_value(const char **p, const char *const *names, int nnames, int name_base,
			const char *text)
{
	int			value = 0;

	if (isdigit((unsigned char) **p))
	{
		while (isdigit((unsigned char) **p))
		{
			value = value * 10 + (**p - '0');
			if (value > 1000)
				invalid_schedule(text, "A cron field holds a number out of range.");
			(*p)++;
		}
		return value;
	}
	for (int i = 0; names && i < nnames; i++)
	{
		if (pg_strncasecmp(*p, names[i], 3) == 0)
		{
			*p += 3;
			return i + name_base;
		}
	}
	invalid_schedule(text, "A cron field holds something that is neither a number nor a name.");
	return 0;					/* not reached */
}

/*
 * parse_field
 *		One cron field ("*", "1,5", "9-17", "*\/15", "mon-fri") into a bit
 *		set over lo..hi; sets *star when the field starts with "*" ("*" or
 *		"*\/2"), which is what decides, as in vixie cron and pg_cron, whether
 *		day of month and day of week must both match or either.
 */
static uint64
parse_field(const char *field, int lo, int hi, const char *const *names, int nnames,
			int name_base, bool *star, const char *text)
{
	uint64		bits = 0;
	const char *p = field;

	*star = field[0] == '*';
	for (;;)
	{
		int			from = lo,
					to = hi,
					step = 1;

		if (*p == '*')
			p++;
		else
		{
			from = to = parse_value(&p, names, nnames, name_base, text);
			if (*p == '-')
			{
				p++;
				to = parse_value(&p, names, nnames, name_base, text);
			}
		}
		if (*p == '/')
		{
			p++;
			step = parse_value(&p, NULL, 0, 0, text);
			if (step == 0)
				invalid_schedule(text, "A cron step must be positive.");
			if (from == to)
				to = hi;		/* "5/15" means from 5 on */
		}
		if (from < lo || to > hi || from > to)
			invalid_schedule(text, psprintf("Cron field \"%s\" is outside %d-%d.", field, lo, hi));
		for (int v = from; v <= to; v += step)
			bits |= UINT64CONST(1) << v;
		if (*p == '\0')
			return bits;
		if (*p != ',')
			invalid_schedule(text, psprintf("Cron field \"%s\" is not understood.", field));
		p++;
	}
}

/*
 * parse_cron
 *		Five cron fields into s; false when the text does not look like cron.
 */
static bool
parse_cron(const char *text, PipelineSchedule *s)
{
	char	   *copy = pstrdup(text);
	char	   *fields[6];
	int			n = 0;
	bool		star;

	for (int i = 0; i < lengthof(cron_macros); i++)
		if (pg_strcasecmp(text, cron_macros[i].name) == 0)
			copy = pstrdup(cron_macros[i].fields);
	if (text[0] == '@' && strcmp(copy, text) == 0)
		invalid_schedule(text, "Known @ forms: @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually.");

	for (char *tok = strtok(copy, " \t"); tok != NULL; tok = strtok(NULL, " \t"))
	{
		if (n == 5)
			invalid_schedule(text, "Cron text has five fields: minute, hour, day of month, month, day of week.");
		fields[n++] = tok;
	}
	if (n != 5)
		return false;

	s->kind = SCHEDULE_CRON;
	s->minutes = parse_field(fields[0], 0, 59, NULL, 0, 0, &star, text);
	s->hours = (uint32) parse_field(fields[1], 0, 23, NULL, 0, 0, &star, text);
	s->days = (uint32) parse_field(fields[2], 1, 31, NULL, 0, 0, &s->any_day, text);
	s->months = (uint16) parse_field(fields[3], 1, 12, month_names, 12, 1, &star, text);
	s->weekdays = (uint8) parse_field(fields[4], 0, 7, day_names, 7, 0, &s->any_weekday, text);
	if (s->weekdays & (1 << 7))
		s->weekdays = (s->weekdays | 1) & 0x7f; /* 7 is Sunday too */
	return true;
}

/*
 * parse_interval
 *		An interval schedule; errors unless it is a positive time span
 *		without months.
 */
static void
parse_interval(const char *text, PipelineSchedule *s)
{
	Interval   *span = DatumGetIntervalP(DirectFunctionCall3(interval_in,
															 CStringGetDatum(text),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)));

	if (span->month != 0)
		invalid_schedule(text, "An interval schedule cannot count in months; use cron text.");
	s->kind = SCHEDULE_INTERVAL;
	s->interval = span->time + span->day * USECS_PER_DAY;
	if (s->interval < USECS_PER_SEC)
		invalid_schedule(text, "An interval schedule must be at least 1 second; 'continuous' runs on every commit.");
}

/*
 * try_parse_interval
 *		parse_interval in a subtransaction: text that is not an interval
 *		gets the schedule's own error.
 */
static void
try_parse_interval(void *arg)
{
	PipelineSchedule *s = arg;

	parse_interval(s->text, s);
}

/*
 * trimmed_copy
 *		A copy of the text without its leading and trailing white space.
 */
static char *
trimmed_copy(const char *text)
{
	char	   *trimmed = pstrdup(text);
	int			len;

	while (isspace((unsigned char) *trimmed))
		trimmed++;
	len = strlen(trimmed);
	while (len > 0 && isspace((unsigned char) trimmed[len - 1]))
		trimmed[--len] = '\0';
	return trimmed;
}

/*
 * pipeline_schedule_parse
 *		Parses a schedule (see the file header); errors on anything else.
 *		s->text is the schedule as it should be stored.
 */
void
pipeline_schedule_parse(const char *text, PipelineSchedule *s)
{
	char	   *trimmed = trimmed_copy(text);
	ErrorData  *error;

	memset(s, 0, sizeof(*s));
	s->text = trimmed;
	if (pg_strcasecmp(trimmed, "manual") == 0 || pg_strcasecmp(trimmed, "continuous") == 0)
	{
		s->kind = pg_strcasecmp(trimmed, "manual") == 0 ? SCHEDULE_MANUAL : SCHEDULE_CONTINUOUS;
		s->text = s->kind == SCHEDULE_MANUAL ? "manual" : "continuous";
		return;
	}
	if (trimmed[0] == '\0')
		invalid_schedule(text, "The schedule is empty.");
	if (parse_cron(trimmed, s))
	{
		if (pipeline_schedule_next(s, 0) == DT_NOEND)
			invalid_schedule(text, "No date ever matches it.");
		return;
	}
	error = pipeline_try(try_parse_interval, s);
	if (error != NULL)
	{
		if (error->sqlerrcode == ERRCODE_INVALID_PARAMETER_VALUE)
			ReThrowError(error);
		invalid_schedule(text, "It is neither 'manual', 'continuous', cron text nor an interval.");
	}
}

/*
 * try_parse_schedule
 *		pipeline_schedule_parse of s->text, for pipeline_try.
 */
static void
try_parse_schedule(void *arg)
{
	PipelineSchedule *s = arg;

	pipeline_schedule_parse(s->text, s);
}

/*
 * pipeline_step_schedule_parse
 *		Parses a step's schedule (see the file header); errors on anything
 *		else, 'continuous' included.
 */
void
pipeline_step_schedule_parse(const char *text, PipelineSchedule *s)
{
	const char *hint = "Use 'manual', 'on_upstream', an interval such as '30 minutes', or cron text "
	"such as '0 3 * * *' (UTC).";
	char	   *trimmed = trimmed_copy(text);
	ErrorData  *error;

	if (pg_strcasecmp(trimmed, "on_upstream") == 0)
	{
		pipeline_stored_step_schedule("on_upstream", s);
		return;
	}
	if (pg_strcasecmp(trimmed, "continuous") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule \"%s\" for a step", text),
				 errdetail("A step runs a statement; it reads no staged rows whose commits could start it."),
				 errhint("%s", hint)));
	s->text = text;

	error = pipeline_try(try_parse_schedule, s);
	if (error != NULL)
		ereport(ERROR,
				(errcode(error->sqlerrcode),
				 errmsg("invalid schedule \"%s\" for a step", text),
				 errdetail("%s", strncmp(error->detail ? error->detail : "", "It is neither", 13) == 0 ?
						   "It is neither 'manual', 'on_upstream', cron text nor an interval." :
						   error->detail ? error->detail : error->message),
				 errhint("%s", hint)));
}

/*
 * pipeline_stored_step_schedule
 *		A step's schedule as stored (checked when it was set): no
 *		subtransaction per step and pass, as pipeline_step_schedule_parse's
 *		rewording of errors would cost.
 */
void
pipeline_stored_step_schedule(const char *text, PipelineSchedule *s)
{
	if (strcmp(text, "on_upstream") == 0)
	{
		memset(s, 0, sizeof(*s));
		s->kind = SCHEDULE_ON_UPSTREAM;
		s->text = "on_upstream";
		return;
	}
	pipeline_schedule_parse(text, s);
}

/*
 * cron_day_matches
 *		Whether the schedule runs on day j (a Julian day number).
 */
static bool
cron_day_matches(const PipelineSchedule *s, int j)
{
	int			year,
				month,
				day;
	bool		by_day,
				by_weekday;

	j2date(j, &year, &month, &day);
	if (!(s->months & (1 << month)))
		return false;
	by_day = (s->days & (((uint32) 1) << day)) != 0;
	by_weekday = (s->weekdays & (1 << j2day(j))) != 0;
	if (s->any_day || s->any_weekday)
		return by_day && by_weekday;
	return by_day || by_weekday;
}

/*
 * pipeline_schedule_next
 *		The first time after 'after' the schedule runs: for an interval,
 *		'after' plus the interval; for cron text the next matching minute
 *		(UTC), or DT_NOEND when none comes within nine years or before the
 *		end of the timestamp range.  Manual and continuous schedules have
 *		none (DT_NOEND).
 */
TimestampTz
pipeline_schedule_next(const PipelineSchedule *s, TimestampTz after)
{
	int64		minute;
	int			first_day;

	if (s->kind == SCHEDULE_INTERVAL)
		return after + s->interval;
	if (s->kind != SCHEDULE_CRON)
		return DT_NOEND;

	/* minutes since 2000-01-01 UTC of the first whole minute after 'after' */
	minute = (after >= 0 ? after / USECS_PER_MINUTE : (after - USECS_PER_MINUTE + 1) / USECS_PER_MINUTE) + 1;
	first_day = (int) (minute / (24 * 60)) + POSTGRES_EPOCH_JDATE;
	if (minute < 0 && minute % (24 * 60) != 0)
		first_day--;
	/* no minute past the last day of the timestamp range */
	for (int j = first_day; j < first_day + CRON_SEARCH_DAYS && j < TIMESTAMP_END_JULIAN; j++)
	{
		int64		day_start = (int64) (j - POSTGRES_EPOCH_JDATE) * 24 * 60;

		if (!cron_day_matches(s, j))
			continue;
		for (int h = 0; h < 24; h++)
		{
			if (!(s->hours & (((uint32) 1) << h)))
				continue;
			for (int m = 0; m < 60; m++)
			{
				int64		candidate = day_start + h * 60 + m;

				if (candidate >= minute && (s->minutes & (UINT64CONST(1) << m)))
					return candidate * USECS_PER_MINUTE;
			}
		}
	}
	return DT_NOEND;
}

/*
 * pipeline_next_run_after
 *		SQL: pipeline.next_run_after(schedule, after) -> timestamptz; NULL
 *		for 'manual' and 'continuous'.  A time outside the timestamp range
 *		(infinite 'after', a next run past the year 294276) is an error.
 */
Datum
pipeline_next_run_after(PG_FUNCTION_ARGS)
{
	PipelineSchedule s;
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(1);
	TimestampTz next;
	bool		in_range;

	pipeline_schedule_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &s);
	if (s.kind != SCHEDULE_INTERVAL && s.kind != SCHEDULE_CRON)
		PG_RETURN_NULL();
	if (TIMESTAMP_NOT_FINITE(after))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("after must be a finite timestamp"),
				 errdetail("No run comes after infinity, nor is one the first after -infinity."),
				 errhint("Pass a date and time.")));
	if (s.kind == SCHEDULE_INTERVAL)
		in_range = !pg_add_s64_overflow(after, s.interval, &next);
	else
	{
		next = pipeline_schedule_next(&s, after);
		in_range = next != DT_NOEND;
	}
	if (!in_range || !IS_VALID_TIMESTAMP(next))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("the next run of schedule \"%s\" after %s is out of range",
						s.text, timestamptz_to_str(after)),
				 errdetail("Timestamps end in the year 294276; the next run would fall after that, or no run comes within nine years."),
				 errhint("Pass an earlier time.")));
	PG_RETURN_TIMESTAMPTZ(next);
}
