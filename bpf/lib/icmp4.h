/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMPv4 errors (destination unreachable, including fragmentation needed;
 * time exceeded; parameter problem) quote the IP header and the first L4
 * bytes of the packet they answer. When that packet was translated (by
 * masquerade or the per-packet service LB), the error must be translated
 * back before it reaches the pod: the pod's stack matches the quoted tuple
 * against its sockets (ECONNREFUSED, path MTU, ...).
 *
 * The quoted header is rewritten with its checksums: the quoted IPv4
 * header checksum, the quoted L4 checksum when it is in the packet (UDP's
 * always is, TCP's when the error quotes 16+ bytes of it; a zero UDP
 * checksum stays zero), and the ICMP checksum over all of them. Checksums
 * are updated incrementally (RFC 1624) on the raw 16-bit words, so the sum
 * of the ICMP message and skb->csum of a CHECKSUM_COMPLETE skb stay valid.
 */
#ifndef KL_ICMP4_H
#define KL_ICMP4_H

#include "pkt4.h"

#define KL_ICMP_DEST_UNREACH  3
#define KL_ICMP_TIME_EXCEEDED 11
#define KL_ICMP_PARAMETERPROB 12

/* The packet an ICMP error quotes, as its sender sent it. */
struct icmp4_quote {
	__u32  ip_off;      /* the quoted IPv4 header, from the start of the frame */
	__u32  l4_off;      /* the quoted L4 header */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;       /* TCP/UDP source port; ICMP echo request: the identifier */
	__be16 dport;       /* TCP/UDP destination port; ICMP echo request: 0 */
	__u8   proto;
	__u8   pad[3];
};

/* ~(~hc + ~from + to) on one's complement 16-bit words (RFC 1624, eqn. 3). */
static __always_inline __u16 kl_csum16_update(__u16 hc, __u16 from, __u16 to)
{
	__u32 s = (__u16)~hc + (__u32)(__u16)~from + to;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

static __always_inline __u16 kl_csum32_update(__u16 hc, __u32 from, __u32 to)
{
	hc = kl_csum16_update(hc, (__u16)(from >> 16), (__u16)(to >> 16));
	return kl_csum16_update(hc, (__u16)from, (__u16)to);
}

/*
 * Is *p an ICMP error quoting a TCP, UDP or ICMP echo request packet? Fills *q
 * and returns 0; -1 otherwise (not an error, or the quote is too short or a
 * non-first fragment).
 */
static __always_inline int kl_icmp4_quote(struct __sk_buff *ctx, const struct pkt4 *p, struct icmp4_quote *q)
{
	struct iphdr ip;
	__u8 h[8];

	if (p->proto != IPPROTO_ICMP || p->frag)
		return -1;
	if (p->icmp_type != KL_ICMP_DEST_UNREACH && p->icmp_type != KL_ICMP_TIME_EXCEEDED && p->icmp_type != KL_ICMP_PARAMETERPROB)
		return -1;
	q->ip_off = p->l4off + 8;
	if (bpf_skb_load_bytes(ctx, q->ip_off, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5 || (ip.frag_off & bpf_htons(0x1fff)))
		return -1;
	q->l4_off = q->ip_off + ip.ihl * 4;
	if (bpf_skb_load_bytes(ctx, q->l4_off, h, sizeof(h)) < 0)
		return -1;
	q->saddr = ip.saddr;
	q->daddr = ip.daddr;
	q->proto = ip.protocol;
	if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
		__builtin_memcpy(&q->sport, &h[0], 2);
		__builtin_memcpy(&q->dport, &h[2], 2);
		return 0;
	}
	if (ip.protocol == IPPROTO_ICMP && h[0] == KL_ICMP_ECHO) {
		__builtin_memcpy(&q->sport, &h[4], 2);
		q->dport = 0;
		return 0;
	}
	return -1;
}

/*
 * Rewrite the quoted packet's source (dst = 0) or destination (dst = 1)
 * address and port (for a quoted echo request: the identifier, source side
 * only) with every checksum that covers them. 0, or -1 when the packet
 * could not be read or written.
 */
static __always_inline int
kl_icmp4_quote_set(struct __sk_buff *ctx, const struct pkt4 *p, struct icmp4_quote *q, int dst, __be32 addr, __be16 port)
{
	__be32 old_addr = dst ? q->daddr : q->saddr;
	__be16 old_port = dst ? q->dport : q->sport;
	__u32 icmp_off = p->l4off + 2, iph_off = q->ip_off + 10, l4c_off = 0, port_off;
	__u16 icmp_c, iph_c, iph_n, l4c = 0, l4n = 0;
	int echo = q->proto == IPPROTO_ICMP;

	if (echo && dst)
		return -1; /* a quoted echo request has no destination port */
	if (old_addr == addr && old_port == port)
		return 0;
	if (bpf_skb_load_bytes(ctx, icmp_off, &icmp_c, 2) < 0 || bpf_skb_load_bytes(ctx, iph_off, &iph_c, 2) < 0)
		return -1;
	if (q->proto == IPPROTO_TCP)
		l4c_off = q->l4_off + 16;
	else if (q->proto == IPPROTO_UDP)
		l4c_off = q->l4_off + 6;
	else
		l4c_off = q->l4_off + 2;
	if (bpf_skb_load_bytes(ctx, l4c_off, &l4c, 2) < 0 || (q->proto == IPPROTO_UDP && l4c == 0))
		l4c_off = 0; /* not quoted, or UDP without a checksum: nothing to keep right */
	port_off = echo ? q->l4_off + 4 : q->l4_off + (dst ? 2 : 0);

	iph_n = kl_csum32_update(iph_c, old_addr, addr);
	icmp_c = kl_csum32_update(icmp_c, old_addr, addr);
	icmp_c = kl_csum16_update(icmp_c, iph_c, iph_n);
	icmp_c = kl_csum16_update(icmp_c, old_port, port);
	if (l4c_off) {
		l4n = l4c;
		if (!echo)
			l4n = kl_csum32_update(l4n, old_addr, addr); /* the pseudo header */
		l4n = kl_csum16_update(l4n, old_port, port);
		if (q->proto == IPPROTO_UDP && l4n == 0)
			l4n = 0xffff;
		icmp_c = kl_csum16_update(icmp_c, l4c, l4n);
	}

	if (bpf_skb_store_bytes(ctx, q->ip_off + (dst ? 16 : 12), &addr, 4, 0) < 0 ||
	    bpf_skb_store_bytes(ctx, iph_off, &iph_n, 2, 0) < 0 ||
	    bpf_skb_store_bytes(ctx, port_off, &port, 2, 0) < 0 ||
	    (l4c_off && bpf_skb_store_bytes(ctx, l4c_off, &l4n, 2, 0) < 0) ||
	    bpf_skb_store_bytes(ctx, icmp_off, &icmp_c, 2, 0) < 0)
		return -1;
	if (dst) {
		q->daddr = addr;
		q->dport = port;
	} else {
		q->saddr = addr;
		q->sport = port;
	}
	return 0;
}

#endif /* KL_ICMP4_H */
