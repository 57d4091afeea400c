/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Service lookup (ip_vs_service_find) and the scheduling context a new
 * connection of a service starts from.
 */
#ifndef XVS_LIB_SERVICE_H
#define XVS_LIB_SERVICE_H

#include "fwmark.h"
#include "maps.h"
#include "scratch.h"

/* SVC_MAP, in ip_vs_service_find's order: the fwmark service of the
 * packet's mark, else the exact <proto, vaddr, vport>, else the port-0
 * service of the address (persistent "all ports" services). *svc_port:
 * the matched service's port (0 for fwmark and port-0 services). */
static __always_inline struct xvs_svc *svc_lookup(const struct xvs_conn_key *k, __be16 *svc_port)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_svc_key *skey;
	struct xvs_svc *svc;
	__u32 mark;

	*svc_port = 0;
	if (!sc)
		return NULL;
	/* The keys live in the scratch: 16-byte addresses are too much for
	 * the main program's stack. */
	skey = &sc->skey;
	mark = fwm_classify(k, &sc->fak);
	skey->af = k->af;
	if (mark) {
		addr_set4(&skey->addr, bpf_htonl(mark));
		skey->port = 0;
		skey->proto = 0;
		svc = bpf_map_lookup_elem(&SVC_MAP, skey);
		if (svc)
			return svc;
	}
	skey->addr = k->daddr;
	skey->port = k->dport;
	skey->proto = k->proto;
	svc = bpf_map_lookup_elem(&SVC_MAP, skey);
	if (svc) {
		*svc_port = k->dport;
		return svc;
	}
	skey->port = 0;
	*svc_port = 0;
	return bpf_map_lookup_elem(&SVC_MAP, skey);
}

/* Whether the packet of `k` is for a service at all. */
static __always_inline int svc_exists(const struct xvs_conn_key *k)
{
	__be16 sp;

	return svc_lookup(k, &sp) != NULL;
}

/* What the schedulers and persistence read of service `svc`, matched on
 * port `svc_port`, for the new flow `fkey` at time `now`. */
static __always_inline void sched_in_fill(struct sched_in *in, const struct xvs_svc *svc,
					  const struct xvs_conn_key *fkey, __be16 svc_port,
					  __u64 now)
{
	__builtin_memset(in, 0, sizeof(*in));
	in->svc_id = svc->id;
	in->gen = svc->gen & 1;
	in->sched = svc->sched;
	in->flags = svc->flags;
	in->ring_len = svc->ring_len;
	/* The schedulers' hashes read IPv4 (host order) until IPv6. */
	in->saddr = bpf_ntohl(fkey->saddr.v4);
	in->daddr = bpf_ntohl(fkey->daddr.v4);
	in->daddr_be = fkey->daddr;
	in->sport = bpf_ntohs(fkey->sport);
	in->netmask = svc->netmask;
	in->timeout = svc->timeout;
	in->fwmark = svc->fwmark;
	in->svc_port = svc_port;
	in->now = now;
}

#endif /* XVS_LIB_SERVICE_H */
