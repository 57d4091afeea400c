/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The program's clock: CLOCK_MONOTONIC in nanoseconds, for last_seen_ns
 * (connections, templates, lblc caches) and the next-hop cache's stamps.
 */
#ifndef XVS_LIB_CLOCK_H
#define XVS_LIB_CLOCK_H

#include "maps.h"

/* bpf_ktime_get_coarse_ns (5.11, feature coarse_clock): the clock's value
 * at the last tick, far cheaper than reading the clocksource per packet
 * and never ahead of user space's reading. Without it, bpf_ktime_get_ns:
 * the same clock, read exactly. */
static __always_inline __u64 xvs_now(void)
{
	if (HAVE(XVS_FEAT_COARSE_CLOCK))
		return bpf_ktime_get_coarse_ns();
	return bpf_ktime_get_ns();
}

#endif /* XVS_LIB_CLOCK_H */
