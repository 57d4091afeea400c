/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ICMP errors (dest-unreachable, time-exceeded, source-quench,
 * param-problem) about a connection's packets: for NAT, translated
 * (icmp_quote.h) and sent on; for DR/TUN, sent on to the real server
 * unchanged (ip_vs_icmp_xmit). Other ICMP passes.
 */
#ifndef XVS_LIB_ICMP_ERR_H
#define XVS_LIB_ICMP_ERR_H

#include "counters.h"
#include "csum.h"
#include "fwd.h"
#include "icmp.h"
#include "icmp_quote.h"
#include "nexthop.h"
#include "scratch.h"

/* The ICMP message at `l4` of the IPv4 packet `ip`. */
static __noinline int handle_icmp(xvs_ctx *ctx, struct iphdr *ip, void *l4)
{
	struct xvs_scratch *sc = scratch();
	struct icmp_view v;
	struct xvs_conn *c;
	__u32 why;

	if (!sc)
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	v.key = &sc->ikey;
	why = icmp_find(ctx, ip, l4, &v);
	if (why)
		return verdict(why, ACT_PASS);
	c = v.c;
	if (ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, ACT_PASS);
	if (c->fwd != XVS_FWD_MASQ) {
		/* DR/TUN: as ip_vs_icmp_xmit, the error goes to the real
		 * server unchanged (it answered with the VIP as source). */
		if (c->flags & XVS_CONN_F_REPLY)
			return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
		cnt(XVS_CNT_ICMP_IN);
		stats_add(c->svc_id, c->dest_id, 1, bpf_ntohs(ip->tot_len));
		return fwd_dest(ctx, c->dest_id, v.key, 0);
	}
	icmp_nat(ip, v.ic, v.in, v.ports, c);
	return xmit(ctx, 0, 0);
}

#endif /* XVS_LIB_ICMP_ERR_H */
