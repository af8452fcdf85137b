/*
 * wslay's recv callback over memory (the reader: see "wslay" in
 * pyws_conn.h), and the frame encoder (see pyws_frame.h).
 *
 * The encoder writes RFC 6455 section 5.2 frames with the shortest length
 * encoding, as wslay's sender did, into room reserved up front for the
 * whole frame.
 */
#include "pyws_frame.h"

#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "pyws_error.h"
#include "pyws_random.h"

#if defined(__x86_64__) && defined(__GNUC__)
/* 32 bytes per step where the CPU has AVX2 (chosen at run time). */
__attribute__((target("avx2"))) static size_t unmask_avx2(uint8_t *dst, const uint8_t *src,
                                                          size_t n, uint32_t k) {
  __m256i key = _mm256_set1_epi32((int)k);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i w = _mm256_loadu_si256((const __m256i *)(src + i));
    _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(w, key));
  }
  return i;
}
#endif

/* Bytes unmasked with vector instructions (a multiple of 16; the rest is
 * left to the caller); `k` is the key pattern as it starts at dst[0]. */
static size_t unmask_vector(uint8_t *dst, const uint8_t *src, size_t n, uint32_t k) {
  size_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if (n >= 64 && __builtin_cpu_supports("avx2")) {
    i = unmask_avx2(dst, src, n, k);
  }
#endif
#if defined(__SSE2__)
  {
    __m128i key = _mm_set1_epi32((int)k);
    for (; i + 16 <= n; i += 16) {
      __m128i w = _mm_loadu_si128((const __m128i *)(src + i));
      _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(w, key));
    }
  }
#endif
  (void)k;
  return i;
}

/* dst = src XOR the masking key, starting `offset` bytes into the key
 * cycle; vectors, then eight bytes per step (the pattern repeats every 4). */
static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n,
                        const uint8_t key[4], uint64_t offset) {
  uint8_t pattern[8];
  uint64_t k;
  uint32_t k4;
  size_t i;
  for (i = 0; i < 8; i++) pattern[i] = key[(offset + i) & 3];
  memcpy(&k, pattern, 8);
  memcpy(&k4, pattern, 4);
  /* Every vector step is a multiple of 4 bytes, so the pattern still starts
   * at the same key byte where the vectors stop. */
  i = unmask_vector(dst, src, n, k4);
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= k;
    memcpy(dst + i, &w, 8);
  }
  for (; i < n; i++) dst[i] = src[i] ^ pattern[i & 7];
}

/* RFC 6455 section 5.2: the shortest length encoding, and the top bit of a
 * 64-bit length clear.  wslay refuses other headers itself. */
static int length_is_minimal(uint8_t len7, uint64_t n) {
  return len7 < 126 || (len7 == 126 && n >= 126) ||
         (len7 == 127 && n > 65535 && !(n >> 63));
}

/* A header is complete: check its masking, make it the current frame and
 * write into `buf` the header wslay gets.  Returns that header's length (0:
 * the masking rule was broken, nothing is handed). */
static size_t header_done(pyws_frame_reader *r, uint8_t *buf) {
  uint8_t len7 = r->header[1] & 0x7f;
  size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  uint64_t n = len7;
  size_t i;
  r->have = 0;
  r->need = 2;
  r->masked = (r->header[1] & 0x80) != 0;
  if (r->masked != r->expect_masked) {
    r->wrong_mask = 1;
    return 0;
  }
  if (ext) {
    n = 0;
    for (i = 0; i < ext; i++) n = n << 8 | r->header[2 + i];
  }
  if (r->masked) memcpy(r->key, r->header + 2 + ext, 4);
  r->first = r->header[0];
  r->payload_length = r->payload_left = n;
  r->offset = 0;
  /* A data frame with a payload and a well-formed length: wslay gets its
   * header with length 0, the engine its payload.  Any other header goes
   * as sent, without its mask bit and key. */
  r->bypass = !(r->first & 0x08) && n > 0 && length_is_minimal(len7, n);
  buf[0] = r->first;
  if (r->bypass) {
    buf[1] = 0;
    return 2;
  }
  buf[1] = len7;
  memcpy(buf + 2, r->header + 2, ext);
  return 2 + ext;
}

