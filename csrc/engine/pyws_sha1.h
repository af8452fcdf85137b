/*
 * SHA-1 (FIPS 180-4), needed only for Sec-WebSocket-Accept.  SHA-1 is broken
 * for collision resistance but RFC 6455 uses it as a fixed transform, not
 * for security.
 */
#ifndef PYWS_SHA1_H
#define PYWS_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define PYWS_SHA1_DIGEST_SIZE 20

typedef struct pyws_sha1 {
  uint32_t h[5];
  uint64_t total;    /* bytes hashed so far */
  uint8_t block[64]; /* pending partial block */
  size_t used;       /* bytes in block */
} pyws_sha1;

void pyws_sha1_init(pyws_sha1 *s);
void pyws_sha1_update(pyws_sha1 *s, const void *data, size_t len);
void pyws_sha1_final(pyws_sha1 *s, uint8_t digest[PYWS_SHA1_DIGEST_SIZE]);

/* One-shot helper. */
void pyws_sha1_digest(const void *data, size_t len,
                      uint8_t digest[PYWS_SHA1_DIGEST_SIZE]);

#endif
