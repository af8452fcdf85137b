/*
 * The compression of permessage-deflate (RFC 7692 section 7.2) with zlib:
 * one compressor for the messages this side sends and one decompressor for
 * those it receives, each created on first use (a connection that never
 * sends or receives a compressed message pays nothing) and, when the
 * agreement says no context takeover for that direction, reset after each
 * message.
 */
#ifndef PYWS_DEFLATE_H
#define PYWS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "pyws_buf.h"
#include "pyws_pmd.h"

/* Outcomes of pyws_deflate_inflate besides 0 and PYWS_ERR_NOMEM. */
#define PYWS_INFLATE_TOO_LARGE 1 /* the message grew past the limit */
#define PYWS_INFLATE_BAD_DATA 2  /* not a valid DEFLATE stream */

typedef struct pyws_deflate pyws_deflate;

/* For one connection, the agreement `p`, in the role `server`; `level`
 * (0..9, or -1 for zlib's default) and `mem_level` (1..9) tune the
 * compressor.  0, PYWS_ERR_INVALID_ARGUMENT or PYWS_ERR_NOMEM. */
int pyws_deflate_new(pyws_deflate **d, const pyws_pmd_params *p, int server, int level,
                     int mem_level);
void pyws_deflate_free(pyws_deflate *d);

/* Whether messages this side sends are compressed.  Not when the peer
 * limited our window to 256 bytes (8 bits): zlib's raw DEFLATE cannot
 * compress within it, and a message may always go uncompressed. */
int pyws_deflate_compresses(const pyws_deflate *d);

/* Append the compressed form of one whole message to `out`, without the
 * final 00 00 ff ff that section 7.2.1 removes.  0 or PYWS_ERR_NOMEM. */
int pyws_deflate_compress(pyws_deflate *d, const uint8_t *data, size_t len, pyws_buf *out);

/* Decompress one chunk of a compressed message's payload, appending to
 * `out`; `last` marks the final chunk (section 7.2.2 appends 00 00 ff ff
 * then).  The message may not grow `out` past `limit` bytes (0: no limit),
 * and decompression stops as soon as it would: that bounds the memory a
 * small compressed message can claim.  0, PYWS_INFLATE_TOO_LARGE,
 * PYWS_INFLATE_BAD_DATA or PYWS_ERR_NOMEM. */
int pyws_deflate_inflate(pyws_deflate *d, const uint8_t *data, size_t len, int last,
                         pyws_buf *out, uint64_t limit);

#endif
