/*
 * Negotiation of the permessage-deflate extension (RFC 7692 section 7.1)
 * in the Sec-WebSocket-Extensions header (RFC 6455 section 9.1): reading a
 * client's offers and choosing one on the server, writing the offer and
 * checking the server's answer on the client.  The compression itself is
 * pyws_deflate.
 */
#ifndef PYWS_PMD_H
#define PYWS_PMD_H

#include <stddef.h>
#include <stdint.h>

#include "pyws_buf.h"
#include "pyws_http.h"

#define PYWS_PMD_MIN_WINDOW_BITS 8
#define PYWS_PMD_MAX_WINDOW_BITS 15

/* The four parameters of RFC 7692.  As settings, they say what this side
 * asks for: the *_no_context_takeover flags are requested (a server also
 * grants what the client offers), the window bits are the largest this
 * side agrees to (15: no limit).  As an agreement, they bind both sides. */
typedef struct pyws_pmd_params {
  uint8_t server_no_context_takeover;
  uint8_t client_no_context_takeover;
  uint8_t server_max_window_bits; /* 8..15 */
  uint8_t client_max_window_bits; /* 8..15 */
} pyws_pmd_params;

/* 1 if all four fields are in range. */
int pyws_pmd_params_valid(const pyws_pmd_params *p);

/* Server side: read the Sec-WebSocket-Extensions fields among `headers` and
 * accept the first permessage-deflate offer that can be accepted under
 * `settings`.  Returns 1 (`agreed` filled and the response header value
 * appended to `response`), 0 (no acceptable offer: answer without the
 * extension), PYWS_ERR_HTTP_PARSE (the header is malformed; *why says how)
 * or PYWS_ERR_NOMEM. */
int pyws_pmd_negotiate(const pyws_http_header *headers, size_t nheaders,
                       const pyws_pmd_params *settings, pyws_pmd_params *agreed,
                       pyws_buf *response, const char **why);

/* Client side: append the offer for `settings` (a header value). */
int pyws_pmd_offer(const pyws_pmd_params *settings, pyws_buf *out);

/* Client side: check the server's Sec-WebSocket-Extensions fields against
 * the offer made from `settings`.  Returns 1 (`agreed` filled), 0 (the
 * server did not accept the extension) or PYWS_ERR_HTTP_PARSE (an answer
 * the client must refuse; *why says why). */
int pyws_pmd_check_response(const pyws_http_header *headers, size_t nheaders,
                            const pyws_pmd_params *settings, pyws_pmd_params *agreed,
                            const char **why);

#endif
