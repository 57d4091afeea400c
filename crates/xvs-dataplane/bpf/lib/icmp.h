/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ICMP: the one message the director writes itself:
 * "fragmentation needed" for a DF packet too big for a DR/TUN dest's
 * path (icmp_err.h translates the errors others send).
 */
#ifndef XVS_LIB_ICMP_H
#define XVS_LIB_ICMP_H

#include <linux/in.h>
#include <linux/ip.h>

#include "counters.h"
#include "csum.h"
#include "ctx.h"
#include "icmp_quote.h"
#include "nexthop.h"

#define IP_MIN_MTU 68 /* RFC 791; IPVS refuses tunnel MTUs below it */
#define IPTOS_PREC_INTERNETCONTROL 0xc0

/* The new IPv4 header of an ICMP message of IP total length `len` from
 * `saddr` to `daddr`. */
static __always_inline void icmp_ip_hdr(struct iphdr *nip, __u32 len, __be32 saddr, __be32 daddr)
{
	nip->version = 4;
	nip->ihl = 5;
	nip->tos = IPTOS_PREC_INTERNETCONTROL;
	nip->tot_len = bpf_htons(len);
	nip->id = (__u16)bpf_get_prandom_u32();
	nip->frag_off = 0;
	nip->ttl = 64;
	nip->protocol = IPPROTO_ICMP;
	nip->saddr = saddr;
	nip->daddr = daddr;
	nip->check = ip_csum20(nip);
}

/* The ICMP checksum over `nwords` 32-bit words from `ic` (at most 19:
 * header + IPv4 header with options + 8); -1 when the frame ends first. */
static __always_inline int icmp_csum(struct icmphdr *ic, __u32 nwords, void *data_end)
{
	__u64 s = 0;

	for (__u32 i = 0; i < 19; i++) {
		__u32 *w = (__u32 *)ic + i;

		if (i >= nwords)
			break;
		if ((void *)(w + 1) > data_end)
			return -1;
		s += *w;
	}
	return (__u16)~csum_fold(s);
}

/* Answers the IPv4 packet in the frame with ICMP dest-unreachable /
 * fragmentation-needed (RFC 792, next-hop MTU per RFC 1191), built in
 * place: source = the packet's destination (the VIP), MACs swapped,
 * payload = its IP header (with options) + the first 8 bytes after it,
 * sent back out of the ingress interface. */
static __always_inline int icmp_frag_needed(xvs_ctx *ctx, __u32 mtu)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data, e;
	struct iphdr *ip, *nip;
	struct icmphdr *ic;
	__be32 saddr, daddr;
	__u32 ihl, len;
	int delta, sum;

	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	ihl = (ip->ihl * 4) & 0x3c;
	if (ihl < sizeof(*ip) || (void *)ip + ihl + 8 > data_end)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	__builtin_memcpy(&e, eth, sizeof(e));
	saddr = ip->saddr;
	daddr = ip->daddr;
	len = sizeof(*nip) + sizeof(*ic) + ihl + 8; /* new IP total length */
	delta = (int)(sizeof(*eth) + len) - (int)(ctx_len(ctx) + 28);
	if (delta > 0)
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);

	/* 28 new bytes before the IP header: it then sits exactly where the
	 * ICMP payload starts (eth 14 + IP 20 + ICMP 8). */
	if (ctx_adjust_room(ctx, 28, 0))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	nip = (void *)(eth + 1);
	ic = (void *)(nip + 1);
	if ((void *)(ic + 1) > data_end)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	__builtin_memcpy(eth->h_dest, e.h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, e.h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	icmp_ip_hdr(nip, len, daddr, saddr);

	ic->type = ICMP_DEST_UNREACH;
	ic->code = ICMP_FRAG_NEEDED;
	ic->checksum = 0;
	ic->rest = bpf_htonl(mtu & 0xffff);
	sum = icmp_csum(ic, (len - sizeof(*nip)) / 4, data_end);
	if (sum < 0)
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	ic->checksum = (__u16)sum;
	if (delta && ctx_change_tail(ctx, sizeof(*eth) + len, delta))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	cnt(XVS_CNT_ICMP_FRAG_NEEDED);
	return act_tx(ctx, iface_flags(ctx->ingress_ifindex));
}

#endif /* XVS_LIB_ICMP_H */
