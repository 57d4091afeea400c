/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * union xvs_addr (xvs.h): setting, comparing and masking addresses of
 * either family word by word. IPv4 lives in the first word, the other
 * three zero, so one comparison serves both families.
 */
#ifndef XVS_LIB_ADDR_H
#define XVS_LIB_ADDR_H

#include <linux/types.h>

#include "xvs.h"

/* An IPv4 address: the first word, the rest zero. */
static __always_inline void addr_set4(union xvs_addr *a, __be32 v4)
{
	a->v6[0] = v4;
	a->v6[1] = 0;
	a->v6[2] = 0;
	a->v6[3] = 0;
}

/* `a` is the IPv4 address `v4`. */
static __always_inline int addr_is4(const union xvs_addr *a, __be32 v4)
{
	return ((a->v6[0] ^ v4) | a->v6[1] | a->v6[2] | a->v6[3]) == 0;
}

static __always_inline int addr_eq(const union xvs_addr *a, const union xvs_addr *b)
{
	return ((a->v6[0] ^ b->v6[0]) | (a->v6[1] ^ b->v6[1]) | (a->v6[2] ^ b->v6[2]) |
		(a->v6[3] ^ b->v6[3])) == 0;
}

/* dst = a & m, word by word. */
static __always_inline void addr_mask(union xvs_addr *dst, const union xvs_addr *a,
				      const union xvs_addr *m)
{
	dst->v6[0] = a->v6[0] & m->v6[0];
	dst->v6[1] = a->v6[1] & m->v6[1];
	dst->v6[2] = a->v6[2] & m->v6[2];
	dst->v6[3] = a->v6[3] & m->v6[3];
}

/* Two connection keys name the same tuple. */
static __always_inline int conn_key_eq(const struct xvs_conn_key *a, const struct xvs_conn_key *b)
{
	return addr_eq(&a->saddr, &b->saddr) && addr_eq(&a->daddr, &b->daddr) &&
	       a->sport == b->sport && a->dport == b->dport && a->proto == b->proto &&
	       a->af == b->af;
}

#endif /* XVS_LIB_ADDR_H */
