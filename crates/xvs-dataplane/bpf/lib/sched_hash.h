/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The hashing schedulers: dh (by destination address), sh and mh (by
 * source address, and port with sh-port/mh-port) over the bucket table
 * user space builds in RING_MAP (256 buckets for dh/sh, a prime `ring_len`
 * for mh); sh-fallback/mh-fallback probe on (sched_ring.h).
 */
#ifndef XVS_LIB_SCHED_HASH_H
#define XVS_LIB_SCHED_HASH_H

#include "sched_ring.h"

__noinline int hash_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct sched_in *in;
	struct walk *w;
	__u32 id;

	if (!sc)
		return XVS_NO_DEST;
	in = &sc->in;
	w = &sc->walk;
	if (!in->ring_len)
		return XVS_NO_DEST;
	if (in->sched == XVS_SCHED_DH) {
		id = ring_get(in->svc_id, in->gen, dh_hashkey(in->daddr));
		return id != XVS_NO_DEST && schedulable(id, XVS_NO_DEST) ? id : XVS_NO_DEST;
	}
	__builtin_memset(w, 0, sizeof(*w));
	w->svc_id = in->svc_id;
	w->gen = in->gen;
	w->len = in->ring_len;
	w->saddr = in->saddr;
	w->found = XVS_NO_DEST;
	if (in->flags & XVS_SVC_F_SCHED2)
		w->port = in->sport;
	w->probe = in->sched == XVS_SCHED_MH ? WALK_MH : WALK_SH;
	w->ihash = w->probe == WALK_MH ? mh_hashkey(w->saddr, w->port, 0) % w->len
				       : sh_hashkey(w->saddr, w->port, 0);
	id = ring_get(in->svc_id, in->gen, w->ihash);
	if (id == XVS_NO_DEST)
		return XVS_NO_DEST;
	if (schedulable(id, XVS_NO_DEST))
		return id;
	if (!(in->flags & XVS_SVC_F_SCHED1))
		return XVS_NO_DEST;
	walk_run();
	return w->found;
}

#endif /* XVS_LIB_SCHED_HASH_H */
