/*
 * kinglet-cni, the native shim in front of the CNI plugin.
 *
 * containerd execs a CNI plugin once per call; a Node process costs ~30 ms of
 * start-up before it does anything. This shim forwards the call (the CNI_*
 * environment and the stdin bytes) to the running kinglet agent over its
 * unix API socket (POST /v1/cni, framing in agent/cni/forward.ts), where the
 * same plugin code (agent/cni/plugin.ts) runs in-process, and prints the
 * agent's answer with the agent's exit code.
 *
 * The socket is the netconf's "agentSocket" (default /run/kinglet/agent.sock),
 * read by a small strict scan (no JSON library): a top-level key spelled
 * exactly so, with a plain string value. When it cannot be read unambiguously
 * (twice, escaped, not a string, too long for a socket path), or the agent is
 * not there or answers anything but a forwarded result, the shim execs the
 * Node plugin `kinglet-cni-node` beside it with the same arguments,
 * environment and stdin, so DEL/CHECK/VERSION/GC still work without the agent
 * and ADD fails with the plugin's own clear error.
 *
 * Its own failures are CNI error results on stdout (exit 1): 5 (I/O) for
 * stdin, 11 (try again later) when the agent took the call but gave no
 * usable answer, or when neither the agent nor the Node plugin can run.
 *
 * Built by agent/cni/shim/Makefile (make -C agent/cni/shim), statically when
 * the C library allows, so one binary runs on any Linux of its architecture.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/kinglet/agent.sock"
#define FALLBACK_NAME "kinglet-cni-node"
#define MAX_STDIN (16u << 20)
#define MAX_ANSWER (16u << 20)
#define ANSWER_TIMEOUT_S 120
#define EXIT_HEADER "kinglet-cni-exit:"

extern char **environ;

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			/* Out of memory in a tiny process: nothing sensible is left to do. */
			fputs("kinglet-cni: out of memory\n", stderr);
			exit(1);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static char cni_version[16] = "1.1.0";

/* A JSON string body without quotes, escaped enough for a message. */
static void json_text(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf_add(b, "\\", 1);
			buf_add(b, s, 1);
		} else if (c < 0x20) {
			buf_add(b, " ", 1);
		} else {
			buf_add(b, s, 1);
		}
	}
}

/* Print a CNI error result and return the exit code 1. */
static int cni_error(int code, const char *msg, const char *details)
{
	struct buf b = { 0 };
	char num[16];
	buf_str(&b, "{\"cniVersion\":\"");
	buf_str(&b, cni_version);
	buf_str(&b, "\",\"code\":");
	snprintf(num, sizeof num, "%d", code);
	buf_str(&b, num);
	buf_str(&b, ",\"msg\":\"");
	json_text(&b, msg);
	buf_str(&b, "\",\"details\":\"");
	json_text(&b, details);
	buf_str(&b, "\"}\n");
	fwrite(b.p, 1, b.len, stdout);
	fflush(stdout);
	fprintf(stderr, "kinglet-cni: [%d] %s (%s)\n", code, msg, details);
	return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read fd to EOF into b, at most max bytes. 0 ok, -1 error (errno), -2 too large. */
static int read_all(int fd, struct buf *b, size_t max)
{
	char chunk[65536];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return 0;
		if (b->len + (size_t)r > max)
			return -2;
		buf_add(b, chunk, (size_t)r);
	}
}

/* ---- the netconf scan --------------------------------------------------- */

enum scan { SCAN_ABSENT, SCAN_FOUND, SCAN_AMBIGUOUS };

static size_t skip_ws(const char *p, size_t i, size_t n)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

/* End of the JSON string starting at the quote p[i] (index of the closing quote), or n. */
static size_t string_end(const char *p, size_t i, size_t n, int *escaped)
{
	*escaped = 0;
	for (i++; i < n; i++) {
		if (p[i] == '\\') {
			*escaped = 1;
			i++;
		} else if (p[i] == '"') {
			return i;
		}
	}
	return n;
}

/*
 * The string value of the top-level key `key` in the JSON text p[0..n).
 * FOUND: copied to out (NUL-terminated). ABSENT: no such key at the top
 * level. AMBIGUOUS: the key twice, a top-level key written with escapes
 * (it could spell `key`), a value that is not a plain string without
 * escapes or control characters, or one that does not fit out.
 */
