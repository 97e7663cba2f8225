/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 masquerade on the node's native device: connections this node's pods
 * open to destinations outside the cluster CIDR leave with the node address
 * and a port from the masquerade range; replies are mapped back on the way
 * in. What a pod sends in answer to a connection opened towards it (a node's
 * own process, or anything routed in from outside the cluster CIDR) leaves
 * unchanged: its peer addressed the pod and expects the pod's address back.
 * The direction comes from the pod conntrack (kl_ct4_opened_by_peer).
 *
 * Two LRU entries per flow: OUT (the pod's tuple -> node port) and IN (the
 * reply's tuple -> the pod). The IN entry is the claim on the port: it is
 * inserted with BPF_NOEXIST, so two CPUs can never hand out the same one,
 * and it carries the flow's age and TCP state, so a claim idle past the
 * conntrack lifetime of its flow (kl_ct_lifetime: 10 s after a FIN or RST,
 * 60 s for UDP, ICMP and unanswered TCP, 6 h for established TCP) frees its
 * port for another flow to the same peer; the LRU evicts the rest under
 * pressure. Ports come from the masquerade range [snat_port_min,
 * snat_port_max], which by default lies above the node's ephemeral range,
 * and never one a node socket holds towards the peer (see
 * kl_snat_port_used_by_node), so the node's own connections keep their
 * replies; when the agent finds the range overlapping the node's ephemeral
 * ports it also sets KL_CFG_F_SNAT_SHARED, and a reply a node socket is
 * connected for stays with the node (kl_node_socket_connected). The rate
 * of new flows to one peer (address, port, protocol) is bounded by the
 * range over the lifetimes: 4536 ports of the default range over 10 s is
 * about 450 closed TCP connections a second, over 60 s about 75 UDP flows
 * (say DNS queries from fresh sockets) a second; widen the range
 * (--masquerade-ports) for more. No free port after KL_SNAT_TRIES candidates: the packet is
 * dropped as KL_DROP_SNAT_NO_PORT (counted per reason).
 *
 * ICMP errors (unreachable, fragmentation needed, time exceeded) about a
 * masqueraded flow are translated back to the pod, outer and quoted headers
 * (lib/icmp4.h), so the pod sees ECONNREFUSED and learns the path MTU; those
 * a pod sends about one leave translated to the node address.
 */
#ifndef KL_NAT4_H
#define KL_NAT4_H

#include "pod_maps.h"
#include "pkt4.h"
#include "ct4.h"
#include "verdict.h"
#include "icmp4.h"

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

/*
 * A port the node's own sockets hold towards this peer: a TCP socket in any
 * state (listening, established, time-wait) or a UDP socket on node:port
 * that the peer's packets to node:port would reach. Masquerade never hands
 * such a port out, so replies meant for the node are never taken (the
 * masquerade range is also outside the node's ephemeral range by default,
 * see DEFAULT_SNAT_PORTS; this covers sockets bound into it explicitly).
 * ICMP echo has no socket to ask (ping sockets are not looked up here).
 */
static __always_inline int
kl_snat_port_used_by_node(struct __sk_buff *ctx, const struct pkt4 *p, __be32 node, __be16 port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.saddr = p->daddr;
	t.ipv4.daddr = node;
	t.ipv4.sport = p->dport;
	t.ipv4.dport = port;
	if (p->proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	else if (p->proto == IPPROTO_UDP)
		sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	else
		return 0;
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/*
 * Is a node socket connected for exactly this incoming packet (a TCP
 * connection, or a connected UDP socket)? Only asked when the masquerade
 * range overlaps the node's ephemeral ports (KL_CFG_F_SNAT_SHARED): the
 * kernel may then give a new node connection a port a pod's mapping holds
 * towards the same peer, and the node keeps its replies (the pod's flow
 * loses them). Listeners and unconnected UDP sockets do not count.
 */
static __always_inline int kl_node_socket_connected(struct __sk_buff *ctx, const struct pkt4 *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	int mine;

	t.ipv4.saddr = p->saddr;
	t.ipv4.daddr = p->daddr;
	t.ipv4.sport = p->sport;
	t.ipv4.dport = p->dport;
	/*
	 * One field read per branch, pinned there by the empty asm: merged
	 * into one read after the branches, it would become arithmetic on the
	 * socket pointer, which the verifier refuses.
	 */
	if (p->proto == IPPROTO_TCP) {
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return 0;
		mine = sk->state != BPF_TCP_LISTEN;
		asm volatile("" : "+r"(mine));
	} else if (p->proto == IPPROTO_UDP) {
		sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return 0;
		mine = sk->dst_ip4 != 0;
		asm volatile("" : "+r"(mine));
	} else {
		return 0;
	}
	bpf_sk_release(sk);
	return mine;
}

/* A packet of the mapping went by: its claim's age and TCP state (FIN/RST; a bare SYN starts over). */
static __always_inline void kl_snat_touch(struct kl_snat4_entry *c, const struct pkt4 *p, __u64 now, int reply)
{
	__u16 flags = c->flags;

	if (!reply && kl_tcp_bare_syn(p))
		flags = 0; /* the pod reuses its tuple for a new connection */
	else if (reply)
		flags |= KL_CT_F_SEEN_REPLY;
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (KL_TCP_FIN | KL_TCP_RST)))
		flags |= KL_CT_F_CLOSING;
	c->last_seen_ns = now;
	if (c->flags != flags)
		c->flags = flags;
}

/* The IN key of the reply to *p leaving from node:port (ICMP echo replies carry the identifier as "dport"). */
static __always_inline void kl_snat_in_key(struct kl_snat4_key *in, const struct pkt4 *p, __be32 node, __be16 port)
{
	kl_snat_key(in, p->daddr, node, p->proto == IPPROTO_ICMP ? 0 : p->dport, port, p->proto, KL_SNAT_IN);
}

/*
 * Claim a node port for *p's flow: up to KL_SNAT_TRIES candidates from a
 * random start in [min, max]. A candidate is taken when no live mapping to
 * the same peer (address, port, protocol) holds it and no node socket uses
 * it; a mapping idle past its lifetime gives its port up. The claim is the
 * BPF_NOEXIST insert of the IN entry, so two CPUs never take the same port.
 * Returns the port (network order), or 0 when every candidate was busy.
 */
static __always_inline __be16
kl_snat_claim(struct __sk_buff *ctx, const struct pkt4 *p, const struct kl_cfg *cfg, __u64 now)
{
	struct kl_snat4_key in;
	struct kl_snat4_entry val = {}, *c;
	__u32 min = cfg->snat_port_min, max = cfg->snat_port_max, size, start, i;
	__be32 node = cfg->node_ip;

	if (min == 0 || max < min)
		return 0;
	size = max - min + 1;
	start = bpf_get_prandom_u32();
	val.last_seen_ns = now;
	val.to_addr = p->saddr;
	val.to_port = p->sport;
	for (i = 0; i < KL_SNAT_TRIES; i++) {
		__be16 cand = bpf_htons((__u16)(min + (start + i) % size));

		kl_snat_in_key(&in, p, node, cand);
		if (bpf_map_update_elem(&KL_SNAT4_MAP, &in, &val, BPF_NOEXIST) < 0) {
			c = bpf_map_lookup_elem(&KL_SNAT4_MAP, &in);
			if (c && kl_flow_live(c->last_seen_ns, p->proto, c->flags, now))
				continue;
			/* Expired: free it, then claim it like a free one (another CPU may win). */
			bpf_map_delete_elem(&KL_SNAT4_MAP, &in);
			if (bpf_map_update_elem(&KL_SNAT4_MAP, &in, &val, BPF_NOEXIST) < 0)
				continue;
		}
		if (kl_snat_port_used_by_node(ctx, p, node, cand)) {
			bpf_map_delete_elem(&KL_SNAT4_MAP, &in);
			continue;
		}
		return cand;
	}
	return 0;
}

/*
 * An ICMP error a pod sends about a packet of a masqueraded flow coming in
 * (its quote is peer -> pod:port; say port unreachable after the pod closed
 * the socket): out with the node address, quoting node:port as the peer
 * sent it, so the peer's socket learns of it and no pod address leaves.
 * 0 (translated, or not such an error) or a negative drop reason.
 */
static __always_inline int kl_snat4_icmp_err_egress(struct __sk_buff *ctx, struct pkt4 *p, __be32 node)
{
	struct icmp4_quote q;
	struct kl_snat4_key out;
	struct kl_snat4_entry *m;
	__be16 port;

	if (kl_icmp4_quote(ctx, p, &q) < 0 || q.proto == IPPROTO_ICMP || q.daddr != p->saddr)
		return 0;
	kl_snat_key(&out, q.daddr, q.saddr, q.dport, q.sport, q.proto, KL_SNAT_OUT);
	m = bpf_map_lookup_elem(&KL_SNAT4_MAP, &out);
	if (!m || m->to_addr != node)
		return 0; /* not about a masqueraded flow */
	port = m->to_port;
	if (kl_icmp4_quote_set(ctx, p, &q, 1, node, port) < 0 || kl_set_addr4(ctx, p, 0, node) < 0)
		return -KL_DROP_REWRITE;
	return 0;
}

/*
 * Egress: SNAT to the node address. TC_ACT_OK, or a drop. A flow keeps its
 * port while its claim is its own; a claim lost (evicted by the LRU, or
 * expired and taken by another flow) gets the flow a new port.
 */
static __always_inline int kl_snat4_egress(struct __sk_buff *ctx, struct pkt4 *p, const struct kl_cfg *cfg)
{
	struct kl_snat4_key out, in;
	struct kl_snat4_entry *m, *c, val = {};
	__be32 node = cfg->node_ip;
	__be16 port = 0;
	__u64 now = bpf_ktime_get_ns();
	int ret;

	if (p->proto == IPPROTO_ICMP && !p->has_ports) {
		ret = kl_snat4_icmp_err_egress(ctx, p, node);
		return ret < 0 ? kl_drop(ctx, p, -ret) : TC_ACT_OK;
	}
	if (!p->has_ports || p->frag || (p->proto == IPPROTO_ICMP && p->icmp_type != KL_ICMP_ECHO))
		return TC_ACT_OK; /* only what can be mapped back: TCP, UDP, ICMP echo */
	kl_snat_key(&out, p->saddr, p->daddr, p->sport, p->dport, p->proto, KL_SNAT_OUT);
	m = bpf_map_lookup_elem(&KL_SNAT4_MAP, &out);
	if (m && m->to_addr == node) {
		kl_snat_in_key(&in, p, node, m->to_port);
		c = bpf_map_lookup_elem(&KL_SNAT4_MAP, &in);
		if (c && c->to_addr == p->saddr && c->to_port == p->sport) {
			kl_snat_touch(c, p, now, 0);
			m->last_seen_ns = now;
			port = m->to_port;
		}
	}
	if (!port) {
		port = kl_snat_claim(ctx, p, cfg, now);
		if (!port)
			return kl_drop(ctx, p, KL_DROP_SNAT_NO_PORT);
		val.last_seen_ns = now;
		val.to_addr = node;
		val.to_port = port;
		if (bpf_map_update_elem(&KL_SNAT4_MAP, &out, &val, BPF_ANY) < 0) {
			kl_snat_in_key(&in, p, node, port);
			bpf_map_delete_elem(&KL_SNAT4_MAP, &in);
			return kl_drop(ctx, p, KL_DROP_SNAT_MAP);
		}
	}
	if (kl_set_addr4(ctx, p, 0, node) < 0 || kl_set_port4(ctx, p, 0, port) < 0)
		return kl_drop(ctx, p, KL_DROP_REWRITE);
	kl_flow_event(ctx, p, KL_VERDICT_FORWARDED, 0);
	return TC_ACT_OK;
}

/*
 * An ICMP error for a masqueraded flow (its quote is the packet as it left:
 * node:port -> peer): back to the pod, outer destination and quoted source.
 * 0 (translated, or not such an error) or a negative drop reason.
 */
static __always_inline int kl_snat4_icmp_err_ingress(struct __sk_buff *ctx, struct pkt4 *p, __be32 node)
{
	struct icmp4_quote q;
	struct kl_snat4_key in;
	struct kl_snat4_entry *c;
	__be32 to_addr;
	__be16 to_port;

	if (kl_icmp4_quote(ctx, p, &q) < 0 || q.saddr != node)
		return 0;
	kl_snat_key(&in, q.daddr, node, q.dport, q.sport, q.proto, KL_SNAT_IN);
	c = bpf_map_lookup_elem(&KL_SNAT4_MAP, &in);
	if (!c)
		return 0; /* about the node's own traffic */
	to_addr = c->to_addr;
	to_port = c->to_port;
	if (kl_icmp4_quote_set(ctx, p, &q, 0, to_addr, to_port) < 0 || kl_set_addr4(ctx, p, 1, to_addr) < 0)
		return -KL_DROP_REWRITE;
	return 0;
}

/* Ingress: replies to a masqueraded flow, and ICMP errors about one, go back to the pod. TC_ACT_OK, or a drop. */
static __always_inline int kl_snat4_ingress(struct __sk_buff *ctx, struct pkt4 *p, const struct kl_cfg *cfg)
{
	struct kl_snat4_key in;
	struct kl_snat4_entry *c;
	__be32 to_addr;
	__be16 to_port;
	int ret;

	if (!(cfg->flags & KL_CFG_F_MASQ) || p->daddr != cfg->node_ip || p->frag)
		return TC_ACT_OK;
	if (!p->has_ports) {
		ret = kl_snat4_icmp_err_ingress(ctx, p, cfg->node_ip);
		return ret < 0 ? kl_drop(ctx, p, -ret) : TC_ACT_OK;
	}
	kl_snat_key(&in, p->saddr, p->daddr, p->sport, p->dport, p->proto, KL_SNAT_IN);
	c = bpf_map_lookup_elem(&KL_SNAT4_MAP, &in);
	if (!c)
		return TC_ACT_OK; /* the node's own traffic */
	if ((cfg->flags & KL_CFG_F_SNAT_SHARED) && kl_node_socket_connected(ctx, p))
		return TC_ACT_OK; /* a node connection got this port after the pod's flow did: the node's */
	kl_snat_touch(c, p, bpf_ktime_get_ns(), 1);
	to_addr = c->to_addr;
	to_port = c->to_port;
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
