/*
 * The WebSocket protocol engine for one connection, after the opening
 * handshake (RFC 6455 sections 5 to 7).  Sans-I/O: the caller feeds bytes
 * it read with pyws_conn_recv, takes events with pyws_conn_next_event and
 * writes what pyws_conn_output holds.  It never touches a socket, a clock
 * or a thread; one connection must not be used by two threads at once.
 *
 * A peer's protocol violation is an outcome, not an error return: the
 * engine queues a close frame with the code (1002, 1007 or 1009) and a
 * reason, emits a FAIL event and stops reading (the same with 1011 if wslay
 * ever lost step with the input, which is never expected: see "wslay"
 * below).  Error returns mean misuse or exhausted memory.
 */
/*
 * wslay
 *
 * The one place that says what wslay does for the engine, and why the
 * engine knows exactly what wslay has seen of the input.  Only wslay's
 * frame parser is used (wslay_frame_context_init, wslay_frame_recv,
 * wslay_frame_context_free, as in Debian's libwslay 1.1.1), fed through
 * its recv callback by the reader in pyws_frame.c.
 *
 * What wslay does for us:
 *  - it parses the frame headers the reader hands it (FIN, RSV, opcode,
 *    payload length) and reports each frame as a wslay_frame_iocb;
 *  - it refuses (WSLAY_ERR_PROTO; the engine then fails the connection
 *    with 1002) a control frame with FIN clear or a length over 125, an
 *    extended length that is not minimally encoded, and a 64-bit length
 *    with its top bit set;
 *  - it frames the payload of control frames (125 bytes at most), which
 *    it hands back in one piece or more.
 * Every header wslay accepts is therefore 2 bytes long: an extended length
 * reaches it only when it is not minimally encoded (see below).
 *
 * What it does not do:
 *  - see a masking key: the reader decodes every header itself, checks
 *    the masking direction (1002 when wrong; that frame and what follows
 *    never reach wslay), and hands wslay the header without its mask bit
 *    and key; it unmasks payloads itself, 32 or 16 bytes a step with SIMD,
 *    else 8 (wslay unmasks one byte at a time);
 *  - see a data payload: a data frame with a payload and a minimally
 *    encoded length reaches wslay as its header with length 0 (FIN, RSV
 *    and opcode as sent), which wslay reports at once; the engine then
 *    takes the payload from the caller's input, unmasked straight into
 *    the message (pyws_frame_take_payload: one copy instead of two, no
 *    call into wslay per 4 KiB).  A data frame header whose length is not
 *    minimally encoded goes to wslay as sent, and wslay refuses it;
 *  - send (pyws_frame_send encodes our frames: wslay's sender needs a
 *    frame context and masks byte by byte), or check anything above
 *    the frame (opcodes, RSV bits, continuation order, UTF-8, close codes
 *    and reasons, sizes: pyws_conn.c).
 *
 * Why wslay's view of the input is known exactly, with no bookkeeping of
 * how many bytes it may have taken:
 *  1. Each call of the recv callback is given ONE of: the next frame's
 *     whole header (as above), or payload bytes of the current frame when
 *     its payload goes through wslay (a control frame's, unmasked).  Never
 *     bytes of two frames, never part of a header.
 *  2. wslay_frame_recv asks for bytes only when it cannot go on with those
 *     it holds: fewer than a header's, or none of a payload it is in.  As
 *     headers come whole, it has then consumed every byte it was handed.
 *     The reader checks this on every call rather than trusting it: wslay
 *     moves what it holds to the front of its input buffer before asking,
 *     so the room it offers is the buffer less what it holds, and that
 *     room must be the room of the context's first call (an empty buffer).
 *     Were it ever not, the reader would hand nothing more and the engine
 *     fail the connection with 1011 (fuzz_frames aborts on a 1011).
 *  3. So every frame wslay reports is the reader's current frame, the one
 *     whose header it was handed last: its true payload length is the
 *     reader's (pyws_frame_current), whether wslay saw that length or 0,
 *     and the engine checks that wslay's report matches it (opcode, FIN,
 *     RSV, length; 1011 otherwise).  When wslay answers
 *     WSLAY_ERR_WANT_READ it holds no byte: if the header handed last has
 *     a payload for wslay and none of it was handed yet, wslay took that
 *     header and waits; as wslay reports a frame only with payload bytes,
 *     the engine checks that header at once (pyws_frame_pending_header).
 *     And between frames wslay's context holds nothing but an empty
 *     buffer, so the engine frees it (4 KiB) until bytes arrive again.
 */
