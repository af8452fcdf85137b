/*
 * A growable byte buffer with a consumed prefix.
 *
 * Bytes are appended at the end and consumed from the front; consuming only
 * moves an offset, so writing out a large buffer in pieces costs no copies.
 * A zeroed struct (or pyws_buf_init) is an empty buffer; pyws_buf_free
 * releases the memory and leaves an empty buffer.
 */
#ifndef PYWS_BUF_H
#define PYWS_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pyws_buf {
  uint8_t *data;  /* owned allocation, or NULL */
  size_t off;     /* consumed prefix */
  size_t len;     /* end of valid bytes (off <= len <= cap) */
  size_t cap;
} pyws_buf;

void pyws_buf_init(pyws_buf *b);
void pyws_buf_free(pyws_buf *b);

/* Make room for `extra` more bytes.  0 or PYWS_ERR_NOMEM/PYWS_ERR_TOO_LARGE. */
int pyws_buf_reserve(pyws_buf *b, size_t extra);
/* As pyws_buf_reserve, but the doubling stops at `most` bytes in all (when
 * `most` covers what is needed): for a buffer whose final size is known,
 * growth as the bytes arrive without overshooting that size. */
int pyws_buf_reserve_upto(pyws_buf *b, size_t extra, size_t most);

/* Append `n` bytes.  0 or PYWS_ERR_NOMEM/PYWS_ERR_TOO_LARGE. */
int pyws_buf_append(pyws_buf *b, const void *src, size_t n);

/* Writing in place: after pyws_buf_reserve(b, n), up to n bytes may be
 * written at pyws_buf_tail and added with pyws_buf_added. */
static inline uint8_t *pyws_buf_tail(pyws_buf *b) { return b->data + b->len; }
static inline void pyws_buf_added(pyws_buf *b, size_t n) { b->len += n; }

/* Unconsumed bytes: pointer and size (pointer valid until the next append). */
static inline const uint8_t *pyws_buf_bytes(const pyws_buf *b) {
  /* An empty buffer may have no allocation; NULL + 0 is undefined in C. */
  return b->data ? b->data + b->off : (const uint8_t *)"";
}
static inline size_t pyws_buf_size(const pyws_buf *b) {
  return b->len - b->off;
}

/* An emptied buffer whose allocation is larger than this releases it. */
#define PYWS_BUF_KEEP (64u << 10)

/* Drop `n` bytes from the front (n <= pyws_buf_size). */
void pyws_buf_consume(pyws_buf *b, size_t n);

/* Take the allocation out of the buffer: *out gets the pointer to the
 * unconsumed bytes' allocation (the caller frees it with free(); the bytes
 * start at offset *offset), the buffer becomes empty. */
uint8_t *pyws_buf_detach(pyws_buf *b, size_t *offset, size_t *size);

#endif
