/*
 * Unpredictable bytes from the operating system, for masking keys
 * (RFC 6455 section 5.3 asks for a strong source of entropy) and for
 * Sec-WebSocket-Key.
 */
#ifndef PYWS_RANDOM_H
#define PYWS_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fill `buf` with `len` random bytes.  0 or PYWS_ERR_RANDOM. */
int pyws_random_bytes(uint8_t *buf, size_t len);

#endif
