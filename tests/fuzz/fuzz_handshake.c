/*
 * libFuzzer target: the HTTP head parser and the opening-handshake checks,
 * both directions.  The input is parsed as a request (then checked as an
 * upgrade, with a subprotocol list) and as a response (then checked against
 * a fixed key).  Parsed views must stay inside the input.  The
 * permessage-deflate negotiation reads the same headers both ways; what a
 * server answers must be acceptable to a client and mean the same
 * agreement.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pyws_error.h"
#include "pyws_handshake.h"
#include "pyws_http.h"
#include "pyws_pmd.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) abort();                                                      \
  } while (0)

static void check_deflate(const pyws_http_header *headers, size_t n) {
  static const pyws_pmd_params server = {0, 1, 12, 10};
  static const pyws_pmd_params client = {0, 0, 15, 15};
  pyws_pmd_params agreed, understood;
  pyws_http_header answer;
  pyws_buf response = {0};
  const char *why = NULL;
  int rv = pyws_pmd_negotiate(headers, n, &server, &agreed, &response, &why);
  CHECK(rv == 0 || rv == 1 || (rv == PYWS_ERR_HTTP_PARSE && why != NULL));
  if (rv == 1) {
    CHECK(pyws_pmd_params_valid(&agreed));
    answer.name.ptr = "Sec-WebSocket-Extensions";
    answer.name.len = strlen(answer.name.ptr);
    answer.value.ptr = (const char *)pyws_buf_bytes(&response);
    answer.value.len = pyws_buf_size(&response);
    CHECK(pyws_pmd_check_response(&answer, 1, &client, &understood, &why) == 1);
    CHECK(memcmp(&agreed, &understood, sizeof(agreed)) == 0);
  }
  pyws_buf_free(&response);
  rv = pyws_pmd_check_response(headers, n, &client, &understood, &why);
  CHECK(rv == 0 || (rv == 1 && pyws_pmd_params_valid(&understood)) ||
        (rv == PYWS_ERR_HTTP_PARSE && why != NULL));
}

static void check_inside(const uint8_t *data, size_t size, pyws_str s) {
  CHECK(s.len == 0 || ((const uint8_t *)s.ptr >= data &&
                       (const uint8_t *)s.ptr + s.len <= data + size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const pyws_str subs[2] = {{"chat", 4}, {"superchat", 9}};
  static pyws_http_head head; /* large: keep it off the stack */
  pyws_handshake_verdict v;
  const char *why = NULL;
  size_t i;
  int rv = pyws_http_parse_request(data, size, 8192, &head, &why);
  if (rv == 0) {
    CHECK(head.head_len <= size);
    check_inside(data, size, head.method);
    check_inside(data, size, head.target);
    for (i = 0; i < head.nheaders; i++) {
      check_inside(data, size, head.headers[i].name);
      check_inside(data, size, head.headers[i].value);
    }
    pyws_handshake_check_request(head.method, head.version_major, head.version_minor,
                                 head.headers, head.nheaders, subs, 2, &v);
    CHECK(v.status == 0 ? strlen(v.accept) == PYWS_ACCEPT_LEN : v.reason != NULL);
    check_deflate(head.headers, head.nheaders);
  } else if (rv != -300) {
    CHECK(why != NULL);
  }
  rv = pyws_http_parse_response(data, size, 8192, &head, &why);
  if (rv == 0) {
    CHECK(head.head_len <= size);
    pyws_handshake_check_response(&head, "dGhlIHNhbXBsZSBub25jZQ==", subs, 2, 0, &v);
    CHECK(v.status == 0 || v.reason != NULL);
    CHECK(v.subprotocol < 2);
  }
  return 0;
}
