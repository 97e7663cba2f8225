/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 masquerade on the node's native device: connections this node's pods
 * open to destinations outside the cluster CIDR leave with the node address
 * and a port from the masquerade range; replies are mapped back on the way
 * in. What a pod sends in answer to a connection opened towards it (a node's
 * own process, or anything routed in from outside the cluster CIDR) leaves
 * unchanged: its peer addressed the pod and expects the pod's address back.
 * The direction comes from the pod conntrack (kl_ct4_opened_by_peer).
 * Two LRU entries per flow: OUT (the pod's tuple -> node port) and IN (the
 * reply's tuple -> the pod). A port is claimed by inserting its IN entry with
 * BPF_NOEXIST, so two CPUs can never hand out the same one.
 */
#ifndef KL_NAT4_H
#define KL_NAT4_H

#include "pod_maps.h"
#include "pkt4.h"
#include "ct4.h"
#include "verdict.h"

#define KL_SNAT_TRIES 32

static __always_inline void
kl_snat_key(struct kl_snat4_key *k, __be32 s, __be32 d, __be16 sp, __be16 dp, __u8 proto, __u8 dir)
{
	k->saddr = s;
	k->daddr = d;
	k->sport = sp;
	k->dport = dp;
	k->proto = proto;
	k->dir = dir;
	k->pad = 0;
}

/*
 * Is this packet one to masquerade? Pods of this node, to outside the
 * cluster, in a flow the pod opened: never the replies of a connection that
 * came in to the pod (another node's address is outside the cluster CIDR
 * too; SNATing the pod's SYN-ACK to the node address makes the client
 * answer with RST).
 */
static __always_inline int kl_snat_wanted(const struct kl_cfg *cfg, const struct pkt4 *p)
{
	if (!(cfg->flags & KL_CFG_F_MASQ) || !cfg->node_ip)
		return 0;
	if (!kl_in_net(p->saddr, cfg->pod_net, cfg->pod_mask))
		return 0;
	if (kl_in_net(p->daddr, cfg->cluster_net, cfg->cluster_mask))
		return 0;
	if (kl_ct4_opened_by_peer(p))
		return 0;
	return 1;
}

/* Egress: SNAT to the node address. TC_ACT_OK, or a drop. */
static __always_inline int kl_snat4_egress(struct __sk_buff *ctx, struct pkt4 *p, const struct kl_cfg *cfg)
{
	struct kl_snat4_key out, in;
	struct kl_snat4_entry *m, val = {};
	__be32 node = cfg->node_ip;
	__u32 min = cfg->snat_port_min, max = cfg->snat_port_max, size, start, i;
	__be16 port = 0;
	__u64 now = bpf_ktime_get_ns();
	int icmp = p->proto == IPPROTO_ICMP;

	if (!p->has_ports || p->frag || (icmp && p->icmp_type != KL_ICMP_ECHO))
		return TC_ACT_OK; /* only what can be mapped back: TCP, UDP, ICMP echo */
	kl_snat_key(&out, p->saddr, p->daddr, p->sport, p->dport, p->proto, KL_SNAT_OUT);
	m = bpf_map_lookup_elem(&KL_SNAT4_MAP, &out);
	if (m && m->to_addr == node) {
		m->last_seen_ns = now;
		port = m->to_port;
	} else {
		if (min == 0 || max < min)
			return kl_drop(ctx, p, KL_DROP_SNAT_NO_PORT);
		size = max - min + 1;
		start = bpf_get_prandom_u32();
		val.last_seen_ns = now;
		val.to_addr = p->saddr;
		val.to_port = p->sport;
		for (i = 0; i < KL_SNAT_TRIES; i++) {
			__be16 cand = bpf_htons((__u16)(min + (start + i) % size));

			/* The reply's tuple: ICMP echo replies carry the identifier as "dport". */
			if (icmp)
				kl_snat_key(&in, p->daddr, node, 0, cand, p->proto, KL_SNAT_IN);
			else
				kl_snat_key(&in, p->daddr, node, p->dport, cand, p->proto, KL_SNAT_IN);
			if (bpf_map_update_elem(&KL_SNAT4_MAP, &in, &val, BPF_NOEXIST) == 0) {
				port = cand;
				break;
			}
		}
		if (!port)
			return kl_drop(ctx, p, KL_DROP_SNAT_NO_PORT);
		val.to_addr = node;
		val.to_port = port;
		bpf_map_update_elem(&KL_SNAT4_MAP, &out, &val, BPF_ANY);
	}
	if (kl_set_addr4(ctx, p, 0, node) < 0 || kl_set_port4(ctx, p, 0, port) < 0)
		return kl_drop(ctx, p, KL_DROP_REWRITE);
	kl_flow_event(ctx, p, KL_VERDICT_FORWARDED, 0);
	return TC_ACT_OK;
}

/* Ingress: replies to a masqueraded flow go back to the pod. TC_ACT_OK, or a drop. */
static __always_inline int kl_snat4_ingress(struct __sk_buff *ctx, struct pkt4 *p, const struct kl_cfg *cfg)
{
	struct kl_snat4_key in;
	struct kl_snat4_entry *m;
	__be32 to_addr;
	__be16 to_port;

	if (!(cfg->flags & KL_CFG_F_MASQ) || p->daddr != cfg->node_ip || !p->has_ports || p->frag)
		return TC_ACT_OK;
	kl_snat_key(&in, p->saddr, p->daddr, p->sport, p->dport, p->proto, KL_SNAT_IN);
	m = bpf_map_lookup_elem(&KL_SNAT4_MAP, &in);
	if (!m)
		return TC_ACT_OK; /* the node's own traffic */
	m->last_seen_ns = bpf_ktime_get_ns();
	to_addr = m->to_addr;
	to_port = m->to_port;
	if (kl_set_addr4(ctx, p, 1, to_addr) < 0 || kl_set_port4(ctx, p, 1, to_port) < 0)
		return kl_drop(ctx, p, KL_DROP_REWRITE);
	return TC_ACT_OK;
}

/*
 * The masquerade config when the packet on the uplink is IPv4 and masquerade
 * is on, with *p parsed; NULL when there is nothing for masquerade to do.
 */
static __always_inline const struct kl_cfg *kl_nat_prepare(struct __sk_buff *ctx, struct pkt4 *p)
{
	const struct kl_cfg *cfg;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return NULL;
	cfg = kl_cfg();
	if (!cfg || !(cfg->flags & KL_CFG_F_MASQ))
		return NULL;
	if (kl_parse4(ctx, p) < 0)
		return NULL; /* not ours to judge on the uplink */
	return cfg;
}

#endif /* KL_NAT4_H */
