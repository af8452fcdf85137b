/*
 * permessage-deflate compression with zlib (see pyws_deflate.h).
 *
 * Raw DEFLATE (negative window bits: no zlib header).  A message is
 * compressed and flushed with Z_SYNC_FLUSH, which ends the output on a byte
 * boundary with an empty stored block, 00 00 ff ff; the extension removes
 * those four bytes on the wire and the receiver appends them back.
 */
#include "pyws_deflate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pyws_error.h"

/* zlib counts in uInt; feed it pieces no larger than this. */
#define ZCHUNK ((size_t)1 << 30)
/* The smallest output room asked for per call. */
#define MIN_ROOM ((size_t)4096)

static const uint8_t TAIL[4] = {0x00, 0x00, 0xff, 0xff};

struct pyws_deflate {
  z_stream tx, rx;
  int tx_ready, rx_ready;
  int tx_bits;              /* 0: send uncompressed */
  int tx_reset, rx_reset;   /* no context takeover in that direction */
  int level, mem_level;
  int rx_ended;             /* a DEFLATE stream ended with the data so far */
};

int pyws_deflate_new(pyws_deflate **pd, const pyws_pmd_params *p, int server, int level,
                     int mem_level) {
  pyws_deflate *d;
  int tx_bits;
  if (!pyws_pmd_params_valid(p) || level < -1 || level > 9 || mem_level < 1 ||
      mem_level > 9) {
    return PYWS_ERR_INVALID_ARGUMENT;
  }
  if ((d = calloc(1, sizeof(*d))) == NULL) {
    return PYWS_ERR_NOMEM;
  }
  tx_bits = server ? p->server_max_window_bits : p->client_max_window_bits;
  d->tx_bits = tx_bits > 8 ? tx_bits : 0;
  d->tx_reset = server ? p->server_no_context_takeover : p->client_no_context_takeover;
  d->rx_reset = server ? p->client_no_context_takeover : p->server_no_context_takeover;
  d->level = level;
  d->mem_level = mem_level;
  *pd = d;
  return 0;
}

void pyws_deflate_free(pyws_deflate *d) {
  if (d == NULL) {
    return;
  }
  if (d->tx_ready) {
    deflateEnd(&d->tx);
  }
  if (d->rx_ready) {
    inflateEnd(&d->rx);
  }
  free(d);
}

int pyws_deflate_compresses(const pyws_deflate *d) { return d->tx_bits != 0; }

static int zlib_error(int zr) { return zr == Z_MEM_ERROR ? PYWS_ERR_NOMEM : PYWS_ERR_ZLIB; }

/* Room for at least `want` more bytes at the end of `out`; returns how many
 * (at most UINT_MAX), 0 on failure with *rv set. */
static size_t make_room(pyws_buf *out, size_t want, int *rv) {
  size_t room;
  if ((*rv = pyws_buf_reserve(out, want)) != 0) {
    return 0;
  }
  room = out->cap - out->len;
  return room > UINT_MAX ? UINT_MAX : room;
}

int pyws_deflate_compress(pyws_deflate *d, const uint8_t *data, size_t len, pyws_buf *out) {
  size_t left = len, start = pyws_buf_size(out);
  int rv;
  if (d->tx_bits == 0) {
    return PYWS_ERR_INVALID_ARGUMENT;
  }
  if (len == 0) {
    /* An empty stored block, once 00 00 ff ff is removed.  zlib would
     * produce nothing: a second flush without input is no progress. */
    static const uint8_t empty = 0x00;
    return pyws_buf_append(out, &empty, 1);
  }
  if (!d->tx_ready) {
    int zr = deflateInit2(&d->tx, d->level, Z_DEFLATED, -d->tx_bits, d->mem_level,
                          Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
      return zlib_error(zr);
    }
    d->tx_ready = 1;
  }
  d->tx.avail_in = 0;
  for (;;) {
    size_t room, before;
    int flush, zr;
    if (d->tx.avail_in == 0 && left > 0) {
      size_t piece = left < ZCHUNK ? left : ZCHUNK;
      d->tx.next_in = (Bytef *)(uintptr_t)(data + (len - left));
      d->tx.avail_in = (uInt)piece;
      left -= piece;
    }
    flush = left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    room = make_room(out, MIN_ROOM > (d->tx.avail_in >> 1) ? MIN_ROOM : (d->tx.avail_in >> 1), &rv);
    if (room == 0) {
      return rv;
    }
    d->tx.next_out = out->data + out->len;
    d->tx.avail_out = (uInt)room;
    before = room;
    zr = deflate(&d->tx, flush);
    out->len += before - d->tx.avail_out;
    if (zr != Z_OK && zr != Z_BUF_ERROR) {
      return zlib_error(zr);
    }
    if (flush == Z_SYNC_FLUSH && d->tx.avail_in == 0 && d->tx.avail_out != 0) {
      break;
    }
  }
  /* Section 7.2.1: remove the 00 00 ff ff the flush ended with. */
  if (pyws_buf_size(out) < start + 4 ||
      memcmp(out->data + out->len - 4, TAIL, 4) != 0) {
    return PYWS_ERR_ZLIB;
  }
  out->len -= 4;
  if (d->tx_reset && deflateReset(&d->tx) != Z_OK) {
    return PYWS_ERR_ZLIB;
  }
  return 0;
}

