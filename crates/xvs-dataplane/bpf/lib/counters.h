/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the director counts: every verdict's reason (XVS_CNT, enum
 * xvs_counter) and the per-service and per-dest statistics IPVS shows
 * (SVC_STATS, DEST_STATS; bytes are IP total length).
 *
 * A stage returns either a verdict, counted with its reason, or GO_ON:
 * no verdict yet, the next stage carries on. Verdicts are never negative
 * (XDP_* are 0..4; tc's TC_ACT_UNSPEC, -1, is never returned).
 */
#ifndef XVS_LIB_COUNTERS_H
#define XVS_LIB_COUNTERS_H

#include "ctx.h"
#include "maps.h"

#define GO_ON (-1)

static __always_inline void cnt(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&XVS_CNT, &idx);

	if (v)
		*v += 1;
}

static __always_inline int verdict(__u32 idx, int action)
{
	cnt(idx);
	return action;
}

/* The verdict of a packet refused for `reason`: its counter's name says
 * which (DROP_* drops, every PASS_* passes to the kernel). */
static __always_inline int refuse(__u32 reason)
{
	switch (reason) {
	case XVS_CNT_DROP_CONN_FULL:
	case XVS_CNT_DROP_NO_NEIGH:
	case XVS_CNT_DROP_FIB:
	case XVS_CNT_DROP_TOO_BIG:
	case XVS_CNT_DROP_ENCAP:
	case XVS_CNT_DROP_TMPL_FULL:
	case XVS_CNT_DROP_DEST_GONE:
	case XVS_CNT_DROP_SIP:
		return verdict(reason, ACT_DROP);
	}
	return verdict(reason, ACT_PASS);
}

/* One more connection of service `svc_id` through dest `dest_id`. */
static __always_inline void stats_conn(__u32 svc_id, __u32 dest_id)
{
	struct xvs_stats *s;

	s = bpf_map_lookup_elem(&SVC_STATS, &svc_id);
	if (s)
		s->conns++;
	s = bpf_map_lookup_elem(&DEST_STATS, &dest_id);
	if (s)
		s->conns++;
}

static __always_inline void stats_add_one(struct xvs_stats *s, int in, __u64 bytes)
{
	if (in) {
		s->inpkts++;
		s->inbytes += bytes;
	} else {
		s->outpkts++;
		s->outbytes += bytes;
	}
}

/* One packet of `bytes` in (client -> RS, `in`) or out (RS -> client). */
static __always_inline void stats_add(__u32 svc_id, __u32 dest_id, int in, __u64 bytes)
{
	struct xvs_stats *s;

	s = bpf_map_lookup_elem(&SVC_STATS, &svc_id);
	if (s)
		stats_add_one(s, in, bytes);
	s = bpf_map_lookup_elem(&DEST_STATS, &dest_id);
	if (s)
		stats_add_one(s, in, bytes);
}

#endif /* XVS_LIB_COUNTERS_H */
