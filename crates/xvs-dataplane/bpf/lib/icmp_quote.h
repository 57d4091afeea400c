/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The ICMP header, and an ICMP error about a connection's packet:
 * finding the connection by
 * the packet it quotes, and NAT's translation of it (outer and quoted
 * addresses and ports, quoted IP, ICMP and outer IP checksums fixed
 * incrementally). The director's handle_icmp (icmp_err.h) and the egress
 * program of local dests (local_out.bpf.c) share it.
 */
#ifndef XVS_LIB_ICMP_QUOTE_H
#define XVS_LIB_ICMP_QUOTE_H

#include <linux/in.h>
#include <linux/ip.h>

#include "counters.h"
#include "csum.h"
#include "maps.h"

/* <linux/icmp.h> drags in libc headers; the ICMP header is all we need. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum; /* ones' complement, byte order neutral */
	__be32 rest;
};

#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_FRAG_NEEDED 4

/* NAT: the error `ic` (outer header `ip`, quoted header `in` and ports)
 * about connection `c`, rewritten for the other side. */
static __always_inline void icmp_nat(struct iphdr *ip, struct icmphdr *ic, struct iphdr *in,
				     __be16 *ports, const struct xvs_conn *c)
{
	__be32 old_addr, new_addr;
	__be16 old_port, new_port;
	__u16 old_check;

	if (c->flags & XVS_CONN_F_REPLY) {
		/* From the RS side about client->RS: show it from VIP:vport. */
		new_addr = c->peer.daddr.v4;
		new_port = c->peer.dport;
		csum_replace4(&ip->check, ip->saddr, new_addr);
		ip->saddr = new_addr;
		old_addr = in->daddr;
		old_port = ports[1];
		old_check = in->check;
		csum_replace4(&in->check, old_addr, new_addr);
		in->daddr = new_addr;
		ports[1] = new_port;
		cnt(XVS_CNT_ICMP_OUT);
		stats_add(c->svc_id, c->dest_id, 0, bpf_ntohs(ip->tot_len));
	} else {
		/* From the client about VIP->client: hand it to the RS. */
		new_addr = c->peer.saddr.v4;
		new_port = c->peer.sport;
		csum_replace4(&ip->check, ip->daddr, new_addr);
		ip->daddr = new_addr;
		old_addr = in->saddr;
		old_port = ports[0];
		old_check = in->check;
		csum_replace4(&in->check, old_addr, new_addr);
		in->saddr = new_addr;
		ports[0] = new_port;
		cnt(XVS_CNT_ICMP_IN);
		stats_add(c->svc_id, c->dest_id, 1, bpf_ntohs(ip->tot_len));
	}
	csum_replace4(&ic->checksum, old_addr, new_addr);
	csum_replace2(&ic->checksum, old_check, in->check);
	csum_replace2(&ic->checksum, old_port, new_port);
}

/* An ICMP error about a connection's packet, as found in a frame. */
struct icmp_view {
	struct icmphdr *ic;
	struct iphdr *in;         /* the quoted IP header */
	__be16 *ports;            /* the quoted ports */
	struct xvs_conn_key *key; /* the quoted packet's reverse: its conn
				   * (room the caller gives: the director's
				   * is the scratch's, off its stack) */
	struct xvs_conn *c;
};

/* Finds the connection the ICMP message at `l4` of the IPv4 packet `ip`
 * is about: 0 with `v` filled, or the reason (an XVS_CNT_PASS_*) when it
 * is no error, is cut short, or quotes no connection of ours. */
static __always_inline __u32 icmp_find(xvs_ctx *ctx, struct iphdr *ip, void *l4,
				       struct icmp_view *v)
{
	void *data_end = ctx_data_end(ctx);
	struct icmphdr *ic = l4;
	struct iphdr *in;
	__be16 *ports;
	__u32 inihl;
	/* What the IP packet carries after its header (parse_ip checked
	 * tot_len >= ihl): bytes past it are padding, never a quote. */
	__u32 l4len = bpf_ntohs(ip->tot_len) - ip->ihl * 4;

	if ((void *)(ic + 1) > data_end || l4len < sizeof(*ic))
		return XVS_CNT_PASS_TRUNCATED;
	if (ic->type != ICMP_DEST_UNREACH && ic->type != ICMP_TIME_EXCEEDED &&
	    ic->type != ICMP_SOURCE_QUENCH && ic->type != ICMP_PARAMETERPROB)
		return XVS_CNT_PASS_ICMP;

	in = (void *)(ic + 1);
	if ((void *)(in + 1) > data_end || l4len < sizeof(*ic) + sizeof(*in))
		return XVS_CNT_PASS_TRUNCATED;
	inihl = in->ihl * 4;
	if (in->version != 4 || inihl < sizeof(*in))
		return XVS_CNT_PASS_ICMP;
	/* SCTP's ports sit where TCP's and UDP's do; IPVS leaves the
	 * quoted CRC alone, as the quote is cut short anyway. */
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP &&
	    in->protocol != IPPROTO_SCTP)
		return XVS_CNT_PASS_ICMP;
	if (in->frag_off & bpf_htons(0x1fff))
		return XVS_CNT_PASS_ICMP;
	ports = (void *)in + inihl;
	if ((void *)(ports + 2) > data_end || l4len < sizeof(*ic) + inihl + 4)
		return XVS_CNT_PASS_TRUNCATED;

	/* The quoted packet travelled the other way: look its reverse up. */
	__builtin_memset(v->key, 0, sizeof(*v->key));
	addr_set4(&v->key->saddr, in->daddr);
	addr_set4(&v->key->daddr, in->saddr);
	v->key->af = XVS_AF_INET;
	v->key->sport = ports[1];
	v->key->dport = ports[0];
	v->key->proto = in->protocol;
	v->c = bpf_map_lookup_elem(&CONN_MAP, v->key);
	if (!v->c)
		return XVS_CNT_PASS_ICMP;
	v->ic = ic;
	v->in = in;
	v->ports = ports;
	return 0;
}

#endif /* XVS_LIB_ICMP_QUOTE_H */
