/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 connection tracking in one LRU map per node. A flow is keyed by its
 * tuple in the direction of its first packet; a packet either matches that
 * key (forward), or its swapped tuple does (reply), or it starts a new flow.
 * Entries idle longer than their lifetime count as absent (and are
 * overwritten); the LRU evicts the rest under pressure. A TCP SYN that
 * reuses the tuple of a flow that has been answered or closed starts a new
 * flow (see kl_ct_reopens).
 */
#ifndef KL_CT4_H
#define KL_CT4_H

#include "pod_maps.h"
#include "pkt4.h"

#define KL_CT_NEW       0
#define KL_CT_FORWARD   1
#define KL_CT_REPLY     2

#define KL_SEC          1000000000ULL
#define KL_CT_TCP_LIFE  (21600 * KL_SEC)    /* established TCP */
#define KL_CT_SYN_LIFE  (60 * KL_SEC)       /* TCP not answered yet */
#define KL_CT_FIN_LIFE  (10 * KL_SEC)       /* TCP after FIN/RST */
#define KL_CT_ANY_LIFE  (60 * KL_SEC)       /* UDP, ICMP, others */

static __always_inline __u64 kl_ct_lifetime(__u8 proto, __u16 flags)
{
	if (proto != IPPROTO_TCP)
		return KL_CT_ANY_LIFE;
	if (flags & KL_CT_F_CLOSING)
		return KL_CT_FIN_LIFE;
	if (!(flags & KL_CT_F_SEEN_REPLY))
		return KL_CT_SYN_LIFE;
	return KL_CT_TCP_LIFE;
}

/* A flow (conntrack entry, or masquerade claim) last seen at `last_seen_ns` is live while idle no longer than its lifetime. */
static __always_inline int kl_flow_live(__u64 last_seen_ns, __u8 proto, __u16 flags, __u64 now)
{
	return now - last_seen_ns <= kl_ct_lifetime(proto, flags);
}

static __always_inline int kl_ct_live(const struct kl_ct4_entry *e, __u8 proto, __u64 now)
{
	return kl_flow_live(e->last_seen_ns, proto, e->flags, now);
}

/* The conntrack key of a tuple (swap: of its reply), in a scope. */
static __always_inline void
kl_ct4_key_set(struct kl_ct4_key *k, __be32 saddr, __be32 daddr, __be16 sport, __be16 dport, __u8 proto, int swap, __u8 scope)
{
	k->saddr = swap ? daddr : saddr;
	k->daddr = swap ? saddr : daddr;
	k->sport = swap ? dport : sport;
	k->dport = swap ? sport : dport;
	k->proto = proto;
	k->scope = scope;
	k->pad = 0;
}

/* The conntrack key of a packet (swap: of its reply). */
static __always_inline void kl_ct4_key_of(struct kl_ct4_key *k, const struct pkt4 *p, int swap, __u8 scope)
{
	kl_ct4_key_set(k, p->saddr, p->daddr, p->sport, p->dport, p->proto, swap, scope);
}

static __always_inline void kl_ct_touch(struct kl_ct4_entry *e, const struct pkt4 *p, __u64 now, int reply)
{
	e->last_seen_ns = now;
	if (reply) {
		e->packets_rev++;
		e->flags |= KL_CT_F_SEEN_REPLY;
	} else {
		e->packets_fwd++;
	}
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (KL_TCP_FIN | KL_TCP_RST)))
		e->flags |= KL_CT_F_CLOSING;
}

/*
 * A TCP SYN without ACK opens a connection. On a tuple whose entry has seen
 * a reply or a FIN/RST it is a new connection reusing the tuple (a client
 * port picked again while the old flow's entry is still alive), not part of
 * the old flow: it must not inherit that flow's state, above all not its
 * reverse NAT (the SYN-ACK would be shown as coming from the old flow's
 * frontend, the client answers with RST, and every SYN retransmission
 * keeps the stale entry alive). An entry that has seen neither is this
 * connection's own (a retransmitted SYN).
 */
