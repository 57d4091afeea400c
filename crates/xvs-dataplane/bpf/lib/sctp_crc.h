/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * SCTP's CRC32c after a NAT port rewrite. The checksum covers no
 * pseudo-header, so a changed address leaves it alone; a changed port
 * changes it by an amount computed here, without reading the packet.
 *
 * The CRC is linear: changing bytes d at offset o of an L-byte packet
 * changes the CRC by R(0, d) * x^(8t) mod P, t = L - o - |d| the bytes
 * after the change (R: the raw reflected register, no init or final
 * xor, which cancel). x^(8t) is the product of one power per nibble of
 * t (t < 65536): sctp_x8pow[i][j] = x^(8 * j * 16^i) mod P, reflected
 * (0x80000000 is 1). The fixtures check every rewritten packet's CRC
 * in full (xvs-wire's sctp), at lengths that use each nibble. */
#ifndef XVS_LIB_SCTP_CRC_H
#define XVS_LIB_SCTP_CRC_H

#include <linux/types.h>

#define CRC32C_POLY 0x82f63b78

static const __u32 sctp_x8pow[4][16] = {
	{ 0x80000000, 0x00800000, 0x00008000, 0x00000080, 0x82f63b78, 0xfbc3faf9, 0x8b277743,
	  0x52a0c93f, 0x6ea2d55c, 0x1c08b7d6, 0xf56e0ef4, 0x34019664, 0xa66805eb, 0x7a1f6b24,
	  0xe75d06aa, 0xc94ec098 },
	{ 0x80000000, 0x18b8ea18, 0x510ac59a, 0xb2dea967, 0xb82be955, 0x36c41f1c, 0x19b29a35,
	  0xc9e90b9e, 0xb8fdb1e7, 0xe55ef1f3, 0x1fe0b5c3, 0xe0553f1e, 0x18e4a304, 0x2b830011,
	  0x56993a31, 0x0246e2e6 },
	{ 0x80000000, 0x88e56f72, 0x74c360a4, 0x631bb273, 0xe4172b16, 0x71892b1b, 0x835305c9,
	  0x196b1eae, 0x0d65762a, 0xafc81338, 0xb5a50ab7, 0xf373c3ac, 0x5f60970f, 0xd46d3063,
	  0x3a5275ea, 0x02331c01 },
	{ 0x80000000, 0x35d73a62, 0x28461564, 0x43eefc9f, 0xbf455269, 0x5edcdeb9, 0x65059450,
	  0x4e6f41a4, 0xe2ea32dc, 0xf5b95b32, 0x695a4c87, 0xf204502c, 0x9a4f01b6, 0x941a0916,
	  0x4303cb97, 0x4c3d3d65 },
};

/* r * x mod P, reflected. Branch-free, as is all below: branches in
 * these loops would multiply the verifier's states. */
static __always_inline __u32 gf2_mulx(__u32 r)
{
	return (r >> 1) ^ (CRC32C_POLY & -(r & 1));
}

/* a * b mod P, reflected. */
static __always_inline __u32 gf2_mul(__u32 a, __u32 b)
{
	__u32 prod = 0;

#pragma clang loop unroll(disable)
	for (int i = 31; i >= 0; i--) {
		prod ^= b & -((a >> i) & 1);
		b = gf2_mulx(b);
	}
	return prod;
}

/* What the CRC changes by when the 16-bit field at `off` of an SCTP
 * packet `len` bytes long (common header on) changes by `d` (old ^ new,
 * network order). Powers of nibble 0 are 1: multiplied all the same.
 * A function of its own: its loops stay out of the callers' frames. */
static __noinline __u32 sctp_crc_delta(__u32 d, __u32 off, __u32 len)
{
	/* `d` holds the __be16 as loaded: its first wire byte is the low
	 * one (bpfel). */
	__u32 r = d & 0xff, t = len - off - 2;

	/* R(0, d): the field's two bytes through the register */
#pragma clang loop unroll(disable)
	for (int k = 0; k < 8; k++)
		r = gf2_mulx(r);
	r ^= (d >> 8) & 0xff;
#pragma clang loop unroll(disable)
	for (int k = 0; k < 8; k++)
		r = gf2_mulx(r);
#pragma clang loop unroll(disable)
	for (int i = 0; i < 4; i++)
		r = gf2_mul(r, sctp_x8pow[i & 3][(t >> (4 * i)) & 15]);
	return r;
}

#endif /* XVS_LIB_SCTP_CRC_H */
