/*
 * Socket I/O over a plain file descriptor (see pyws_sockio.h).
 *
 * Reads land in a stack buffer the engine consumes before returning (it
 * keeps no pointer into its input), so a connection holds no read buffer
 * while it waits.  Small frames are copied next to their header and sent
 * with one send(); large ones go out with sendmsg() from two pieces, the
 * header and the caller's own payload.
 */
#define _GNU_SOURCE
#include "pyws_sockio.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "pyws_error.h"
#include "pyws_frame.h"

/* Up to this payload size a frame is copied next to its header: one plain
 * send() is cheaper than gathering two pieces. */
#define COPY_MAX 2048

static int would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

int pyws_sockio_recv(pyws_conn *c, int fd, size_t *nread) {
  uint8_t buf[PYWS_SOCKIO_READ_SIZE];
  ssize_t n;
  *nread = 0;
  do {
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return would_block(errno) ? PYWS_ERR_WOULD_BLOCK : PYWS_ERR_IO;
  }
  *nread = (size_t)n;
  return n > 0 ? pyws_conn_recv(c, buf, (size_t)n) : 0;
}

/* One non-blocking send of `len` bytes: how many went, or -1 (errno). */
static ssize_t send_some(int fd, const struct iovec *iov, int iovcnt) {
  struct msghdr msg;
  ssize_t n;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = (struct iovec *)iov;
  msg.msg_iovlen = (size_t)iovcnt;
  do {
    n = iovcnt == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL)
                    : sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && would_block(errno)) {
    return 0;
  }
  return n;
}

int pyws_sockio_flush(pyws_conn *c, int fd) {
  for (;;) {
    struct iovec iov;
    size_t len;
    ssize_t n;
    iov.iov_base = (void *)pyws_conn_output(c, &len);
    iov.iov_len = len;
    if (len == 0) {
      return 0;
    }
    if ((n = send_some(fd, &iov, 1)) < 0) {
      return PYWS_ERR_IO;
    }
    pyws_conn_consume_output(c, (size_t)n);
    if ((size_t)n < len) {
      return 0; /* the socket is full: the caller waits */
    }
  }
}

/* Write header + payload; keep in the engine what the socket did not take. */
static int write_frame(pyws_conn *c, int fd, const uint8_t *hdr, size_t hlen,
                       const uint8_t *data, size_t len) {
  uint8_t small[PYWS_FRAME_MAX_HEADER + COPY_MAX];
  struct iovec iov[2];
  int iovcnt = 1;
  ssize_t n;
  size_t sent;
  int rv;
  if (len <= COPY_MAX) {
    memcpy(small, hdr, hlen);
    if (len > 0) {
      memcpy(small + hlen, data, len);
    }
    iov[0].iov_base = small;
    iov[0].iov_len = hlen + len;
  } else {
    iov[0].iov_base = (void *)hdr;
    iov[0].iov_len = hlen;
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    iovcnt = 2;
  }
  if ((n = send_some(fd, iov, iovcnt)) < 0) {
    return PYWS_ERR_IO;
  }
  sent = (size_t)n;
  if (sent < hlen && (rv = pyws_conn_append_output(c, hdr + sent, hlen - sent)) != 0) {
    return rv;
  }
  sent = sent > hlen ? sent - hlen : 0;
  if (sent < len) {
    return pyws_conn_append_output(c, data + sent, len - sent);
  }
  return 0;
}

int pyws_sockio_send(pyws_conn *c, int fd, uint8_t opcode, const uint8_t *data,
                     size_t len) {
  uint8_t hdr[PYWS_FRAME_MAX_HEADER];
  size_t hlen, queued;
  int rv;
  pyws_conn_output(c, &queued);
  if (queued == 0) {
    rv = pyws_conn_frame_header(c, opcode, len, hdr, &hlen);
    if (rv < 0) {
      return rv;
    }
    if (rv == 0) {
      return write_frame(c, fd, hdr, hlen, data, len);
    }
  }
  rv = opcode == 1 ? pyws_conn_send_text(c, data, len) : pyws_conn_send_binary(c, data, len);
  if (rv != 0) {
    return rv;
  }
  return pyws_sockio_flush(c, fd);
}
