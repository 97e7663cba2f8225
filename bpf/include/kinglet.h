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
#define KL_LB4_SVC_MAP      kl_lb4_svc_v1
#define KL_LB6_SVC_MAP      kl_lb6_svc_v1
#define KL_LB4_BE_MAP       kl_lb4_be_v1
#define KL_LB6_BE_MAP       kl_lb6_be_v1
#define KL_LB4_RNAT_MAP     kl_lb4_rnat_v1
#define KL_LB6_RNAT_MAP     kl_lb6_rnat_v1
#define KL_LB4_RSK_MAP      kl_lb4_rsk_v1
#define KL_LB6_RSK_MAP      kl_lb6_rsk_v1
#define KL_LB_AFF_MAP       kl_lb_aff_v1

/* Capacities (max_entries). */
#define KL_LB_SVC_MAX       262144  /* frontends + their backend slots */
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
 * Services map key. Slot 0 is the frontend itself (its value carries the
 * backend count); slots 1..count hold one backend id each.
 */
struct kl_lb4_key {
	__be32 addr;      /* frontend address */
	__be16 dport;     /* frontend port */
	__u16  slot;      /* 0: the frontend; 1..count: a backend slot */
	__u8   proto;     /* KL_PROTO_* */
	__u8   pad[3];
};

struct kl_lb6_key {
	__u8   addr[16];
	__be16 dport;
	__u16  slot;
	__u8   proto;
	__u8   pad[3];
};

/* Services map value, both families. */
struct kl_lb_svc {
	__u32 backend_id;       /* slot > 0: the backend; slot 0: 0 */
	__u16 count;            /* slot 0: number of backend slots (0: refuse); slot > 0: 0 */
	__u8  flags;            /* KL_SVC_F_* (slot 0) */
	__u8  pad;
	__u32 rev_nat_id;       /* the frontend's reverse-NAT id (every slot) */
	__u32 affinity_timeout; /* seconds, when KL_SVC_F_AFFINITY (slot 0) */
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
	__u16 slot;             /* the slot the backend held: still valid only if it still holds it */
	__u16 pad;
};

#endif /* KINGLET_H */
