/*
 * Incremental UTF-8 validation (RFC 3629): the state carries a partial
 * sequence across chunks, so a text message split into fragments is checked
 * as it arrives and fails at the first byte that cannot be valid.
 */
#ifndef PYWS_UTF8_H
#define PYWS_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The state between chunks; PYWS_UTF8_START (0) between characters.  A
 * sticky flag records whether any non-ASCII byte was seen, so that the
 * binding can build an ASCII str by a plain copy. */
typedef uint32_t pyws_utf8_state;
#define PYWS_UTF8_START 0u
#define PYWS_UTF8_NON_ASCII (1u << 24)

/* Check `len` more bytes.  Returns 1 if they are valid so far (a sequence may
 * still be open: see pyws_utf8_complete), 0 at the first invalid byte (the
 * state is then undefined). */
int pyws_utf8_feed(pyws_utf8_state *state, const uint8_t *p, size_t len);

/* 1 if no multi-byte sequence is left open. */
static inline int pyws_utf8_complete(pyws_utf8_state state) {
  return (state & ~PYWS_UTF8_NON_ASCII) == PYWS_UTF8_START;
}

/* 1 if every byte fed so far was ASCII. */
static inline int pyws_utf8_ascii(pyws_utf8_state state) {
  return !(state & PYWS_UTF8_NON_ASCII);
}

/* How many bytes at the start of `p` are ASCII (SIMD where available). */
size_t pyws_ascii_prefix(const uint8_t *p, size_t len);

/* One-shot check of a complete string. */
int pyws_utf8_valid(const uint8_t *p, size_t len);

#endif
