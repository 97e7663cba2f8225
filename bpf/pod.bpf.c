// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The pod datapath: tc (clsact, direct action) programs.
 *
 *   kl_from_pod    tc ingress of a pod's host veth (packets the pod sends)
 *   kl_to_pod      tc egress of a pod's host veth (packets the stack sends to the pod)
 *   kl_nat_egress  tc egress of the node's native device (masquerade of flows pods opened)
 *   kl_nat_ingress tc ingress of the node's native device (replies to masqueraded flows)
 *
 * from-pod: source check, egress policy hook, per-packet service LB for
 * anything still addressed to a frontend, conntrack, reverse NAT of replies,
 * then a local destination pod is served right here (its conntrack and
 * ingress policy) and delivered per kl_cfg.redirect: bpf_redirect_peer,
 * bpf_redirect_neigh, or the stack; anything else goes to the stack (routes
 * to other nodes, masquerade on the way out).
 *
 * ICMP errors about translated flows are translated back: on the pod
 * side for the per-packet LB (lib/lb4_tc.h), on the native device for
 * masquerade (lib/nat4.h); their quoted headers with them (lib/icmp4.h).
 *
 * IPv4 only. IPv6 packets pass untouched (routed by the stack; no conntrack,
 * per-packet LB, masquerade or BPF redirect for IPv6 yet). IPv4 non-first
 * fragments are not translated (no ports to look up).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kinglet.h"
#include "lb_maps.h"
#include "pod_maps.h"
#include "pkt4.h"
#include "verdict.h"
#include "ct4.h"
#include "lb4_tc.h"
#include "nat4.h"

/*
 * Conntrack and reverse NAT for a packet (replies, and ICMP errors about
 * translated flows); 0 or a negative drop reason. *dir as kl_ct4_process.
 */
static __always_inline int kl_track(struct __sk_buff *ctx, struct pkt4 *p, const struct lb4_xlate *x, int *dir)
{
	struct kl_ct4_entry *e = kl_ct4_process(p, dir);

	if (!e) {
		if (x && !p->frag)
			return -KL_DROP_CT_FULL; /* a translated flow must be tracked, or replies could not be mapped back */
		return kl_lb4_icmp_err_rev(ctx, p); /* untracked: maybe an ICMP error about a translated flow */
	}
	if (x) {
		e->nat_addr = x->vaddr;
		e->nat_port = x->vport;
		e->rev_nat_id = x->rev_nat_id;
		e->flags |= KL_CT_F_REV_NAT;
	} else if (*dir == KL_CT_REPLY && (e->flags & KL_CT_F_REV_NAT)) {
		return kl_lb4_rev(ctx, p, e);
	}
	return 0;
}

/* Hand a packet to a local pod: ingress policy, then the configured delivery. */
static __always_inline int
kl_deliver(struct __sk_buff *ctx, struct pkt4 *p, const struct kl_endpoint *ep, int dir)
{
	const struct kl_cfg *cfg = kl_cfg();
	__u32 mode = cfg ? cfg->redirect : KL_REDIR_STACK;
	__u32 ifindex = ep->ifindex;

	if (kl_policy_ingress(ctx, p, ep, dir == KL_CT_REPLY) != KL_POLICY_ALLOW)
		return kl_drop(ctx, p, KL_DROP_POLICY);
	if (mode == KL_REDIR_PEER || mode == KL_REDIR_NEIGH) {
		if (kl_ttl_dec(ctx, p) < 0)
			return kl_drop(ctx, p, KL_DROP_TTL);
		kl_flow_event(ctx, p, KL_VERDICT_REDIRECTED, 0);
		if (mode == KL_REDIR_PEER) {
			if (kl_set_macs(ctx, ep->pod_mac, ep->host_mac) < 0)
				return kl_drop(ctx, p, KL_DROP_REWRITE);
			return bpf_redirect_peer(ifindex, 0);
		}
		ctx->mark = (ctx->mark & ~KL_MARK_MASK) | KL_MARK_DELIVERED;
		return bpf_redirect_neigh(ifindex, NULL, 0, 0);
	}
	/* The stack routes it to the pod's veth; to-pod sees the mark and lets it through. */
	ctx->mark = (ctx->mark & ~KL_MARK_MASK) | KL_MARK_DELIVERED;
	kl_flow_event(ctx, p, KL_VERDICT_FORWARDED, 0);
	return TC_ACT_OK;
}

SEC("tc")
int kl_from_pod(struct __sk_buff *ctx)
{
	struct pkt4 p = {};
	struct lb4_xlate x = {};
	const struct kl_endpoint *src, *dst;
	__u32 saddr;
	int ret, dir;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK; /* ARP, IPv6: the stack */
	if (kl_parse4(ctx, &p) < 0)
		return kl_drop(ctx, &p, KL_DROP_PARSE);

	saddr = p.saddr;
	src = bpf_map_lookup_elem(&KL_EP4_MAP, &saddr);
	if (!src || src->ifindex != ctx->ifindex)
		return kl_drop(ctx, &p, KL_DROP_SPOOF);
	if (kl_policy_egress(ctx, &p, src) != KL_POLICY_ALLOW)
		return kl_drop(ctx, &p, KL_DROP_POLICY);

	ret = kl_lb4_tc(ctx, &p, &x);
	if (ret < 0)
		return kl_drop(ctx, &p, -ret);
	ret = kl_track(ctx, &p, ret == 1 ? &x : NULL, &dir);
	if (ret < 0)
		return kl_drop(ctx, &p, -ret);

	dst = bpf_map_lookup_elem(&KL_EP4_MAP, &p.daddr);
	if (dst)
		return kl_deliver(ctx, &p, dst, dir);
	kl_flow_event(ctx, &p, KL_VERDICT_FORWARDED, 0);
	return TC_ACT_OK;
}

SEC("tc")
int kl_to_pod(struct __sk_buff *ctx)
{
	struct pkt4 p = {};
	const struct kl_endpoint *dst;
	int ret, dir;

	if ((ctx->mark & KL_MARK_MASK) == KL_MARK_DELIVERED) {
		ctx->mark &= ~KL_MARK_MASK; /* from-pod did this pod's work already */
		return TC_ACT_OK;
	}
	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (kl_parse4(ctx, &p) < 0)
		return kl_drop(ctx, &p, KL_DROP_PARSE);
	ret = kl_track(ctx, &p, NULL, &dir);
	if (ret < 0)
		return kl_drop(ctx, &p, -ret);
	dst = bpf_map_lookup_elem(&KL_EP4_MAP, &p.daddr);
	if (dst && kl_policy_ingress(ctx, &p, dst, dir == KL_CT_REPLY) != KL_POLICY_ALLOW)
		return kl_drop(ctx, &p, KL_DROP_POLICY);
	kl_flow_event(ctx, &p, KL_VERDICT_FORWARDED, 0);
	return TC_ACT_OK;
}

SEC("tc")
int kl_nat_egress(struct __sk_buff *ctx)
{
	struct pkt4 p = {};
	const struct kl_cfg *cfg = kl_nat_prepare(ctx, &p);

	if (!cfg || !kl_snat_wanted(cfg, &p))
		return TC_ACT_OK;
	return kl_snat4_egress(ctx, &p, cfg);
}

SEC("tc")
int kl_nat_ingress(struct __sk_buff *ctx)
{
	struct pkt4 p = {};
	const struct kl_cfg *cfg = kl_nat_prepare(ctx, &p);

	if (!cfg)
		return TC_ACT_OK;
	return kl_snat4_ingress(ctx, &p, cfg);
}

char _license[] SEC("license") = "Dual BSD/GPL";
