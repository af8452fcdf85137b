/*
 * Socket I/O for an engine whose transport is a plain connected stream
 * socket (TCP or Unix, no TLS): bytes go from recv() straight into the
 * engine and from the engine (or the caller's message) straight to send(),
 * with no intermediate copies in Python objects.  Nothing here blocks
 * (MSG_DONTWAIT): when the socket has nothing to read or no room, the
 * caller waits for it the way its program waits (gevent's hub, poll) and
 * calls again.  Writes never raise SIGPIPE (MSG_NOSIGNAL).
 *
 * The engine stays sans-I/O; this file is the one place that knows about
 * file descriptors.  The caller serialises writes (frames never
 * interleave): these functions only write when the caller holds its send
 * lock, and write queued output before anything new.
 */
#ifndef PYWS_SOCKIO_H
#define PYWS_SOCKIO_H

#include <stddef.h>
#include <stdint.h>

#include "pyws_conn.h"

/* Largest single read. */
#define PYWS_SOCKIO_READ_SIZE (64u << 10)

/* Read once from `fd` and feed the bytes to the engine.  0 with *nread set
 * (0 means EOF), PYWS_ERR_WOULD_BLOCK (nothing to read now), PYWS_ERR_IO
 * (errno tells why) or PYWS_ERR_NOMEM (from pyws_conn_recv). */
int pyws_sockio_recv(pyws_conn *conn, int fd, size_t *nread);

/* Write the engine's output until it is empty or the socket is full.  0
 * (pyws_conn_output tells what is left) or PYWS_ERR_IO (errno). */
int pyws_sockio_flush(pyws_conn *conn, int fd);

/* Send one data frame (`opcode` 1 text, 2 binary; text must be valid
 * UTF-8).  When nothing else waits to be written and the engine allows it
 * (pyws_conn_frame_header), header and payload go to the socket straight
 * from `data`, and only what the socket did not take is copied into the
 * engine's output; else the frame is queued and the output flushed.  0
 * (pyws_conn_output tells what is left to flush), or the engine's error
 * (PYWS_ERR_CLOSED, PYWS_ERR_NOMEM...), or PYWS_ERR_IO (errno). */
int pyws_sockio_send(pyws_conn *conn, int fd, uint8_t opcode, const uint8_t *data,
                     size_t len);

#endif
