/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kinglet: every struct that both the BPF programs and the TypeScript agent
 * encode. The TypeScript twin is agent/datapath/lb-layout.ts; the test
 * test/unit/agent/datapath/layout-pin.test.ts compares the two through the
 * object's BTF (sizes and every member offset), so a change on one side
 * without the other fails the build.
 *
 * Rules for this file:
 * - every padding byte is an explicit member (keys are hashed bytewise, so a
 *   hidden hole with garbage would make a lookup miss);
 * - addresses and ports are in network byte order, everything else is host
 *   order (the agent writes host order with the machine's endianness);
 * - a layout change bumps the map name suffix (_v1 -> _v2) so that pinned
 *   maps of the old layout are never read with the new one.
 */
#ifndef KINGLET_H
#define KINGLET_H

#include <linux/types.h>

/* Map names (BPF object names are at most 15 characters). */
#define KL_LB4_SVC_MAP      kl_lb4_svc_v2   /* v2: frontends only, slots in KL_LB4_SLOT_MAP */
#define KL_LB6_SVC_MAP      kl_lb6_svc_v2
#define KL_LB4_SLOT_MAP     kl_lb4_slot_v1
#define KL_LB6_SLOT_MAP     kl_lb6_slot_v1
#define KL_LB4_BE_MAP       kl_lb4_be_v2   /* v2: an array (v1: a hash) */
#define KL_LB6_BE_MAP       kl_lb6_be_v2
#define KL_LB4_RNAT_MAP     kl_lb4_rnat_v2
#define KL_LB6_RNAT_MAP     kl_lb6_rnat_v2
#define KL_LB4_RSK_MAP      kl_lb4_rsk_v1
#define KL_LB6_RSK_MAP      kl_lb6_rsk_v1
#define KL_LB_AFF_MAP       kl_lb_aff_v1

/* Capacities (max_entries). */
#define KL_LB_SVC_MAX       65536   /* frontends per family */
#define KL_LB_SLOT_MAX      262144  /* backend slots per family (index 0 unused) */
#define KL_LB_BE_MAX        131072  /* distinct backends per family */
#define KL_LB_RNAT_MAX      65536   /* frontends per family */
#define KL_LB_RSK_MAX       262144  /* translated sockets (LRU) */
#define KL_LB_AFF_MAX       65536   /* (client, frontend) affinity records (LRU) */

/* L4 protocols, as IPPROTO_* numbers. */
#define KL_PROTO_TCP        6
#define KL_PROTO_UDP        17

/* struct kl_lb_svc.flags */
#define KL_SVC_F_AFFINITY   0x01    /* sessionAffinity: ClientIP */

/* struct kl_lb4_backend.flags / kl_lb6_backend.flags */
#define KL_BE_F_TERMINATING 0x01    /* serving but terminating (used only when no ready one is left) */

/*
 * Services map key: one entry per frontend. Its backend slots are the
 * contiguous range slot_base .. slot_base + count - 1 of the slot array
 * (family's KL_LB*_SLOT_MAP: index (__u32) -> backend id (__u32), 0: unused).
 * The agent never rewrites a range a frontend entry points to with another
 * frontend's backends: a bigger range is written elsewhere first, then the
 * frontend entry is switched to it in one update, then the old one is freed.
 */
struct kl_lb4_key {
	__be32 addr;      /* frontend address */
	__be16 dport;     /* frontend port */
	__u8   proto;     /* KL_PROTO_* */
	__u8   pad;
};

struct kl_lb6_key {
	__u8   addr[16];
	__be16 dport;
	__u8   proto;
	__u8   pad;
};

/* Services map value, both families. */
struct kl_lb_svc {
	__u32 slot_base;        /* first slot array index of the backend slots (0 when count is 0) */
	__u16 count;            /* number of backend slots (0: refuse) */
	__u8  flags;            /* KL_SVC_F_* */
	__u8  pad;
	__u32 rev_nat_id;       /* the frontend's reverse-NAT id */
	__u32 affinity_timeout; /* seconds, when KL_SVC_F_AFFINITY */
};

/* Backends map: backend id (__u32) -> backend. */
struct kl_lb4_backend {
	__be32 addr;
	__be16 port;
	__u8   proto;
	__u8   flags;           /* KL_BE_F_* */
};

struct kl_lb6_backend {
	__u8   addr[16];
	__be16 port;
	__u8   proto;
	__u8   flags;
};

/* Reverse-NAT map: rev_nat id (__u32) -> the frontend address. */
struct kl_lb4_rnat {
	__be32 addr;
	__be16 port;
	__u16  pad;
};

struct kl_lb6_rnat {
	__u8   addr[16];
	__be16 port;
	__u16  pad;
};

/*
 * Reverse-socket map (LRU), written at connect/sendmsg: for this socket, a
 * peer at the backend address is shown as the frontend (recvmsg, getpeername).
 */
struct kl_lb4_rsk_key {
	__u64  cookie;          /* socket cookie */
	__be32 addr;            /* backend address */
	__be16 port;            /* backend port */
	__u16  pad;
};

struct kl_lb4_rsk {
	__be32 addr;            /* frontend address */
	__be16 port;            /* frontend port */
	__u16  pad;
	__u32  rev_nat_id;
};

struct kl_lb6_rsk_key {
	__u64  cookie;
	__u8   addr[16];
	__be16 port;
	__u16  pad;
	__u32  pad2;
};

struct kl_lb6_rsk {
	__u8   addr[16];
	__be16 port;
	__u16  pad;
	__u32  rev_nat_id;
};

/*
 * Session affinity (LRU), both families (rev_nat ids are unique across
 * families). The client is the network namespace cookie where the kernel has
 * bpf_get_netns_cookie() for sock_addr programs (5.7+); without it the client
 * is 0: affinity is then node-wide (every client on the node sticks to the
 * same backend of a frontend), which is the closest honest approximation
 * since the source address is not chosen yet at connect().
 */
struct kl_lb_aff_key {
	__u64 client;           /* netns cookie, or 0 */
	__u32 rev_nat_id;
	__u32 pad;
};

struct kl_lb_aff {
	__u64 last_used_ns;     /* bpf_ktime_get_ns() of the last connect */
	__u32 backend_id;
	__u16 slot;             /* the slot (1..count) the backend held: still valid only if it still holds it */
	__u16 pad;
};

/* ======================================================================== */
/* Pod datapath (bpf/pod.bpf.c): tc programs on each pod's host veth and on  */
/* the node's native device. TypeScript twin: agent/datapath/pod-layout.ts.  */

#define KL_EP4_MAP          kl_ep4_v1
#define KL_CT4_MAP          kl_ct4_v1
#define KL_SNAT4_MAP        kl_snat4_v1
#define KL_CFG_MAP          kl_cfg_v1
#define KL_DROP_MAP         kl_drop_v1

#define KL_EP_MAX           65536   /* local pod addresses */
#define KL_CT_MAX           262144  /* tracked flows + service selections (LRU) */
#define KL_SNAT_MAX         131072  /* masquerade mappings, both directions (LRU) */
#define KL_DROP_MAX         64      /* drop reasons */

/*
 * Drop reasons: every drop goes through one exit (kl_drop in lib/verdict.h)
 * that counts it per reason in KL_DROP_MAP and reports it to the flow-event
 * hook. Numbers are stable; the agent names them (pod-layout.ts).
 */
#define KL_DROP_PARSE           1   /* truncated or malformed IPv4 header */
#define KL_DROP_SPOOF           2   /* source address is not the pod's own */
#define KL_DROP_NO_BACKEND      3   /* service without (ready) backends */
#define KL_DROP_BACKEND_GONE    4   /* slot or backend missing (agent mid-update) */
#define KL_DROP_REWRITE         5   /* a header or checksum rewrite failed */
#define KL_DROP_TTL             6   /* TTL exhausted on a BPF-forwarded packet */
#define KL_DROP_SNAT_NO_PORT    7   /* no free masquerade port for the flow */
#define KL_DROP_POLICY          8   /* denied by policy (the policy hook) */
#define KL_DROP_CT_FULL         9   /* conntrack entry could not be created */
#define KL_DROP_SNAT_MAP        10  /* a masquerade mapping could not be stored */

/* Verdicts given to the flow-event hook. */
#define KL_VERDICT_FORWARDED    1
#define KL_VERDICT_DROPPED      2
#define KL_VERDICT_REDIRECTED   3

/* struct kl_cfg.redirect: how a packet for a local pod is delivered. */
#define KL_REDIR_STACK      0   /* TC_ACT_OK: the kernel routes it */
#define KL_REDIR_NEIGH      1   /* bpf_redirect_neigh to the pod's host veth (5.10+) */
#define KL_REDIR_PEER       2   /* bpf_redirect_peer into the pod's netns (5.10+) */

/* struct kl_cfg.flags */
#define KL_CFG_F_MASQ       0x01    /* masquerade connections pods open to outside the cluster CIDR (not replies) */
#define KL_CFG_F_SNAT_SHARED 0x02   /* the masquerade ports overlap the node's ephemeral ports: replies a node
                                       socket is connected for go to the node, not to a pod's mapping */

/*
 * skb->mark bits set by from-pod when it has already done the destination
 * pod's work (conntrack, policy) before handing the packet to the stack or to
 * bpf_redirect_neigh, so that to-pod on the destination veth does not do it twice.
 */
#define KL_MARK_MASK        0x0fff0000
#define KL_MARK_DELIVERED   0x0b910000

/* Endpoints map: pod IPv4 address (__be32) -> endpoint. */
struct kl_endpoint {
	__u32 ifindex;          /* host side of the pod's veth */
	__u32 identity;         /* security identity (0 until policy exists) */
	__u8  pod_mac[6];       /* the pod's interface */
	__u8  host_mac[6];      /* the host side */
	__u16 flags;            /* reserved */
	__u16 pad;
};

/* Conntrack scope (struct kl_ct4_key.scope). */
#define KL_CT_SCOPE_FLOW    0   /* a flow, keyed in its original direction */
#define KL_CT_SCOPE_SVC     1   /* a service selection: client tuple to the frontend -> backend */

/* struct kl_ct4_entry.flags */
#define KL_CT_F_SEEN_REPLY  0x01
#define KL_CT_F_CLOSING     0x02    /* TCP FIN or RST seen */
#define KL_CT_F_REV_NAT     0x04    /* replies are shown as coming from nat_addr:nat_port */

/*
 * Conntrack key: the flow as its initiator sent it. Ports are the L4 ports;
 * for ICMP echo the identifier is sport of a request and dport of a reply,
 * so a reply's swapped tuple is its request's key.
 */
struct kl_ct4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8   proto;
	__u8   scope;           /* KL_CT_SCOPE_* */
	__u16  pad;
};

