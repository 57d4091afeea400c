/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Persistence (-p, -M): templates in PERSIST_MAP send a client's new
 * connections to the dest of its earlier ones (ip_vs_sched_persist), and
 * become ASSURED once a connection they control is established or
 * answered (ip_vs_control_assure_ct).
 */
#ifndef XVS_LIB_PERSIST_H
#define XVS_LIB_PERSIST_H

#include "counters.h"
#include "dest.h"
#include "scratch.h"
#include "service.h"

#define FTPPORT 21

/* The kernel's template key <proto, caddr & netmask, cport 0, vaddr,
 * vport>; vport 0 for port-0 and FTP services. */
static __always_inline void tmpl_key(const struct sched_in *in, const struct xvs_conn_key *fkey,
				     struct xvs_tmpl_key *tk)
{
	addr_mask(&tk->caddr, &fkey->saddr, &in->netmask);
	tk->af = fkey->af;
	if (in->fwmark) {
		addr_set4(&tk->vaddr, bpf_htonl(in->fwmark));
		tk->vport = 0;
		tk->proto = 0;
		return;
	}
	tk->vaddr = fkey->daddr;
	tk->vport = (fkey->dport == in->svc_port && in->svc_port != bpf_htons(FTPPORT)) ? fkey->dport
											: 0;
	tk->proto = fkey->proto;
}

/* ip_vs_control_assure_ct: marks the template of the persistent
 * connection client saddr -> daddr:dport (`port_proto` = dport << 8 |
 * proto, network order port) assured. A global function of scalars: its
 * keys live in the scratch (ak, atk): 16-byte addresses twice over were
 * too much for the deepest call chain's stack. */
__noinline int tmpl_assure(__u32 saddr, __u32 daddr, __u32 port_proto, __u32 sport)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_conn_key *k;
	struct xvs_tmpl_key *tk;
	struct xvs_sip_key *sk;
	struct xvs_sip_tmpl *st;
	struct xvs_svc *svc;
	struct xvs_tmpl *t;
	__be16 sp;

	if (!sc)
		return 0;
	k = &sc->ak;
	tk = &sc->atk;
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memset(tk, 0, sizeof(*tk));
	addr_set4(&k->saddr, saddr);
	addr_set4(&k->daddr, daddr);
	k->af = XVS_AF_INET;
	k->dport = (__be16)(port_proto >> 8);
	k->proto = (__u8)port_proto;
	svc = svc_lookup(k, &sp);
	if (!svc)
		return 0;
	if (svc->flags & XVS_SVC_F_PE_SIP) {
		/* The SIP template is the one this connection was made
		 * through (its Call-ID is not in the answer). */
		k->sport = (__be16)sport;
		sk = bpf_map_lookup_elem(&SIP_CTL, k);
		st = sk ? bpf_map_lookup_elem(&SIP_TMPL, sk) : NULL;
		if (st && !(st->t.flags & XVS_TMPL_F_ASSURED))
			st->t.flags |= XVS_TMPL_F_ASSURED;
		return 0;
	}
	addr_set4(&tk->caddr, saddr & svc->netmask.v4);
	tk->af = XVS_AF_INET;
	if (svc->fwmark) {
		addr_set4(&tk->vaddr, bpf_htonl(svc->fwmark));
	} else {
		addr_set4(&tk->vaddr, daddr);
		tk->vport = (k->dport == sp && sp != bpf_htons(FTPPORT)) ? k->dport : 0;
		tk->proto = k->proto;
	}
	t = bpf_map_lookup_elem(&PERSIST_MAP, tk);
	if (t && !(t->flags & XVS_TMPL_F_ASSURED))
		t->flags |= XVS_TMPL_F_ASSURED;
	return 0;
}

/* Once per persistent connection (`fc`, forward key `fkey`): when it got
 * ESTABLISHED or answered. */
static __always_inline void assure_once(struct xvs_conn *fc, const struct xvs_conn_key *fkey)
{
	if ((fc->flags & (XVS_CONN_F_PERSIST | XVS_CONN_F_ASSURED)) != XVS_CONN_F_PERSIST)
		return;
	fc->flags |= XVS_CONN_F_ASSURED;
	/* IPv4 only until the parser knows IPv6: scalars, as 5.10 wants. */
	tmpl_assure(fkey->saddr.v4, fkey->daddr.v4, (__u32)fkey->dport << 8 | fkey->proto, fkey->sport);
}

/* ip_vs_sched_persist, first half: the dest of the client's template, or
 * XVS_NO_DEST when there is none usable (then schedule and
 * persist_create). */
__noinline int persist_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_tmpl *t;
	struct dview dv;
	__u32 dest_id;

	if (!sc)
		return XVS_NO_DEST;
	tmpl_key(&sc->in, &sc->fkey, &sc->tk);
	t = bpf_map_lookup_elem(&PERSIST_MAP, &sc->tk);
	if (!t)
		return XVS_NO_DEST;
	/* ip_vs_check_template: used while its dest is in the service
	 * (weight 0 and OVERLOAD do not matter). */
	dest_id = t->dest_id;
	if (t->svc_id == sc->in.svc_id && dest_get(dest_id, sc->in.svc_id, &dv)) {
		t->last_seen_ns = sc->in.now;
		cnt(XVS_CNT_PERSIST_HIT);
		return dest_id;
	}
	if (bpf_map_delete_elem(&PERSIST_MAP, &sc->tk) == 0)
		persist_add(dest_id, -1);
	return XVS_NO_DEST;
}

