/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The mark classifier: the firewall mark a packet would carry if the
 * operator's iptables MARK rules ran before xvs (they run after XDP and
 * tc ingress, so xvs cannot see them). User space compiles the rules so
 * that the longest matching address prefix of the packet's protocol
 * holds every port entry that applies to it: two lookups, never a walk
 * (xvs_core::fwmark).
 */
#ifndef XVS_LIB_FWMARK_H
#define XVS_LIB_FWMARK_H

#include "maps.h"

/* The mark of the packet of `k`, 0 when no rule gives it one; `ak`:
 * room for the trie key (the scratch's: off the callers' stacks). */
static __always_inline __u32 fwm_classify(const struct xvs_conn_key *k,
					  struct xvs_fwm_addr_key *ak)
{
	struct xvs_fwm_port_key pk = {};
	struct xvs_fwm_addr *a;
	__u32 *m;

	ak->prefixlen = 32 + 32;
	ak->proto = k->proto;
	ak->af = k->af;
	ak->pad[0] = 0;
	ak->pad[1] = 0;
	ak->daddr = k->daddr;
	a = bpf_map_lookup_elem(&FWM_ADDR, ak);
	if (!a)
		return 0;
	pk.set_id = a->set_id;
	pk.dport = k->dport;
	m = bpf_map_lookup_elem(&FWM_PORT, &pk);
	return m ? *m : a->any_port_mark;
}

#endif /* XVS_LIB_FWMARK_H */
