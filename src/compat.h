/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Differences between PostgreSQL versions, and server structures that
 *	  are not exported in headers, kept in one place.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_COMPAT_H
#define PIPELINE_COMPAT_H

#include "postgres.h"
#include "access/transam.h"
#include "utils/xid8.h"

#if PG_VERSION_NUM < 150000
#error "pipeline requires PostgreSQL 15 or later"
#endif

/*
 * The on-disk layout of pg_snapshot (src/backend/utils/adt/xid8funcs.c keeps
 * it private).  It has been stable since the type appeared in PostgreSQL 13.
 */
typedef struct PipelineSnapshot
{
	int32		vl_len_;		/* varlena header */
	uint32		nxip;			/* number of in-progress ids */
	FullTransactionId xmin;
	FullTransactionId xmax;
	FullTransactionId xip[FLEXIBLE_ARRAY_MEMBER];
} PipelineSnapshot;

#define PIPELINE_SNAPSHOT_SIZE(nxip) \
	(offsetof(PipelineSnapshot, xip) + sizeof(FullTransactionId) * (nxip))

/*
 * Ownership and privileges of a schema, a relation, a database or a
 * function: PostgreSQL 16 replaced the functions per object class by
 * object_ownercheck and object_aclcheck (pg_class_aclcheck and
 * pg_attribute_aclcheck stay).  The caller includes utils/acl.h.
 */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#define pipeline_relation_ownercheck(rel, role) \
	object_ownercheck(RelationRelationId, (rel), (role))
#define pipeline_namespace_ownercheck(nsp, role) \
	object_ownercheck(NamespaceRelationId, (nsp), (role))
#define pipeline_database_ownercheck(db, role) \
	object_ownercheck(DatabaseRelationId, (db), (role))
#define pipeline_namespace_aclcheck(nsp, role, mode) \
	object_aclcheck(NamespaceRelationId, (nsp), (role), (mode))
#define pipeline_proc_aclcheck(proc, role, mode) \
	object_aclcheck(ProcedureRelationId, (proc), (role), (mode))
#else
#define pipeline_relation_ownercheck(rel, role) \
	pg_class_ownercheck((rel), (role))
#define pipeline_namespace_ownercheck(nsp, role) \
	pg_namespace_ownercheck((nsp), (role))
#define pipeline_database_ownercheck(db, role) \
	pg_database_ownercheck((db), (role))
#define pipeline_namespace_aclcheck(nsp, role, mode) \
	pg_namespace_aclcheck((nsp), (role), (mode))
#define pipeline_proc_aclcheck(proc, role, mode) \
	pg_proc_aclcheck((proc), (role), (mode))
#endif

/*
 * A dotted name's parts: PostgreSQL 16 added a soft-error context (NULL:
 * errors are thrown).  The caller includes utils/regproc.h.
 */
#if PG_VERSION_NUM >= 160000
#define pipeline_qualified_name_list(name) stringToQualifiedNameList((name), NULL)
#else
#define pipeline_qualified_name_list(name) stringToQualifiedNameList(name)
#endif

/*
 * This backend's local transaction id: PostgreSQL 17 moved it into the
 * virtual transaction id of its PGPROC.  The caller includes storage/proc.h.
 */
#if PG_VERSION_NUM >= 170000
#define pipeline_local_xid() (MyProc->vxid.lxid)
#else
#define pipeline_local_xid() (MyProc->lxid)
#endif

#endif							/* PIPELINE_COMPAT_H */
