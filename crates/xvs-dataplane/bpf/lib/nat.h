/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * NAT (masquerading): the address and port rewrite of a TCP, UDP or SCTP
 * packet (forward: daddr/dport -> RS; reply: saddr/sport -> VIP:vport)
 * with its IP and L4 checksums updated incrementally (SCTP: its CRC32c,
 * sctp.h).
 */
#ifndef XVS_LIB_NAT_H
#define XVS_LIB_NAT_H

#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "csum.h"
#include "ctx.h"
#include "maps.h"
#include "sctp.h"
#include "sctp_crc.h"

#define NAT_UDP 1  /* a zero L4 checksum means "none" */
#define NAT_DST 2  /* rewrite the destination, else the source */
#define NAT_SCTP 4 /* no L4 checksum; a CRC32c without pseudo-header */

/* nat_rewrite's protocol flag for a `proto` packet. */
static __always_inline __u32 nat_proto(__u8 proto)
{
	if (proto == IPPROTO_UDP)
		return NAT_UDP;
	if (proto == IPPROTO_SCTP)
		return NAT_SCTP;
	return 0;
}

/* Rewrite destination (dst=1) or source (dst=0) address and port. `csum`
 * points at the L4 checksum (NULL: left to the caller); udp says a zero
 * checksum means "none". */
static __always_inline void nat_l4(struct iphdr *ip, __be16 *ports, __u16 *csum, int udp, int dst,
				   __be32 addr, __be16 port)
{
	__be32 old_addr = dst ? ip->daddr : ip->saddr;
	__be16 old_port = dst ? ports[1] : ports[0];

	if (csum && (!udp || *csum)) {
		csum_replace4(csum, old_addr, addr);
		csum_replace2(csum, old_port, port);
		if (udp && *csum == 0)
			*csum = 0xffff;
	}
	csum_replace4(&ip->check, old_addr, addr);
	if (dst) {
		ip->daddr = addr;
		ports[1] = port;
	} else {
		ip->saddr = addr;
		ports[0] = port;
	}
}

/* The SCTP part of nat_rewrite: addresses are not in the CRC, so only a
 * changed port updates it (sctp_dnat_handler recomputes it then; the
 * update gives the same bytes when the CRC arrived right, and a wrong
 * one stays wrong instead of being blessed). tc: the frame's sum
 * (CHECKSUM_COMPLETE) is left as it is, as SCTP's receive path and
 * forwarding never read it. */
static __always_inline int nat_sctp(void *data, void *data_end, __u32 l4off, int dst,
				    __be32 addr, __be16 port)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__be16 *ports = data + l4off, d;
	__u32 *crc = data + l4off + SCTP_CRC_OFF, len;

	if ((void *)(ip + 1) > data_end || (void *)(crc + 1) > data_end)
		return -1;
	d = (dst ? ports[1] : ports[0]) ^ port;
	nat_l4(ip, ports, NULL, 0, dst, addr, port);
	if (!d)
		return 0;
	/* parse_ip/parse_ports checked tot_len covers the header and 12
	 * bytes of SCTP. The stored CRC is little-endian, as bpfel loads. */
	len = bpf_ntohs(ip->tot_len) - (l4off - sizeof(struct ethhdr));
	*crc ^= sctp_crc_delta(d, dst ? 2 : 0, len);
	return 0;
}

/* nat_l4 on the frame, whose L4 header is at `l4off`; `how`: NAT_UDP or
 * NAT_SCTP, NAT_DST. Where the L4 field holds a full checksum (always in XDP; tc:
 * an skb whose sum was verified on receipt) it is updated in place.
 * Otherwise the kernel's helpers finish it: they also get
 * CHECKSUM_PARTIAL packets right (their L4 field holds only the
 * pseudo-header sum, so a port must not be folded in) and keep a
 * CHECKSUM_COMPLETE skb->csum valid; they invalidate packet pointers.
 * Returns 0, or -1 when the headers are gone or a helper failed. */
__ctx_skb_call int nat_rewrite(xvs_ctx *ctx, __u32 l4off, __u32 how, __be32 addr, __be16 port)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + sizeof(struct ethhdr);
	int udp = how & NAT_UDP, dst = how & NAT_DST;
	__u32 coff = udp ? __builtin_offsetof(struct udphdr, check)
			 : __builtin_offsetof(struct tcphdr, check);
	__u64 mm = udp ? BPF_F_MARK_MANGLED_0 : 0;
	__be16 *ports, old_port;
	__be32 old_addr;
	__u16 *csum;

	l4off &= 0x7f; /* Ethernet + IPv4 with options */
	if (how & NAT_SCTP)
		return nat_sctp(data, data_end, l4off, dst, addr, port);
	ports = data + l4off;
	csum = data + l4off + coff;
	if ((void *)(ip + 1) > data_end || (void *)(ports + 2) > data_end ||
	    (void *)(csum + 1) > data_end)
		return -1;
	if (ctx_csum_full(ctx, HAVE(XVS_FEAT_CSUM_STATE))) {
		nat_l4(ip, ports, csum, udp, dst, addr, port);
		return 0;
	}
	old_addr = dst ? ip->daddr : ip->saddr;
	old_port = dst ? ports[1] : ports[0];
	nat_l4(ip, ports, NULL, udp, dst, addr, port);
	if (ctx_l4_csum_replace(ctx, l4off + coff, old_addr, addr,
				BPF_F_PSEUDO_HDR | mm | sizeof(addr)) ||
	    ctx_l4_csum_replace(ctx, l4off + coff, old_port, port, mm | sizeof(port)))
		return -1;
	return 0;
}

#endif /* XVS_LIB_NAT_H */
