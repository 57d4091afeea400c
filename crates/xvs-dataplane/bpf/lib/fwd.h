/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * DR and TUN: a client packet sent on to its real server by the dest's
 * forwarding method, to the next hop user space resolved (DEST_NH), or to
 * the director's own stack when the dest is one of its addresses.
 * Neither can go to the kernel (DR's destination is a local VIP, TUN's
 * outer source is local): every failure drops, counted.
 */
#ifndef XVS_LIB_FWD_H
#define XVS_LIB_FWD_H

#include "dest.h"
#include "encap.h"
#include "icmp.h"
#include "nexthop.h"

/* DR (ip_vs_dr_xmit): the IP packet keeps its addresses; only the
 * Ethernet header changes, towards the real server's MAC. The TTL is
 * decremented because the director routes the packet (IPVS does the same
 * in __ip_vs_get_out_rt). */
static __always_inline int dr_xmit(xvs_ctx *ctx, __u32 dest_id, int can_icmp)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct xvs_dest_nh *nh;

	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	nh = bpf_map_lookup_elem(&DEST_NH, &dest_id);
	if (!nh_usable(nh))
		return nh_refuse(nh);
	/* A GSO packet is judged by its segments, on the way out. */
	if (!CTX_GSO(ctx) && bpf_ntohs(ip->tot_len) > nh->mtu) {
		if (can_icmp && (ip->frag_off & bpf_htons(IP_DF)) && nh->mtu >= IP_MIN_MTU)
			return icmp_frag_needed(ctx, nh->mtu);
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	}
	ip_decrease_ttl(ip);
	cnt(XVS_CNT_DR_IN);
	return nh_out(ctx, nh);
}

/* Sends a client packet of a DR/TUN connection on to its dest, by the
 * dest's current forwarding method. `fkey` is the connection's forward
 * tuple. ICMP errors never cause ICMP errors (can_icmp = 0). */
static __noinline int fwd_dest(xvs_ctx *ctx, __u32 dest_id, const struct xvs_conn_key *fkey,
			       int can_icmp)
{
	struct xvs_dest *d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);

	if (!dest_available(d) || d->fwd == XVS_FWD_MASQ)
		return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
	/* A local dest (ip_vs_dr_xmit, ip_vs_tunnel_xmit: a local route
	 * continues the packet unchanged to the director's own stack). */
	if (dest_local(dest_id))
		return verdict(XVS_CNT_PASS_LOCAL, ACT_PASS);
	if (d->fwd == XVS_FWD_ROUTE)
		return dr_xmit(ctx, dest_id, can_icmp);
	if (d->fwd != XVS_FWD_TUNNEL || d->tun_type > XVS_TUN_GUE)
		return verdict(XVS_CNT_PASS_FWD_UNSUPP, ACT_PASS);
	return tun_xmit(ctx, d, dest_id, gue_sport(fkey), can_icmp);
}

#endif /* XVS_LIB_FWD_H */