/* wslay's recv callback: fill `buf` (`len` bytes of room) from the input
 * with ONE of: the rest of the current frame's payload when it goes
 * through wslay, unmasked; or the next frame's whole header, rewritten.
 * Never bytes of two frames, never part of a header (see "wslay" in
 * pyws_conn.h).  Returns the bytes written; 0 makes wslay answer
 * WSLAY_ERR_WANT_READ. */
static size_t hand_to_wslay(pyws_frame_io *io, uint8_t *buf, size_t len) {
  pyws_frame_reader *r = &io->reader;
  /* wslay moves what it holds to the front of its buffer before each call,
   * so the room it offers is the buffer less what it holds: the room of
   * the first call (a fresh context holds nothing) means it holds none. */
  if (r->room == 0) r->room = len;
  if (len != r->room || len < PYWS_FRAME_MAX_HEADER) r->out_of_step = 1;
  if (r->out_of_step || r->wrong_mask) {
    return 0;
  }
  if (r->payload_left > 0) {
    size_t take = len < io->in_len ? len : io->in_len;
    if (r->bypass) {
      return 0; /* pyws_frame_take_payload's (wslay does not ask then) */
    }
    if (take > r->payload_left) take = (size_t)r->payload_left;
    if (r->masked) {
      unmask_copy(buf, io->in, take, r->key, r->offset);
    } else {
      memcpy(buf, io->in, take);
    }
    io->in += take;
    io->in_len -= take;
    r->offset += take;
    r->payload_left -= take;
    return take;
  }
  if (r->need == 0) r->need = 2;
  while (io->in_len > 0 && r->have < r->need) {
    r->header[r->have++] = *io->in++;
    io->in_len--;
    if (r->have == 2) {
      uint8_t len7 = r->header[1] & 0x7f;
      r->need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((r->header[1] & 0x80) ? 4 : 0);
    }
  }
  return r->have == r->need ? header_done(r, buf) : 0;
}

uint64_t pyws_frame_payload_left(const pyws_frame_io *io) {
  const pyws_frame_reader *r = &io->reader;
  return r->bypass ? r->payload_left : 0;
}

size_t pyws_frame_take_payload(pyws_frame_io *io, uint8_t *dst, size_t max) {
  pyws_frame_reader *r = &io->reader;
  uint64_t left = pyws_frame_payload_left(io);
  size_t take = io->in_len < max ? io->in_len : max;
  if (take > left) take = (size_t)left;
  if (take == 0) return 0;
  if (r->masked) {
    unmask_copy(dst, io->in, take, r->key, r->offset);
  } else {
    memcpy(dst, io->in, take);
  }
  io->in += take;
  io->in_len -= take;
  r->offset += take;
  r->payload_left -= take;
  if (r->payload_left == 0) {
    r->bypass = 0;
  }
  return take;
}

void pyws_frame_current(const pyws_frame_io *io, struct wslay_frame_iocb *iocb) {
  const pyws_frame_reader *r = &io->reader;
  memset(iocb, 0, sizeof(*iocb));
  iocb->fin = (r->first >> 7) & 1;
  iocb->rsv = (r->first >> 4) & 7;
  iocb->opcode = r->first & 0xf;
  iocb->mask = (uint8_t)r->masked;
  iocb->payload_length = r->payload_length;
}

int pyws_frame_pending_header(const pyws_frame_io *io, struct wslay_frame_iocb *iocb) {
  const pyws_frame_reader *r = &io->reader;
  /* wslay holds nothing once it answers WSLAY_ERR_WANT_READ; a header
   * handed last, with a payload for wslay of which nothing was handed, is
   * one wslay took and waits on. */
  if (r->out_of_step || r->bypass || r->payload_left == 0 ||
      r->payload_left != r->payload_length) {
    return 0;
  }
  pyws_frame_current(io, iocb);
  return 1;
}

