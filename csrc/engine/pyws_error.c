/* Descriptions of the engine's error codes (see pyws_error.h). */
#include "pyws_error.h"

const char *pyws_strerror(int code) {
  switch (code) {
  case PYWS_OK: return "success";
  case PYWS_ERR_NOMEM: return "out of memory";
  case PYWS_ERR_RANDOM: return "the system random source failed";
  case PYWS_ERR_INVALID_ARGUMENT: return "invalid argument";
  case PYWS_ERR_CLOSED: return "a close frame was already sent";
  case PYWS_ERR_TOO_LARGE: return "length too large";
  case PYWS_ERR_INCOMPLETE: return "incomplete input";
  case PYWS_ERR_HTTP_PARSE: return "malformed HTTP head";
  case PYWS_ERR_HTTP_TOO_LARGE: return "HTTP head too large";
  case PYWS_ERR_WOULD_BLOCK: return "the operation would block";
  case PYWS_ERR_IO: return "socket I/O failed";
  case PYWS_ERR_WSLAY: return "unexpected error from wslay";
  case PYWS_ERR_ZLIB: return "unexpected error from zlib";
  default: return "unknown error";
  }
}
