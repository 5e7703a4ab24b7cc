/*-------------------------------------------------------------------------
 *
 * id_locks.c
 *	  Advisory locks on a pipeline's or a step's id, in a class of their
 *	  own (a run of a pipeline, a run of a step): the tag, and whether
 *	  another session holds one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"

#include "model.h"
#include "base/base.h"

/*
 * pipeline_id_lock_tag
 *		The advisory lock of class 'lock_class' on id 'id' in this database.
 */
void
pipeline_id_lock_tag(LOCKTAG *tag, int64 id, uint16 lock_class)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id, lock_class);
}

/*
 * pipeline_id_lock_held
 *		Whether another session holds that lock now.
 */
bool
pipeline_id_lock_held(int64 id, uint16 lock_class)
{
	LOCKTAG		tag;

	pipeline_id_lock_tag(&tag, id, lock_class);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ExclusiveLock, false);
	return false;
}
