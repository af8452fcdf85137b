/*
 * Fan-out of one frame to many sockets (see pyws_fanout.h).
 */
#define _GNU_SOURCE /* MSG_NOSIGNAL */
#include "pyws_fanout.h"

#include <errno.h>
#include <sys/socket.h>

/* As much of the frame as `fd` takes now: see written[i] in the header. */
static ssize_t write_now(int fd, const uint8_t *data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t r = send(fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      off += (size_t)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else if (off > 0) {
      /* Failed half-way through the frame: what went out counts, so that
       * the caller writes the rest (the error shows again then) and never
       * repeats bytes already sent. */
      break;
    } else {
      return r < 0 ? -(ssize_t)errno : -(ssize_t)EPIPE;
    }
  }
  return (ssize_t)off;
}

size_t pyws_fanout(const uint8_t *data, size_t len, const int *fds, size_t n,
                   ssize_t *written) {
  size_t short_count = 0;
  for (size_t i = 0; i < n; i++) {
    written[i] = write_now(fds[i], data, len);
    if (written[i] != (ssize_t)len) short_count++;
  }
  return short_count;
}
