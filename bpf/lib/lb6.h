/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 socket LB, the twin of lb4.h. An IPv6 socket talking to an
 * IPv4-mapped address (::ffff:a.b.c.d, as Java and other dual-stack clients
 * do) goes through the IPv4 maps and keeps the mapped form.
 */
#ifndef KL_LB6_H
#define KL_LB6_H

#include "lb_common.h"
#include "lb_pick.h"
#include "lb4.h"

static __always_inline void lb6_read_addr(const struct bpf_sock_addr *ctx, __u32 a[4])
{
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
}

static __always_inline void lb6_write_addr(struct bpf_sock_addr *ctx, const __u32 a[4])
{
	ctx->user_ip6[0] = a[0];
	ctx->user_ip6[1] = a[1];
	ctx->user_ip6[2] = a[2];
	ctx->user_ip6[3] = a[3];
}

static __always_inline int lb6_addr_eq(const __u8 *x, const __u8 *y)
{
	__u32 a[4], b[4];

	__builtin_memcpy(a, x, 16);
	__builtin_memcpy(b, y, 16);
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0;
}

static __always_inline int lb6_is_v4mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/* As lb4_xlate_fwd, for a 16-byte address (a[4] in network order). */
static __always_inline int
lb6_xlate_fwd(struct bpf_sock_addr *ctx, __u32 a[4], __be16 *port, __u8 proto)
{
	struct kl_lb6_key key = { .dport = *port, .proto = proto };
	struct kl_lb6_rsk_key rsk_key = {};
	struct kl_lb6_rsk rsk = {};
	struct kl_lb_svc *front;
	struct kl_lb6_backend *be;
	__u32 backend_id, rev_nat_id;
	__u64 client = 0, now = 0;
	__u16 count;

	__builtin_memcpy(key.addr, a, 16);
	front = bpf_map_lookup_elem(&KL_LB6_SVC_MAP, &key);
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
	be = lb6_pick(front, count, client, now, &backend_id);
	if (!be)
		return -KL_EHOSTUNREACH;

	rsk_key.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rsk_key.addr, be->addr, 16);
	rsk_key.port = be->port;
	__builtin_memcpy(rsk.addr, a, 16);
	rsk.port = *port;
	rsk.rev_nat_id = rev_nat_id;
	if (bpf_map_update_elem(&KL_LB6_RSK_MAP, &rsk_key, &rsk, BPF_ANY) < 0 &&
	    proto == KL_PROTO_UDP)
		return -KL_ENOMEM;

	__builtin_memcpy(a, be->addr, 16);
	*port = be->port;
	return KL_XLATE_DONE;
}

/* As lb4_xlate_rev, for a 16-byte address. */
static __always_inline int
lb6_xlate_rev(struct bpf_sock_addr *ctx, __u32 a[4], __be16 *port)
{
	struct kl_lb6_rsk_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.port = *port,
	};
	struct kl_lb6_rsk *rsk;
	struct kl_lb6_rnat *rnat;
	__u32 rev_nat_id;

	__builtin_memcpy(key.addr, a, 16);
	rsk = bpf_map_lookup_elem(&KL_LB6_RSK_MAP, &key);
	if (!rsk)
		return 0;
	rev_nat_id = rsk->rev_nat_id;
	rnat = bpf_map_lookup_elem(&KL_LB6_RNAT_MAP, &rev_nat_id);
	if (!rnat || rnat->port != rsk->port || !lb6_addr_eq(rnat->addr, rsk->addr)) {
		bpf_map_delete_elem(&KL_LB6_RSK_MAP, &key);
		return 0;
	}
	__builtin_memcpy(a, rsk->addr, 16);
	*port = rsk->port;
	return 1;
}

/* cgroup/connect6, cgroup/sendmsg6 */
static __always_inline int lb6_sock_fwd(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	__be16 port;
	__u32 a[4];
	int ret;

	if (!kl_is_lb_proto(proto))
		return KL_SYS_PROCEED;
	lb6_read_addr(ctx, a);
	port = (__be16)ctx->user_port;
	if (lb6_is_v4mapped(a)) {
		__be32 a4 = a[3];

		ret = lb4_xlate_fwd(ctx, &a4, &port, (__u8)proto);
		a[3] = a4;
	} else {
		ret = lb6_xlate_fwd(ctx, a, &port, (__u8)proto);
	}
	if (ret == KL_XLATE_PASS)
		return KL_SYS_PROCEED;
	if (ret < 0)
		return kl_reject(-ret);
	lb6_write_addr(ctx, a);
	ctx->user_port = (__u32)port;
	return KL_SYS_PROCEED;
}

/* cgroup/recvmsg6, cgroup/getpeername6 */
static __always_inline int lb6_sock_rev(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	__be16 port;
	__u32 a[4];
	int done;

	if (!kl_is_lb_proto(proto))
		return KL_SYS_PROCEED;
	lb6_read_addr(ctx, a);
	port = (__be16)ctx->user_port;
	if (lb6_is_v4mapped(a)) {
		__be32 a4 = a[3];

		done = lb4_xlate_rev(ctx, &a4, &port);
		a[3] = a4;
	} else {
		done = lb6_xlate_rev(ctx, a, &port);
	}
	if (done) {
		lb6_write_addr(ctx, a);
		ctx->user_port = (__u32)port;
	}
	return KL_SYS_PROCEED;
}

#endif /* KL_LB6_H */
