/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * TUN (ip_vs_tunnel_xmit): the client's packet, otherwise untouched,
 * inside an outer IPv4 header (IPIP) or IPv4 + UDP + GUE
 * (ipvs_gue_encap), sent to the real server's next hop.
 */
#ifndef XVS_LIB_ENCAP_H
#define XVS_LIB_ENCAP_H

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include "counters.h"
#include "csum.h"
#include "ctx.h"
#include "hash.h"
#include "icmp.h"
#include "nexthop.h"
#include "parse.h"

#define INET_ECN_MASK 3
#define INET_ECN_ECT_0 2
#define XVS_IPIP_HLEN 20 /* outer IPv4 header */
#define XVS_GUE_HLEN 32  /* outer IPv4 + UDP + 4-byte GUE header */
/* GUE source port range: the kernel's default ip_local_port_range, mapped
 * as udp_flow_src_port() maps a flow hash into it. */
#define XVS_GUE_SPORT_MIN 32768
#define XVS_GUE_SPORT_SPAN (60999 - 32768)

/* GUE source port: a hash of the connection's forward tuple (so every
 * packet of a flow, and ICMP errors about it, take the same port), mapped
 * into the ephemeral range as udp_flow_src_port() does. The fixtures
 * recompute it; keep them in step. */
static __always_inline __be16 gue_sport(const struct xvs_conn_key *k)
{
	__u32 h = fmix32(k->saddr.v4);

	h = fmix32(h ^ k->daddr.v4);
	h = fmix32(h ^ ((__u32)k->sport | ((__u32)k->dport << 16)));
	h = fmix32(h ^ k->proto);
	h ^= h << 16;
	return bpf_htons((__u16)((((__u64)h * XVS_GUE_SPORT_SPAN) >> 32) + XVS_GUE_SPORT_MIN));
}

/* What the outer headers say, taken from the inner packet and the dest. */
struct tun_outer {
	__be32 src;       /* the next hop's `src`: the director towards the RS */
	__be32 dst;       /* the RS */
	__u32 inner_len;  /* inner IP total length */
	__u32 hlen;       /* XVS_IPIP_HLEN or XVS_GUE_HLEN */
	__be16 df;        /* the inner DF */
	__be16 sport;     /* GUE */
	__be16 dport;     /* GUE */
	__u8 tos;         /* inner TOS, ECN encapsulated */
	__u8 ttl;         /* inner TTL after the decrement */
	__u8 gue;
	__u8 csum;        /* GUE: --tun-csum */
};

/* The outer IPv4 header: TOS = inner TOS with ECN encapsulated
 * (INET_ECN_encapsulate), DF = inner DF, TTL = inner TTL after the
 * decrement, id 0 with DF (as ip_select_ident) else random. */
static __always_inline void tun_ip_hdr(struct iphdr *oip, const struct tun_outer *o)
{
	oip->version = 4;
	oip->ihl = 5;
	oip->tos = o->tos;
	oip->tot_len = bpf_htons(o->inner_len + o->hlen);
	oip->id = o->df ? 0 : (__u16)bpf_get_prandom_u32();
	oip->frag_off = o->df;
	oip->ttl = o->ttl;
	oip->protocol = o->gue ? IPPROTO_UDP : IPPROTO_IPIP;
	oip->saddr = o->src;
	oip->daddr = o->dst;
	oip->check = ip_csum20(oip);
}

/* The UDP and GUE headers after the outer IPv4 header `oip`, with the
 * full UDP checksum when asked for (--tun-csum). 0, or -1 when the
 * checksum cannot be made. */
static __always_inline int tun_gue_hdr(xvs_ctx *ctx, struct iphdr *oip, const struct tun_outer *o)
{
	struct udphdr *uh = (void *)(oip + 1);
	struct xvs_guehdr *gh = (void *)(uh + 1);
	__u32 ulen = o->inner_len + sizeof(*uh) + sizeof(*gh);
	__u32 seed, off = sizeof(struct ethhdr) + sizeof(*oip);
	__u16 check;
	int sum;

	uh->source = o->sport;
	uh->dest = o->dport;
	uh->len = bpf_htons(ulen);
	uh->check = 0;
	gh->ver_c_hlen = 0; /* version 0, data message, no options */
	gh->proto_ctype = IPPROTO_IPIP;
	gh->flags = 0;
	if (!o->csum)
		return 0;
	/* pseudo header first */
	seed = (o->src & 0xffff) + (o->src >> 16) + (o->dst & 0xffff) + (o->dst >> 16) +
	       bpf_htons(IPPROTO_UDP) + bpf_htons(ulen);
	sum = xvs_csum_frame(ctx, off, ulen, seed);
	if (sum < 0)
		return -1;
	check = (__u16)~sum;
	uh = ctx_data(ctx) + off;
	if ((void *)(uh + 1) > ctx_data_end(ctx))
		return -1;
	uh->check = check ? check : 0xffff;
	return 0;
}

