/*
 * loadgen.c: the WebSocket load generator of the pyws benchmark suite.
 *
 * One thread, epoll (edge-triggered), N client connections.  It does the
 * opening handshake itself (fixed Sec-WebSocket-Key, accept checked), sends
 * real masked frames (one random mask key per connection, frames masked once
 * up front so that masking costs nothing per message), and checks every
 * byte it gets back against what it sent.  Results: one JSON line on stdout.
 *
 * Modes
 *   echo       each connection keeps --depth messages in flight (ping-pong at
 *              depth 1, pipelining above); msgs/s, MB/s, latency percentiles.
 *   idle       open --conns connections, print {"event":"ready",...}, hold
 *              them until a line (or EOF) on stdin or --hold seconds, then send
 *              one message on each to check they are all still alive.
 *   broadcast  --conns connections to a room URL; the server greets each with
 *              one text message once it has joined the room.  Connection 0
 *              also sends: it keeps --depth broadcasts in flight, a broadcast
 *              being done when every member (itself included) received it.
 *              Deliveries/s across all members; latency is send -> delivery.
 *
 *   gcc -O2 -Wall -Wextra -o loadgen loadgen.c
 *   ./loadgen --port 8000 --mode echo --conns 1 --size 32 --duration 2
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The key and accept value of RFC 6455, section 1.3. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define OP_CONT 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xa

enum mode { MODE_ECHO, MODE_IDLE, MODE_BROADCAST };

/* Phases of a run, in order; not every mode goes through all of them. */
enum phase {
    PH_CONNECT,  /* opening connections and handshakes */
    PH_JOIN,     /* broadcast: waiting for every member's greeting */
    PH_HOLD,     /* idle: connections open, waiting for the go on stdin */
    PH_WARMUP,   /* traffic, not counted */
    PH_MEASURE,  /* traffic, counted */
    PH_CHECK,    /* idle: one echo per connection */
    PH_DRAIN,    /* no new messages; waiting for those in flight */
    PH_CLOSE,    /* close handshakes */
    PH_END
};

enum cstate { CS_CONNECTING, CS_HS_SEND, CS_HS_RECV, CS_OPEN, CS_CLOSING, CS_DONE };

enum pstate { PS_HEADER, PS_PAYLOAD };

struct conn {
    int fd;
    int idx;
    enum cstate state;
    uint8_t mask[4];

    /* opening handshake */
    char hs[2048];
    size_t hs_len, hs_off;

    /* outgoing: one frame (pre-built data frame or control frame) at a time */
    const uint8_t *out;
    size_t out_len, out_off;
    uint8_t ctl[512];      /* control frames waiting for a frame boundary */
    size_t ctl_len;
    uint8_t ctl_tx[512];   /* the control frames being written */
    int want_close, close_queued;
    int unclean;           /* broke the protocol after our close frame */

    /* message accounting */
    uint64_t sent;         /* data messages started */
    uint64_t recvd;        /* data messages fully received and checked */
    uint64_t counted;      /* of those, received in the measured phase */
    int greeted;           /* broadcast: the room's greeting arrived */
    uint64_t *ts;          /* echo: start time of in-flight messages, [depth] */

    /* incoming frame parser */
    enum pstate ps;
    uint8_t hdr[14];
    size_t hdr_len, hdr_need;
    uint64_t left;         /* payload bytes left in the current frame */
    int f_op, f_fin;
    int msg_op;            /* opcode of the message being received, 0: none */
    uint64_t msg_off;      /* bytes of that message received so far */
    uint8_t cbuf[125];     /* control frame payload */
    size_t cbuf_len;
};

static struct {
    /* options */
    const char *host, *path;
    int port;
    enum mode mode;
    int conns, depth, batch;
    size_t size;
    double duration, warmup, hold, timeout;
    int binary;

    /* state */
    int ep;
    struct conn *c;
    enum phase phase;
    uint64_t phase_start, deadline;
    int connecting, opened, greeted, done_conns, alive;
    int go;                 /* idle: the go to end the hold came on stdin */
    int unclean;            /* connections that closed uncleanly */
    int next_conn;          /* next connection to open */
    char error[512];

