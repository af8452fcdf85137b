/*
 * Base64 with the standard alphabet and '=' padding (RFC 4648 section 4),
 * for Sec-WebSocket-Key and Sec-WebSocket-Accept.
 */
#ifndef PYWS_BASE64_H
#define PYWS_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode n bytes, without the terminating NUL. */
#define PYWS_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Encode `len` bytes into `out`, which must hold
 * PYWS_BASE64_ENCODED_LEN(len) + 1 bytes; NUL-terminates.  Returns the
 * number of characters written (without the NUL). */
size_t pyws_base64_encode(const uint8_t *in, size_t len, char *out);

/* Decode canonical, padded base64 (length a multiple of 4, unused bits of
 * the last group zero, no whitespace) into `out`, which must hold
 * len / 4 * 3 bytes.  Returns the decoded length, or -1 if the input is not
 * canonical base64. */
long pyws_base64_decode(const char *in, size_t len, uint8_t *out);

#endif
