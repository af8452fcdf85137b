/*
 * Frames between memory and wslay's frame layer.
 *
 * wslay's frame API parses what its recv callback gives it.  pyws_frame_io
 * is what that callback sees: the input bytes the reader may take; and,
 * for sending, the buffer encoded frames are appended to and a pool of
 * random bytes for masking keys.  Frames are encoded here, not by wslay's
 * sender, which needs a frame context (4 KiB with its input buffer) and
 * masks byte by byte; the connection engine and the one-shot encoder (used
 * for broadcast: one frame encoded once, the same bytes written to many
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
 * The input side of the frame layer, between the caller's bytes and wslay:
 * the reader.  What it hands wslay, and why wslay's view of the stream is
 * then known exactly, is stated in one place: "wslay" in pyws_conn.h.
 */
typedef struct pyws_frame_reader {
  uint8_t header[PYWS_FRAME_MAX_HEADER]; /* the next header, as it arrives */
  size_t have;            /* header bytes collected */
  size_t need;            /* header length (2 until the second byte is seen) */
  /* The current frame: the one whose header wslay was handed last. */
  uint8_t first;          /* its first byte (FIN, RSV, opcode) */
  int masked;
  uint8_t key[4];         /* its masking key */
  uint64_t payload_length;
  uint64_t payload_left;  /* payload bytes not yet handed or taken */
  uint64_t offset;        /* payload bytes unmasked so far (key phase) */
  int bypass;             /* its payload is for pyws_frame_take_payload;
                             wslay was handed its header with length 0 */
  int expect_masked;      /* server role: frames must be masked */
  int wrong_mask;         /* a frame broke the masking rule; it and all that
                             follows were withheld from wslay */
  size_t room;            /* what wslay's recv callback may write, as on a
                             fresh context (its whole input buffer); 0
                             until the first call */
  int out_of_step;        /* wslay asked for bytes while holding some:
                             nothing more is handed (never expected) */
} pyws_frame_reader;

typedef struct pyws_frame_io {
  pyws_buf *out;       /* encoded frames are appended here */
  const uint8_t *in;   /* bytes the parser may still read */
  size_t in_len;
  uint8_t pool[64];    /* random bytes for masking keys */
  size_t pool_left;
  pyws_frame_reader reader;
} pyws_frame_io;

/* The current frame as sent (fin, rsv, opcode, mask, its true
 * payload_length; no data).  Every frame wslay reports is this one. */
void pyws_frame_current(const pyws_frame_io *io, struct wslay_frame_iocb *iocb);

/* After wslay answered WSLAY_ERR_WANT_READ: 1 and the frame in `iocb` (as
 * pyws_frame_current) if wslay took the current frame's header and waits
 * for its first payload byte (wslay reports a frame only with payload
 * bytes); else 0. */
int pyws_frame_pending_header(const pyws_frame_io *io, struct wslay_frame_iocb *iocb);

/* The payload bytes still to take of a frame whose payload bypasses wslay
 * (0 when there is none). */
uint64_t pyws_frame_payload_left(const pyws_frame_io *io);

/* Take up to `max` payload bytes of that frame from the input, unmasked
 * into `dst`; returns how many (0 when the input is exhausted). */
size_t pyws_frame_take_payload(pyws_frame_io *io, uint8_t *dst, size_t max);

/* 1 if wslay was ever seen holding bytes it had not consumed when it asked
 * for more (pyws_conn then fails the connection with 1011). */
int pyws_frame_out_of_step(const pyws_frame_io *io);

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
