/*
 * ref_server.c: a pure-C WebSocket echo server on wslay, the ceiling the
 * pyws benchmark compares every Python server with (pyws's engine is wslay
 * too: what separates pyws from this is the Python around it).
 *
 * One thread, epoll (edge-triggered), its own opening handshake (SHA-1 and
 * base64 below), wslay's event API for framing; echoes text and binary
 * messages on any path; pings and the close handshake are wslay's.
 *
 * With --broadcast it is instead the ceiling of the broadcast scenarios:
 * every connection joins one room and is greeted with a text message
 * "joined"; each message a member sends is encoded once as a server frame,
 * and the messages of one epoll batch are written to every member (sender
 * included) with one non-blocking send() each.  What a socket does not take
 * waits in that connection's output buffer until EPOLLOUT.  No Python, one
 * frame built per message, one send() per member per batch: deliveries per
 * second here are about what the kernel allows on loopback.
 *
 *   gcc -O2 -Wall -Wextra -o ref_server ref_server.c -lwslay
 *   ./ref_server --port 8000 [--host 127.0.0.1] [--max-size BYTES] [--broadcast]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HEAD_MAX 8192  /* largest request head */

/* ---- SHA-1 (RFC 3174), for Sec-WebSocket-Accept only ------------------- */

static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)      f = (b & c) | (~b & d),          k = 0x5a827999;
        else if (i < 40) f = b ^ c ^ d,                    k = 0x6ed9eba1;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
        else             f = b ^ c ^ d,                    k = 0xca62c1d6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    uint8_t block[64];
    size_t i = 0;
    for (; i + 64 <= len; i += 64)
        sha1_block(h, msg + i);
    size_t rest = len - i;
    memset(block, 0, 64);
    memcpy(block, msg + i, rest);
    block[rest] = 0x80;
    if (rest >= 56) {
        sha1_block(h, block);
        memset(block, 0, 64);
    }
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++)
        block[63 - j] = (uint8_t)(bits >> (8 * j));
    sha1_block(h, block);
    for (int j = 0; j < 20; j++)
        out[j] = (uint8_t)(h[j / 4] >> (24 - 8 * (j % 4)));
}

static void base64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- connections ------------------------------------------------------- */

struct client {
    int fd;
    wslay_event_context_ptr ctx;  /* NULL until the handshake is done */
    char *head;                   /* request head, then the response; freed
                                     once the handshake is over */
    size_t head_len, resp_len, resp_off;
    const uint8_t *pending;       /* bytes read past the request head */
    size_t pending_len;
    /* --broadcast only */
    int joined;                   /* in the room (a member of the list) */
    int dead;                     /* a fan-out send() failed: freed by
                                     sweep_dead() after the epoll batch */
    struct client *prev, *next;   /* the room's member list */
    uint8_t *out;                 /* fan-out bytes the socket did not take: */
    size_t out_off, out_len, out_cap; /* out[out_off, out_len) still to send */
};

static int ep;
static uint64_t max_size = 64u << 20;
static int broadcast_mode;        /* --broadcast */
static struct client *room;       /* first member; members in join order
                                     reversed (new ones go in front) */
static int dead_members;          /* members marked dead since the last sweep */

