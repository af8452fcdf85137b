/*
 * SHA-1 as specified by FIPS 180-4 section 6.1: 512-bit blocks, 80 rounds,
 * big-endian words, length in bits appended after the 0x80 padding byte.
 */
#include "pyws_sha1.h"

#include <string.h>

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void compress(uint32_t h[5], const uint8_t p[64]) {
  uint32_t w[80], a, b, c, d, e, f, k, t;
  int i;
  for (i = 0; i < 16; i++) {
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  }
  for (i = 16; i < 80; i++) {
    w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  }
  a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (i = 0; i < 80; i++) {
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999u;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1u;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdcu;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6u;
    }
    t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(b, 30);
    b = a;
    a = t;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

void pyws_sha1_init(pyws_sha1 *s) {
  s->h[0] = 0x67452301u;
  s->h[1] = 0xefcdab89u;
  s->h[2] = 0x98badcfeu;
  s->h[3] = 0x10325476u;
  s->h[4] = 0xc3d2e1f0u;
  s->total = 0;
  s->used = 0;
}

void pyws_sha1_update(pyws_sha1 *s, const void *data, size_t len) {
  const uint8_t *p = data;
  s->total += len;
  if (s->used > 0) {
    size_t take = 64 - s->used < len ? 64 - s->used : len;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    len -= take;
    if (s->used < 64) {
      return;
    }
    compress(s->h, s->block);
    s->used = 0;
  }
  for (; len >= 64; p += 64, len -= 64) {
    compress(s->h, p);
  }
  memcpy(s->block, p, len);
  s->used = len;
}

void pyws_sha1_final(pyws_sha1 *s, uint8_t digest[PYWS_SHA1_DIGEST_SIZE]) {
  uint64_t bits = s->total * 8;
  int i;
  s->block[s->used++] = 0x80;
  if (s->used > 56) {
    memset(s->block + s->used, 0, 64 - s->used);
    compress(s->h, s->block);
    s->used = 0;
  }
  memset(s->block + s->used, 0, 56 - s->used);
  for (i = 0; i < 8; i++) {
    s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  }
  compress(s->h, s->block);
  for (i = 0; i < 5; i++) {
    digest[4 * i] = (uint8_t)(s->h[i] >> 24);
    digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
    digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
    digest[4 * i + 3] = (uint8_t)s->h[i];
  }
}

void pyws_sha1_digest(const void *data, size_t len,
                      uint8_t digest[PYWS_SHA1_DIGEST_SIZE]) {
  pyws_sha1 s;
  pyws_sha1_init(&s);
  pyws_sha1_update(&s, data, len);
  pyws_sha1_final(&s, digest);
}
