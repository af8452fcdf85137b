/*
 * Frames between memory and wslay's frame layer.
 *
 * wslay's frame API parses what its recv callback gives it.  pyws_frame_io
 * is what that callback sees: the input bytes the parser may read; and, for
 * sending, the buffer encoded frames are appended to and a pool of random
 * bytes for masking keys.  Frames are encoded here, not by wslay's sender,
 * which needs a frame context (4 KiB with its input buffer) and masks byte
 * by byte; the connection engine and the one-shot encoder (used for
 * broadcast: one frame encoded once, the same bytes written to many
 * sockets) share the encoder.
 */
#ifndef PYWS_FRAME_H
#define PYWS_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "pyws_buf.h"

/* Largest frame header: 2 bytes, 8 of extended length, 4 of masking key. */
#define PYWS_FRAME_MAX_HEADER 14

/*
 * The input side of the frame layer, between the caller's bytes and wslay.
 *
 * wslay unmasks payloads one byte at a time, which dominates the cost of
 * large messages.  So the reader decodes each frame header itself, checks
 * the masking direction, and hands wslay the header with the mask bit and
 * key removed, followed by the payload unmasked eight bytes at a time.
 * wslay still parses and validates every header (lengths, control frames)
 * and frames the payloads of control frames; it never sees a mask.
 *
 * It also keeps the last header, because wslay reports a frame only once a
 * byte of its payload is there: a header that arrives alone can be checked
 * at once (pyws_frame_pending_header).
 *
 * A data frame's payload does not go through wslay at all: wslay would copy
 * it into its 4 KiB input buffer and hand it out from there, one buffer at
 * a time, and the engine would copy it again into the message.  wslay gets
 * the frame's header with a payload length of 0 (opcode, FIN and RSV bits
 * as sent), reports the frame, and the engine then takes the payload with
 * pyws_frame_take_payload, unmasked straight into the message.  A header
 * whose length is not minimally encoded goes to wslay as sent, so that wslay
 * refuses it as before.
 */
typedef struct pyws_frame_reader {
  uint8_t header[PYWS_FRAME_MAX_HEADER];
  size_t have;            /* header bytes collected */
  size_t need;            /* header length (2 until the second byte is seen) */
  uint8_t out[PYWS_FRAME_MAX_HEADER - 4]; /* the header as wslay gets it */
  size_t out_len, out_pos;
  int in_payload;         /* the header is complete, payload bytes follow */
  uint64_t payload_length;
  uint64_t payload_left;
  uint8_t key[4];         /* masking key of the current frame */
  int masked;
  uint64_t offset;        /* payload bytes unmasked so far (key phase) */
  int expect_masked;      /* server role: frames must be masked */
  int wrong_mask;         /* a frame broke the masking rule; it and all that
                             follows were withheld from wslay */
  uint64_t handed;        /* bytes given to wslay so far (headers as
                             rewritten, payloads) */
  int bypass;             /* the current frame's payload is for
                             pyws_frame_take_payload, not wslay */
} pyws_frame_reader;

typedef struct pyws_frame_io {
  pyws_buf *out;       /* encoded frames are appended here */
  const uint8_t *in;   /* bytes the parser may still read */
  size_t in_len;
  uint8_t pool[64];    /* random bytes for masking keys */
  size_t pool_left;
  pyws_frame_reader reader;
} pyws_frame_io;

/* If the bytes given to wslay end with a complete frame header and none of
 * its payload, describe that frame in `iocb` (fin, rsv, opcode, mask as
 * sent, payload_length; no data) and return 1; else 0. */
int pyws_frame_pending_header(const pyws_frame_io *io, struct wslay_frame_iocb *iocb);

/* The payload bytes still to take of a frame whose payload bypasses wslay
 * (0 when there is none). */
uint64_t pyws_frame_payload_left(const pyws_frame_io *io);

/* Take up to `max` payload bytes of that frame from the input, unmasked
 * into `dst`; returns how many (0 when the input is exhausted). */
size_t pyws_frame_take_payload(pyws_frame_io *io, uint8_t *dst, size_t max);

/* Create a wslay frame context reading through `io` (which must outlive
 * it); for parsing only.  0 or PYWS_ERR_NOMEM.  Free with
 * wslay_frame_context_free. */
int pyws_frame_context_new(wslay_frame_context_ptr *ctx, pyws_frame_io *io);

/* Append one complete frame (FIN set) to io->out.  `rsv`: the reserved
 * bits (WSLAY_RSV1_BIT marks a compressed message; 0 without extensions).
 * `mask`: 1 for a client frame (a fresh random masking key), 0 for a server
 * frame.  0, PYWS_ERR_NOMEM, PYWS_ERR_TOO_LARGE, PYWS_ERR_RANDOM or
 * PYWS_ERR_INVALID_ARGUMENT (control frame over 125 bytes). */
int pyws_frame_send(pyws_frame_io *io, uint8_t opcode, uint8_t rsv, const uint8_t *data,
                    size_t len, int mask);

/* Write the header of an unmasked frame with FIN set, RSV clear and `len`
 * payload bytes into `hdr` (room for PYWS_FRAME_MAX_HEADER bytes); returns
 * its length.  The same bytes pyws_frame_send would produce. */
size_t pyws_frame_header_encode(uint8_t *hdr, uint8_t opcode, uint64_t len);

/* One-shot: append one complete frame, RSV clear, to `out`. */
int pyws_frame_encode(pyws_buf *out, uint8_t opcode, const uint8_t *data,
                      size_t len, int mask);

#endif
