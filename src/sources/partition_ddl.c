/*-------------------------------------------------------------------------
 *
 * partition_ddl.c
 *	  What a DDL statement does to partitions, as the event triggers of
 *	  partitioned staging tables (staging.c) and of captured partitioned
 *	  tables (capture_partitions.c) both need to know it: the partitions a
 *	  CREATE made, the partition an ALTER TABLE attaches or detaches.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "utils/lsyscache.h"

#include "model.h"
#include "base/base.h"
#include "sources/sources.h"

/*
 * pipeline_created_partitions
 *		At ddl_command_end of CREATE TABLE or CREATE SCHEMA: the tables the
 *		statement created (those of CREATE SCHEMA's elements too) that are
 *		partitions.  The caller is connected to SPI.
 */
List *
pipeline_created_partitions(void)
{
	List	   *created = NIL;
	PipelineUserContext ctx;
	int			n;

	pipeline_become_internal(&ctx);
	n = pipeline_exec("SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands() "
					  "WHERE command_tag = 'CREATE TABLE' AND object_type = 'table'",
					  0, NULL, NULL, NULL, true, 0);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(pipeline_result_datum(i, 0, &isnull));

		if (get_rel_relispartition(relid))
			created = lappend_oid(created, relid);
	}
	pipeline_restore_user(&ctx);
	return created;
}

/*
 * pipeline_partition_command
 *		For an ALTER TABLE attaching or detaching a partition (the grammar
 *		allows one such command per statement): the partition command, with
 *		its kind in *type and the parent and the partition in *parent and
 *		*partition (InvalidOid when a name does not resolve); NULL for any
 *		other ALTER TABLE.
 */
PartitionCmd *
pipeline_partition_command(AlterTableStmt *stmt, AlterTableType *type, Oid *parent,
						   Oid *partition)
{
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE)
		return NULL;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		PartitionCmd *pc;

		if (cmd->subtype != AT_AttachPartition && cmd->subtype != AT_DetachPartition)
			continue;
		pc = (PartitionCmd *) cmd->def;
		*type = cmd->subtype;
		*parent = RangeVarGetRelid(stmt->relation, NoLock, true);
		*partition = RangeVarGetRelid(pc->name, NoLock, true);
		return pc;
	}
	return NULL;
}