    /* payloads: nvar variants per connection (echo) or of the sender
       (broadcast); plain[] to check echoes against, frames[] masked */
    int nvar;
    uint8_t **plain;        /* [conns * nvar] */
    uint8_t **frames;       /* [conns * nvar] */
    size_t frame_len;

    /* broadcast window */
    uint64_t b_done;
    uint64_t *b_ts;
    int *b_count;

    /* results */
    uint64_t m_start, m_end, connect_ns;
    double cpu_start, cpu_end;  /* our CPU seconds at the measured phase's ends */
    uint64_t msgs, bytes;
    uint64_t *lat;          /* latencies in ns, measured phase only */
    size_t lat_n, lat_cap;
} g;

static uint8_t rbuf[256 * 1024];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Records the first error; the main loop stops on it.  Once a connection
   has sent its close frame, its measurement is over: what the server does
   wrong then (some write an HTTP response after the WebSocket) is only
   counted as an unclean close, and the connection is dropped. */
static int fail(struct conn *c, const char *fmt, ...)
{
    if (c && c->want_close) {
        if (!c->unclean) {
            c->unclean = 1;
            g.unclean++;
        }
        return -1;
    }
    if (!g.error[0]) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (c)
            snprintf(g.error, sizeof g.error, "conn %d: %s", c->idx, msg);
        else
            snprintf(g.error, sizeof g.error, "%s", msg);
    }
    return -1;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- frames ------------------------------------------------------------ */

static size_t frame_header(uint8_t *h, int op, uint64_t len, const uint8_t mask[4])
{
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        h[n++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(h + n, mask, 4);
    return n + 4;
}

/* A whole masked frame into out (room for len + 14 bytes); returns its size. */
static size_t build_frame(uint8_t *out, int op, const uint8_t *payload, size_t len,
                          const uint8_t mask[4])
{
    size_t n = frame_header(out, op, len, mask);
    for (size_t i = 0; i < len; i++)
        out[n + i] = payload[i] ^ mask[i & 3];
    return n + len;
}

/* Queues a control frame, written at the next frame boundary. */
static void queue_control(struct conn *c, int op, const uint8_t *payload, size_t len)
{
    if (c->ctl_len + len + 14 > sizeof c->ctl)
        return; /* a flood of pings: dropping pongs is allowed (RFC 6455 5.5.3) */
    c->ctl_len += build_frame(c->ctl + c->ctl_len, op, payload, len, c->mask);
}

static void make_payloads(void)
{
    /* Variants make consecutive messages differ, so that a lost, repeated or
       reordered message fails the check; cap them to keep memory modest. */
    g.nvar = 4;
    while (g.nvar > 2 && (double)g.conns * g.nvar * g.size * 2 > 512e6)
        g.nvar--;
    size_t n = (size_t)g.conns * g.nvar;
    g.plain = xmalloc(n * sizeof *g.plain);
    g.frames = xmalloc(n * sizeof *g.frames);
    /* Broadcast: only connection 0 sends; everyone checks its variants. */
    int senders = g.mode == MODE_BROADCAST ? 1 : g.conns;
    for (int ci = 0; ci < g.conns; ci++) {
        struct conn *c = &g.c[ci];
        uint64_t seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)ci * 0x100000001b3ull + 1);
        uint64_t m;
        do
            m = xorshift(&seed);
        while ((uint32_t)m == 0);
        memcpy(c->mask, &m, 4);
        for (int v = 0; v < g.nvar; v++) {
            size_t k = (size_t)ci * g.nvar + v;
            if (ci >= senders) {
                g.plain[k] = g.plain[v];
                g.frames[k] = NULL;
                continue;
            }
            uint8_t *p = xmalloc(g.size);
            for (size_t i = 0; i < g.size; i++) {
                uint64_t r = xorshift(&seed);
                /* text must be valid UTF-8: printable ASCII is */
                p[i] = g.binary ? (uint8_t)r : (uint8_t)(' ' + r % 95);
            }
            g.plain[k] = p;
            g.frames[k] = xmalloc(g.size + 14);
            g.frame_len = build_frame(g.frames[k], g.binary ? OP_BINARY : OP_TEXT, p,
                                      g.size, c->mask);
        }
    }
}