static void client_free(struct client *cl)
{
    if (cl->joined) { /* leave the room */
        if (cl->prev)
            cl->prev->next = cl->next;
        else
            room = cl->next;
        if (cl->next)
            cl->next->prev = cl->prev;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, cl->fd, NULL);
    close(cl->fd);
    if (cl->ctx)
        wslay_event_context_free(cl->ctx);
    free(cl->head);
    free(cl->out);
    free(cl);
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    struct client *cl = user;
    (void)flags;
    if (cl->pending_len) { /* frames that came with the request head */
        size_t n = len < cl->pending_len ? len : cl->pending_len;
        memcpy(buf, cl->pending, n);
        cl->pending += n;
        cl->pending_len -= n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = recv(cl->fd, buf, len, 0);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        wslay_event_set_error(ctx, n < 0 && errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK
                                                            : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                       int flags, void *user)
{
    struct client *cl = user;
    /* MSG_MORE: wslay writes a frame's header and payload separately */
    int f = MSG_NOSIGNAL | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0);
    for (;;) {
        ssize_t n = send(cl->fd, data, len, f);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        wslay_event_set_error(ctx, errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK
                                                   : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

/* ---- broadcast (--broadcast) ------------------------------------------ */

/* Appends bytes to the connection's output buffer; -1 when out of memory. */
static int out_append(struct client *cl, const uint8_t *p, size_t n)
{
    if (cl->out_off == cl->out_len)
        cl->out_off = cl->out_len = 0;
    if (cl->out_cap - cl->out_len < n) {
        if (cl->out_off) { /* drop what was sent before growing */
            memmove(cl->out, cl->out + cl->out_off, cl->out_len - cl->out_off);
            cl->out_len -= cl->out_off;
            cl->out_off = 0;
        }
        if (cl->out_cap - cl->out_len < n) {
            size_t cap = cl->out_cap ? 2 * cl->out_cap : 4096;
            while (cap - cl->out_len < n)
                cap *= 2;
            uint8_t *out = realloc(cl->out, cap);
            if (!out)
                return -1;
            cl->out = out;
            cl->out_cap = cap;
        }
    }
    memcpy(cl->out + cl->out_len, p, n);
    cl->out_len += n;
    return 0;
}

/* Writes what waits in the output buffer: 1 when it is empty, 0 when the
   socket is full (EPOLLOUT brings us back), -1 on error. */
static int out_flush(struct client *cl)
{
    while (cl->out_off < cl->out_len) {
        ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        cl->out_off += (size_t)n;
    }
    cl->out_off = cl->out_len = 0;
    return 1;
}

static void mark_dead(struct client *cl)
{
    if (!cl->dead) {
        cl->dead = 1;
        dead_members++;
    }
}

/* Frees the members a fan-out could not write to.  Only between epoll
   batches: the batch may still hold pointers to them, and a fan-out runs
   inside the sender's wslay_event_recv(). */
static void sweep_dead(void)
{
    struct client *next;
    for (struct client *m = room; m; m = next) {
        next = m->next;
        if (m->dead)
            client_free(m);
    }
    dead_members = 0;
}

/* Joins the room once the 101 response is out, and queues the greeting. */
static void room_join(struct client *cl)
{
    static const char hello[] = "joined";
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)hello, sizeof hello - 1};
    cl->joined = 1;
    cl->prev = NULL;
    cl->next = room;
    if (room)
        room->prev = cl;
    room = cl;
    wslay_event_queue_msg(cl->ctx, &m);
}

/* The messages received during one epoll batch, encoded once as server
   frames (unmasked, FIN, same opcode) one after the other, and where each
   starts: after the batch they go to every member in one send() each, as
   pyws's Hub writes the broadcasts a greenlet makes before it yields. */
static uint8_t *batch;
static size_t batch_len, batch_cap;
static struct batched { uint8_t opcode; size_t off, hlen, len; } *batched;
static size_t n_batched, batched_cap;

static void fan_out(uint8_t opcode, const uint8_t *msg, size_t len)
{
    if (batch_cap - batch_len < len + 10) {
        size_t cap = batch_cap ? batch_cap : 4096;
        while (cap - batch_len < len + 10)
            cap *= 2;
        uint8_t *b = realloc(batch, cap);
        if (!b)
            return;
        batch = b;
        batch_cap = cap;
    }
    if (n_batched == batched_cap) {
        size_t cap = batched_cap ? 2 * batched_cap : 64;
        struct batched *m = realloc(batched, cap * sizeof *m);
        if (!m)
            return;
        batched = m;
        batched_cap = cap;
    }
    uint8_t *frame = batch + batch_len;
    size_t h = 0;
    frame[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        frame[h++] = (uint8_t)len;
    } else if (len < 65536) {
        frame[h++] = 126;
        frame[h++] = (uint8_t)(len >> 8);
        frame[h++] = (uint8_t)len;
    } else {
        frame[h++] = 127;
        for (int i = 7; i >= 0; i--)
            frame[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(frame + h, msg, len);
    batched[n_batched++] = (struct batched){opcode, batch_len, h, len};
    batch_len += h + len;
}

/* The batch to every member: one send() each; the rest of what a socket
   does not take goes to its output buffer, in order. */
static void flush_batch(void)
{
    for (struct client *m = room; m; m = m->next) {
        if (m->dead || !wslay_event_get_write_enabled(m->ctx))
            continue; /* failed, or its close frame is out */
        if (wslay_event_want_write(m->ctx)) {
            /* wslay has frames of its own waiting (the greeting, a pong, a
               frame half sent): the messages go behind them, in wslay */
            for (size_t i = 0; i < n_batched; i++) {
                struct wslay_event_msg wm = {batched[i].opcode,
                                             batch + batched[i].off + batched[i].hlen,
                                             batched[i].len};
                wslay_event_queue_msg(m->ctx, &wm); /* copies the message */
            }
            continue;
        }
        size_t sent = 0;
        if (m->out_off == m->out_len) { /* nothing waiting: straight out */
            ssize_t n = send(m->fd, batch, batch_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent = (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                mark_dead(m);
                continue;
            }
        }
        if (sent < batch_len && out_append(m, batch + sent, batch_len - sent) < 0)
            mark_dead(m); /* out of memory: its stream would be corrupt */
        /* a rest in the buffer: EPOLLOUT (edge-triggered) brings it back */
    }
    batch_len = 0;
    n_batched = 0;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    (void)user;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        if (broadcast_mode) {
            fan_out(arg->opcode, arg->msg, arg->msg_length);
            return;
        }
        struct wslay_event_msg m = {arg->opcode, arg->msg, arg->msg_length};
        wslay_event_queue_msg(ctx, &m); /* copies the message */
    }
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb, .send_callback = send_cb, .on_msg_recv_callback = on_msg};

/* Returns 1 when the request head is complete and answered (or queued). */
static int handshake(struct client *cl)
{
    for (;;) {
        ssize_t n = recv(cl->fd, cl->head + cl->head_len, HEAD_MAX - 1 - cl->head_len, 0);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN ? 0 : errno == EINTR ? handshake(cl) : -1;
        cl->head_len += (size_t)n;
        cl->head[cl->head_len] = 0;
        char *end = strstr(cl->head, "\r\n\r\n");
        if (!end) {
            if (cl->head_len >= HEAD_MAX - 1)
                return -1;
            continue;
        }
        size_t head_end = (size_t)(end + 4 - cl->head);
        const char *key = NULL;
        size_t key_len = 0;
        for (char *l = strstr(cl->head, "\r\n"); l && l < end; l = strstr(l, "\r\n")) {
            l += 2;
            if (strncasecmp(l, "Sec-WebSocket-Key:", 18) == 0) {
                key = l + 18;
                while (*key == ' ' || *key == '\t')
                    key++;
                key_len = strcspn(key, " \t\r");
            }
        }
        if (strncmp(cl->head, "GET ", 4) != 0 || !key || key_len == 0 || key_len > 64)
            return -1;
        char buf[128], accept[32];
        uint8_t digest[20];
        memcpy(buf, key, key_len);
        memcpy(buf + key_len, WS_GUID, sizeof WS_GUID - 1);
        sha1((const uint8_t *)buf, key_len + sizeof WS_GUID - 1, digest);
        base64(digest, 20, accept);
        /* Bytes past the head are the first frames: hand them to wslay.
           They sit at the end of the buffer, the response goes first. */
        size_t extra = cl->head_len - head_end;
        memmove(cl->head + HEAD_MAX - extra, cl->head + head_end, extra);
        cl->pending = (const uint8_t *)cl->head + HEAD_MAX - extra;
        cl->pending_len = extra;
        cl->resp_len = (size_t)snprintf(cl->head, HEAD_MAX - extra,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
        cl->resp_off = 0;
        wslay_event_context_server_init(&cl->ctx, &callbacks, cl);
        wslay_event_config_set_max_recv_msg_length(cl->ctx, max_size);
        return 1;
    }
}

/* Writes the rest of the 101 response; 1 when it is all out. */
static int send_response(struct client *cl)
{
    while (cl->resp_off < cl->resp_len) {
        ssize_t n = send(cl->fd, cl->head + cl->resp_off, cl->resp_len - cl->resp_off,
                         MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        cl->resp_off += (size_t)n;
    }
    return 1;
}

static void on_event(struct client *cl, uint32_t events)
{
    if (cl->dead)
        return; /* sweep_dead() frees it after this batch */
    /* a hang-up or error shows up as a failing recv() */
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        events |= EPOLLIN;
    if (!cl->ctx) {
        if (!(events & EPOLLIN))
            return;
        int r = handshake(cl);
        if (r < 0) {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                      "Connection: close\r\n\r\n";
            if (send(cl->fd, bad, sizeof bad - 1, MSG_NOSIGNAL) < 0) {
                /* closing anyway */
            }
            client_free(cl);
            return;
        }
        if (r == 0)
            return;
    }
    int r = send_response(cl);
    if (r < 0) {
        client_free(cl);
        return;
    }
    if (r == 0)
        return; /* EPOLLOUT brings us back */
    if (broadcast_mode && !cl->joined)
        room_join(cl);
    if ((events & EPOLLIN) || cl->pending_len)
        if (wslay_event_recv(cl->ctx) != 0) {
            if (!cl->dead) /* else the sweep frees it */
                client_free(cl);
            return;
        }
    if (cl->dead)
        return; /* a fan-out (its own message's) failed on it */
    if (cl->head && !cl->pending_len) { /* only the WebSocket state stays */
        free(cl->head);
        cl->head = NULL;
    }
    /* Fan-out bytes go first: whatever wslay has was queued after them. */
    r = out_flush(cl);
    if (r < 0) {
        client_free(cl);
        return;
    }
    if (r == 0)
        return; /* EPOLLOUT brings us back */
    if (wslay_event_send(cl->ctx) != 0 ||
        (!wslay_event_want_read(cl->ctx) && !wslay_event_want_write(cl->ctx)))
        client_free(cl);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                perror("ref_server: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct client *cl = calloc(1, sizeof *cl);
        if (!cl) {
            close(fd);
            continue;
        }
        cl->fd = fd;
        cl->head = malloc(HEAD_MAX);
        if (!cl->head) {
            close(fd);
            free(cl);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = cl};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(cl);
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"host", 1, 0, 'H'}, {"port", 1, 0, 'p'},
                                         {"max-size", 1, 0, 'm'}, {"broadcast", 0, 0, 'b'},
                                         {0, 0, 0, 0}};
    const char *host = "127.0.0.1";
    int port = 0, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'm': max_size = strtoull(optarg, NULL, 10); break;
        case 'b': broadcast_mode = 1; break;
        default:
            fprintf(stderr, "usage: ref_server --port P [--host H] [--max-size BYTES] "
                            "[--broadcast]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl; /* thousands of idle connections */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
        perror("ref_server: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    fprintf(stderr, "ref_server: listening on %s:%d%s\n", host, port,
            broadcast_mode ? " (broadcast: one room)" : "");

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                accept_all(lfd);
            else
                on_event(evs[i].data.ptr, evs[i].events);
        }
        if (batch_len)
            flush_batch();
        if (dead_members)
            sweep_dead();
    }
}
