/*
 * wslay's recv callback over memory, and the frame encoder (see
 * pyws_frame.h).
 *
 * The recv callback is the reader described in pyws_frame.h: wslay gets
 * headers without masks and payloads already unmasked.  The encoder writes
 * RFC 6455 section 5.2 frames with the shortest length encoding, as wslay's
 * sender did, into room reserved up front for the whole frame.
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

/* A header is complete: check its masking, then prepare what wslay gets. */
static void header_done(pyws_frame_reader *r) {
  uint8_t len7 = r->header[1] & 0x7f;
  size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  uint64_t n = len7;
  size_t i;
  r->masked = (r->header[1] & 0x80) != 0;
  if (r->masked != r->expect_masked) {
    r->wrong_mask = 1;
    return;
  }
  if (ext) {
    n = 0;
    for (i = 0; i < ext; i++) n = n << 8 | r->header[2 + i];
  }
  if (r->masked) memcpy(r->key, r->header + 2 + ext, 4);
  r->out[0] = r->header[0];
  r->out[1] = len7; /* mask bit cleared */
  memcpy(r->out + 2, r->header + 2, ext);
  r->out_len = 2 + ext;
  r->out_pos = 0;
  r->payload_length = r->payload_left = n;
  r->offset = 0;
  r->in_payload = n > 0;
  r->have = 0;
  r->need = 2;
  /* A data frame with a payload and a well-formed length: wslay gets its
   * header with length 0, the engine its payload (see pyws_frame.h). */
  r->bypass = !(r->header[0] & 0x08) && n > 0 && length_is_minimal(len7, n);
  if (r->bypass) {
    r->out[1] = 0;
    r->out_len = 2;
  }
}

/* Fill wslay's buffer (`buf`, `len`) from the caller's input: headers
 * rewritten, payloads unmasked.  Returns the bytes written. */
static size_t read_frames(pyws_frame_io *io, uint8_t *buf, size_t len) {
  pyws_frame_reader *r = &io->reader;
  size_t n = 0;
  while (n < len && !r->wrong_mask) {
    if (r->out_pos < r->out_len) {
      size_t take = r->out_len - r->out_pos < len - n ? r->out_len - r->out_pos : len - n;
      memcpy(buf + n, r->out + r->out_pos, take);
      r->out_pos += take;
      n += take;
    } else if (io->in_len == 0 || (r->in_payload && r->bypass)) {
      break; /* out of input, or a payload that bypasses wslay */
    } else if (r->in_payload) {
      size_t take = len - n < io->in_len ? len - n : io->in_len;
      if (take > r->payload_left) take = (size_t)r->payload_left;
      if (r->masked) {
        unmask_copy(buf + n, io->in, take, r->key, r->offset);
      } else {
        memcpy(buf + n, io->in, take);
      }
      io->in += take;
      io->in_len -= take;
      n += take;
      r->offset += take;
      r->payload_left -= take;
      if (r->payload_left == 0) r->in_payload = 0;
    } else {
      if (r->need == 0) r->need = 2;
      r->header[r->have++] = *io->in++;
      io->in_len--;
      if (r->have == 2) {
        uint8_t len7 = r->header[1] & 0x7f;
        r->need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((r->header[1] & 0x80) ? 4 : 0);
      }
      if (r->have == r->need) header_done(r);
    }
  }
  return n;
}

uint64_t pyws_frame_payload_left(const pyws_frame_io *io) {
  const pyws_frame_reader *r = &io->reader;
  return r->bypass && r->in_payload && r->out_pos == r->out_len ? r->payload_left : 0;
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
    r->in_payload = 0;
    r->bypass = 0;
  }
  return take;
}

int pyws_frame_pending_header(const pyws_frame_io *io, struct wslay_frame_iocb *iocb) {
  const pyws_frame_reader *r = &io->reader;
  if (!r->in_payload || r->bypass || r->payload_left != r->payload_length ||
      r->out_pos < r->out_len) {
    return 0;
  }
  memset(iocb, 0, sizeof(*iocb));
  iocb->fin = (r->out[0] >> 7) & 1;
  iocb->rsv = (r->out[0] >> 4) & 7;
  iocb->opcode = r->out[0] & 0xf;
  iocb->mask = (uint8_t)r->masked;
  iocb->payload_length = r->payload_length;
  return 1;
}

static ssize_t on_recv(uint8_t *buf, size_t len, int flags, void *user) {
  pyws_frame_io *io = user;
  size_t n = read_frames(io, buf, len);
  (void)flags;
  io->reader.handed += n;
  /* 0 makes wslay answer WSLAY_ERR_WANT_READ. */
  return (ssize_t)n;
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