/* ---- sending ----------------------------------------------------------- */

static int may_start_message(struct conn *c)
{
    if (c->state != CS_OPEN || c->want_close)
        return 0;
    switch (g.mode) {
    case MODE_ECHO:
        return (g.phase == PH_WARMUP || g.phase == PH_MEASURE) &&
               c->sent - c->recvd < (uint64_t)g.depth;
    case MODE_IDLE:
        return g.phase == PH_CHECK && c->sent == 0;
    case MODE_BROADCAST:
        return c->idx == 0 && (g.phase == PH_WARMUP || g.phase == PH_MEASURE) &&
               c->sent - g.b_done < (uint64_t)g.depth;
    }
    return 0;
}

/* Writes whatever this connection may write now, until the socket is full. */
static int flush(struct conn *c)
{
    if (c->state < CS_OPEN || c->state == CS_DONE)
        return 0;
    for (;;) {
        if (c->out) {
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                             MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN)
                    return 0; /* EPOLLOUT (edge-triggered) calls us back */
                if (errno == EINTR)
                    continue;
                return fail(c, "send: %s", strerror(errno));
            }
            c->out_off += (size_t)n;
            if (c->out_off == c->out_len)
                c->out = NULL;
            continue;
        }
        if (c->ctl_len) {
            memcpy(c->ctl_tx, c->ctl, c->ctl_len);
            c->out = c->ctl_tx;
            c->out_len = c->ctl_len;
            c->out_off = 0;
            c->ctl_len = 0;
            continue;
        }
        if (may_start_message(c)) {
            uint64_t t = now_ns();
            if (g.mode == MODE_BROADCAST) {
                g.b_ts[c->sent % g.depth] = t;
                g.b_count[c->sent % g.depth] = 0;
            } else {
                c->ts[c->sent % g.depth] = t;
            }
            c->out = g.frames[(size_t)c->idx * g.nvar + c->sent % g.nvar];
            c->out_len = g.frame_len;
            c->out_off = 0;
            c->sent++;
            continue;
        }
        if (c->want_close && !c->close_queued) {
            static const uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
            queue_control(c, OP_CLOSE, code, 2);
            c->close_queued = 1;
            c->state = CS_CLOSING;
            continue;
        }
        return 0;
    }
}

/* ---- receiving --------------------------------------------------------- */

static void conn_done(struct conn *c)
{
    if (c->state == CS_DONE)
        return;
    epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = CS_DONE;
    g.done_conns++;
}

static void record_latency(uint64_t ns)
{
    if (g.lat_n == g.lat_cap) {
        g.lat_cap = g.lat_cap ? g.lat_cap * 2 : 65536;
        g.lat = realloc(g.lat, g.lat_cap * sizeof *g.lat);
        if (!g.lat) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(2);
        }
    }
    g.lat[g.lat_n++] = ns;
}

/* The bytes this connection must receive next, for the current message. */
static const uint8_t *expected_message(struct conn *c)
{
    if (g.mode == MODE_BROADCAST)
        return g.plain[c->recvd % g.nvar]; /* the sender's (connection 0) */
    return g.plain[(size_t)c->idx * g.nvar + c->recvd % g.nvar];
}

static int on_data(struct conn *c, const uint8_t *p, size_t n)
{
    if (g.mode == MODE_BROADCAST && !c->greeted)
        return 0; /* the greeting's content is the server's business */
    if (c->msg_off + n > g.size)
        return fail(c, "message longer than the %zu bytes sent", g.size);
    if (c->recvd >= c->sent && g.mode != MODE_BROADCAST)
        return fail(c, "received a message that was never sent");
    const uint8_t *want = expected_message(c) + c->msg_off;
    if (memcmp(want, p, n) != 0) {
        size_t i = 0;
        while (want[i] == p[i])
            i++;
        return fail(c, "message %llu differs at byte %llu: got 0x%02x, sent 0x%02x",
                    (unsigned long long)c->recvd,
                    (unsigned long long)(c->msg_off + i), p[i], want[i]);
    }
    return 0;
}

