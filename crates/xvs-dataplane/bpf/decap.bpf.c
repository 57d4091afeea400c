// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs_decap: the real-server side of LVS tunnelling (-i) without the ipip
 * or fou modules. IPv4-in-IPv4 packets, and GUE (version 0, proto_ctype
 * IPIP) packets to a configured UDP port, whose inner IPv4 destination is
 * a configured VIP lose their outer headers here; the kernel then delivers
 * the inner packet to the VIP (configured on lo). Everything else passes
 * untouched. Configuration is .rodata, set by user space before load
 * (xvs_dataplane::decap). See docs/design.md.
 *
 * Built as-is for XDP; with -DXVS_TC for tc's clsact ingress (veth and
 * other virtual devices, where XDP would convert every skb): lib/ctx.h.
 */
#include "lib/ctx.h"

#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include "xvs.h"
#include "lib/parse.h"

/* tc: outer IPv4 with options + UDP + GUE with options + inner IPv4 */
#define DECAP_PULL_LEN 192

char LICENSE[] SEC("license") = "GPL";

const volatile struct xvs_decap_cfg decap_cfg = {};

/* Puts the decap enums into BTF for the skeleton. */
const volatile enum xvs_decap_counter decap_counter_abi = XVS_DECAP_MAX;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_DECAP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} DECAP_CNT SEC(".maps");

static __always_inline int verdict(__u32 idx, int action)
{
	__u64 *v = bpf_map_lookup_elem(&DECAP_CNT, &idx);

	if (v)
		*v += 1;
	return action;
}

static __always_inline int is_vip(__be32 a)
{
#pragma unroll
	for (int i = 0; i < XVS_DECAP_MAX_VIPS; i++) {
		if (i >= decap_cfg.nvips)
			break;
		/* IPv4: the first word, the rest zero. */
		if (decap_cfg.vips[i].v4 == a && !(decap_cfg.vips[i].v6[1] |
						  decap_cfg.vips[i].v6[2] |
						  decap_cfg.vips[i].v6[3]))
			return 1;
	}
	return 0;
}

static __always_inline int is_gue_port(__be16 p)
{
#pragma unroll
	for (int i = 0; i < XVS_DECAP_MAX_PORTS; i++) {
		if (i >= decap_cfg.nports)
			break;
		if (decap_cfg.gue_ports[i] == p)
			return 1;
	}
	return 0;
}

/* The length of the outer headers of the tunnelled packet `ip` (IPIP,
 * or GUE to a configured port), its kind in *kind; 0 when it is not one. */
static __always_inline __u32 outer_len(struct iphdr *ip, void *data_end, __u32 *kind)
{
	__u32 ihl = (ip->ihl * 4) & 0x3c;
	struct udphdr *uh = (void *)ip + ihl;
	struct xvs_guehdr *gh = (void *)(uh + 1);

	if (ip->protocol == IPPROTO_IPIP) {
		*kind = XVS_DECAP_IPIP;
		return ihl;
	}
	if (ip->protocol != IPPROTO_UDP)
		return 0;
	if ((void *)(gh + 1) > data_end || !is_gue_port(uh->dest))
		return 0;
	/* Version 0, data message (C = 0), inner IPv4. */
	if ((gh->ver_c_hlen & 0xe0) || gh->proto_ctype != IPPROTO_IPIP)
		return 0;
	*kind = XVS_DECAP_GUE;
	return ihl + sizeof(*uh) + sizeof(*gh) + (gh->ver_c_hlen & 0x1f) * 4;
}

CTX_PROG(xvs_decap, xvs_decap)(xvs_ctx *ctx)
{
	void *data, *data_end;
	struct iphdr *ip = NULL, *in;
	__u32 strip, kind = 0;
	int err;

	verdict(XVS_DECAP_RX, 0);
	ctx_pull_headers(ctx, DECAP_PULL_LEN);
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	if (parse_ipv4(data, data_end, &ip) || ip_is_fragment(ip))
		return verdict(XVS_DECAP_PASS, ACT_PASS);
	strip = outer_len(ip, data_end, &kind);
	if (!strip)
		return verdict(XVS_DECAP_PASS, ACT_PASS);
	/* Only a whole outer packet, and an inner header inside it: bytes
	 * past the total length are padding, which the kernel trims, and a
	 * packet shorter than its total length it drops, before its own
	 * ipip/fou would look (both found by the data-plane fuzzer). */
	if (sizeof(struct ethhdr) + bpf_ntohs(ip->tot_len) > ctx_len(ctx) ||
	    (strip & 0xff) + sizeof(*in) > bpf_ntohs(ip->tot_len))
		return verdict(XVS_DECAP_PASS, ACT_PASS);
	in = (void *)ip + (strip & 0xff);
	if ((void *)(in + 1) > data_end || in->version != 4 || !is_vip(in->daddr))
		return verdict(XVS_DECAP_PASS, ACT_PASS);

	/* The outer headers sit right after Ethernet: remove them there. */
	err = ctx_adjust_room(ctx, -(int)(strip & 0xff), 0);
	if (err == CTX_ROOM_LOST)
		return verdict(XVS_DECAP_ERR, ACT_DROP);
	if (err)
		return verdict(XVS_DECAP_ERR, ACT_PASS);
	return verdict(kind, ACT_PASS);
}