#ifndef PYWS_CONN_H
#define PYWS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "pyws_pmd.h"

#define PYWS_DEFAULT_MAX_MESSAGE_SIZE (1u << 20)
#define PYWS_MAX_CLOSE_REASON 123

typedef struct pyws_conn pyws_conn;

typedef struct pyws_conn_options {
  int server;                /* 1: server role, 0: client role */
  uint64_t max_message_size; /* largest message accepted (decompressed,
                                when compressed); 0 = no limit */
  /* permessage-deflate as the handshake agreed it, or NULL: no extension
   * (a frame with RSV1 set then fails the connection). */
  const pyws_pmd_params *deflate;
  int deflate_level;         /* zlib level, 0..9 or -1 (zlib's default) */
  int deflate_mem_level;     /* zlib memLevel, 1..9 */
} pyws_conn_options;

typedef enum pyws_event_type {
  PYWS_EVENT_TEXT = 1,    /* a whole text message, valid UTF-8 */
  PYWS_EVENT_BINARY = 2,  /* a whole binary message */
  PYWS_EVENT_CLOSE = 8,   /* the peer's close frame; code 1005 if it had none */
  PYWS_EVENT_PING = 9,    /* a ping; its pong is already queued */
  PYWS_EVENT_PONG = 10,   /* a pong */
  PYWS_EVENT_FAIL = 16    /* the peer broke the protocol; code and reason */
} pyws_event_type;

typedef struct pyws_event {
  struct pyws_event *next; /* internal */
  pyws_event_type type;
  uint16_t code;           /* CLOSE and FAIL */
  const uint8_t *data;     /* payload, or the close/fail reason */
  size_t len;
  int ascii;               /* TEXT: every byte is ASCII */
  uint8_t *alloc;          /* internal: what pyws_event_free releases */
} pyws_event;

typedef enum pyws_conn_state {
  PYWS_STATE_OPEN = 1,
  PYWS_STATE_CLOSING = 2, /* a close frame was sent or received, not both */
  PYWS_STATE_CLOSED = 3   /* both, or failed, or EOF */
} pyws_conn_state;

/* Create an engine.  0, PYWS_ERR_NOMEM or PYWS_ERR_INVALID_ARGUMENT (bad
 * deflate settings).  `opts` NULL means a server with the default maximum
 * message size and no extension. */
int pyws_conn_new(pyws_conn **conn, const pyws_conn_options *opts);
void pyws_conn_free(pyws_conn *conn);

/* Feed `len` bytes read from the peer (any split).  Ignored once the engine
 * stopped reading (close received, failed, EOF).  0 or PYWS_ERR_NOMEM (the
 * engine is then unusable: free it). */
int pyws_conn_recv(pyws_conn *conn, const uint8_t *data, size_t len);

/* The peer closed its side of the transport. */
void pyws_conn_recv_eof(pyws_conn *conn);

/* Pop the oldest event: 1 and *ev set (free it with pyws_event_free), 0
 * when there is none, or PYWS_ERR_NOMEM (the event stays queued).
 *
 * Order: a close frame the engine owes the peer (the echo of its close, or
 * ours after its protocol violation) that arrives while data messages
 * received before it are still queued is held: it is written when its CLOSE
 * or FAIL event is taken, so that the application gets those messages first
 * and what it sends in reply precedes the close frame.  Until then the state
 * is OPEN and pyws_conn_close_code 0, as far as the caller can tell. */