static int on_message(struct conn *c)
{
    uint64_t t = now_ns();
    if (g.mode == MODE_BROADCAST && !c->greeted) {
        if (c->msg_op != OP_TEXT)
            return fail(c, "the room greeting is not a text message");
        c->greeted = 1;
        g.greeted++;
        return 0;
    }
    if (c->msg_off != g.size)
        return fail(c, "message %llu has %llu bytes, %zu were sent",
                    (unsigned long long)c->recvd, (unsigned long long)c->msg_off, g.size);
    int op = g.binary ? OP_BINARY : OP_TEXT;
    if (c->msg_op != op)
        return fail(c, "message %llu came back with opcode %d, sent with %d",
                    (unsigned long long)c->recvd, c->msg_op, op);
    uint64_t k = c->recvd++;
    int counted = g.phase == PH_MEASURE;
    if (g.mode == MODE_BROADCAST) {
        if (k >= g.c[0].sent)
            return fail(c, "received broadcast %llu, which was never sent",
                        (unsigned long long)k);
        int slot = (int)(k % g.depth);
        if (counted)
            record_latency(t - g.b_ts[slot]);
        if (++g.b_count[slot] == g.conns) {
            g.b_done++;
            if (flush(&g.c[0]) < 0) /* room for the sender's next broadcast */
                return -1;
        }
    } else {
        if (counted)
            record_latency(t - c->ts[k % g.depth]);
        if (g.mode == MODE_IDLE)
            g.alive++;
    }
    if (counted) {
        g.msgs++;
        g.bytes += g.size;
        c->counted++;
    }
    return 0;
}

static int on_frame_end(struct conn *c)
{
    if (c->f_op >= OP_CLOSE) {
        switch (c->f_op) {
        case OP_PING:
            queue_control(c, OP_PONG, c->cbuf, c->cbuf_len);
            break;
        case OP_PONG:
            break;
        case OP_CLOSE:
            if (!c->want_close)
                return fail(c, "closed by the server (code %d)",
                            c->cbuf_len >= 2 ? c->cbuf[0] << 8 | c->cbuf[1] : 1005);
            conn_done(c); /* our close was answered */
            return 0;
        default:
            return fail(c, "unknown control opcode %d", c->f_op);
        }
        return 0;
    }
    if (c->f_fin) {
        int r = on_message(c);
        c->msg_op = 0;
        c->msg_off = 0;
        return r;
    }
    return 0;
}

static int on_frame_start(struct conn *c)
{
    uint8_t *h = c->hdr;
    c->f_fin = h[0] >> 7;
    c->f_op = h[0] & 0x0f;
    if (h[0] & 0x70)
        return fail(c, "reserved bits set in a frame from the server");
    if (h[1] & 0x80)
        return fail(c, "masked frame from the server");
    uint64_t len = h[1] & 0x7f;
    if (len == 126)
        len = (uint64_t)h[2] << 8 | h[3];
    else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | h[i];
    }
    c->left = len;
    if (c->f_op >= OP_CLOSE) {
        if (!c->f_fin || len > 125)
            return fail(c, "bad control frame");
        c->cbuf_len = 0;
    } else if (c->f_op == OP_CONT) {
        if (!c->msg_op)
            return fail(c, "continuation frame outside a message");
    } else if (c->f_op == OP_TEXT || c->f_op == OP_BINARY) {
        if (c->msg_op)
            return fail(c, "new message inside a fragmented one");
        c->msg_op = c->f_op;
        c->msg_off = 0;
    } else {
        return fail(c, "unknown opcode %d", c->f_op);
    }
    return 0;
}

