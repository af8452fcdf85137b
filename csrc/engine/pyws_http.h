/*
 * A strict, allocation-free parser for HTTP/1.x message heads (the request
 * line or status line and the header fields, RFC 9112), enough for the
 * WebSocket opening handshake.  Parsed strings point into the caller's
 * buffer, which must outlive the result.
 */
#ifndef PYWS_HTTP_H
#define PYWS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define PYWS_HTTP_MAX_HEADERS 100

typedef struct pyws_str {
  const char *ptr;
  size_t len;
} pyws_str;

typedef struct pyws_http_header {
  pyws_str name;
  pyws_str value; /* leading and trailing whitespace removed */
} pyws_http_header;

typedef struct pyws_http_head {
  pyws_str method;  /* requests only */
  pyws_str target;  /* requests only */
  int status;       /* responses only */
  pyws_str reason;  /* responses only */
  int version_major, version_minor;
  pyws_http_header headers[PYWS_HTTP_MAX_HEADERS];
  size_t nheaders;
  size_t head_len;  /* bytes up to and including the empty line */
} pyws_http_head;

/* Parse a request head at the start of `data`.
 * Returns 0 (out filled), PYWS_ERR_INCOMPLETE (no empty line yet and fewer
 * than max_size bytes), PYWS_ERR_HTTP_TOO_LARGE (head longer than max_size or
 * more than PYWS_HTTP_MAX_HEADERS fields) or PYWS_ERR_HTTP_PARSE; on errors
 * *why names the problem (static string). */
int pyws_http_parse_request(const uint8_t *data, size_t len, size_t max_size,
                            pyws_http_head *out, const char **why);

/* The same for a response head (status line "HTTP/1.1 101 Switching ..."). */
int pyws_http_parse_response(const uint8_t *data, size_t len, size_t max_size,
                             pyws_http_head *out, const char **why);

/* Parse "HTTP/x.y".  0 or PYWS_ERR_HTTP_PARSE. */
int pyws_http_parse_version(const char *s, size_t len, int *major, int *minor);

/* Case-insensitive ASCII comparison of two strings of known length. */
int pyws_str_ieq(pyws_str a, const char *b);

/* Does the comma-separated list `list` contain `token` (case-insensitive,
 * optional whitespace around elements)? */
int pyws_list_has_token(pyws_str list, const char *token);

/* Iterate a comma-separated list: returns 1 and sets *item to the next
 * non-empty trimmed element, advancing *pos; 0 at the end. */
int pyws_list_next(pyws_str list, size_t *pos, pyws_str *item);

#endif
