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

static ssize_t on_recv(uint8_t *buf, size_t len, int flags, void *user) {
  pyws_frame_io *io = user;
  size_t n = len < io->in_len ? len : io->in_len;
  (void)flags;
  if (n == 0) {
    return 0; /* makes wslay answer WSLAY_ERR_WANT_READ */
  }
  memcpy(buf, io->in, n);
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
