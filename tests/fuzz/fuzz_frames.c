/*
 * libFuzzer target: the frame parser and message layer (pyws_conn).
 *
 * The first input byte picks the role, the maximum message size, how the
 * rest is split into pyws_conn_recv calls and whether permessage-deflate is
 * on (then a message's limit applies once decompressed); the rest is the
 * peer's bytes.
 * Besides the sanitizers' checks, it asserts what the engine promises:
 * text events are valid UTF-8, no message exceeds the limit, nothing is
 * accepted after a FAIL or CLOSE event, control payloads fit 125 bytes,
 * and no FAIL is 1011 (wslay's view of the input out of step with ours);
 * and that the events do not depend on how the bytes were split: the same
 * input fed in one call gives the same events (the engine's readers keep
 * state across calls, a payload may bypass wslay, headers may be split).
 * Only a failure's reason may differ, and with permessage-deflate its code:
 * which of bad compressed data, bad UTF-8 or an oversized result is seen
 * first can depend on how much was inflated at once.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pyws_conn.h"
#include "pyws_utf8.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) abort();                                                      \
  } while (0)

/* FNV-1a over `n` bytes, continuing from `h`. */
static uint64_t mix(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* One session over data[1..size), `chunk` bytes per pyws_conn_recv call;
 * returns a digest of the events it gave. */
static uint64_t session(const uint8_t *data, size_t size, const pyws_conn_options *opts,
                        size_t chunk) {
  pyws_conn *conn;
  size_t off = 1;
  int ended = 0;
  uint64_t digest = 0xcbf29ce484222325ull;
  if (pyws_conn_new(&conn, opts) != 0) abort();
  while (off < size) {
    size_t n = size - off < chunk ? size - off : chunk;
    pyws_event *ev;
    size_t out_len;
    CHECK(pyws_conn_recv(conn, data + off, n) == 0);
    off += n;
    while (pyws_conn_next_event(conn, &ev) == 1) {
      uint32_t head[3] = {(uint32_t)ev->type, ev->code, (uint32_t)ev->len};
      CHECK(!ended);
      if (ev->type != PYWS_EVENT_FAIL) {
        digest = mix(mix(digest, head, sizeof(head)), ev->data, ev->len);
      } else {
        digest = mix(digest, head, opts->deflate ? sizeof(head[0]) : 2 * sizeof(head[0]));
      }
      switch (ev->type) {
      case PYWS_EVENT_TEXT:
        CHECK(pyws_utf8_valid(ev->data, ev->len));
        /* fall through */
      case PYWS_EVENT_BINARY:
        CHECK(opts->max_message_size == 0 || ev->len <= opts->max_message_size);
        /* Answer like an echo server would. */
        pyws_conn_send_binary(conn, ev->data, ev->len);
        break;
      case PYWS_EVENT_PING:
      case PYWS_EVENT_PONG:
        CHECK(ev->len <= 125);
        break;
      case PYWS_EVENT_FAIL:
        /* 1011: wslay lost step with the reader ("wslay" in pyws_conn.h),
         * which must never happen. */
        CHECK(ev->code != 1011);
        /* fall through */
      case PYWS_EVENT_CLOSE:
        CHECK(ev->len <= PYWS_MAX_CLOSE_REASON);
        ended = 1;
        break;
      }
      pyws_event_free(ev);
    }
    pyws_conn_output(conn, &out_len);
    pyws_conn_consume_output(conn, out_len);
  }
  pyws_conn_recv_eof(conn);
  CHECK(pyws_conn_get_state(conn) == PYWS_STATE_CLOSED);
  pyws_conn_free(conn);
  return digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint64_t limits[4] = {0, 16, 1000, 1u << 20};
  /* Different windows each way, so each role inflates with a small one. */
  static const pyws_pmd_params deflate = {0, 0, 15, 9};
  pyws_conn_options opts = {0};
  size_t chunk;
  if (size < 1) return 0;
  opts.server = data[0] & 1;
  opts.max_message_size = limits[(data[0] >> 1) & 3];
  chunk = (size_t)((data[0] >> 3) & 15) + 1; /* 1..16 bytes per call */
  if (data[0] & 0x80) {
    opts.deflate = &deflate;
    opts.deflate_level = 1;
    opts.deflate_mem_level = 8;
  }
  CHECK(session(data, size, &opts, chunk) == session(data, size, &opts, size));
  return 0;
}
