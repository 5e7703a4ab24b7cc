/*-------------------------------------------------------------------------
 *
 * utility_hook.h
 *	  The utility hook (utility_hook.c), installed by _PG_init.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_UTILITY_HOOK_H
#define PIPELINE_UTILITY_HOOK_H

extern void pipeline_utility_init(void);

#endif							/* PIPELINE_UTILITY_HOOK_H */
