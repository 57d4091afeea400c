/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Transmit: where a packet leaves and how. NAT packets take
 * bpf_fib_lookup behind a per-CPU next-hop cache (xvs.h, XVS_NH); DR and
 * TUN packets the next hop user space resolved for their dest (DEST_NH).
 * Both end in "back out" (XDP_TX; tc: a redirect to the ingress device)
 * or a redirect, to a veth's peer directly where tc can.
 */
#ifndef XVS_LIB_NEXTHOP_H
#define XVS_LIB_NEXTHOP_H

#include <linux/ip.h>

#include "clock.h"
#include "counters.h"
#include "csum.h"
#include "ctx.h"
#include "maps.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* XVS_IFACE flags of `ifindex`: 0 when none, and always where the
 * context cannot hand frames to a peer (XDP). */
static __always_inline __u32 iface_flags(__u32 ifindex)
{
	__u32 *f;

	if (!CTX_PEER)
		return 0;
	f = bpf_map_lookup_elem(&XVS_IFACE, &ifindex);
	return f ? *f : 0;
}

/* Sends the frame to `ifindex`, whose XVS_IFACE flags are `oflags`. */
static __always_inline int act_redirect(xvs_ctx *ctx, __u32 ifindex, __u32 oflags)
{
	ctx_note_egress(ctx, ifindex);
	if (CTX_PEER && HAVE(XVS_FEAT_REDIRECT_PEER) && (oflags & XVS_IF_F_PEER)) {
		cnt(XVS_CNT_PEER);
		return ctx_redirect_peer(ifindex);
	}
	return bpf_redirect(ifindex, 0);
}

/* Sends the frame back out of the interface it came in on. */
static __always_inline int act_tx(xvs_ctx *ctx, __u32 oflags)
{
	if (CTX_TX_REDIRECT)
		return act_redirect(ctx, ctx_tx_ifindex(ctx), oflags);
	return XDP_TX;
}

/* Sets the Ethernet addresses and sends the frame out of `oif`. */
static __always_inline int eth_out(xvs_ctx *ctx, __u32 oif, __u32 oflags, const __u8 *dmac,
				   const __u8 *smac)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (oif == ctx->ingress_ifindex) {
		cnt(XVS_CNT_TX);
		return act_tx(ctx, oflags);
	}
	cnt(XVS_CNT_REDIRECT);
	return act_redirect(ctx, oif, oflags);
}

/* ---- NAT: bpf_fib_lookup behind the next-hop cache ---- */

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	__u8 d = 0;

#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		d |= a[i] ^ b[i];
	return !d;
}

static __always_inline struct xvs_nh *nh_slot(__u32 iif, __be32 daddr)
{
	__u32 k = ((daddr ^ (iif * 0x85ebca6bu)) * 0x9e3779b1u) >> (32 - XVS_NH_BITS);

	return bpf_map_lookup_elem(&XVS_NH, &k);
}

/* The egress interface's XVS_IFACE flags travel with a successful lookup
 * in a field the kernel fills with the egress VLAN, which xvs never uses
 * (no VLAN devices in its path): no extra stack in call chains that are
 * at the verifier's 512-byte limit. */
#define FIB_OFLAGS(fib) ((fib)->h_vlan_TCI)

/* Remembers the successful lookup `fib` of a packet of `len` bytes to
 * `dst` from `iif` in slot `e`: a new fill, or a wider ok_len when the
 * slot already holds this next hop. */
