/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ICMP errors (dest-unreachable, time-exceeded, source-quench,
 * param-problem) about a connection's packets: for NAT, outer and quoted
 * addresses and ports translated (quoted IP, ICMP and outer IP checksums
 * fixed incrementally) and the error sent on; for DR/TUN, sent on to the
 * real server unchanged (ip_vs_icmp_xmit). Other ICMP passes.
 */
#ifndef XVS_LIB_ICMP_ERR_H
#define XVS_LIB_ICMP_ERR_H

#include "counters.h"
#include "csum.h"
#include "fwd.h"
#include "icmp.h"
#include "nexthop.h"

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
		new_addr = c->peer.daddr;
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
		new_addr = c->peer.saddr;
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

/* The ICMP message at `l4` of the IPv4 packet `ip`. */
static __noinline int handle_icmp(xvs_ctx *ctx, struct iphdr *ip, void *l4)
{
	void *data_end = ctx_data_end(ctx);
	struct icmphdr *ic = l4;
	struct xvs_conn_key key = {};
	struct xvs_conn *c;
	struct iphdr *in;
	__be16 *ports;
	__u32 inihl;
	/* What the IP packet carries after its header (parse_ip checked
	 * tot_len >= ihl): bytes past it are padding, never a quote. */
	__u32 l4len = bpf_ntohs(ip->tot_len) - ip->ihl * 4;

	if ((void *)(ic + 1) > data_end || l4len < sizeof(*ic))
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	if (ic->type != ICMP_DEST_UNREACH && ic->type != ICMP_TIME_EXCEEDED &&
	    ic->type != ICMP_SOURCE_QUENCH && ic->type != ICMP_PARAMETERPROB)
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);

	in = (void *)(ic + 1);
	if ((void *)(in + 1) > data_end || l4len < sizeof(*ic) + sizeof(*in))
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);
	inihl = in->ihl * 4;
	if (in->version != 4 || inihl < sizeof(*in))
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	if (in->frag_off & bpf_htons(0x1fff))
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	ports = (void *)in + inihl;
	if ((void *)(ports + 2) > data_end || l4len < sizeof(*ic) + inihl + 4)
		return verdict(XVS_CNT_PASS_TRUNCATED, ACT_PASS);

	/* The quoted packet travelled the other way: look its reverse up. */
	key.saddr = in->daddr;
	key.daddr = in->saddr;
	key.sport = ports[1];
	key.dport = ports[0];
	key.proto = in->protocol;
	c = bpf_map_lookup_elem(&CONN_MAP, &key);
	if (!c)
		return verdict(XVS_CNT_PASS_ICMP, ACT_PASS);
	if (ip->ttl <= 1)
		return verdict(XVS_CNT_PASS_TTL, ACT_PASS);
	if (c->fwd != XVS_FWD_MASQ) {
		/* DR/TUN: as ip_vs_icmp_xmit, the error goes to the real
		 * server unchanged (it answered with the VIP as source). */
		if (c->flags & XVS_CONN_F_REPLY)
			return verdict(XVS_CNT_PASS_STALE, ACT_PASS);
		cnt(XVS_CNT_ICMP_IN);
		stats_add(c->svc_id, c->dest_id, 1, bpf_ntohs(ip->tot_len));
		return fwd_dest(ctx, c->dest_id, &key, 0);
	}
	icmp_nat(ip, ic, in, ports, c);
	return xmit(ctx, 0, 0);
}

#endif /* XVS_LIB_ICMP_ERR_H */
