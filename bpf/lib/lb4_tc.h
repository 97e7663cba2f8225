/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet IPv4 service LB in tc, for flows the socket LB did not translate
 * (socket LB off, a kernel without sock_addr hooks, or a process outside the
 * socket-LB cgroup). Same maps as the socket LB (frontend -> slot -> backend,
 * affinity), reached through the same pins. The chosen backend is kept per
 * client tuple in conntrack (scope SVC) so every packet of a flow goes to the
 * same backend; the flow's conntrack entry carries the frontend for the
 * reverse translation of replies. ICMP errors about a translated flow are
 * translated too, both ways (kl_lb4_icmp_err_rev, kl_lb4_icmp_err_fwd).
 */
#ifndef KL_LB4_TC_H
#define KL_LB4_TC_H

#include "lb_common.h"
#include "lb_pick.h"
#include "ct4.h"
#include "pkt4.h"
#include "icmp4.h"

/* Affinity client key of the per-packet LB: the client address, marked so it never equals a netns cookie. */
#define KL_AFF_CLIENT_IP (1ULL << 63)

struct lb4_xlate {
	__be32 vaddr;       /* the frontend the client addressed */
	__be16 vport;
	__u16  pad;
	__u32  rev_nat_id;
};

/* The conntrack entry of the packet an ICMP error quotes (swap: of its reply), in a scope. */
static __always_inline struct kl_ct4_entry *kl_ct4_quoted(const struct icmp4_quote *q, int swap, __u8 scope)
{
	struct kl_ct4_key k;

	kl_ct4_key_set(&k, q->saddr, q->daddr, q->sport, q->dport, q->proto, swap, scope);
	return bpf_map_lookup_elem(&KL_CT4_MAP, &k);
}

/*
 * An ICMP error a client sends about a reply of a translated flow (its quote
 * is the reply as the client saw it, frontend -> client; say port
 * unreachable after the client closed its socket): to the backend that
 * sent the reply, quoting the backend, as its own stack would have. The
 * backend is the client tuple's service selection. 0 or a negative drop
 * reason.
 */
static __always_inline int kl_lb4_icmp_err_fwd(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct icmp4_quote q;
	struct kl_ct4_entry *se;
	__be32 be_addr;
	__be16 be_port;

	if (kl_icmp4_quote(ctx, p, &q) < 0 || q.proto == IPPROTO_ICMP || q.saddr != p->daddr)
		return 0;
	se = kl_ct4_quoted(&q, 1, KL_CT_SCOPE_SVC);
	if (!se)
		return 0;
	be_addr = se->nat_addr;
	be_port = se->nat_port;
	if (kl_icmp4_quote_set(ctx, p, &q, 0, be_addr, be_port) < 0 || kl_set_addr4(ctx, p, 1, be_addr) < 0)
		return -KL_DROP_REWRITE;
	return 0;
}

/*
 * 0: not a frontend; 1: translated (*x holds the frontend); or a negative
 * drop reason. An ICMP error about a translated flow's reply goes to its
 * backend (kl_lb4_icmp_err_fwd; 0).
 */