/* ip_vs_sched_persist, second half: a template for the freshly scheduled
 * `dest_id`. Returns the dest to use (another CPU's template wins a race),
 * or minus the reason (an XVS_CNT_* counter) the packet is refused for. */
__noinline int persist_create(__u32 dest_id)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_tmpl *t, *nt;
	struct xvs_dest *d;
	int err; /* int: 6.1 leaves a map op's error zero-extended */

	if (!sc)
		return -XVS_CNT_PASS_NO_DEST;
	tmpl_key(&sc->in, &sc->fkey, &sc->tk);
	d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);
	if (!d)
		return -XVS_CNT_PASS_NO_DEST;
	nt = &sc->nt;
	__builtin_memset(nt, 0, sizeof(*nt));
	nt->last_seen_ns = sc->in.now;
	nt->svc_id = sc->in.svc_id;
	nt->dest_id = dest_id;
	nt->daddr = d->addr;
	nt->daf = d->af;
	nt->dport = sc->tk.vport ? d->port : 0;
	nt->timeout = sc->in.timeout;
	err = bpf_map_update_elem(&PERSIST_MAP, &sc->tk, nt, BPF_NOEXIST);
	if (err == -EEXIST_) {
		t = bpf_map_lookup_elem(&PERSIST_MAP, &sc->tk);
		if (!t)
			return -XVS_CNT_PASS_STALE;
		return t->dest_id;
	}
	if (err)
		return -XVS_CNT_DROP_TMPL_FULL;
	cnt(XVS_CNT_PERSIST_NEW);
	persist_add(dest_id, 1);
	return dest_id;
}

/* persist_pick for a --pe sip service: the template of the client's
 * network and the packet's Call-ID (sip.h found it; ip_vs_sip_ct_match).
 * The connection remembers it in SIP_CTL. */
__noinline int sip_pick(void)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_sip_tmpl *t;
	struct dview dv;
	__u32 dest_id;

	if (!sc)
		return XVS_NO_DEST;
	tmpl_key(&sc->in, &sc->fkey, &sc->sip.key.tk);
	t = bpf_map_lookup_elem(&SIP_TMPL, &sc->sip.key);
	if (!t)
		return XVS_NO_DEST;
	dest_id = t->t.dest_id;
	if (t->t.svc_id == sc->in.svc_id && dest_get(dest_id, sc->in.svc_id, &dv)) {
		t->t.last_seen_ns = sc->in.now;
		cnt(XVS_CNT_PERSIST_HIT);
		bpf_map_update_elem(&SIP_CTL, &sc->fkey, &sc->sip.key, BPF_ANY);
		return dest_id;
	}
	if (bpf_map_delete_elem(&SIP_TMPL, &sc->sip.key) == 0)
		persist_add(dest_id, -1);
	return XVS_NO_DEST;
}

/* persist_create for a --pe sip service: the template keeps the Call-ID's
 * bytes (IPVS's pe_data). */
__noinline int sip_create(__u32 dest_id)
{
	struct xvs_scratch *sc = scratch();
	struct xvs_sip_tmpl *t, *nt;
	struct xvs_dest *d;
	__u32 i, len, start;
	int err; /* int: 6.1 leaves a map op's error zero-extended */

	if (!sc)
		return -XVS_CNT_PASS_NO_DEST;
	tmpl_key(&sc->in, &sc->fkey, &sc->sip.key.tk);
	d = bpf_map_lookup_elem(&DEST_MAP, &dest_id);
	if (!d)
		return -XVS_CNT_PASS_NO_DEST;
	nt = &sc->snt;
	__builtin_memset(&nt->t, 0, sizeof(nt->t));
	nt->t.last_seen_ns = sc->in.now;
	nt->t.svc_id = sc->in.svc_id;
	nt->t.dest_id = dest_id;
	nt->t.daddr = d->addr;
	nt->t.daf = d->af;
	nt->t.dport = sc->sip.key.tk.vport ? d->port : 0;
	nt->t.timeout = sc->in.timeout;
	len = sc->sip.key.callid_len;
	start = sc->sip.start;
	for (i = 0; i <= XVS_SIP_CALLID_MAX; i++)
		nt->callid[i] = i < len ? sc->sip.buf[(start + i) & (XVS_SIP_SCAN_MAX - 1)] : 0;
	err = bpf_map_update_elem(&SIP_TMPL, &sc->sip.key, nt, BPF_NOEXIST);
	if (err == -EEXIST_) {
		t = bpf_map_lookup_elem(&SIP_TMPL, &sc->sip.key);
		if (!t)
			return -XVS_CNT_PASS_STALE;
		dest_id = t->t.dest_id;
	} else if (err) {
		return -XVS_CNT_DROP_TMPL_FULL;
	} else {
		cnt(XVS_CNT_PERSIST_NEW);
		persist_add(dest_id, 1);
	}
	bpf_map_update_elem(&SIP_CTL, &sc->fkey, &sc->sip.key, BPF_ANY);
	return dest_id;
}

#endif /* XVS_LIB_PERSIST_H */