int pyws_conn_next_event(pyws_conn *conn, pyws_event **ev);
void pyws_event_free(pyws_event *ev);

/* The oldest event without taking it (NULL when there is none); valid until
 * the next call on `conn`. */
const pyws_event *pyws_conn_peek_event(const pyws_conn *conn);

/* Queue one frame each (data messages compressed when permessage-deflate
 * was agreed).  Text must be valid UTF-8 (the caller checks, see
 * pyws_utf8_valid).  0, PYWS_ERR_CLOSED once a close frame was sent,
 * PYWS_ERR_INVALID_ARGUMENT (control payload over 125 bytes), PYWS_ERR_NOMEM,
 * PYWS_ERR_RANDOM (client: no masking key). */
int pyws_conn_send_text(pyws_conn *conn, const uint8_t *data, size_t len);
int pyws_conn_send_binary(pyws_conn *conn, const uint8_t *data, size_t len);
int pyws_conn_send_ping(pyws_conn *conn, const uint8_t *data, size_t len);
int pyws_conn_send_pong(pyws_conn *conn, const uint8_t *data, size_t len);

/* Send a close frame.  `code` 1005 sends none (then reason_len must be 0);
 * else it must be valid to send (pyws_close_code_is_valid) and the reason
 * valid UTF-8 of at most 123 bytes: PYWS_ERR_INVALID_ARGUMENT otherwise. */
int pyws_conn_send_close(pyws_conn *conn, uint16_t code, const uint8_t *reason,
                         size_t reason_len);

/* 1 if `code` may appear in a close frame on the wire: 1000-1003,
 * 1007-1014, 3000-4999. */
int pyws_close_code_is_valid(unsigned code);

/* For writing a frame straight from the caller's buffer (pyws_sockio.c):
 * the header of one complete frame of `len` payload bytes, in `hdr` (room
 * for PYWS_FRAME_MAX_HEADER bytes), *hdr_len set.  0: the caller must now
 * write the header and the payload, before any other output (the output
 * buffer must be empty; pyws_conn_append_output takes what the socket did
 * not).  1: this connection cannot send that way (client frames are
 * masked one by one; a data message is compressed when permessage-deflate
 * is on): use pyws_conn_send_*.  PYWS_ERR_CLOSED once a close
 * frame was sent. */
int pyws_conn_frame_header(pyws_conn *conn, uint8_t opcode, size_t len, uint8_t *hdr,
                           size_t *hdr_len);
/* Append bytes of a frame begun with pyws_conn_frame_header that the socket
 * did not take.  0 or PYWS_ERR_NOMEM. */
int pyws_conn_append_output(pyws_conn *conn, const uint8_t *data, size_t len);

/* Bytes waiting to be written; valid until the next call on `conn`. */
const uint8_t *pyws_conn_output(const pyws_conn *conn, size_t *len);
/* The caller wrote `n` of them. */
void pyws_conn_consume_output(pyws_conn *conn, size_t n);

pyws_conn_state pyws_conn_get_state(const pyws_conn *conn);
int pyws_conn_is_server(const pyws_conn *conn);
/* 1 if permessage-deflate is in use on this connection. */
int pyws_conn_deflate(const pyws_conn *conn);
uint64_t pyws_conn_max_message_size(const pyws_conn *conn);
int pyws_conn_close_sent(const pyws_conn *conn);
int pyws_conn_close_received(const pyws_conn *conn);
/* The close code: the peer's (1005 if none), ours after a failure, 1006
 * after EOF without a close frame; 0 while none of these happened. */
uint16_t pyws_conn_close_code(const pyws_conn *conn);
/* The close reason matching pyws_conn_close_code (may be empty). */
const uint8_t *pyws_conn_close_reason(const pyws_conn *conn, size_t *len);

#endif