int pyws_frame_out_of_step(const pyws_frame_io *io) { return io->reader.out_of_step; }

static ssize_t on_recv(uint8_t *buf, size_t len, int flags, void *user) {
  (void)flags;
  return (ssize_t)hand_to_wslay(user, buf, len);
}

/* A masking key from the pool of random bytes (refilled as needed). */
static int draw_mask_key(pyws_frame_io *io, uint8_t key[4]) {
  if (io->pool_left < 4) {
    if (pyws_random_bytes(io->pool, sizeof(io->pool)) != 0) {
      return -1;
    }
    io->pool_left = sizeof(io->pool);
  }
  memcpy(key, io->pool + sizeof(io->pool) - io->pool_left, 4);
  io->pool_left -= 4;
  return 0;
}

int pyws_frame_context_new(wslay_frame_context_ptr *ctx, pyws_frame_io *io) {
  /* Parsing only: frames are never sent through wslay. */
  struct wslay_frame_callbacks cb = {NULL, on_recv, NULL};
  if (wslay_frame_context_init(ctx, &cb, io) != 0) {
    return PYWS_ERR_NOMEM;
  }
  io->reader.room = 0; /* learnt again from the new context's first call */
  return 0;
}

int pyws_frame_send(pyws_frame_io *io, uint8_t opcode, uint8_t rsv, const uint8_t *data,
                    size_t len, int mask) {
  pyws_buf *out = io->out;
  uint8_t header[PYWS_FRAME_MAX_HEADER];
  uint8_t key[4];
  size_t hlen;
  int rv;
  if ((opcode & 0x8) && len > 125) {
    return PYWS_ERR_INVALID_ARGUMENT;
  }
  /* The 64-bit length field has its top bit clear (section 5.2). */
  if (len > SIZE_MAX - PYWS_FRAME_MAX_HEADER || (uint64_t)len >> 63) {
    return PYWS_ERR_TOO_LARGE;
  }
  hlen = pyws_frame_header_encode(header, opcode, len);
  header[0] |= (uint8_t)((rsv & 7) << 4);
  if (mask) {
    if (draw_mask_key(io, key) != 0) {
      return PYWS_ERR_RANDOM;
    }
    header[1] |= 0x80;
    memcpy(header + hlen, key, 4);
    hlen += 4;
  }
  if ((rv = pyws_buf_reserve(out, hlen + len)) != 0) {
    return rv;
  }
  memcpy(out->data + out->len, header, hlen);
  out->len += hlen;
  if (len > 0) {
    if (mask) {
      unmask_copy(out->data + out->len, data, len, key, 0); /* XOR: masks too */
    } else {
      memcpy(out->data + out->len, data, len);
    }
    out->len += len;
  }
  return 0;
}

size_t pyws_frame_header_encode(uint8_t *hdr, uint8_t opcode, uint64_t len) {
  size_t n, i;
  hdr[0] = (uint8_t)(0x80 | (opcode & 0xf));
  if (len < 126) {
    hdr[1] = (uint8_t)len;
    return 2;
  }
  /* The shortest length encoding (section 5.2). */
  n = len <= 0xffff ? 2 : 8;
  hdr[1] = n == 2 ? 126 : 127;
  for (i = 0; i < n; i++) hdr[2 + i] = (uint8_t)(len >> (8 * (n - 1 - i)));
  return 2 + n;
}

int pyws_frame_encode(pyws_buf *out, uint8_t opcode, const uint8_t *data,
                      size_t len, int mask) {
  pyws_frame_io io;
  memset(&io, 0, sizeof(io));
  io.out = out;
  return pyws_frame_send(&io, opcode, 0, data, len, mask);
}