static __always_inline void nh_fill(struct xvs_nh *e, const struct xvs_nh_cfg *cfg,
				    const struct bpf_fib_lookup *fib, __u32 iif, __be32 dst,
				    __u32 len, __u64 now)
{
	if (addr_is4(&e->daddr, dst) && e->iif == iif && e->gen == cfg->gen && e->oif == fib->ifindex &&
	    now - e->stamp_ns < cfg->ttl_ns && mac_eq(e->dmac, fib->dmac) &&
	    mac_eq(e->smac, fib->smac)) {
		/* same next hop, only a longer packet: widen ok_len */
		if (len > e->ok_len)
			e->ok_len = len;
		return;
	}
	e->stamp_ns = now;
	addr_set4(&e->daddr, dst);
	e->iif = iif;
	e->oif = fib->ifindex;
	e->gen = cfg->gen;
	e->ok_len = len;
	e->oflags = FIB_OFLAGS(fib);
	__builtin_memcpy(e->dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(e->smac, fib->smac, ETH_ALEN);
	cnt(XVS_CNT_NH_FILL);
}

/* bpf_fib_lookup(ctx, fib, 0) for a filled-in `fib` (ifindex = ingress,
 * ipv4_dst, tot_len, ...), answered from the next-hop cache when its slot
 * is valid (see xvs.h): then only ifindex, dmac and smac are set, which is
 * all the callers read on success. Successful lookups fill the slot. */
static __always_inline long fib_lookup_cached(xvs_ctx *ctx, struct bpf_fib_lookup *fib)
{
	__u32 zero = 0, iif = fib->ifindex, len = fib->tot_len;
	__be32 dst = fib->ipv4_dst;
	struct xvs_nh_cfg *cfg = bpf_map_lookup_elem(&XVS_NH_CFG, &zero);
	struct xvs_nh *e = NULL;
	__u64 now = 0;
	long rc;

	if (cfg && cfg->ttl_ns) {
		e = nh_slot(iif, dst);
		now = xvs_now();
	}
	if (e && addr_is4(&e->daddr, dst) && e->iif == iif && e->gen == cfg->gen && len <= e->ok_len &&
	    now - e->stamp_ns < cfg->ttl_ns) {
		fib->ifindex = e->oif;
		__builtin_memcpy(fib->dmac, e->dmac, ETH_ALEN);
		__builtin_memcpy(fib->smac, e->smac, ETH_ALEN);
		FIB_OFLAGS(fib) = e->oflags;
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	FIB_OFLAGS(fib) = iface_flags(fib->ifindex);
	if (e && cfg)
		nh_fill(e, cfg, fib, iif, dst, len, now);
	return rc;
}

/* Next hop for a rewritten packet. On any fib failure the rewritten packet
 * goes to the kernel, which forwards it (and decrements TTL) itself. */
static __noinline int xmit(xvs_ctx *ctx, __be16 sport, __be16 dport)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct bpf_fib_lookup fib = {};
	long rc;

	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.sport = sport;
	fib.dport = dport;
	/* 0 = let the kernel judge a GSO packet by its segments */
	fib.tot_len = CTX_GSO(ctx) ? 0 : bpf_ntohs(ip->tot_len);
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;

	rc = fib_lookup_cached(ctx, &fib);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		ip_decrease_ttl(ip);
		return eth_out(ctx, fib.ifindex, FIB_OFLAGS(&fib), fib.dmac, fib.smac);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(XVS_CNT_FIB_NO_NEIGH, ACT_PASS);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return verdict(XVS_CNT_FIB_FRAG_NEEDED, ACT_PASS);
	return verdict(XVS_CNT_FIB_OTHER, ACT_PASS);
}

/* ---- DR and TUN: the dest's next hop from user space ---- */

/* A DR/TUN dest's next hop (its DEST_NH slot) that can be used. */
static __always_inline int nh_usable(const struct xvs_dest_nh *nh)
{
	return nh && nh->state == XVS_NH_OK && nh->ifindex;
}

/* The verdict when a dest's next hop `nh` is not usable: dropped and
 * counted, because DR's packets are addressed to a local VIP and TUN's
 * carry a local source, so neither can be handed to the kernel, whose
 * forwarding may be off besides. xvsd resolves what is missing (it
 * watches drop_no_neigh). */
static __always_inline int nh_refuse(const struct xvs_dest_nh *nh)
{
	if (nh && nh->state == XVS_NH_NO_ROUTE)
		return verdict(XVS_CNT_DROP_FIB, ACT_DROP);
	return verdict(XVS_CNT_DROP_NO_NEIGH, ACT_DROP);
}

/* Sets the next hop's MACs and sends the frame out of its interface. */
static __always_inline int nh_out(xvs_ctx *ctx, const struct xvs_dest_nh *nh)
{
	__u32 oif = nh->ifindex;

	return eth_out(ctx, oif, iface_flags(oif), nh->dmac, nh->smac);
}

#endif /* XVS_LIB_NEXTHOP_H */
