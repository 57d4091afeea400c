/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * CONN_MAP, declared once for the two objects that use it: the director
 * (xvs.bpf.c, through maps.h) and the expiry scan (expiry.bpf.c), which
 * the loader points at the director's map. User space sets its size
 * before load.
 */
#ifndef XVS_LIB_CONN_MAP_H
#define XVS_LIB_CONN_MAP_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct xvs_conn_key);
	__type(value, struct xvs_conn);
} CONN_MAP SEC(".maps");

#endif /* XVS_LIB_CONN_MAP_H */
