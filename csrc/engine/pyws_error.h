/*
 * Error codes of the pyws C engine.
 *
 * Every function of the engine returns 0 on success or one of these negative
 * codes, grouped by hundreds.  A peer's protocol violation is NOT an error
 * return: it is an outcome of pyws_conn_recv (a close frame and a FAIL
 * event).  Error returns mean misuse, exhausted memory or missing input.
 */
#ifndef PYWS_ERROR_H
#define PYWS_ERROR_H

enum {
  PYWS_OK = 0,
  /* -1xx: resources */
  PYWS_ERR_NOMEM = -100,
  PYWS_ERR_RANDOM = -101,     /* the system's random source failed */
  /* -2xx: misuse by the caller */
  PYWS_ERR_INVALID_ARGUMENT = -200,
  PYWS_ERR_CLOSED = -201,     /* a close frame was already sent */
  PYWS_ERR_TOO_LARGE = -202,  /* a length that cannot be represented */
  /* -3xx: parsing HTTP heads */
  PYWS_ERR_INCOMPLETE = -300, /* more input is needed */
  PYWS_ERR_HTTP_PARSE = -301, /* malformed head */
  PYWS_ERR_HTTP_TOO_LARGE = -302, /* head over the size or header-count limit */
  /* -4xx: socket I/O (pyws_sockio.h) */
  PYWS_ERR_WOULD_BLOCK = -400, /* the socket has nothing to read / no room */
  PYWS_ERR_IO = -401,          /* a system call failed: errno tells why */
  /* -5xx: a library (wslay, zlib) answered an error we did not expect */
  PYWS_ERR_WSLAY = -500,
  PYWS_ERR_ZLIB = -501         /* the same from zlib */
};

/* A static, human-readable description of an error code (never NULL). */
const char *pyws_strerror(int code);

#endif