/* Feeds bytes from the server to the frame parser. */
static int feed(struct conn *c, const uint8_t *p, size_t n)
{
    while (n > 0 && c->state != CS_DONE) {
        if (c->ps == PS_HEADER) {
            while (n > 0 && c->hdr_len < c->hdr_need) {
                c->hdr[c->hdr_len++] = *p++;
                n--;
                if (c->hdr_len == 2) {
                    uint8_t l = c->hdr[1] & 0x7f;
                    c->hdr_need = 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) +
                                  (c->hdr[1] & 0x80 ? 4 : 0);
                }
            }
            if (c->hdr_len < c->hdr_need)
                return 0;
            if (on_frame_start(c) < 0)
                return -1;
            c->hdr_len = 0;
            c->hdr_need = 2;
            c->ps = PS_PAYLOAD;
        }
        size_t take = c->left < n ? (size_t)c->left : n;
        if (take) {
            if (c->f_op >= OP_CLOSE) {
                memcpy(c->cbuf + c->cbuf_len, p, take);
                c->cbuf_len += take;
            } else {
                if (on_data(c, p, take) < 0)
                    return -1;
                c->msg_off += take;
            }
            c->left -= take;
            p += take;
            n -= take;
        }
        if (c->left == 0) {
            c->ps = PS_HEADER;
            if (on_frame_end(c) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- connections and handshake ---------------------------------------- */

static int open_conn(struct conn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    if (inet_pton(AF_INET, g.host, &sa.sin_addr) != 1)
        return fail(NULL, "bad IPv4 address %s", g.host);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return fail(c, "socket: %s (raise the open-file limit?)", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        return fail(c, "connect: %s", strerror(errno));
    c->state = CS_CONNECTING;
    c->hs_len = (size_t)snprintf(c->hs, sizeof c->hs,
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n", g.path, g.host, g.port);
    c->hs_off = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return fail(c, "epoll_ctl: %s", strerror(errno));
    g.connecting++;
    return 0;
}

/* Opens connections up to the concurrency limit (--batch), which keeps
   within the server's listen backlog. */
static int open_more(void)
{
    while (g.next_conn < g.conns && g.connecting < g.batch)
        if (open_conn(&g.c[g.next_conn++]) < 0)
            return -1;
    return 0;
}

/* Finds "name:" at the start of a header line; returns its trimmed value. */
static int header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\r");
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return 1;
        }
    }
    return 0;
}

static int handshake_done(struct conn *c, size_t head_len)
{
    char val[128];
    c->hs[head_len] = 0;
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0)
        return fail(c, "handshake refused: %.*s", (int)strcspn(c->hs, "\r"), c->hs);
    if (!header_value(c->hs, "Sec-WebSocket-Accept", val, sizeof val) ||
        strcmp(val, WS_ACCEPT) != 0)
        return fail(c, "wrong or missing Sec-WebSocket-Accept");
    c->state = CS_OPEN;
    c->ps = PS_HEADER;
    c->hdr_need = 2;
    g.connecting--;
    g.opened++;
    if (open_more() < 0)
        return -1;
    return 0;
}

static int on_readable(struct conn *c)
{
    for (;;) {
        if (c->state == CS_DONE)
            return 0;
        if (c->state == CS_HS_RECV) {
            /* Read the response head byte-exact: what follows it is frames. */
            ssize_t n = recv(c->fd, c->hs + c->hs_len, sizeof c->hs - 1 - c->hs_len,
                             MSG_PEEK);
            if (n == 0)
                return fail(c, "server closed during the handshake");
            if (n < 0)
                return errno == EAGAIN ? 0 : fail(c, "recv: %s", strerror(errno));
            c->hs[c->hs_len + (size_t)n] = 0;
            char *end = strstr(c->hs + (c->hs_len > 3 ? c->hs_len - 3 : 0), "\r\n\r\n");
            size_t take = end ? (size_t)(end + 4 - (c->hs + c->hs_len)) : (size_t)n;
            if (recv(c->fd, c->hs + c->hs_len, take, 0) != (ssize_t)take)
                return fail(c, "recv after peek");
            c->hs_len += take;
            if (end) {
                if (handshake_done(c, c->hs_len) < 0 || flush(c) < 0)
                    return -1;
            } else if (c->hs_len >= sizeof c->hs - 1) {
                return fail(c, "handshake response too large");
            }
            continue;
        }
        if (c->state < CS_OPEN)
            return 0;
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n > 0) {
            if (feed(c, rbuf, (size_t)n) < 0 || flush(c) < 0)
                return -1;
            /* A short read drained the socket: later data brings a new edge,
               so the recv() that would only say EAGAIN can be saved. */
            if ((size_t)n < sizeof rbuf)
                return 0;
            continue;
        }
        if (n == 0) {
            if (c->want_close) {
                conn_done(c);
                return 0;
            }
            return fail(c, "connection closed by the server");
        }
        if (errno == EAGAIN)
            return 0;
        if (errno == EINTR)
            continue;
        return fail(c, "recv: %s", strerror(errno));
    }
}