static enum scan scan_key(const char *p, size_t n, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	int depth = 0, found = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == '"') {
			int escaped;
			size_t end = string_end(p, i, n, &escaped);
			if (end >= n)
				return found ? SCAN_FOUND : SCAN_ABSENT; /* broken JSON: the plugin reports it */
			size_t after = skip_ws(p, end + 1, n);
			int is_key = depth == 1 && after < n && p[after] == ':';
			if (is_key && escaped)
				return SCAN_AMBIGUOUS;
			if (is_key && end - i - 1 == klen && memcmp(p + i + 1, key, klen) == 0) {
				if (found)
					return SCAN_AMBIGUOUS;
				found = 1;
				size_t v = skip_ws(p, after + 1, n);
				if (v >= n || p[v] != '"')
					return SCAN_AMBIGUOUS;
				size_t vend = string_end(p, v, n, &escaped);
				if (vend >= n || escaped || vend - v - 1 == 0 || vend - v - 1 >= outlen)
					return SCAN_AMBIGUOUS;
				for (size_t k = v + 1; k < vend; k++)
					if ((unsigned char)p[k] < 0x20)
						return SCAN_AMBIGUOUS;
				memcpy(out, p + v + 1, vend - v - 1);
				out[vend - v - 1] = '\0';
				end = vend;
			}
			i = end;
		}
	}
	return found ? SCAN_FOUND : SCAN_ABSENT;
}

/* ---- fallback: the Node plugin beside this binary ------------------------ */

static int fallback(char **argv, const struct buf *in, int have_stdin, const char *why)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	const char *dir = NULL;
	if (strchr(argv[0], '/') && strlen(argv[0]) < sizeof self) {
		strcpy(self, argv[0]);
		dir = self;
	} else {
		ssize_t r = readlink("/proc/self/exe", self, sizeof self - 1);
		if (r > 0) {
			self[r] = '\0';
			dir = self;
		}
	}
	if (!dir)
		return cni_error(11, "kinglet-cni cannot find itself to run " FALLBACK_NAME, why);
	char *slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(path, sizeof path, "%s/" FALLBACK_NAME, *self ? self : "/");

	if (have_stdin) {
		/* The Node plugin reads the same bytes from a memory file as stdin. */
		int fd = (int)syscall(SYS_memfd_create, "kinglet-cni-stdin", 0);
		if (fd < 0) {
			int pfd[2];
			if (in->len >= 65536 || pipe(pfd) < 0)
				return cni_error(5, "kinglet-cni cannot hand stdin to " FALLBACK_NAME, strerror(errno));
			if (write_all(pfd[1], in->p, in->len) < 0)
				return cni_error(5, "kinglet-cni cannot hand stdin to " FALLBACK_NAME, strerror(errno));
			close(pfd[1]);
			fd = pfd[0];
		} else if (write_all(fd, in->p ? in->p : "", in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
			return cni_error(5, "kinglet-cni cannot hand stdin to " FALLBACK_NAME, strerror(errno));
		}
		if (dup2(fd, 0) < 0)
			return cni_error(5, "kinglet-cni cannot hand stdin to " FALLBACK_NAME, strerror(errno));
		if (fd != 0)
			close(fd);
	}
	fprintf(stderr, "kinglet-cni: %s; running %s\n", why, path);
	argv[0] = path;
	execv(path, argv);
	char details[PATH_MAX + 512];
	snprintf(details, sizeof details, "%s; and %s cannot be run (%s): start the kinglet agent, or reinstall kinglet (kinglet install) to restore the Node plugin", why, path, strerror(errno));
	return cni_error(11, "the kinglet agent is not reachable and the Node plugin cannot run", details);
}

/* ---- the forwarded call -------------------------------------------------- */

enum fwd { FWD_ANSWERED, FWD_NOT_DELIVERED, FWD_LOST };

/* An unsigned decimal at p (after spaces) up to max; -1 when there is none. */
static long header_num(const char *p, const char *end, long max)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	long v = -1;
	while (p < end && *p >= '0' && *p <= '9') {
		v = (v < 0 ? 0 : v) * 10 + (*p - '0');
		if (v > max)
			return -1;
		p++;
	}
	return v;
}

/*
 * Forward the call. ANSWERED: printed, *rc is the exit code. NOT_DELIVERED:
 * the agent did not run the plugin (no socket, refused, not a forwarded
 * answer): the fallback may run. LOST: the agent took the call and gave no
 * usable answer. `why` says what happened.
 */
