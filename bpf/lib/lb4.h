/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4 socket LB: frontend -> slot -> backend at connect/sendmsg, and back at recvmsg/getpeername. */
#ifndef KL_LB4_H
#define KL_LB4_H

#include "lb_common.h"
#include "lb_pick.h"

/*
 * Forward translation of (addr, port, proto) for the socket behind ctx.
 * Returns KL_XLATE_DONE with *addr and *port set to the chosen backend,
 * KL_XLATE_PASS when the destination is no frontend, or a negative errno:
 * -ECONNREFUSED for a frontend without backends, -EHOSTUNREACH when a slot or
 * backend is missing (a half-written state the agent's write order rules out),
 * -ENOMEM when a UDP socket's reverse entry cannot be stored.
 */
static __always_inline int
lb4_xlate_fwd(struct bpf_sock_addr *ctx, __be32 *addr, __be16 *port, __u8 proto)
{
	struct kl_lb4_key key = { .addr = *addr, .dport = *port, .proto = proto };
	struct kl_lb4_rsk_key rsk_key = {};
	struct kl_lb4_rsk rsk = {};
	struct kl_lb_svc *front;
	struct kl_lb4_backend *be;
	__u32 backend_id, rev_nat_id;
	__u64 client = 0, now = 0;
	__u16 count;

	front = bpf_map_lookup_elem(&KL_LB4_SVC_MAP, &key);
	if (!front)
		return KL_XLATE_PASS;
	count = front->count;
	if (count == 0)
		return -KL_ECONNREFUSED;
	rev_nat_id = front->rev_nat_id;
	if (front->flags & KL_SVC_F_AFFINITY) {
		client = kl_client_id(ctx);
		now = bpf_ktime_get_ns();
	}
	be = lb4_pick(front, count, client, now, &backend_id);
	if (!be)
		return -KL_EHOSTUNREACH;

	rsk_key.cookie = bpf_get_socket_cookie(ctx);
	rsk_key.addr = be->addr;
	rsk_key.port = be->port;
	rsk.addr = *addr;
	rsk.port = *port;
	rsk.rev_nat_id = rev_nat_id;
	if (bpf_map_update_elem(&KL_LB4_RSK_MAP, &rsk_key, &rsk, BPF_ANY) < 0 &&
	    proto == KL_PROTO_UDP)
		return -KL_ENOMEM;

	*addr = be->addr;
	*port = be->port;
	return KL_XLATE_DONE;
}

/*
 * Reverse translation: when this socket's peer (addr, port) is a backend it
 * was sent to through a frontend that still exists, show the frontend.
 * Returns 1 when *addr and *port were rewritten.
 */
static __always_inline int
lb4_xlate_rev(struct bpf_sock_addr *ctx, __be32 *addr, __be16 *port)
{
	struct kl_lb4_rsk_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = *addr,
		.port = *port,
	};
	struct kl_lb4_rsk *rsk;
	struct kl_lb4_rnat *rnat;
	__u32 rev_nat_id;

	rsk = bpf_map_lookup_elem(&KL_LB4_RSK_MAP, &key);
	if (!rsk)
		return 0;
	rev_nat_id = rsk->rev_nat_id;
	rnat = bpf_map_lookup_elem(&KL_LB4_RNAT_MAP, &rev_nat_id);
	if (!rnat || rnat->addr != rsk->addr || rnat->port != rsk->port) {
		/* The frontend is gone (or its id was reused): forget the entry. */
		bpf_map_delete_elem(&KL_LB4_RSK_MAP, &key);
		return 0;
	}
	*addr = rsk->addr;
	*port = rsk->port;
	return 1;
}

/* cgroup/connect4, cgroup/sendmsg4 */
static __always_inline int lb4_sock_fwd(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	__be32 addr;
	__be16 port;
	int ret;

	if (!kl_is_lb_proto(proto))
		return KL_SYS_PROCEED;
	addr = ctx->user_ip4;
	port = (__be16)ctx->user_port;
	ret = lb4_xlate_fwd(ctx, &addr, &port, (__u8)proto);
	if (ret == KL_XLATE_PASS)
		return KL_SYS_PROCEED;
	if (ret < 0)
		return kl_reject(-ret);
	ctx->user_ip4 = addr;
	ctx->user_port = (__u32)port;
	return KL_SYS_PROCEED;
}

/* cgroup/recvmsg4, cgroup/getpeername4: these hooks must always proceed. */
static __always_inline int lb4_sock_rev(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	__be32 addr;
	__be16 port;

	if (!kl_is_lb_proto(proto))
		return KL_SYS_PROCEED;
	addr = ctx->user_ip4;
	port = (__be16)ctx->user_port;
	if (lb4_xlate_rev(ctx, &addr, &port)) {
		ctx->user_ip4 = addr;
		ctx->user_port = (__u32)port;
	}
	return KL_SYS_PROCEED;
}

#endif /* KL_LB4_H */
