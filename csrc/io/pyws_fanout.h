/*
 * Fan-out: one encoded frame written to many stream sockets without ever
 * blocking, so that a broadcast costs one system call per member instead of
 * a trip through each member's writer.
 */
#ifndef PYWS_FANOUT_H
#define PYWS_FANOUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Write `len` bytes at `data` to each of the `n` descriptors `fds` with
 * non-blocking sends (no SIGPIPE).  written[i] is what fds[i] took: `len`
 * (all of it), fewer bytes (its send buffer filled up, or the send failed
 * after some bytes went out: 0 when it took nothing), or -errno when the
 * first send failed (EPIPE, ECONNRESET, EBADF...).
 * Returns how many descriptors did not take the whole frame.
 */
size_t pyws_fanout(const uint8_t *data, size_t len, const int *fds, size_t n,
                   ssize_t *written);

#endif