static enum fwd forward(const char *sock, const struct buf *in, int *rc, char *why, size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, sock); /* length checked by the scan (or the default) */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		snprintf(why, whylen, "the kinglet agent is not reachable at %s: %s", sock, strerror(errno));
		return FWD_NOT_DELIVERED;
	}
	struct timeval tv = { .tv_sec = ANSWER_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

	struct buf body = { 0 };
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "CNI_", 4) == 0 && strchr(*e, '='))
			buf_add(&body, *e, strlen(*e) + 1);
	}
	buf_add(&body, "", 1);
	if (in->len)
		buf_add(&body, in->p, in->len);
	char head[256];
	int hl = snprintf(head, sizeof head,
			  "POST /v1/cni HTTP/1.1\r\nHost: kinglet-agent\r\nConnection: close\r\n"
			  "Content-Type: application/x-kinglet-cni\r\nContent-Length: %zu\r\n\r\n",
			  body.len);
	if (write_all(fd, head, (size_t)hl) < 0 || write_all(fd, body.p, body.len) < 0) {
		/* The agent reads the whole body before it runs anything. */
		snprintf(why, whylen, "the kinglet agent at %s did not take the call: %s", sock, strerror(errno));
		close(fd);
		return FWD_NOT_DELIVERED;
	}
	free(body.p);

	struct buf ans = { 0 };
	int r = read_all(fd, &ans, MAX_ANSWER);
	int err = errno;
	close(fd);
	if (r < 0) {
		snprintf(why, whylen, "reading the kinglet agent's answer at %s failed: %s", sock,
			 r == -2 ? "answer too large" : err == EAGAIN ? "no answer within the timeout" : strerror(err));
		return FWD_LOST;
	}
	char *sep = ans.p ? strstr(ans.p, "\r\n\r\n") : NULL;
	if (!sep || ans.len < 12 || memcmp(ans.p, "HTTP/1.", 7) != 0) {
		snprintf(why, whylen, "the kinglet agent at %s closed the connection without a valid answer", sock);
		return FWD_LOST;
	}
	long status = header_num(ans.p + 9, sep, 999);
	if (status != 200) {
		/* An API error (old agent without /v1/cni, bad framing): the plugin did not run. */
		snprintf(why, whylen, "the kinglet agent at %s answered %ld to the forwarded call", sock, status);
		return FWD_NOT_DELIVERED;
	}
	long exit_code = -1, length = -1;
	for (char *line = strstr(ans.p, "\r\n") + 2; line < sep; line = strstr(line, "\r\n") + 2) {
		char *eol = strstr(line, "\r\n");
		if (strncasecmp(line, EXIT_HEADER, strlen(EXIT_HEADER)) == 0)
			exit_code = header_num(line + strlen(EXIT_HEADER), eol, 255);
		else if (strncasecmp(line, "content-length:", 15) == 0)
			length = header_num(line + 15, eol, MAX_ANSWER);
	}
	size_t have = ans.len - (size_t)(sep + 4 - ans.p);
	if (exit_code < 0 || length < 0 || (size_t)length != have) {
		snprintf(why, whylen, "the kinglet agent at %s gave an incomplete answer (exit %ld, %zu of %ld bytes)", sock, exit_code, have, length);
		return FWD_LOST;
	}
	if (write_all(1, sep + 4, have) < 0) {
		snprintf(why, whylen, "writing the result to stdout failed: %s", strerror(errno));
		*rc = 1;
		return FWD_ANSWERED;
	}
	*rc = (int)exit_code;
	free(ans.p);
	return FWD_ANSWERED;
}

int main(int argc, char **argv)
{
	(void)argc;
	signal(SIGPIPE, SIG_IGN);
	const char *cmd = getenv("CNI_COMMAND");
	struct buf in = { 0 };
	int have_stdin = 0;
	/* VERSION typed at a terminal: do not wait for input that will not come. */
	if (!(cmd && strcmp(cmd, "VERSION") == 0 && isatty(0))) {
		int r = read_all(0, &in, MAX_STDIN);
		if (r == -2)
			return cni_error(5, "the network configuration on stdin is larger than 16 MiB", "pass the netconf the runtime prepared, nothing else");
		if (r < 0 && errno != EBADF)
			return cni_error(5, "cannot read the network configuration from stdin", strerror(errno));
		have_stdin = r == 0;
	}

	char version[sizeof cni_version];
	if (in.len && scan_key(in.p, in.len, "cniVersion", version, sizeof version) == SCAN_FOUND)
		strcpy(cni_version, version);

	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET;
	char why[PATH_MAX + 256];
	switch (in.len ? scan_key(in.p, in.len, "agentSocket", sock, sizeof sock) : SCAN_ABSENT) {
	case SCAN_AMBIGUOUS:
		return fallback(argv, &in, have_stdin, "\"agentSocket\" in the netconf is not a plain top-level string the shim can read");
	case SCAN_ABSENT:
		strcpy(sock, DEFAULT_SOCKET);
		break;
	case SCAN_FOUND:
		break;
	}

	int rc = 1;
	switch (forward(sock, &in, &rc, why, sizeof why)) {
	case FWD_ANSWERED:
		return rc;
	case FWD_NOT_DELIVERED:
		return fallback(argv, &in, have_stdin, why);
	case FWD_LOST:
		/* Only ADD is not safe to repeat blindly; the others run again in the Node plugin. */
		if (!cmd || strcmp(cmd, "ADD") != 0)
			return fallback(argv, &in, have_stdin, why);
		return cni_error(11, "the kinglet agent took the ADD but gave no usable answer", why);
	}
	return 1;
}
