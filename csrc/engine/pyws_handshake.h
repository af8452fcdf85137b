/*
 * The WebSocket opening handshake (RFC 6455 section 4): validating a
 * client's upgrade request on the server, building the request and
 * validating the server's 101 response on the client.
 *
 * Verdicts are data, not error codes: a refused request yields the HTTP
 * status to answer with and a static sentence that names the reason.
 */
#ifndef PYWS_HANDSHAKE_H
#define PYWS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "pyws_buf.h"
#include "pyws_http.h"

/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1 digest). */
#define PYWS_ACCEPT_LEN 28
/* Length of a Sec-WebSocket-Key value (base64 of 16 bytes). */
#define PYWS_KEY_LEN 24

typedef struct pyws_handshake_verdict {
  int status;             /* 0 if accepted, else the HTTP status to answer */
  const char *reason;     /* why it was refused (static), NULL if accepted */
  const char *extra_name; /* a header the refusal must carry, or NULL */
  const char *extra_value;
  char accept[PYWS_ACCEPT_LEN + 1]; /* server: the Sec-WebSocket-Accept value */
  long subprotocol;       /* index into the caller's list, -1 if none */
} pyws_handshake_verdict;

/* Sec-WebSocket-Accept for `key` (as sent, already trimmed): base64 of
 * SHA-1(key + the RFC's GUID).  `out` gets PYWS_ACCEPT_LEN chars and a NUL. */
void pyws_handshake_accept(const char *key, size_t key_len,
                           char out[PYWS_ACCEPT_LEN + 1]);

/* Server side: validate an upgrade request.  `method` and the version are
 * the request line's; `headers` the fields (names in any case; a field may
 * repeat).  `subprotocols` is the server's list in order of preference: the
 * first one the client offered is selected.  Always returns 0 and fills
 * `out`: status 0 and the accept value, or status 400 / 405 / 426 and the
 * reason. */
int pyws_handshake_check_request(pyws_str method, int version_major,
                                 int version_minor,
                                 const pyws_http_header *headers, size_t nheaders,
                                 const pyws_str *subprotocols, size_t nsub,
                                 pyws_handshake_verdict *out);

/* Client side: a fresh random key.  `out` gets PYWS_KEY_LEN chars and a NUL.
 * 0 or PYWS_ERR_RANDOM. */
int pyws_handshake_make_key(char out[PYWS_KEY_LEN + 1]);

/* Client side: append the upgrade request to `out`.  `host` is the Host
 * value, `resource` the request target, `subprotocols` the offered list
 * (may be empty), `extra` more fields to send.  0, PYWS_ERR_NOMEM, or
 * PYWS_ERR_INVALID_ARGUMENT if any string holds CR, LF or NUL (header
 * injection) or a subprotocol is not a token. */
int pyws_handshake_client_request(pyws_buf *out, pyws_str host, pyws_str resource,
                                  const char *key, const pyws_str *subprotocols,
                                  size_t nsub, const pyws_http_header *extra,
                                  size_t nextra);

/* Client side: validate the server's response head for `key`.  Always
 * returns 0 and fills `out` (status 0 if accepted; else `out->status` is the
 * response's status code and `out->reason` why it was refused).  On success
 * `out->subprotocol` indexes `offered` or is -1.  Unless
 * `extensions_offered`, a Sec-WebSocket-Extensions field refuses the
 * response; if extensions were offered, checking the field is the
 * caller's (pyws_pmd_check_response). */
int pyws_handshake_check_response(const pyws_http_head *response, const char *key,
                                  const pyws_str *offered, size_t noffered,
                                  int extensions_offered, pyws_handshake_verdict *out);

#endif