/* Run `len` bytes through the decompressor into `out`.
 *
 * A sender may end a message's data with a final block (BFINAL) instead of
 * a flush (RFC 7692 section 7.2.3.4).  Its example then carries one more
 * byte: the start of an empty stored block, a new DEFLATE stream completed
 * by the 00 00 ff ff the receiver appends.  So data after a final block is
 * read as a new stream, with an empty window; rx_ended marks a stream that
 * ended exactly where the data received so far ends. */
static int inflate_bytes(pyws_deflate *d, const uint8_t *data, size_t len, pyws_buf *out,
                         uint64_t limit) {
  size_t left = len;
  int rv;
  if (len == 0) {
    return 0;
  }
  if (d->rx_ended) {
    d->rx_ended = 0;
    if (inflateReset(&d->rx) != Z_OK) {
      return PYWS_ERR_ZLIB;
    }
  }
  d->rx.avail_in = 0;
  for (;;) {
    size_t have = pyws_buf_size(out), want, room, before;
    int zr;
    if (d->rx.avail_in == 0) {
      size_t piece;
      if (left == 0) {
        return 0;
      }
      piece = left < ZCHUNK ? left : ZCHUNK;
      d->rx.next_in = (Bytef *)(uintptr_t)(data + (len - left));
      d->rx.avail_in = (uInt)piece;
      left -= piece;
    }
    /* Grow geometrically, but never ask for more than one byte past the
     * limit: that byte is how a message that is too large is noticed. */
    want = have > MIN_ROOM ? have : MIN_ROOM;
    if (limit != 0) {
      if (have > limit) {
        return PYWS_INFLATE_TOO_LARGE;
      }
      if (want > limit - have + 1) {
        want = (size_t)(limit - have + 1);
      }
    }
    room = make_room(out, want, &rv);
    if (room == 0) {
      return rv;
    }
    if (room > want) {
      room = want;
    }
    d->rx.next_out = out->data + out->len;
    d->rx.avail_out = (uInt)room;
    before = room;
    zr = inflate(&d->rx, Z_SYNC_FLUSH);
    out->len += before - d->rx.avail_out;
    if (limit != 0 && pyws_buf_size(out) > limit) {
      return PYWS_INFLATE_TOO_LARGE;
    }
    switch (zr) {
    case Z_OK:
      break;
    case Z_STREAM_END:
      if (d->rx.avail_in == 0 && left == 0) {
        d->rx_ended = 1;
        return 0;
      }
      if (inflateReset(&d->rx) != Z_OK) {
        return PYWS_ERR_ZLIB;
      }
      continue;
    case Z_BUF_ERROR: /* no progress: input consumed, or room needed */
      if (d->rx.avail_in == 0 && left == 0) {
        return 0;
      }
      break;
    case Z_MEM_ERROR:
      return PYWS_ERR_NOMEM;
    default: /* Z_DATA_ERROR, Z_NEED_DICT */
      return PYWS_INFLATE_BAD_DATA;
    }
    if (d->rx.avail_in == 0 && left == 0 && d->rx.avail_out != 0) {
      return 0;
    }
  }
}

int pyws_deflate_inflate(pyws_deflate *d, const uint8_t *data, size_t len, int last,
                         pyws_buf *out, uint64_t limit) {
  int rv;
  if (!d->rx_ready) {
    /* Always the largest window, whatever the peer agreed to use.  zlib
     * checks a distance against the window only when it reaches back past
     * the output of the current inflate call, so with a smaller window a
     * peer's too-far reference would fail or pass depending on how the
     * input happened to be split; with 15 bits every distance DEFLATE can
     * encode is checked against what was really produced.  The agreement
     * binds the sender, and what it sent is still decoded as it means. */
    int zr = inflateInit2(&d->rx, -MAX_WBITS);
    if (zr != Z_OK) {
      return zlib_error(zr);
    }
    d->rx_ready = 1;
  }
  if ((rv = inflate_bytes(d, data, len, out, limit)) != 0 || !last) {
    return rv;
  }
  /* Section 7.2.2: the message's data ends with the removed 00 00 ff ff;
   * not after a final block that ends the data (nothing to flush). */
  if (!d->rx_ended && (rv = inflate_bytes(d, TAIL, sizeof(TAIL), out, limit)) != 0) {
    return rv;
  }
  if (d->rx_reset || d->rx_ended) {
    d->rx_ended = 0;
    if (inflateReset(&d->rx) != Z_OK) {
      return PYWS_ERR_ZLIB;
    }
  }
  return 0;
}