static __always_inline int kl_lb4_tc(struct __sk_buff *ctx, struct pkt4 *p, struct lb4_xlate *x)
{
	struct kl_lb4_key key = {};
	struct kl_ct4_key sk;
	struct kl_ct4_entry *se, sel = {};
	struct kl_lb_svc *front;
	struct kl_lb4_backend *be;
	__u32 backend_id = 0, rev_nat_id;
	__be32 be_addr = 0;
	__be16 be_port = 0;
	__u16 count;
	__u64 now;

	if (p->proto == IPPROTO_ICMP && !p->has_ports)
		return kl_lb4_icmp_err_fwd(ctx, p);
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return 0;
	key.addr = p->daddr;
	key.dport = p->dport;
	key.proto = p->proto;
	if (p->frag)
		return 0;   /* no ports in a non-first fragment: not translated (see pod.bpf.c) */
	front = bpf_map_lookup_elem(&KL_LB4_SVC_MAP, &key);
	if (!front)
		return 0;
	count = front->count;
	if (count == 0)
		return -KL_DROP_NO_BACKEND;
	rev_nat_id = front->rev_nat_id;
	now = bpf_ktime_get_ns();

	/* The backend this flow already uses, while it still exists (a new connection on a closed flow's tuple picks anew). */
	kl_ct4_key_of(&sk, p, 0, KL_CT_SCOPE_SVC);
	se = bpf_map_lookup_elem(&KL_CT4_MAP, &sk);
	if (se && se->rev_nat_id == rev_nat_id && kl_ct_live(se, p->proto, now) && !kl_ct_reopens(se, kl_tcp_bare_syn(p))) {
		__u32 id = se->backend_id;

		be = bpf_map_lookup_elem(&KL_LB4_BE_MAP, &id);
		if (be && be->addr == se->nat_addr && be->port == se->nat_port) {
			backend_id = id;
			be_addr = be->addr;
			be_port = be->port;
			kl_ct_touch(se, p, now, 0);
		}
	}

	if (!backend_id) {
		be = lb4_pick(front, count, KL_AFF_CLIENT_IP | bpf_ntohl(p->saddr), now, &backend_id);
		if (!be)
			return -KL_DROP_BACKEND_GONE;
		be_addr = be->addr;
		be_port = be->port;
		sel.created_ns = now;
		sel.last_seen_ns = now;
		sel.packets_fwd = 1;
		sel.nat_addr = be_addr;
		sel.nat_port = be_port;
		sel.rev_nat_id = rev_nat_id;
		sel.backend_id = backend_id;
		if (p->proto == IPPROTO_TCP && (p->tcp_flags & (KL_TCP_FIN | KL_TCP_RST)))
			sel.flags |= KL_CT_F_CLOSING;
		bpf_map_update_elem(&KL_CT4_MAP, &sk, &sel, BPF_ANY);
	}

	x->vaddr = p->daddr;
	x->vport = p->dport;
	x->rev_nat_id = rev_nat_id;
	if (kl_set_addr4(ctx, p, 1, be_addr) < 0 || kl_set_port4(ctx, p, 1, be_port) < 0)
		return -KL_DROP_REWRITE;
	return 1;
}

/* Replies of a translated flow: show the frontend as their source. 0 or a negative drop reason. */
static __always_inline int kl_lb4_rev(struct __sk_buff *ctx, struct pkt4 *p, const struct kl_ct4_entry *e)
{
	__be32 addr = e->nat_addr;
	__be16 port = e->nat_port;

	if (kl_set_addr4(ctx, p, 0, addr) < 0 || kl_set_port4(ctx, p, 0, port) < 0)
		return -KL_DROP_REWRITE;
	return 0;
}

/*
 * An ICMP error about a flow this LB translated quotes the packet as it
 * went out, client -> backend: quote the frontend instead (the client's
 * socket is connected to it), and when the backend itself sent the error,
 * show it as coming from the frontend. Anything else is left alone. 0 or a
 * negative drop reason.
 */
static __always_inline int kl_lb4_icmp_err_rev(struct __sk_buff *ctx, struct pkt4 *p)
{
	struct icmp4_quote q;
	struct kl_ct4_entry *e;
	__be32 be_addr, vaddr;
	__be16 vport;

	if (kl_icmp4_quote(ctx, p, &q) < 0 || q.proto == IPPROTO_ICMP)
		return 0;
	e = kl_ct4_quoted(&q, 0, KL_CT_SCOPE_FLOW);
	if (!e || !(e->flags & KL_CT_F_REV_NAT))
		return 0;
	be_addr = q.daddr;
	vaddr = e->nat_addr;
	vport = e->nat_port;
	if (kl_icmp4_quote_set(ctx, p, &q, 1, vaddr, vport) < 0)
		return -KL_DROP_REWRITE;
	if (p->saddr == be_addr && kl_set_addr4(ctx, p, 0, vaddr) < 0)
		return -KL_DROP_REWRITE;
	return 0;
}

#endif /* KL_LB4_TC_H */
