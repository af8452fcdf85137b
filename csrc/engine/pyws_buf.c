/*
 * Growable byte buffer (see pyws_buf.h).  Growth doubles, so appending n
 * bytes in small pieces costs O(n); the consumed prefix is reclaimed by a
 * move only when it is more than half of the allocation.
 */
#include "pyws_buf.h"

#include <stdlib.h>
#include <string.h>

#include "pyws_error.h"

void pyws_buf_init(pyws_buf *b) { memset(b, 0, sizeof(*b)); }

void pyws_buf_free(pyws_buf *b) {
  free(b->data);
  pyws_buf_init(b);
}

int pyws_buf_reserve(pyws_buf *b, size_t extra) {
  return pyws_buf_reserve_upto(b, extra, SIZE_MAX);
}

int pyws_buf_reserve_upto(pyws_buf *b, size_t extra, size_t most) {
  size_t need, cap;
  uint8_t *p;
  if (b->cap - b->len >= extra) {
    return 0;
  }
  /* Reclaim the consumed prefix before growing. */
  if (b->off > 0 && b->off >= b->cap / 2 && b->cap - (b->len - b->off) >= extra) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    return 0;
  }
  if (extra > SIZE_MAX - b->len) {
    return PYWS_ERR_TOO_LARGE;
  }
  need = b->len + extra;
  cap = b->cap ? b->cap : 256;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  if (cap > most && most >= need) {
    cap = most;
  }
  p = realloc(b->data, cap);
  if (p == NULL) {
    return PYWS_ERR_NOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int pyws_buf_append(pyws_buf *b, const void *src, size_t n) {
  int rv;
  if (n == 0) {
    return 0;
  }
  if ((rv = pyws_buf_reserve(b, n)) != 0) {
    return rv;
  }
  memcpy(b->data + b->len, src, n);
  b->len += n;
  return 0;
}

void pyws_buf_consume(pyws_buf *b, size_t n) {
  b->off += n;
  if (b->off >= b->len) {
    b->off = b->len = 0;
    /* One large message must not pin its memory for the connection's
     * lifetime: an emptied buffer keeps at most PYWS_BUF_KEEP bytes. */
    if (b->cap > PYWS_BUF_KEEP) {
      pyws_buf_free(b);
    }
  }
}

uint8_t *pyws_buf_detach(pyws_buf *b, size_t *offset, size_t *size) {
  uint8_t *p = b->data;
  *offset = b->off;
  *size = b->len - b->off;
  pyws_buf_init(b);
  return p;
}