static int on_writable(struct conn *c)
{
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            return fail(c, "connect: %s", strerror(err));
        c->state = CS_HS_SEND;
    }
    if (c->state == CS_HS_SEND) {
        while (c->hs_off < c->hs_len) {
            ssize_t n = send(c->fd, c->hs + c->hs_off, c->hs_len - c->hs_off, MSG_NOSIGNAL);
            if (n < 0)
                return errno == EAGAIN ? 0 : fail(c, "send: %s", strerror(errno));
            c->hs_off += (size_t)n;
        }
        c->state = CS_HS_RECV;
        c->hs_len = 0;
        return on_readable(c); /* the response may already be there */
    }
    return flush(c);
}

/* ---- phases ------------------------------------------------------------ */

static void set_phase(enum phase p, double seconds)
{
    g.phase = p;
    g.phase_start = now_ns();
    g.deadline = seconds > 0 ? g.phase_start + (uint64_t)(seconds * 1e9) : 0;
}

/* An error on a connection that is closing ends only that connection. */
static int settle(struct conn *c, int r)
{
    if (r < 0 && c->unclean) {
        conn_done(c);
        return 0;
    }
    return r;
}

static int flush_all(void)
{
    for (int i = 0; i < g.conns; i++)
        if (settle(&g.c[i], flush(&g.c[i])) < 0)
            return -1;
    return 0;
}

static int all_received(void)
{
    if (g.mode == MODE_BROADCAST)
        return g.b_done == g.c[0].sent;
    for (int i = 0; i < g.conns; i++)
        if (g.c[i].state == CS_OPEN && g.c[i].recvd < g.c[i].sent)
            return 0;
    return 1;
}

static int start_closing(void)
{
    set_phase(PH_CLOSE, 5);
    for (int i = 0; i < g.conns; i++)
        if (g.c[i].state == CS_OPEN)
            g.c[i].want_close = 1;
    return flush_all();
}

static int start_traffic(void)
{
    set_phase(g.warmup > 0 ? PH_WARMUP : PH_MEASURE, g.warmup > 0 ? g.warmup : g.duration);
    if (g.phase == PH_MEASURE) {
        g.m_start = g.phase_start;
        g.cpu_start = cpu_seconds();
    }
    return flush_all();
}

static void print_ready(void)
{
    printf("{\"event\":\"ready\",\"conns\":%d,\"connect_s\":%.3f}\n", g.opened,
           g.connect_ns / 1e9);
    fflush(stdout);
}

/* Moves to the next phase when the current one is over. */
static int advance(uint64_t t)
{
    int timed_out = g.deadline && t >= g.deadline;
    switch (g.phase) {
    case PH_CONNECT:
        if (g.opened == g.conns) {
            g.connect_ns = t - g.phase_start;
            if (g.mode == MODE_BROADCAST) {
                set_phase(PH_JOIN, g.timeout);
                return advance(t);
            }
            if (g.mode == MODE_IDLE) {
                print_ready();
                set_phase(PH_HOLD, g.hold);
                return 0;
            }
            return start_traffic();
        }
        if (timed_out)
            return fail(NULL, "only %d of %d connections opened in %.0f s", g.opened,
                        g.conns, g.timeout);
        return 0;
    case PH_JOIN:
        if (g.greeted == g.conns)
            return start_traffic();
        if (timed_out)
            return fail(NULL, "only %d of %d members greeted in %.0f s", g.greeted,
                        g.conns, g.timeout);
        return 0;
    case PH_HOLD:
        if (timed_out || g.go) {
            set_phase(PH_CHECK, g.timeout);
            return flush_all();
        }
        return 0;
    case PH_CHECK:
        if (g.alive == g.conns)
            return start_closing();
        if (timed_out)
            return fail(NULL, "only %d of %d held connections answered a message within %.0f s",
                        g.alive, g.conns, g.timeout);
        return 0;
    case PH_WARMUP:
        if (timed_out) {
            set_phase(PH_MEASURE, g.duration);
            g.m_start = g.phase_start;
            g.cpu_start = cpu_seconds();
            g.msgs = g.bytes = 0;
            g.lat_n = 0;
            for (int i = 0; i < g.conns; i++)
                g.c[i].counted = 0;
        }
        return 0;
    case PH_MEASURE:
        if (timed_out) {
            g.m_end = t;
            g.cpu_end = cpu_seconds();
            set_phase(PH_DRAIN, g.timeout);
            return advance(t);
        }
        return 0;
    case PH_DRAIN:
        if (all_received())
            return start_closing();
        if (timed_out)
            return fail(NULL, "messages still in flight %.0f s after the end", g.timeout);
        return 0;
    case PH_CLOSE:
        if (g.done_conns == g.conns || timed_out)
            g.phase = PH_END; /* a server slow to close is not our measurement */
        return 0;
    case PH_END:
        return 0;
    }
    return 0;
}

