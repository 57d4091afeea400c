/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Internet checksums: incremental updates (RFC 1624: HC' = ~(~HC + ~m +
 * m')), a fresh IPv4 header sum, the TTL decrement, and the sum over a
 * stretch of the frame (GUE's --tun-csum).
 */
#ifndef XVS_LIB_CSUM_H
#define XVS_LIB_CSUM_H

#include <linux/ip.h>

#include "ctx.h"

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline void csum_replace4(__u16 *sum, __u32 from, __u32 to)
{
	__u64 s = (__u16)~*sum;

	s += (~from & 0xffff) + ((~from) >> 16);
	s += (to & 0xffff) + (to >> 16);
	*sum = (__u16)~csum_fold(s);
}

static __always_inline void csum_replace2(__u16 *sum, __u16 from, __u16 to)
{
	__u64 s = (__u16)~*sum;

	s += (__u16)~from;
	s += to;
	*sum = (__u16)~csum_fold(s);
}

static __always_inline void ip_decrease_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

/* Full checksum of a 20-byte IPv4 header (check field zeroed first). */
static __always_inline __u16 ip_csum20(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u64 s = 0;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	return (__u16)~csum_fold(s);
}

/* Ones' complement sum of `len` bytes of the frame from offset `off`, plus
 * `seed`, folded to 16 bits (not inverted); -1 when the frame is shorter.
 * A global function, so the verifier checks its loops once. */
__noinline int xvs_csum_frame(xvs_ctx *ctx, __u32 off, __u32 len, __u32 seed)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	__u64 s = seed;
	void *p;
	__u32 i;

	if (!ctx)
		return -1;
	for (i = 0; i < 64; i++) { /* up to 16 KiB */
		if (len < 256)
			break;
		p = data + (off & 0x3fff);
		if (p + 256 > data_end)
			return -1;
		s += (__u32)bpf_csum_diff(NULL, 0, p, 256, 0);
		off += 256;
		len -= 256;
	}
	for (i = 0; i < 64; i++) {
		if (len < 4)
			break;
		p = data + (off & 0x3fff);
		if (p + 4 > data_end)
			return -1;
		s += *(__u32 *)p;
		off += 4;
		len -= 4;
	}
	p = data + (off & 0x3fff);
	if (len >= 2) {
		if (p + 2 > data_end)
			return -1;
		s += *(__u16 *)p;
		p += 2;
		len -= 2;
	}
	if (len) {
		if (p + 1 > data_end)
			return -1;
		/* Odd tail byte, padded with zero (little-endian BPF target). */
		s += *(__u8 *)p;
	}
	return csum_fold(s);
}

#endif /* XVS_LIB_CSUM_H */
