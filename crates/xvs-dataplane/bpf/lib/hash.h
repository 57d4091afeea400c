/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Hash functions: the kernel's scheduler hashes (ip_vs_dh_hashkey,
 * ip_vs_sh_hashkey, ip_vs_mh_hashkey with hsiphash), which must match
 * xvs_core::sched bit for bit, and a 32-bit finaliser for GUE's source
 * port.
 */
#ifndef XVS_LIB_HASH_H
#define XVS_LIB_HASH_H

#include <linux/types.h>

#include "xvs.h"

/* murmur3's finaliser */
static __always_inline __u32 fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

#define GOLDEN_RATIO_32 0x61C88647u

/* ip_vs_sh_hashkey; addr and port in host order */
static __always_inline __u32 sh_hashkey(__u32 addr, __u32 port, __u32 offset)
{
	__u32 h = ((port + addr) * GOLDEN_RATIO_32) >> (32 - 8);

	return (offset + h) & (XVS_HASH_TAB_SIZE - 1);
}

/* ip_vs_dh_hashkey */
static __always_inline __u32 dh_hashkey(__u32 addr)
{
	return (addr * GOLDEN_RATIO_32) >> (32 - 8);
}

#define ROL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROL64(v1, 13);                                                                \
		v1 ^= v0;                                                                          \
		v0 = ROL64(v0, 32);                                                                \
		v2 += v3;                                                                          \
		v3 = ROL64(v3, 16);                                                                \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROL64(v3, 21);                                                                \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROL64(v1, 17);                                                                \
		v1 ^= v2;                                                                          \
		v2 = ROL64(v2, 32);                                                                \
	} while (0)

/* hsiphash of one little-endian u32 with key (k, k), as 64-bit kernels
 * compute it (xvs_core::sched::hash::hsiphash_u32). */
static __always_inline __u32 hsiphash_u32(__u32 v, __u64 k)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ k, v1 = 0x646f72616e646f6dULL ^ k;
	__u64 v2 = 0x6c7967656e657261ULL ^ k, v3 = 0x7465646279746573ULL ^ k;
	__u64 b = (4ULL << 56) | v;

	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

#define MH_HASH1_KEY 2654435761ULL

/* ip_vs_mh_hashkey with hash1 */
static __always_inline __u32 mh_hashkey(__u32 addr, __u32 port, __u32 offset)
{
	return hsiphash_u32(offset + port + addr, MH_HASH1_KEY);
}

#endif /* XVS_LIB_HASH_H */
