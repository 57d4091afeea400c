/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Atomics. Every kernel has the plain atomic add; the fetching forms,
 * compare-and-swap, and/or came in 5.12, and an older verifier refuses
 * the whole program when they appear anywhere in it (dead code
 * included). So the program is also built with -DXVS_NO_ATOMICS, which
 * the loader takes where the kernel lacks them (feature `atomics`): the
 * value is then read after a plain atomic add, and cmpxchg/and/or become
 * plain read-modify-writes. Two CPUs handling one connection at the same
 * instant may then count a state change twice, or lose one (crossing
 * FINs can leave FIN_WAIT, which then expires on its own timeout);
 * forwarding is unaffected. OVERLOAD is the flag word's only bit, so a plain store
 * of it orders like the atomic and/or would.
 */
#ifndef XVS_LIB_ATOMICS_H
#define XVS_LIB_ATOMICS_H

#include <linux/types.h>

static __always_inline __s32 xvs_add_return32(__s32 *p, __s32 d)
{
#ifndef XVS_NO_ATOMICS
	return __sync_add_and_fetch(p, d);
#else
	__sync_fetch_and_add(p, d);
	return *(volatile __s32 *)p;
#endif
}

static __always_inline __u64 xvs_fetch_add64(__u64 *p, __u64 d)
{
#ifndef XVS_NO_ATOMICS
	return __sync_fetch_and_add(p, d);
#else
	__u64 old = *(volatile __u64 *)p;

	__sync_fetch_and_add(p, d);
	return old;
#endif
}

static __always_inline void xvs_or32(__u32 *p, __u32 m)
{
#ifndef XVS_NO_ATOMICS
	__sync_fetch_and_or(p, m);
#else
	*(volatile __u32 *)p |= m;
#endif
}

static __always_inline void xvs_and32(__u32 *p, __u32 m)
{
#ifndef XVS_NO_ATOMICS
	__sync_fetch_and_and(p, m);
#else
	*(volatile __u32 *)p &= m;
#endif
}

/* 1 when *p was `old` and is now `new`. */
static __always_inline int xvs_cmpxchg32(__u32 *p, __u32 old, __u32 new)
{
#ifndef XVS_NO_ATOMICS
	return __sync_val_compare_and_swap(p, old, new) == old;
#else
	if (*(volatile __u32 *)p != old)
		return 0;
	*(volatile __u32 *)p = new;
	return 1;
#endif
}

#endif /* XVS_LIB_ATOMICS_H */
