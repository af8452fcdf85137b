/*
 * Theory of operation.
 *
 * Frames are parsed by wslay's frame layer, fed by the reader in
 * pyws_frame.c; what wslay does for us and how its view of the stream is
 * kept exact are stated in one place, "wslay" in pyws_conn.h.
 *
 * This file is the message layer above it: it checks what RFC 6455 asks of
 * each frame (reserved bits and opcodes, continuation order; the reader
 * checked the masking direction), assembles fragmented messages, validates
 * text as it arrives (a message fails at its first invalid byte, not at
 * its end), enforces the maximum message size as soon as a frame header
 * announces a length, answers pings, and runs the closing handshake.
 *
 * wslay's event layer would do much of this, but it sends close frames
 * without a status code on malformed headers, accepts a one-byte close
 * payload, and validates close reasons per chunk; owning this layer keeps
 * every close code and reason exact.
 *
 * Frames we send are encoded by pyws_frame_send into the output buffer;
 * the caller writes the buffer out.
 *
 * wslay's frame context carries a 4 KiB input buffer, more than everything
 * else a connection holds.  Between frames wslay keeps no state but that
 * buffer, and the buffer holds no byte once pyws_conn_recv returns; so the
 * context exists only while it is in use: it is created when bytes arrive
 * and freed again when no frame is in progress.  An idle connection then
 * costs only this struct.
 *
 * With permessage-deflate (RFC 7692), RSV1 on a message's first frame marks
 * it compressed: its payload goes through pyws_deflate on the way into the
 * message buffer, so the size limit and the UTF-8 check apply to the
 * decompressed bytes as they come out.  Messages we send are compressed
 * whole, one frame each.
 */
#include "pyws_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "pyws_buf.h"
#include "pyws_deflate.h"
#include "pyws_error.h"
#include "pyws_frame.h"
#include "pyws_utf8.h"

struct pyws_conn {
  wslay_frame_context_ptr frame; /* NULL while idle (see above) */
  pyws_frame_io io;
  pyws_buf out;
  int server;
  uint64_t max_message_size;

  /* The frame being received. */
  int in_frame;
  uint8_t frame_opcode;
  uint8_t frame_fin;
  uint64_t frame_len;
  uint64_t frame_got;
  /* Allocated when first needed, so an idle connection does not carry
   * them: the payload of a control frame (125 bytes at most, and wslay
   * refuses longer ones) and the close reason. */
  uint8_t *ctrl;
  size_t ctrl_len;

  /* The data message being assembled (opcode 0 when none). */
  uint8_t msg_opcode;
  pyws_buf msg;
  pyws_utf8_state utf8;
  int msg_compressed;
  uint64_t msg_wire;      /* compressed payload bytes received so far */

  pyws_deflate *deflate;  /* NULL: no permessage-deflate */
  pyws_buf zbuf;          /* a message being compressed */

  pyws_event *ev_head, *ev_tail;

  int reading;
  int close_sent, close_received, failed, eof;
  /* A close frame to write once the CLOSE or FAIL event is taken: it came
   * while data messages were still queued, and the application answers
   * those first (see hold_close). */
  int close_held;
  uint16_t held_code;
  int held_reason; /* the close reason goes with it (a failure) */
  uint16_t close_code;
  uint8_t *close_reason; /* PYWS_MAX_CLOSE_REASON bytes, or NULL */
  size_t close_reason_len;
};

