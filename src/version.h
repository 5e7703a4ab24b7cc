/*-------------------------------------------------------------------------
 *
 * version.h
 *	  The library's version against the installed extension's (version.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PIPELINE_VERSION_H
#define PIPELINE_VERSION_H

extern bool pipeline_check_version(int elevel);

#endif							/* PIPELINE_VERSION_H */
