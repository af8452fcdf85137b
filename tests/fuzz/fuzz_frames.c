/*
 * libFuzzer target: the frame parser and message layer (pyws_conn).
 *
 * The first input byte picks the role, the maximum message size, how the
 * rest is split into pyws_conn_recv calls and whether permessage-deflate is
 * on (then a message's limit applies once decompressed); the rest is the
 * peer's bytes.
 * Besides the sanitizers' checks, it asserts what the engine promises:
 * text events are valid UTF-8, no message exceeds the limit, nothing is
 * accepted after a FAIL or CLOSE event, and control payloads fit 125 bytes.
 */
#include <stdint.h>
#include <stdlib.h>

#include "pyws_conn.h"
#include "pyws_utf8.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) abort();                                                      \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint64_t limits[4] = {0, 16, 1000, 1u << 20};
  /* Different windows each way, so each role inflates with a small one. */
  static const pyws_pmd_params deflate = {0, 0, 15, 9};
  pyws_conn_options opts = {0};
  pyws_conn *conn;
  size_t chunk, off = 1;
  int ended = 0;
  if (size < 1) return 0;
  opts.server = data[0] & 1;
  opts.max_message_size = limits[(data[0] >> 1) & 3];
  chunk = (size_t)((data[0] >> 3) & 15) + 1; /* 1..16 bytes per call */
  if (data[0] & 0x80) {
    opts.deflate = &deflate;
    opts.deflate_level = 1;
    opts.deflate_mem_level = 8;
  }
  if (pyws_conn_new(&conn, &opts) != 0) return 0;
  while (off < size) {
    size_t n = size - off < chunk ? size - off : chunk;
    pyws_event *ev;
    size_t out_len;
    CHECK(pyws_conn_recv(conn, data + off, n) == 0);
    off += n;
    while (pyws_conn_next_event(conn, &ev)) {
      CHECK(!ended);
      switch (ev->type) {
      case PYWS_EVENT_TEXT:
        CHECK(pyws_utf8_valid(ev->data, ev->len));
        /* fall through */
      case PYWS_EVENT_BINARY:
        CHECK(opts.max_message_size == 0 || ev->len <= opts.max_message_size);
        /* Answer like an echo server would. */
        pyws_conn_send_binary(conn, ev->data, ev->len);
        break;
      case PYWS_EVENT_PING:
      case PYWS_EVENT_PONG:
        CHECK(ev->len <= 125);
        break;
      case PYWS_EVENT_CLOSE:
      case PYWS_EVENT_FAIL:
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
  return 0;
}