static __always_inline int kl_tcp_bare_syn(const struct pkt4 *p)
{
	return p->proto == IPPROTO_TCP && (p->tcp_flags & (KL_TCP_SYN | KL_TCP_ACK | KL_TCP_RST)) == KL_TCP_SYN;
}

static __always_inline int kl_ct_reopens(const struct kl_ct4_entry *e, int syn)
{
	return syn && (e->flags & (KL_CT_F_SEEN_REPLY | KL_CT_F_CLOSING));
}

/*
 * Find this packet's flow, or start one. *dir is KL_CT_FORWARD, KL_CT_REPLY
 * or KL_CT_NEW. Returns the entry, or NULL when the packet is not tracked
 * (a fragment or ICMP other than echo: *dir = KL_CT_NEW) or a new entry
 * could not be stored.
 */
static __always_inline struct kl_ct4_entry *kl_ct4_process(const struct pkt4 *p, int *dir)
{
	struct kl_ct4_key k;
	struct kl_ct4_entry *e, fresh = {};
	__u64 now;
	int syn;

	*dir = KL_CT_NEW;
	if (p->frag || (p->proto == IPPROTO_ICMP && !p->has_ports))
		return NULL;
	now = bpf_ktime_get_ns();
	syn = kl_tcp_bare_syn(p);

	kl_ct4_key_of(&k, p, 0, KL_CT_SCOPE_FLOW);
	e = bpf_map_lookup_elem(&KL_CT4_MAP, &k);
	if (e && kl_ct_live(e, p->proto, now) && !kl_ct_reopens(e, syn)) {
		kl_ct_touch(e, p, now, 0);
		*dir = KL_CT_FORWARD;
		return e;
	}
	kl_ct4_key_of(&k, p, 1, KL_CT_SCOPE_FLOW);
	e = bpf_map_lookup_elem(&KL_CT4_MAP, &k);
	if (e && kl_ct_live(e, p->proto, now)) {
		if (!syn) {
			kl_ct_touch(e, p, now, 1);
			*dir = KL_CT_REPLY;
			return e;
		}
		/* A bare SYN is never a reply: a new connection the other way round. */
		bpf_map_delete_elem(&KL_CT4_MAP, &k);
	}
	/* New flow, or a new connection on a reused tuple: a fresh entry replaces the old one. */
	kl_ct4_key_of(&k, p, 0, KL_CT_SCOPE_FLOW);
	fresh.created_ns = now;
	fresh.last_seen_ns = now;
	fresh.packets_fwd = 1;
	if (bpf_map_update_elem(&KL_CT4_MAP, &k, &fresh, BPF_ANY) < 0)
		return NULL;
	return bpf_map_lookup_elem(&KL_CT4_MAP, &k);
}

/*
 * Did the peer open this packet's connection? True when the packet's own
 * tuple is no live flow but its swapped tuple is: the flow was keyed by a
 * packet going the other way, i.e. towards this packet's source. For a packet
 * a local pod sends, that is a connection opened towards the pod (kl_to_pod,
 * or the client pod's kl_from_pod on this node, tracked its first packet);
 * the packet is a reply. Read-only: the packet's program already touched the
 * entry. Untracked packets (fragments, ICMP other than echo) answer false.
 */
static __always_inline int kl_ct4_opened_by_peer(const struct pkt4 *p)
{
	struct kl_ct4_key k;
	struct kl_ct4_entry *e;
	__u64 now;

	if (p->frag || !p->has_ports)
		return 0;
	now = bpf_ktime_get_ns();
	kl_ct4_key_of(&k, p, 0, KL_CT_SCOPE_FLOW);
	e = bpf_map_lookup_elem(&KL_CT4_MAP, &k);
	if (e && kl_ct_live(e, p->proto, now))
		return 0; /* the source's own flow (it wins in kl_ct4_process too) */
	kl_ct4_key_of(&k, p, 1, KL_CT_SCOPE_FLOW);
	e = bpf_map_lookup_elem(&KL_CT4_MAP, &k);
	return e && kl_ct_live(e, p->proto, now);
}

#endif /* KL_CT4_H */