/* ---- results ----------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q)
{
    if (!g.lat_n)
        return 0;
    size_t i = (size_t)(q * (double)(g.lat_n - 1) + 0.5);
    return g.lat[i] / 1e3;
}

static void print_results(void)
{
    static const char *modes[] = {"echo", "idle", "broadcast"};
    double secs = g.m_end > g.m_start ? (g.m_end - g.m_start) / 1e9 : 0;
    if (g.lat_n)
        qsort(g.lat, g.lat_n, sizeof *g.lat, cmp_u64);
    printf("{\"mode\":\"%s\",\"conns\":%d,\"depth\":%d,\"size\":%zu,\"opcode\":\"%s\","
           "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"connect_s\":%.3f",
           modes[g.mode], g.conns, g.depth, g.size, g.binary ? "binary" : "text",
           g.warmup, secs, g.connect_ns / 1e9);
    printf(",\"unclean_closes\":%d", g.unclean);
    if (g.mode == MODE_IDLE) {
        printf(",\"alive\":%d", g.alive);
    } else {
        double rate = secs > 0 ? g.msgs / secs : 0;
        /* loadgen_cpu near 1.0 would mean that we, not the server, set the pace */
        printf(",\"messages\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
               "\"loadgen_cpu\":%.3f",
               (unsigned long long)g.msgs, rate, secs > 0 ? g.bytes / secs / 1e6 : 0,
               secs > 0 ? (g.cpu_end - g.cpu_start) / secs : 0);
        if (g.mode == MODE_BROADCAST)
            printf(",\"deliveries_per_s\":%.1f,\"broadcasts_per_s\":%.1f", rate,
                   rate / g.conns);
        /* fairness: messages per connection over the measured phase */
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < g.conns; i++) {
            lo = g.c[i].counted < lo ? g.c[i].counted : lo;
            hi = g.c[i].counted > hi ? g.c[i].counted : hi;
        }
        printf(",\"conn_msgs_min\":%llu,\"conn_msgs_max\":%llu", (unsigned long long)lo,
               (unsigned long long)hi);
        printf(",\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f,"
               "\"samples\":%zu}", pct(0.5), pct(0.9), pct(0.99), pct(1.0), g.lat_n);
    }
    if (g.error[0]) {
        fputs(",\"error\":\"", stdout);
        for (const char *s = g.error; *s; s++) {
            if (*s == '"' || *s == '\\')
                putchar('\\');
            putchar((unsigned char)*s >= 32 ? *s : '?');
        }
        putchar('"');
    }
    printf("}\n");
    fflush(stdout);
}

