/*
 * An echo session between two pyws engines over a socketpair, for valgrind
 * (no Python in the process, so every byte valgrind reports is ours).  The
 * server runs in a forked child, so neither side's writes can block the
 * other's reads.
 *
 * The client sends text and binary messages of many sizes (0 to 300 KiB,
 * across all three length encodings), pings, and a message split into
 * one-byte writes; the server echoes each; then the closing handshake.  It
 * exits non-zero if any echo differs, so memcheck runs a real session.
 * The session runs twice: plain, then with permessage-deflate on both
 * sides (zlib's streams are then created, used and freed too).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyws_conn.h"

#define FAIL(...)                                                              \
  do {                                                                         \
    fprintf(stderr, __VA_ARGS__);                                              \
    exit(1);                                                                   \
  } while (0)

/* Write everything the engine has queued to fd, `step` bytes per write. */
static void flush(pyws_conn *c, int fd, size_t step) {
  size_t len;
  const uint8_t *out = pyws_conn_output(c, &len);
  size_t off = 0;
  while (off < len) {
    size_t n = len - off < step ? len - off : step;
    ssize_t w = write(fd, out + off, n);
    if (w <= 0) FAIL("write failed\n");
    off += (size_t)w;
  }
  pyws_conn_consume_output(c, len);
}

/* Read from fd into the engine until it produces an event; return it. */
static pyws_event *next_event(pyws_conn *c, int fd) {
  uint8_t buf[8192];
  pyws_event *ev;
  while (pyws_conn_next_event(c, &ev) != 1) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0) FAIL("read failed\n");
    if (r == 0) {
      pyws_conn_recv_eof(c);
      return NULL;
    }
    if (pyws_conn_recv(c, buf, (size_t)r) != 0) FAIL("recv failed\n");
  }
  return ev;
}

static const pyws_pmd_params deflate_params = {0, 1, 12, 11};

static pyws_conn_options options(int server, int deflate) {
  pyws_conn_options o;
  memset(&o, 0, sizeof(o));
  o.server = server;
  o.max_message_size = 1 << 20;
  if (deflate) {
    o.deflate = &deflate_params;
    o.deflate_level = 6;
    o.deflate_mem_level = 5;
  }
  return o;
}

/* The child: echo until the closing handshake is done. */
static int run_server(int fd, int deflate) {
  pyws_conn_options so = options(1, deflate);
  pyws_conn *server;
  pyws_event *ev;
  if (pyws_conn_new(&server, &so) != 0) FAIL("new\n");
  while ((ev = next_event(server, fd)) != NULL) {
    switch (ev->type) {
    case PYWS_EVENT_TEXT:
      pyws_conn_send_text(server, ev->data, ev->len);
      break;
    case PYWS_EVENT_BINARY:
      pyws_conn_send_binary(server, ev->data, ev->len);
      break;
    case PYWS_EVENT_CLOSE:
      if (ev->code != 1000) FAIL("server: close code %u\n", ev->code);
      break;
    case PYWS_EVENT_PING: /* the pong is already queued */
      break;
    default:
      FAIL("server: unexpected event %d\n", ev->type);
    }
    pyws_event_free(ev);
    flush(server, fd, 1 << 16);
    if (pyws_conn_get_state(server) == PYWS_STATE_CLOSED) break;
  }
  if (pyws_conn_get_state(server) != PYWS_STATE_CLOSED) FAIL("server: not closed\n");
  /* A failed connection with events left unread must free them too. */
  {
    pyws_conn *bad;
    if (pyws_conn_new(&bad, &so) != 0) FAIL("new\n");
    pyws_conn_recv(bad, (const uint8_t *)"\x81\x05Hello\x81\x05Hello", 14);
    pyws_conn_free(bad);
  }
  /* So must one that failed inside a compressed message. */
  if (deflate) {
    pyws_conn *bad;
    if (pyws_conn_new(&bad, &so) != 0) FAIL("new\n");
    pyws_conn_recv(bad, (const uint8_t *)"\x41\x81\0\0\0\0\xf2\x80\x81\0\0\0\0\xff", 14);
    pyws_conn_free(bad);
  }
  pyws_conn_free(server);
  close(fd);
  return 0;
}

static int run_session(int deflate) {
  static const size_t sizes[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 300000};
  pyws_conn_options co = options(0, deflate);
  pyws_conn *client;
  uint8_t *payload;
  int fds[2], status;
  size_t i, k;
  pid_t child;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) FAIL("socketpair\n");
  child = fork();
  if (child < 0) FAIL("fork\n");
  if (child == 0) {
    close(fds[0]);
    exit(run_server(fds[1], deflate));
  }
  close(fds[1]);
  payload = malloc(300000);
  if (payload == NULL) FAIL("malloc\n");
  for (i = 0; i < 300000; i++) payload[i] = (uint8_t)('a' + i % 26);
  if (pyws_conn_new(&client, &co) != 0) FAIL("new\n");

  for (k = 0; k < 3; k++) {
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      int text = (i + k) % 2 == 0;
      pyws_event *ev;
      if (i % 3 == 0) pyws_conn_send_ping(client, (const uint8_t *)"ka", 2);
      (text ? pyws_conn_send_text : pyws_conn_send_binary)(client, payload, sizes[i]);
      /* Small messages go one byte per write: the engine must reassemble. */
      flush(client, fds[0], sizes[i] < 200 ? 1 : 4096);
      while ((ev = next_event(client, fds[0])) != NULL && ev->type == PYWS_EVENT_PONG) {
        pyws_event_free(ev);
      }
      if (ev == NULL) FAIL("client: unexpected EOF\n");
      if (ev->type != (text ? PYWS_EVENT_TEXT : PYWS_EVENT_BINARY) || ev->len != sizes[i] ||
          (sizes[i] && memcmp(ev->data, payload, sizes[i]) != 0)) {
        FAIL("echo %zu differs\n", sizes[i]);
      }
      pyws_event_free(ev);
    }
  }

  /* Closing handshake: the client closes, the server echoes the code. */
  pyws_conn_send_close(client, 1000, (const uint8_t *)"done", 4);
  flush(client, fds[0], 1 << 16);
  {
    pyws_event *ev = next_event(client, fds[0]);
    if (ev == NULL || ev->type != PYWS_EVENT_CLOSE || ev->code != 1000) FAIL("client close\n");
    pyws_event_free(ev);
  }
  if (pyws_conn_get_state(client) != PYWS_STATE_CLOSED) FAIL("client: not closed\n");
  pyws_conn_free(client);
  close(fds[0]);
  free(payload);
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    FAIL("the server process failed\n");
  }
  printf("echo session%s: ok\n", deflate ? " with permessage-deflate" : "");
  fflush(stdout); /* before the next fork copies the buffer */
  return 0;
}

int main(void) {
  run_session(0);
  run_session(1);
  return 0;
}