/* The outer headers' values for the inner packet `ip` to dest `dest`
 * through next hop `nh`, GUE source port `sport`. */
static __always_inline void tun_outer_init(struct tun_outer *o, const struct iphdr *ip,
					   const struct xvs_dest *dest,
					   const struct xvs_dest_nh *nh, __be16 sport)
{
	o->gue = dest->tun_type == XVS_TUN_GUE;
	o->csum = o->gue && (dest->tun_flags & XVS_TUN_F_CSUM);
	o->hlen = o->gue ? XVS_GUE_HLEN : XVS_IPIP_HLEN;
	o->src = nh->src.v4;
	o->dst = dest->addr.v4;
	o->sport = sport;
	o->dport = dest->tun_port;
	o->inner_len = bpf_ntohs(ip->tot_len);
	o->df = ip->frag_off & bpf_htons(IP_DF);
}

/* TUN: encapsulate and send. Outer source = the next hop's `src`,
 * destination = the RS. A DF packet too big for the route MTU less the
 * encapsulation is answered with ICMP (`can_icmp`) or dropped; without
 * DF it goes to the kernel (below). */
static __always_inline int tun_xmit(xvs_ctx *ctx, const struct xvs_dest *dest, __u32 dest_id,
				    __be16 sport, int can_icmp)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct xvs_dest_nh *nh;
	struct tun_outer o;
	struct iphdr *oip;
	int too_big;

	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	nh = bpf_map_lookup_elem(&DEST_NH, &dest_id);
	if (!nh_usable(nh))
		return nh_refuse(nh);
	tun_outer_init(&o, ip, dest, nh, sport);
	/* GSO: the segments are judged on the way out; adjust_room below
	 * shrinks them by the encapsulation. */
	too_big = !CTX_GSO(ctx) && o.inner_len + o.hlen > nh->mtu;
	if (too_big && o.df) {
		/* As ensure_mtu_is_adequate: the sender learns the route MTU
		 * less the encapsulation overhead. */
		if (can_icmp && nh->mtu >= o.hlen + IP_MIN_MTU)
			return icmp_frag_needed(ctx, nh->mtu - o.hlen);
		return verdict(XVS_CNT_DROP_TOO_BIG, ACT_DROP);
	}

	ip_decrease_ttl(ip);
	o.ttl = ip->ttl;
	o.tos = ip->tos;
	if ((o.tos & INET_ECN_MASK) == INET_ECN_MASK) /* CE is not copied out */
		o.tos = (o.tos & ~INET_ECN_MASK) | INET_ECN_ECT_0;
	/* The outer checksum covers the whole datagram: only a packet that
	 * is one datagram can have it, and it must be linear to be summed. */
	if (o.csum && (CTX_GSO(ctx) || ctx_linearize(ctx)))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	/* Room after the Ethernet header; the flags make GSO segment the
	 * inner packet and repeat the outer headers. */
	if (ctx_adjust_room(ctx, o.hlen,
			    BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | (o.gue ? BPF_F_ADJ_ROOM_ENCAP_L4_UDP : 0)))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	oip = ctx_data(ctx) + sizeof(struct ethhdr);
	if ((void *)oip + XVS_GUE_HLEN > ctx_data_end(ctx))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);
	tun_ip_hdr(oip, &o);
	if (o.gue && tun_gue_hdr(ctx, oip, &o))
		return verdict(XVS_CNT_DROP_ENCAP, ACT_DROP);

	cnt(XVS_CNT_TUN_IN);
	/* No DF: IPVS fragments the outer packet; XDP cannot, so the kernel
	 * gets it (its forwarding fragments, where it is on). */
	if (too_big)
		return verdict(XVS_CNT_FIB_FRAG_NEEDED, ACT_PASS);
	return nh_out(ctx, nh);
}

#endif /* XVS_LIB_ENCAP_H */
