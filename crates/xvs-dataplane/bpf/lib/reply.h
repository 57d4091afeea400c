/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A NAT connection's reply (real server -> client) on its reply entry:
 * the forward entry refreshed and its TCP state advanced (a one-packet
 * reply has none), the reply counted, its source rewritten to VIP:vport.
 * The director's entry then sends it on (nexthop.h); the egress program
 * (local_out.bpf.c) lets a local dest's reply leave as the stack routed
 * it, which is IPVS's LOCAL_OUT hook for the same replies.
 */
#ifndef XVS_LIB_REPLY_H
#define XVS_LIB_REPLY_H

#include "clock.h"
#include "conntrack.h"
#include "counters.h"
#include "nat.h"
#include "parse.h"
#include "persist.h"

/* GO_ON, or the verdict when the reply cannot be rewritten. */
static __always_inline int reply_rewrite(xvs_ctx *ctx, const struct pkt *p, struct xvs_conn *c)
{
	struct xvs_conn *fc;
	__u64 now;

	if (!(c->flags & XVS_CONN_F_OPS)) {
		fc = bpf_map_lookup_elem(&CONN_MAP, &c->peer);
		if (!fc)
			return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
		now = xvs_now();
		if (fc->last_seen_ns != now)
			fc->last_seen_ns = now;
		conn_transition(fc, p->key.proto, DIR_OUTPUT, p->ev);
		if (p->key.proto == IPPROTO_UDP || state_active(fc->state))
			assure_once(fc, &c->peer);
	}
	stats_add(c->svc_id, c->dest_id, 0, p->tot_len);
	if (nat_rewrite(ctx, p->l4off, nat_proto(p->key.proto), c->peer.daddr.v4, c->peer.dport))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	return GO_ON;
}

#endif /* XVS_LIB_REPLY_H */