int pyws_close_code_is_valid(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

int pyws_conn_new(pyws_conn **pconn, const pyws_conn_options *opts) {
  pyws_conn *c = calloc(1, sizeof(*c));
  int rv;
  if (c == NULL) {
    return PYWS_ERR_NOMEM;
  }
  c->server = opts ? opts->server : 1;
  c->max_message_size = opts ? opts->max_message_size : PYWS_DEFAULT_MAX_MESSAGE_SIZE;
  c->io.out = &c->out;
  c->io.reader.expect_masked = c->server;
  c->reading = 1;
  if (opts && opts->deflate &&
      (rv = pyws_deflate_new(&c->deflate, opts->deflate, c->server, opts->deflate_level,
                             opts->deflate_mem_level)) != 0) {
    free(c);
    return rv;
  }
  *pconn = c;
  return 0;
}

/* wslay's frame context, created if the connection has none.  0 or
 * PYWS_ERR_NOMEM. */
static int frame_acquire(pyws_conn *c) {
  if (c->frame != NULL) {
    return 0;
  }
  return pyws_frame_context_new(&c->frame, &c->io);
}

/* Free wslay's frame context when it holds nothing we need: between frames
 * (once pyws_conn_recv returns, wslay holds no input byte: see "wslay" in
 * pyws_conn.h), or once we stopped reading. */
static void frame_release_if_idle(pyws_conn *c) {
  if (c->frame != NULL && (!c->reading || !c->in_frame)) {
    wslay_frame_context_free(c->frame);
    c->frame = NULL;
  }
}

void pyws_conn_free(pyws_conn *c) {
  pyws_event *ev, *next;
  if (c == NULL) {
    return;
  }
  for (ev = c->ev_head; ev != NULL; ev = next) {
    next = ev->next;
    pyws_event_free(ev);
  }
  if (c->frame != NULL) {
    wslay_frame_context_free(c->frame);
  }
  pyws_deflate_free(c->deflate);
  pyws_buf_free(&c->out);
  pyws_buf_free(&c->msg);
  pyws_buf_free(&c->zbuf);
  free(c->ctrl);
  free(c->close_reason);
  free(c);
}

void pyws_event_free(pyws_event *ev) {
  if (ev != NULL) {
    free(ev->alloc);
    free(ev);
  }
}

static void push_event(pyws_conn *c, pyws_event *ev) {
  ev->next = NULL;
  if (c->ev_tail) {
    c->ev_tail->next = ev;
  } else {
    c->ev_head = ev;
  }
  c->ev_tail = ev;
}

/* An event whose payload is copied into the same allocation. */
static int push_copy(pyws_conn *c, pyws_event_type type, uint16_t code,
                     const uint8_t *data, size_t len) {
  pyws_event *ev = malloc(sizeof(*ev) + len);
  if (ev == NULL) {
    return PYWS_ERR_NOMEM;
  }
  ev->type = type;
  ev->code = code;
  ev->ascii = 0;
  ev->alloc = NULL;
  ev->len = len;
  ev->data = (const uint8_t *)(ev + 1);
  if (len) {
    memcpy(ev + 1, data, len);
  }
  push_event(c, ev);
  return 0;
}

static int write_close(pyws_conn *c, uint16_t code, const uint8_t *reason,
                       size_t reason_len);

int pyws_conn_next_event(pyws_conn *c, pyws_event **ev) {
  pyws_event *head = c->ev_head;
  if (head == NULL) {
    return 0;
  }
  if (c->close_held && (head->type == PYWS_EVENT_CLOSE || head->type == PYWS_EVENT_FAIL)) {
    /* The messages before it were taken: the held close frame goes now. */
    int rv = 0;
    if (!c->close_sent && !c->eof) {
      rv = write_close(c, c->held_code, c->held_reason ? c->close_reason : NULL,
                       c->held_reason ? c->close_reason_len : 0);
    }
    if (rv == PYWS_ERR_NOMEM) {
      return rv; /* the event stays queued */
    }
    c->close_held = 0;
  }
  *ev = head;
  c->ev_head = head->next;
  if (c->ev_head == NULL) {
    c->ev_tail = NULL;
  }
  head->next = NULL;
  return 1;
}

const pyws_event *pyws_conn_peek_event(const pyws_conn *c) { return c->ev_head; }

static int send_frame(pyws_conn *c, uint8_t opcode, const uint8_t *data, size_t len) {
  if (c->close_sent || c->eof) {
    return PYWS_ERR_CLOSED;
  }
  return pyws_frame_send(&c->io, opcode, 0, data, len, !c->server);
}

/* A data message: compressed into one RSV1 frame when the extension is on. */
static int send_message(pyws_conn *c, uint8_t opcode, const uint8_t *data, size_t len) {
  int rv;
  if (c->deflate == NULL || !pyws_deflate_compresses(c->deflate)) {
    return send_frame(c, opcode, data, len);
  }
  if (c->close_sent || c->eof) {
    return PYWS_ERR_CLOSED;
  }
  rv = pyws_deflate_compress(c->deflate, data, len, &c->zbuf);
  if (rv == 0) {
    rv = pyws_frame_send(&c->io, opcode, WSLAY_RSV1_BIT, pyws_buf_bytes(&c->zbuf),
                         pyws_buf_size(&c->zbuf), !c->server);
  }
  /* Emptied, and released if it grew large. */
  pyws_buf_consume(&c->zbuf, pyws_buf_size(&c->zbuf));
  return rv;
}

/* The most compressed payload a message of `limit` bytes can take: DEFLATE
 * stores incompressible data with 5 bytes per 64 KiB block. */
static uint64_t wire_limit(uint64_t limit) {
  uint64_t slack = (limit >> 12) + 64;
  return limit > UINT64_MAX - slack ? UINT64_MAX : limit + slack;
}

/* Send a close frame: code 1005 means an empty payload. */
static int write_close(pyws_conn *c, uint16_t code, const uint8_t *reason,
                       size_t reason_len) {
  uint8_t payload[2 + PYWS_MAX_CLOSE_REASON];
  size_t len = 0;
  int rv;
  if (code != 1005) {
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (reason_len > 0) {
      memcpy(payload + 2, reason, reason_len);
    }
    len = 2 + reason_len;
  }
  if ((rv = send_frame(c, WSLAY_CONNECTION_CLOSE, payload, len)) != 0) {
    return rv;
  }
  c->close_sent = 1;
  return 0;
}

static void set_close(pyws_conn *c, uint16_t code, const uint8_t *reason, size_t len) {
  if (len > PYWS_MAX_CLOSE_REASON) {
    len = PYWS_MAX_CLOSE_REASON;
  }
  c->close_code = code;
  if (len > 0 && c->close_reason == NULL &&
      (c->close_reason = malloc(PYWS_MAX_CLOSE_REASON)) == NULL) {
    len = 0; /* out of memory: the code without its reason */
  }
  if (len > 0) {
    memcpy(c->close_reason, reason, len);
  }
  c->close_reason_len = len;
}

/* 1 if a data message waits in the event queue. */
static int data_event_queued(const pyws_conn *c) {
  for (const pyws_event *ev = c->ev_head; ev != NULL; ev = ev->next) {
    if (ev->type == PYWS_EVENT_TEXT || ev->type == PYWS_EVENT_BINARY) {
      return 1;
    }
  }
  return 0;
}

/* Our close frame, in answer to the peer's close or failure: written now, or,
 * while data messages received before it are still queued, held until its
 * event is taken (pyws_conn_next_event), so that the messages reach the
 * application and what it sends in reply goes out before the close frame
 * (RFC 6455 5.5.1: after sending a close frame an endpoint sends no more
 * data).  Until then the state stays OPEN for the application. */
static int close_in_turn(pyws_conn *c, uint16_t code, int with_reason) {
  if (c->close_sent || c->eof) {
    return 0;
  }
  if (data_event_queued(c)) {
    c->close_held = 1;
    c->held_code = code;
    c->held_reason = with_reason;
    return 0;
  }
  return write_close(c, code, with_reason ? c->close_reason : NULL,
                     with_reason ? c->close_reason_len : 0);
}

/* The peer broke the protocol: close with `code`, tell the caller, stop. */
static int fail(pyws_conn *c, uint16_t code, const char *reason) {
  size_t len = strlen(reason);
  int rv;
  c->failed = 1;
  c->reading = 0;
  set_close(c, code, (const uint8_t *)reason, len);
  rv = close_in_turn(c, code, 1);
  if (rv == PYWS_ERR_NOMEM) {
    return rv;
  }
  return push_copy(c, PYWS_EVENT_FAIL, code, c->close_reason, c->close_reason_len);
}

static int check_rsv(pyws_conn *c, const struct wslay_frame_iocb *f) {
  if (f->rsv & (WSLAY_RSV2_BIT | WSLAY_RSV3_BIT)) {
    return fail(c, 1002, "reserved bits RSV2 or RSV3 set, but no extension uses them");
  }
  if (c->deflate == NULL) {
    return fail(c, 1002, "reserved bits set but no extension was negotiated");
  }
  if (f->opcode & 0x8) {
    return fail(c, 1002, "RSV1 set on a control frame");
  }
  if (f->opcode == WSLAY_CONTINUATION_FRAME) {
    return fail(c, 1002, "RSV1 set on a continuation frame (permessage-deflate marks "
                         "only a message's first frame)");
  }
  return 0;
}

/* wslay lost step with the reader (never expected: see "wslay" in
 * pyws_conn.h). */
static int fail_out_of_step(pyws_conn *c) {
  return fail(c, 1011, "internal error: the frame parser lost step with the input");
}

/* A frame starts: `f` as wslay reported it (or as the reader describes a
 * header wslay took, pyws_frame_pending_header).  It is the reader's
 * current frame, the one whose header wslay was handed last; its payload
 * length is the reader's, as wslay saw length 0 for a payload that
 * bypasses it. */
static int on_frame_start(pyws_conn *c, const struct wslay_frame_iocb *f) {
  char why[80];
  int compressed = (f->rsv & WSLAY_RSV1_BIT) != 0;
  struct wslay_frame_iocb cur;
  uint64_t payload_length;
  pyws_frame_current(&c->io, &cur);
  payload_length = cur.payload_length;
  if (f->opcode != cur.opcode || f->fin != cur.fin || f->rsv != cur.rsv ||
      f->payload_length != (pyws_frame_payload_left(&c->io) > 0 ? 0 : payload_length)) {
    return fail_out_of_step(c);
  }
  if (f->rsv != 0) {
    int rv = check_rsv(c, f);
    if (rv != 0 || !c->reading) {
      return rv;
    }
  }
  /* The reader checked the masking direction ("wslay" in pyws_conn.h). */
  switch (f->opcode) {
  case WSLAY_CONTINUATION_FRAME:
    if (c->msg_opcode == 0) {
      return fail(c, 1002, "continuation frame with no message to continue");
    }
    break;
  case WSLAY_TEXT_FRAME:
  case WSLAY_BINARY_FRAME:
    if (c->msg_opcode != 0) {
      return fail(c, 1002, "new data frame inside a fragmented message");
    }
    c->msg_opcode = f->opcode;
    c->utf8 = PYWS_UTF8_START;
    c->msg_compressed = compressed;
    c->msg_wire = 0;
    break;
  case WSLAY_CONNECTION_CLOSE:
  case WSLAY_PING:
  case WSLAY_PONG:
    break;
  default:
    snprintf(why, sizeof(why), "reserved opcode 0x%x", f->opcode);
    return fail(c, 1002, why);
  }
  if (!(f->opcode & 0x8)) {
    /* A compressed message's limit applies once decompressed (on_chunk);
     * its frames may only be as long as that limit compressed. */
    uint64_t have = c->msg_compressed ? c->msg_wire : pyws_buf_size(&c->msg);
    uint64_t limit = c->msg_compressed ? wire_limit(c->max_message_size) : c->max_message_size;
    if (c->max_message_size && (payload_length > limit ||
                                have > limit - payload_length)) {
      snprintf(why, sizeof(why), "message exceeds the limit of %llu bytes",
               (unsigned long long)c->max_message_size);
      return fail(c, 1009, why);
    }
    /* Nothing is reserved for the announced length: a header costs the
     * peer 14 bytes, and memory must follow the bytes that arrived
     * (on_payload grows the buffer with them). */
  }
  if ((f->opcode & 0x8) && c->ctrl == NULL && (c->ctrl = malloc(125)) == NULL) {
    return PYWS_ERR_NOMEM;
  }
  c->frame_opcode = f->opcode;
  c->frame_fin = f->fin;
  c->frame_len = payload_length;
  c->frame_got = 0;
  c->ctrl_len = 0;
  return 0;
}

static int on_close_frame(pyws_conn *c) {
  uint16_t code = 1005;
  const uint8_t *reason = c->ctrl + 2;
  size_t reason_len = 0;
  int rv;
  char why[48];
  if (c->ctrl_len == 1) {
    return fail(c, 1002, "close frame with a one-byte payload");
  }
  if (c->ctrl_len >= 2) {
    code = (uint16_t)(c->ctrl[0] << 8 | c->ctrl[1]);
    if (!pyws_close_code_is_valid(code)) {
      snprintf(why, sizeof(why), "invalid close code %u", (unsigned)code);
      return fail(c, 1002, why);
    }
    reason_len = c->ctrl_len - 2;
    if (!pyws_utf8_valid(reason, reason_len)) {
      return fail(c, 1007, "close reason is not valid UTF-8");
    }
  }
  c->close_received = 1;
  c->reading = 0;
  set_close(c, code, reason, reason_len);
  if ((rv = push_copy(c, PYWS_EVENT_CLOSE, code, reason, reason_len)) != 0) {
    return rv;
  }
  /* Echo the code, as section 5.5.1 suggests, and the reason with it, as
     uvicorn's and websockets' servers do, so that a peer that closed with a
     reason reads it back (the CLOSE event is queued already, so a hold
     counts the messages before it). */
  rv = close_in_turn(c, code, 1);
  if (rv != 0 && rv != PYWS_ERR_CLOSED) {
    return rv;
  }
  return 0;
}

/* Decompress a piece of a compressed message into the message buffer and
 * check what came out; `last`: the message is complete. */
static int inflate_chunk(pyws_conn *c, const uint8_t *data, size_t len, int last) {
  size_t before = pyws_buf_size(&c->msg);
  char why[96];
  int rv = pyws_deflate_inflate(c->deflate, data, len, last, &c->msg, c->max_message_size);
  if (rv == PYWS_INFLATE_TOO_LARGE) {
    snprintf(why, sizeof(why), "message exceeds the limit of %llu bytes once decompressed",
             (unsigned long long)c->max_message_size);
    return fail(c, 1009, why);
  }
  if (rv == PYWS_INFLATE_BAD_DATA) {
    return fail(c, 1007, "invalid compressed data (permessage-deflate)");
  }
  if (rv != 0) {
    return rv;
  }
  c->msg_wire += len;
  if (c->msg_opcode == WSLAY_TEXT_FRAME &&
      !pyws_utf8_feed(&c->utf8, pyws_buf_bytes(&c->msg) + before,
                      pyws_buf_size(&c->msg) - before)) {
    return fail(c, 1007, "invalid UTF-8 in a text message");
  }
  return 0;
}

static int on_frame_end(pyws_conn *c) {
  int rv;
  switch (c->frame_opcode) {
  case WSLAY_CONTINUATION_FRAME:
  case WSLAY_TEXT_FRAME:
  case WSLAY_BINARY_FRAME: {
    pyws_event *ev;
    size_t off, size;
    if (!c->frame_fin) {
      return 0;
    }
    if (c->msg_compressed && ((rv = inflate_chunk(c, NULL, 0, 1)) != 0 || !c->reading)) {
      return rv;
    }
    if (c->msg_opcode == WSLAY_TEXT_FRAME && !pyws_utf8_complete(c->utf8)) {
      return fail(c, 1007, "text message ends inside a UTF-8 sequence");
    }
    ev = malloc(sizeof(*ev));
    if (ev == NULL) {
      return PYWS_ERR_NOMEM;
    }
    ev->type = c->msg_opcode == WSLAY_TEXT_FRAME ? PYWS_EVENT_TEXT : PYWS_EVENT_BINARY;
    ev->ascii = ev->type == PYWS_EVENT_TEXT && pyws_utf8_ascii(c->utf8);
    ev->code = 0;
    ev->alloc = pyws_buf_detach(&c->msg, &off, &size);
    ev->data = ev->alloc ? ev->alloc + off : (const uint8_t *)"";
    ev->len = size;
    push_event(c, ev);
    c->msg_opcode = 0;
    return 0;
  }
  case WSLAY_PING:
    if ((rv = push_copy(c, PYWS_EVENT_PING, 0, c->ctrl, c->ctrl_len)) != 0) {
      return rv;
    }
    if (!c->close_sent && !c->eof) {
      return send_frame(c, WSLAY_PONG, c->ctrl, c->ctrl_len);
    }
    return 0;
  case WSLAY_PONG:
    return push_copy(c, PYWS_EVENT_PONG, 0, c->ctrl, c->ctrl_len);
  default: /* WSLAY_CONNECTION_CLOSE */
    return on_close_frame(c);
  }
}

static int on_chunk(pyws_conn *c, const struct wslay_frame_iocb *f) {
  int rv;
  if (!c->in_frame) {
    if ((rv = on_frame_start(c, f)) != 0 || !c->reading) {
      return rv;
    }
    c->in_frame = 1;
  }
  if (f->data_length > 0) {
    if (c->frame_opcode & 0x8) {
      /* wslay refuses control frames over 125 bytes, so this fits. */
      memcpy(c->ctrl + c->ctrl_len, f->data, f->data_length);
      c->ctrl_len += f->data_length;
    } else if (c->msg_compressed) {
      if ((rv = inflate_chunk(c, f->data, f->data_length, 0)) != 0 || !c->reading) {
        return rv;
      }
    } else {
      if (c->msg_opcode == WSLAY_TEXT_FRAME &&
          !pyws_utf8_feed(&c->utf8, f->data, f->data_length)) {
        return fail(c, 1007, "invalid UTF-8 in a text message");
      }
      if ((rv = pyws_buf_append(&c->msg, f->data, f->data_length)) != 0) {
        return rv;
      }
    }
    c->frame_got += f->data_length;
  }
  if (c->frame_got == c->frame_len) {
    c->in_frame = 0;
    return on_frame_end(c);
  }
  return 0;
}

/* The payload of a data frame that bypasses wslay ("wslay" in pyws_conn.h),
 * as far as the input goes: unmasked straight into the message buffer, or
 * through a chunk on the stack into the decompressor; checked as on_chunk
 * checks it. */
static int take_payload(pyws_conn *c) {
  while (c->reading) {
    uint64_t left = pyws_frame_payload_left(&c->io);
    size_t n = c->io.in_len < left ? c->io.in_len : (size_t)left;
    size_t got;
    int rv;
    if (n == 0) {
      return 0;
    }
    if (c->msg_compressed) {
      uint8_t chunk[4096];
      got = pyws_frame_take_payload(&c->io, chunk, sizeof(chunk));
      if ((rv = inflate_chunk(c, chunk, got, 0)) != 0 || !c->reading) {
        return rv;
      }
    } else {
      uint8_t *dst;
      /* Doubling as the bytes come; in a message's last frame, never past
       * its end (the size is known then).  Capping earlier frames too would
       * make a message of many fragments grow one fragment at a time. */
      size_t most = SIZE_MAX;
      if (c->frame_fin && left <= SIZE_MAX - c->msg.len) {
        most = c->msg.len + (size_t)left;
      }
      if ((rv = pyws_buf_reserve_upto(&c->msg, n, most)) != 0) {
        return rv;
      }
      dst = pyws_buf_tail(&c->msg);
      got = pyws_frame_take_payload(&c->io, dst, n);
      if (c->msg_opcode == WSLAY_TEXT_FRAME && !pyws_utf8_feed(&c->utf8, dst, got)) {
        return fail(c, 1007, "invalid UTF-8 in a text message");
      }
      pyws_buf_added(&c->msg, got);
    }
    c->frame_got += got;
    if (c->frame_got == c->frame_len) {
      c->in_frame = 0;
      return on_frame_end(c);
    }
  }
  return 0;
}

int pyws_conn_recv(pyws_conn *c, const uint8_t *data, size_t len) {
  int rv = 0;
  if (!c->reading) {
    return 0;
  }
  if ((rv = frame_acquire(c)) != 0) {
    return rv;
  }
  c->io.in = data;
  c->io.in_len = len;
  while (c->reading) {
    struct wslay_frame_iocb iocb;
    ssize_t r;
    if (c->in_frame && pyws_frame_payload_left(&c->io) > 0) {
      if ((rv = take_payload(c)) != 0) {
        c->reading = 0;
        break;
      }
      if (pyws_frame_payload_left(&c->io) > 0) {
        break; /* the rest of the payload comes with later input */
      }
      continue;
    }
    memset(&iocb, 0, sizeof(iocb));
    r = wslay_frame_recv(c->frame, &iocb);
    if (r == WSLAY_ERR_WANT_READ) {
      if (pyws_frame_out_of_step(&c->io)) {
        rv = fail_out_of_step(c);
        break;
      }
      /* Everything before a frame with the wrong masking was processed;
       * that frame and what follows never reached wslay. */
      if (c->io.reader.wrong_mask) {
        rv = fail(c, 1002, c->server ? "client frame is not masked" : "server frame is masked");
        break;
      }
      /* A header that came without payload is checked now, not when its
       * payload starts to arrive. */
      if (!c->in_frame && pyws_frame_pending_header(&c->io, &iocb)) {
        if ((rv = on_frame_start(c, &iocb)) != 0) {
          c->reading = 0; /* wslay took that header: it is in no state to go on */
        } else if (c->reading) {
          c->in_frame = 1;
        }
      }
      break;
    }
    if (r < 0) {
      rv = fail(c, 1002,
                "malformed frame header: fragmented or over-long control "
                "frame, or a length not minimally encoded");
      break;
    }
    if ((rv = on_chunk(c, &iocb)) != 0) {
      c->reading = 0;
      break;
    }
  }
  c->io.in = NULL;
  c->io.in_len = 0;
  frame_release_if_idle(c);
  return rv;
}

void pyws_conn_recv_eof(pyws_conn *c) {
  if (c->eof) {
    return;
  }
  c->eof = 1;
  c->reading = 0;
  if (!c->close_received && !c->failed) {
    set_close(c, 1006, NULL, 0);
  }
}

int pyws_conn_send_text(pyws_conn *c, const uint8_t *data, size_t len) {
  return send_message(c, WSLAY_TEXT_FRAME, data, len);
}

int pyws_conn_send_binary(pyws_conn *c, const uint8_t *data, size_t len) {
  return send_message(c, WSLAY_BINARY_FRAME, data, len);
}

int pyws_conn_send_ping(pyws_conn *c, const uint8_t *data, size_t len) {
  return send_frame(c, WSLAY_PING, data, len);
}

int pyws_conn_send_pong(pyws_conn *c, const uint8_t *data, size_t len) {
  return send_frame(c, WSLAY_PONG, data, len);
}

int pyws_conn_send_close(pyws_conn *c, uint16_t code, const uint8_t *reason,
                         size_t reason_len) {
  if (code == 1005 ? reason_len != 0 : !pyws_close_code_is_valid(code)) {
    return PYWS_ERR_INVALID_ARGUMENT;
  }
  if (reason_len > PYWS_MAX_CLOSE_REASON || !pyws_utf8_valid(reason, reason_len)) {
    return PYWS_ERR_INVALID_ARGUMENT;
  }
  if (c->close_sent || c->eof) {
    return PYWS_ERR_CLOSED;
  }
  return write_close(c, code, reason, reason_len);
}

int pyws_conn_frame_header(pyws_conn *c, uint8_t opcode, size_t len, uint8_t *hdr,
                           size_t *hdr_len) {
  if (c->close_sent || c->eof) {
    return PYWS_ERR_CLOSED;
  }
  if (!c->server || (c->deflate != NULL && !(opcode & 0x8) &&
                     pyws_deflate_compresses(c->deflate))) {
    return 1;
  }
  *hdr_len = pyws_frame_header_encode(hdr, opcode, len);
  return 0;
}

int pyws_conn_append_output(pyws_conn *c, const uint8_t *data, size_t len) {
  return pyws_buf_append(&c->out, data, len);
}

const uint8_t *pyws_conn_output(const pyws_conn *c, size_t *len) {
  *len = pyws_buf_size(&c->out);
  return pyws_buf_bytes(&c->out);
}

void pyws_conn_consume_output(pyws_conn *c, size_t n) {
  pyws_buf_consume(&c->out, n);
}

pyws_conn_state pyws_conn_get_state(const pyws_conn *c) {
  if (c->close_held && !c->eof) {
    /* The application has not reached the close yet (see close_in_turn). */
    return c->close_sent ? PYWS_STATE_CLOSING : PYWS_STATE_OPEN;
  }
  if (c->failed || c->eof || (c->close_sent && c->close_received)) {
    return PYWS_STATE_CLOSED;
  }
  if (c->close_sent || c->close_received) {
    return PYWS_STATE_CLOSING;
  }
  return PYWS_STATE_OPEN;
}

int pyws_conn_is_server(const pyws_conn *c) { return c->server; }
int pyws_conn_deflate(const pyws_conn *c) { return c->deflate != NULL; }
uint64_t pyws_conn_max_message_size(const pyws_conn *c) { return c->max_message_size; }
int pyws_conn_close_sent(const pyws_conn *c) { return c->close_sent; }
int pyws_conn_close_received(const pyws_conn *c) { return c->close_received; }

uint16_t pyws_conn_close_code(const pyws_conn *c) {
  if (c->close_held && !c->eof) {
    return 0;
  }
  return (c->close_received || c->failed || c->eof) ? c->close_code : 0;
}

const uint8_t *pyws_conn_close_reason(const pyws_conn *c, size_t *len) {
  *len = c->close_reason_len;
  return c->close_reason ? c->close_reason : (const uint8_t *)"";
}
