/*
 * wslay frame-layer callbacks over memory (see pyws_frame.h).
 *
 * The send callback never refuses: pyws_frame_send reserves room for the
 * whole frame first, so wslay_frame_send always completes in one call and
 * its internal state never stays half-way through a frame.
 */
#include "pyws_frame.h"

#include <string.h>

#include "pyws_error.h"
#include "pyws_random.h"

static ssize_t on_send(const uint8_t *data, size_t len, int flags, void *user) {
  pyws_frame_io *io = user;
  (void)flags;
  /* Room was reserved by pyws_frame_send, so this cannot fail. */
  if (pyws_buf_append(io->out, data, len) != 0) {
    return -1;
  }
  return (ssize_t)len;
}

/* Follow frame boundaries through `len` more bytes of the input stream. */
static void track(pyws_frame_tracker *t, const uint8_t *p, size_t len) {
  while (len > 0) {
    if (t->in_payload) {
      uint64_t take = t->payload_left < len ? t->payload_left : len;
      t->payload_left -= take;
      p += take;
      len -= (size_t)take;
      if (t->payload_left == 0) {
        t->in_payload = 0;
        t->have = 0;
        t->need = 2;
      }
      continue;
    }
    if (t->need == 0) t->need = 2;
    t->header[t->have++] = *p++;
    len--;
    if (t->have == 2) {
      uint8_t len7 = t->header[1] & 0x7f;
      t->need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) +
                ((t->header[1] & 0x80) ? 4 : 0);
    }
    if (t->have == t->need) {
      uint8_t len7 = t->header[1] & 0x7f;
      uint64_t n = len7;
      size_t i;
      if (len7 >= 126) {
        size_t bytes = len7 == 126 ? 2 : 8;
        n = 0;
        for (i = 0; i < bytes; i++) n = n << 8 | t->header[2 + i];
      }
      t->payload_length = n;
      t->payload_left = n;
      t->in_payload = 1;
      if (n == 0) {
        t->in_payload = 0;
        t->have = 0;
        t->need = 2;
      }
    }
  }
}

int pyws_frame_pending_header(const pyws_frame_io *io, struct wslay_frame_iocb *iocb) {
  const pyws_frame_tracker *t = &io->tracker;
  if (!t->in_payload || t->payload_left != t->payload_length) {
    return 0;
  }
  memset(iocb, 0, sizeof(*iocb));
  iocb->fin = (t->header[0] >> 7) & 1;
  iocb->rsv = (t->header[0] >> 4) & 7;
  iocb->opcode = t->header[0] & 0xf;
  iocb->mask = (t->header[1] >> 7) & 1;
  iocb->payload_length = t->payload_length;
  return 1;
}

static ssize_t on_recv(uint8_t *buf, size_t len, int flags, void *user) {
  pyws_frame_io *io = user;
  size_t n = len < io->in_len ? len : io->in_len;
  (void)flags;
  if (n == 0) {
    return 0; /* makes wslay answer WSLAY_ERR_WANT_READ */
  }
  memcpy(buf, io->in, n);
  track(&io->tracker, io->in, n);
  io->in += n;
  io->in_len -= n;
  return (ssize_t)n;
}

static int on_genmask(uint8_t *buf, size_t len, void *user) {
  pyws_frame_io *io = user;
  if (io->pool_left < len) {
    if (pyws_random_bytes(io->pool, sizeof(io->pool)) != 0) {
      return -1;
    }
    io->pool_left = sizeof(io->pool);
  }
  memcpy(buf, io->pool + sizeof(io->pool) - io->pool_left, len);
  io->pool_left -= len;
  return 0;
}

int pyws_frame_context_new(wslay_frame_context_ptr *ctx, pyws_frame_io *io) {
  struct wslay_frame_callbacks cb = {on_send, on_recv, on_genmask};
  if (wslay_frame_context_init(ctx, &cb, io) != 0) {
    return PYWS_ERR_NOMEM;
  }
  return 0;
}

int pyws_frame_send(wslay_frame_context_ptr ctx, pyws_frame_io *io,
                    uint8_t opcode, const uint8_t *data, size_t len, int mask) {
  struct wslay_frame_iocb iocb;
  ssize_t r;
  int rv;
  if ((opcode & 0x8) && len > 125) {
    return PYWS_ERR_INVALID_ARGUMENT;
  }
  if (len > SIZE_MAX - PYWS_FRAME_MAX_HEADER) {
    return PYWS_ERR_TOO_LARGE;
  }
  if ((rv = pyws_buf_reserve(io->out, len + PYWS_FRAME_MAX_HEADER)) != 0) {
    return rv;
  }
  memset(&iocb, 0, sizeof(iocb));
  iocb.fin = 1;
  iocb.opcode = opcode;
  iocb.mask = mask ? 1 : 0;
  iocb.payload_length = len;
  iocb.data = data;
  iocb.data_length = len;
  r = wslay_frame_send(ctx, &iocb);
  if (r == WSLAY_ERR_INVALID_CALLBACK) {
    return PYWS_ERR_RANDOM; /* the masking key could not be drawn */
  }
  if (r < 0 || (size_t)r != len) {
    return PYWS_ERR_WSLAY;
  }
  return 0;
}

int pyws_frame_encode(pyws_buf *out, uint8_t opcode, const uint8_t *data,
                      size_t len, int mask) {
  pyws_frame_io io;
  wslay_frame_context_ptr ctx;
  int rv;
  memset(&io, 0, sizeof(io));
  io.out = out;
  if ((rv = pyws_frame_context_new(&ctx, &io)) != 0) {
    return rv;
  }
  rv = pyws_frame_send(ctx, &io, opcode, data, len, mask);
  wslay_frame_context_free(ctx);
  return rv;
}
