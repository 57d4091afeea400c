/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Scheduling: the dest for a new connection, by the service's scheduler
 * (enum xvs_sched). Each family lives in a header of its own: ring walks
 * (rr, wrr), bucket tables (dh, sh, mh), dest-list scans (lc, wlc, sed,
 * nq, fo, ovf, twos) and locality caches (lblc, lblcr). Everything a
 * scheduler reads is in the scratch's `in` (service.h fills it).
 */
#ifndef XVS_LIB_SCHED_H
#define XVS_LIB_SCHED_H

#include "sched_hash.h"
#include "sched_lblc.h"
#include "sched_ring.h"
#include "sched_scan.h"

/* A dest for the new connection of the scratch's `in`, or XVS_NO_DEST. */
__noinline int xvs_schedule(void)
{
	struct xvs_scratch *sc = scratch();

	if (!sc)
		return XVS_NO_DEST;
	switch (sc->in.sched) {
	case XVS_SCHED_RR:
	case XVS_SCHED_WRR:
		return ring_pick();
	case XVS_SCHED_DH:
	case XVS_SCHED_SH:
	case XVS_SCHED_MH:
		return hash_pick();
	case XVS_SCHED_LBLC:
		return lblc_pick();
	case XVS_SCHED_LBLCR:
		return lblcr_pick();
	case XVS_SCHED_TWOS:
		return twos_pick();
	case XVS_SCHED_LC:
	case XVS_SCHED_WLC:
	case XVS_SCHED_SED:
	case XVS_SCHED_NQ:
	case XVS_SCHED_FO:
	case XVS_SCHED_OVF:
		return scan_pick(sc->in.sched);
	}
	return XVS_NO_DEST;
}

#endif /* XVS_LIB_SCHED_H */