/* ---- main -------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
        "usage: loadgen --port P [--host 127.0.0.1] [--path /] [--mode echo|idle|broadcast]\n"
        "               [--conns N] [--depth D] [--size BYTES] [--binary]\n"
        "               [--duration S] [--warmup S] [--hold S] [--batch N] [--timeout S]\n");
    exit(2);
}

static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need + 16)
        fprintf(stderr, "loadgen: open-file limit %llu is too low for %d connections\n",
                (unsigned long long)rl.rlim_cur, need);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},     {"path", 1, 0, 'P'},
        {"mode", 1, 0, 'm'},     {"conns", 1, 0, 'c'},    {"depth", 1, 0, 'd'},
        {"size", 1, 0, 's'},     {"duration", 1, 0, 't'}, {"warmup", 1, 0, 'w'},
        {"hold", 1, 0, 'h'},     {"batch", 1, 0, 'b'},    {"timeout", 1, 0, 'T'},
        {"binary", 0, 0, 'B'},   {0, 0, 0, 0}};
    g.host = "127.0.0.1";
    g.path = "/";
    g.conns = 1;
    g.depth = 1;
    g.size = 32;
    g.duration = 2;
    g.warmup = 0.5;
    g.hold = 60;
    g.batch = 64;
    g.timeout = 30;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H': g.host = optarg; break;
        case 'p': g.port = atoi(optarg); break;
        case 'P': g.path = optarg; break;
        case 'm':
            if (!strcmp(optarg, "echo")) g.mode = MODE_ECHO;
            else if (!strcmp(optarg, "idle")) g.mode = MODE_IDLE;
            else if (!strcmp(optarg, "broadcast")) g.mode = MODE_BROADCAST;
            else usage();
            break;
        case 'c': g.conns = atoi(optarg); break;
        case 'd': g.depth = atoi(optarg); break;
        case 's': g.size = (size_t)strtoull(optarg, NULL, 10); break;
        case 't': g.duration = atof(optarg); break;
        case 'w': g.warmup = atof(optarg); break;
        case 'h': g.hold = atof(optarg); break;
        case 'b': g.batch = atoi(optarg); break;
        case 'T': g.timeout = atof(optarg); break;
        case 'B': g.binary = 1; break;
        default: usage();
        }
    }
    if (g.port <= 0 || g.conns < 1 || g.depth < 1 || g.batch < 1 || g.size < 1 ||
        g.duration <= 0)
        usage();
    if (g.mode == MODE_IDLE)
        g.depth = 1;

    signal(SIGPIPE, SIG_IGN);
    raise_nofile(g.conns);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    g.c = calloc((size_t)g.conns, sizeof *g.c);
    if (!g.c)
        return 2;
    for (int i = 0; i < g.conns; i++) {
        g.c[i].idx = i;
        g.c[i].fd = -1;
        g.c[i].ts = xmalloc((size_t)g.depth * sizeof(uint64_t));
    }
    if (g.mode == MODE_BROADCAST) {
        g.b_ts = xmalloc((size_t)g.depth * sizeof *g.b_ts);
        g.b_count = calloc((size_t)g.depth, sizeof *g.b_count);
    }
    make_payloads();

    /* Idle mode: a line or EOF on stdin ends the hold. */
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    if (g.mode == MODE_IDLE)
        epoll_ctl(g.ep, EPOLL_CTL_ADD, 0, &sev); /* fails on /dev/null: --hold only */

    set_phase(PH_CONNECT, g.timeout);
    open_more();

    struct epoll_event evs[512];
    while (g.phase != PH_END && !g.error[0]) {
        int wait_ms = 100;
        if (g.deadline) {
            uint64_t t = now_ns();
            wait_ms = t >= g.deadline ? 0 : (int)((g.deadline - t) / 1000000 + 1);
            if (wait_ms > 100)
                wait_ms = 100;
        }
        int n = epoll_wait(g.ep, evs, 512, wait_ms);
        if (n < 0 && errno != EINTR) {
            fail(NULL, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !g.error[0]; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) { /* stdin */
                char buf[256];
                if (read(0, buf, sizeof buf) < 0 && errno == EINTR)
                    continue;
                epoll_ctl(g.ep, EPOLL_CTL_DEL, 0, NULL);
                g.go = 1;
                continue;
            }
            if (c->state == CS_DONE)
                continue;
            uint32_t e = evs[i].events;
            if (e & (EPOLLOUT | EPOLLERR))
                if (settle(c, on_writable(c)) < 0)
                    break;
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                if (settle(c, on_readable(c)) < 0)
                    break;
        }
        if (!g.error[0])
            advance(now_ns());
    }
    print_results();
    return g.error[0] ? 1 : 0;
}
