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
 * other virtual devices, where XDP would convert every skb).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xvs.h"

#define IP_MF_OFFSET 0x3fff

#ifdef XVS_TC
#include <linux/pkt_cls.h>
typedef struct __sk_buff xvs_ctx;
#define ACT_PASS TC_ACT_OK
#define ACT_DROP TC_ACT_SHOT
/* outer IPv4 with options + UDP + GUE with options + inner IPv4 */
#define XVS_PULL_LEN 192
#else
typedef struct xdp_md xvs_ctx;
#define ACT_PASS XDP_PASS
#define ACT_DROP XDP_DROP
#endif

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
		if (decap_cfg.vips[i] == a)
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

#ifdef XVS_TC
SEC("tc")
#else
SEC("xdp")
#endif
int xvs_decap(xvs_ctx *ctx)
{
	void *data, *data_end;
	struct ethhdr *eth;
#ifndef XVS_TC
	struct ethhdr e;
#endif
	struct iphdr *ip, *in;
	__u32 ihl, strip, kind;

	verdict(XVS_DECAP_RX, 0);
#ifdef XVS_TC
	xvs_pull_headers(ctx, XVS_PULL_LEN);
#endif
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(XVS_DECAP_PASS, ACT_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return verdict(XVS_DECAP_PASS, ACT_PASS);
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip) || (ip->frag_off & bpf_htons(IP_MF_OFFSET)))
		return verdict(XVS_DECAP_PASS, ACT_PASS);
	ihl &= 0x3c;

	if (ip->protocol == IPPROTO_IPIP) {
		strip = ihl;
		kind = XVS_DECAP_IPIP;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)ip + ihl;
		struct xvs_guehdr *gh = (void *)(uh + 1);

		if ((void *)(gh + 1) > data_end || !is_gue_port(uh->dest))
			return verdict(XVS_DECAP_PASS, ACT_PASS);
		/* Version 0, data message (C = 0), inner IPv4. */
		if ((gh->ver_c_hlen & 0xe0) || gh->proto_ctype != IPPROTO_IPIP)
			return verdict(XVS_DECAP_PASS, ACT_PASS);
		strip = ihl + sizeof(*uh) + sizeof(*gh) + (gh->ver_c_hlen & 0x1f) * 4;
		kind = XVS_DECAP_GUE;
	} else {
		return verdict(XVS_DECAP_PASS, ACT_PASS);
	}

	in = (void *)ip + (strip & 0xff);
	if ((void *)(in + 1) > data_end || in->version != 4 || !is_vip(in->daddr))
		return verdict(XVS_DECAP_PASS, ACT_PASS);

#ifdef XVS_TC
	/* The outer headers sit right after Ethernet: remove them there. */
	if (bpf_skb_adjust_room(ctx, -(int)(strip & 0xff), BPF_ADJ_ROOM_MAC, 0))
		return verdict(XVS_DECAP_ERR, ACT_PASS);
#else
	__builtin_memcpy(&e, eth, sizeof(e));
	if (bpf_xdp_adjust_head(ctx, (int)(strip & 0xff)))
		return verdict(XVS_DECAP_ERR, ACT_PASS);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return verdict(XVS_DECAP_ERR, ACT_DROP);
	__builtin_memcpy(eth, &e, sizeof(e));
#endif
	return verdict(kind, ACT_PASS);
}