struct kl_ct4_entry {
	__u64  last_seen_ns;    /* bpf_ktime_get_ns() of the last packet */
	__u64  created_ns;
	__u32  packets_fwd;
	__u32  packets_rev;
	__be32 nat_addr;        /* FLOW + REV_NAT: the frontend; SVC: the backend */
	__be16 nat_port;
	__u16  flags;           /* KL_CT_F_* */
	__u32  rev_nat_id;      /* the frontend's rev-NAT id (SVC and REV_NAT) */
	__u32  backend_id;      /* SVC: the chosen backend */
};

/* Node configuration, one entry (key 0), written by the agent. */
struct kl_cfg {
	__be32 node_ip;         /* masquerade address (the native device's) */
	__be32 cluster_net;     /* cluster CIDR: not masqueraded */
	__be32 cluster_mask;
	__be32 pod_net;         /* this node's pod CIDR: the sources that are masqueraded */
	__be32 pod_mask;
	__u32  flags;           /* KL_CFG_F_* */
	__u32  redirect;        /* KL_REDIR_* */
	__u16  snat_port_min;   /* host order, inclusive */
	__u16  snat_port_max;
};

/* Masquerade direction (struct kl_snat4_key.dir). */
#define KL_SNAT_OUT         0   /* pod -> outside: key is the pod's tuple */
#define KL_SNAT_IN          1   /* outside -> node: key is the reply's tuple */

struct kl_snat4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8   proto;
	__u8   dir;             /* KL_SNAT_* */
	__u16  pad;
};

/*
 * A masquerade mapping. The IN entry is the claim on the node port and holds
 * the flow's state: last_seen_ns and flags (KL_CT_F_SEEN_REPLY, KL_CT_F_CLOSING)
 * give its lifetime as in conntrack; an IN entry idle past it frees the port.
 * flags was padding before (always 0): entries of an older agent read as
 * "not answered yet" until their next reply.
 */
struct kl_snat4_entry {
	__u64  last_seen_ns;
	__be32 to_addr;         /* OUT: the node address; IN: the pod */
	__be16 to_port;         /* OUT: the allocated port; IN: the pod's port */
	__u16  flags;           /* IN: KL_CT_F_SEEN_REPLY, KL_CT_F_CLOSING; OUT: 0 */
};

#endif /* KINGLET_H */
