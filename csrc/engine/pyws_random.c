/* getrandom(2) where available, else /dev/urandom (see pyws_random.h). */
#define _GNU_SOURCE
#include "pyws_random.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/random.h>
#define HAVE_GETRANDOM 1
#endif

#include "pyws_error.h"

static int from_urandom(uint8_t *buf, size_t len) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return PYWS_ERR_RANDOM;
  }
  while (len > 0) {
    ssize_t n = read(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return PYWS_ERR_RANDOM;
    }
    buf += n;
    len -= (size_t)n;
  }
  close(fd);
  return 0;
}

int pyws_random_bytes(uint8_t *buf, size_t len) {
#ifdef HAVE_GETRANDOM
  while (len > 0) {
    ssize_t n = getrandom(buf, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return from_urandom(buf, len);
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
#else
  return from_urandom(buf, len);
#endif
}
