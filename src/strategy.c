/*-------------------------------------------------------------------------
 *
 * strategy.c
 *	  The strategies a pipeline may use, by name (strategy.h).
 *
 * A definition stores its strategy's name; loading it
 * (catalog/definitions.c) or creating it (define.c) finds the strategy
 * here, and from then on the pipeline calls it through its
 * PipelineStrategy.  The strategies register themselves when the library
 * is loaded, before any definition is read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "strategy.h"

/* The most strategies the registry holds. */
#define MAX_STRATEGIES 16

static const PipelineStrategy *strategies[MAX_STRATEGIES];
static int	n_strategies = 0;

/*
 * pipeline_register_strategy
 *		Makes a strategy known by its name.  Called by _PG_init.
 */
void
pipeline_register_strategy(const PipelineStrategy *strategy)
{
	if (n_strategies == MAX_STRATEGIES)
		elog(ERROR, "too many pipeline strategies");
	strategies[n_strategies++] = strategy;
}

/*
 * pipeline_find_strategy
 *		The strategy of that name; errors, listing the strategies, for an
 *		unknown one.
 */
const PipelineStrategy *
pipeline_find_strategy(const char *name)
{
	StringInfoData all;

	for (int i = 0; i < n_strategies; i++)
		if (strcmp(strategies[i]->name, name) == 0)
			return strategies[i];
	initStringInfo(&all);
	for (int i = 0; i < n_strategies; i++)
		appendStringInfo(&all, "%s%s", i ? ", " : "", strategies[i]->name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown strategy \"%s\"", name),
			 errdetail("strategy must be one of: %s.", all.data),
			 errhint("Pass one of the listed values.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * pipeline_is_own_column
 *		Whether a target column is one the pipeline's strategy writes itself
 *		(scd2's version columns), which no mapping feeds.
 */
bool
pipeline_is_own_column(const PipelineDef *def, const char *column)
{
	const char *const *c = def->strategy->own_columns;

	for (; c != NULL && *c != NULL; c++)
		if (strcmp(*c, column) == 0)
			return true;
	return false;
}
