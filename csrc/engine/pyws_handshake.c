/*
 * Opening handshake checks, RFC 6455 sections 4.1 and 4.2.  Header fields
 * may repeat; list-valued fields (Upgrade, Connection,
 * Sec-WebSocket-Protocol) are read as the concatenation of all their
 * occurrences, single-valued ones (Host, Sec-WebSocket-Key,
 * Sec-WebSocket-Version, Sec-WebSocket-Accept) must occur exactly once.
 */
#include "pyws_handshake.h"

#include <string.h>

#include "pyws_base64.h"
#include "pyws_error.h"
#include "pyws_random.h"
#include "pyws_sha1.h"

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void pyws_handshake_accept(const char *key, size_t key_len,
                           char out[PYWS_ACCEPT_LEN + 1]) {
  pyws_sha1 s;
  uint8_t digest[PYWS_SHA1_DIGEST_SIZE];
  pyws_sha1_init(&s);
  pyws_sha1_update(&s, key, key_len);
  pyws_sha1_update(&s, GUID, sizeof(GUID) - 1);
  pyws_sha1_final(&s, digest);
  pyws_base64_encode(digest, sizeof(digest), out);
}

/* How many fields are named `name`; *last gets the last one's value. */
static size_t count_field(const pyws_http_header *h, size_t n, const char *name,
                          pyws_str *last) {
  size_t i, count = 0;
  for (i = 0; i < n; i++) {
    if (pyws_str_ieq(h[i].name, name)) {
      count++;
      if (last) *last = h[i].value;
    }
  }
  return count;
}

/* Does any field `name` list `token`? */
static int any_field_has_token(const pyws_http_header *h, size_t n,
                               const char *name, const char *token) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (pyws_str_ieq(h[i].name, name) && pyws_list_has_token(h[i].value, token)) {
      return 1;
    }
  }
  return 0;
}

static int refuse(pyws_handshake_verdict *out, int status, const char *reason) {
  out->status = status;
  out->reason = reason;
  return 0;
}

static int str_eq(pyws_str a, pyws_str b) {
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static int key_is_valid(pyws_str key) {
  uint8_t raw[PYWS_KEY_LEN];
  return key.len == PYWS_KEY_LEN &&
         pyws_base64_decode(key.ptr, key.len, raw) == 16;
}

int pyws_handshake_check_request(pyws_str method, int version_major,
                                 int version_minor,
                                 const pyws_http_header *h, size_t n,
                                 const pyws_str *subprotocols, size_t nsub,
                                 pyws_handshake_verdict *out) {
  pyws_str key = {0}, version = {0}, host = {0}, body = {0};
  size_t i, nhost, nkey, nversion, ncontent;
  memset(out, 0, sizeof(*out));
  out->subprotocol = -1;

  if (!(method.len == 3 && memcmp(method.ptr, "GET", 3) == 0)) {
    out->extra_name = "Allow";
    out->extra_value = "GET";
    return refuse(out, 405, "the method of a WebSocket upgrade must be GET");
  }
  if (version_major < 1 || (version_major == 1 && version_minor < 1)) {
    return refuse(out, 400, "a WebSocket upgrade needs HTTP/1.1 or later");
  }
  /* An upgrade has no body: what follows its head is WebSocket frames, so
   * a body would be read as frames (and the HTTP server, thinking it
   * unread, would try to discard it after the session). */
  if (count_field(h, n, "Transfer-Encoding", &body) > 0) {
    return refuse(out, 400, "a WebSocket upgrade request must not have a body "
                            "(Transfer-Encoding)");
  }
  ncontent = count_field(h, n, "Content-Length", &body);
  if (ncontent > 1 || (ncontent == 1 && !(body.len == 1 && body.ptr[0] == '0'))) {
    return refuse(out, 400, "a WebSocket upgrade request must not have a body "
                            "(Content-Length other than 0)");
  }
  nhost = count_field(h, n, "Host", &host);
  if (nhost == 0 || host.len == 0) {
    return refuse(out, 400, "missing Host header");
  }
  /* A host never contains a comma; a server that folds repeated header
   * fields into one value (a WSGI environ does) joins them with one. */
  if (nhost > 1 || memchr(host.ptr, ',', host.len) != NULL) {
    return refuse(out, 400, "more than one Host header");
  }
  if (!any_field_has_token(h, n, "Upgrade", "websocket")) {
    return refuse(out, 400, "the Upgrade header does not contain 'websocket'");
  }
  if (!any_field_has_token(h, n, "Connection", "upgrade")) {
    return refuse(out, 400, "the Connection header does not contain 'upgrade'");
  }
  /* The version is checked before the key so that a client speaking an
   * older draft learns which version to use (section 4.4). */
  nversion = count_field(h, n, "Sec-WebSocket-Version", &version);
  if (nversion != 1 || !(version.len == 2 && memcmp(version.ptr, "13", 2) == 0)) {
    out->extra_name = "Sec-WebSocket-Version";
    out->extra_value = "13";
    return refuse(out, 426,
                  nversion == 0 ? "missing Sec-WebSocket-Version header (13 is supported)"
                                : "unsupported Sec-WebSocket-Version (13 is supported)");
  }
  nkey = count_field(h, n, "Sec-WebSocket-Key", &key);
  if (nkey == 0) {
    return refuse(out, 400, "missing Sec-WebSocket-Key header");
  }
  if (nkey > 1) {
    return refuse(out, 400, "more than one Sec-WebSocket-Key header");
  }
  if (!key_is_valid(key)) {
    return refuse(out, 400, "Sec-WebSocket-Key is not the base64 encoding of 16 bytes");
  }
  pyws_handshake_accept(key.ptr, key.len, out->accept);

  for (i = 0; i < nsub && out->subprotocol < 0; i++) {
    size_t j;
    for (j = 0; j < n && out->subprotocol < 0; j++) {
      size_t pos = 0;
      pyws_str item;
      if (!pyws_str_ieq(h[j].name, "Sec-WebSocket-Protocol")) continue;
      while (pyws_list_next(h[j].value, &pos, &item)) {
        if (str_eq(item, subprotocols[i])) { /* tokens are case-sensitive */
          out->subprotocol = (long)i;
          break;
        }
      }
    }
  }
  return 0;
}

int pyws_handshake_make_key(char out[PYWS_KEY_LEN + 1]) {
  uint8_t raw[16];
  int rv;
  if ((rv = pyws_random_bytes(raw, sizeof(raw))) != 0) return rv;
  pyws_base64_encode(raw, sizeof(raw), out);
  return 0;
}

static int has_ctl(pyws_str s) {
  size_t i;
  for (i = 0; i < s.len; i++) {
    if (s.ptr[i] == '\r' || s.ptr[i] == '\n' || s.ptr[i] == '\0') return 1;
  }
  return 0;
}

static int is_token(pyws_str s) {
  size_t i;
  if (s.len == 0) return 0;
  for (i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c)) return 0;
  }
  return 1;
}

#define APPEND(b, p, n)                                                        \
  do {                                                                         \
    if ((rv = pyws_buf_append((b), (p), (n))) != 0) return rv;                 \
  } while (0)
#define APPEND_LIT(b, lit) APPEND(b, lit, sizeof(lit) - 1)

int pyws_handshake_client_request(pyws_buf *out, pyws_str host, pyws_str resource,
                                  const char *key, const pyws_str *subprotocols,
                                  size_t nsub, const pyws_http_header *extra,
                                  size_t nextra) {
  size_t i;
  int rv;
  if (host.len == 0 || has_ctl(host) || resource.len == 0 || has_ctl(resource) ||
      memchr(resource.ptr, ' ', resource.len)) {
    return PYWS_ERR_INVALID_ARGUMENT;
  }
  for (i = 0; i < nsub; i++) {
    if (!is_token(subprotocols[i])) return PYWS_ERR_INVALID_ARGUMENT;
  }
  for (i = 0; i < nextra; i++) {
    if (!is_token(extra[i].name) || has_ctl(extra[i].value)) {
      return PYWS_ERR_INVALID_ARGUMENT;
    }
  }
  APPEND_LIT(out, "GET ");
  APPEND(out, resource.ptr, resource.len);
  APPEND_LIT(out, " HTTP/1.1\r\nHost: ");
  APPEND(out, host.ptr, host.len);
  APPEND_LIT(out, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: ");
  APPEND(out, key, strlen(key));
  APPEND_LIT(out, "\r\nSec-WebSocket-Version: 13\r\n");
  if (nsub > 0) {
    APPEND_LIT(out, "Sec-WebSocket-Protocol: ");
    for (i = 0; i < nsub; i++) {
      if (i > 0) APPEND_LIT(out, ", ");
      APPEND(out, subprotocols[i].ptr, subprotocols[i].len);
    }
    APPEND_LIT(out, "\r\n");
  }
  for (i = 0; i < nextra; i++) {
    APPEND(out, extra[i].name.ptr, extra[i].name.len);
    APPEND_LIT(out, ": ");
    APPEND(out, extra[i].value.ptr, extra[i].value.len);
    APPEND_LIT(out, "\r\n");
  }
  APPEND_LIT(out, "\r\n");
  return 0;
}

int pyws_handshake_check_response(const pyws_http_head *r, const char *key,
                                  const pyws_str *offered, size_t noffered,
                                  int extensions_offered, pyws_handshake_verdict *out) {
  pyws_str accept = {0}, proto = {0};
  char expected[PYWS_ACCEPT_LEN + 1];
  size_t i, nproto;
  memset(out, 0, sizeof(*out));
  out->subprotocol = -1;
  if (r->status != 101) {
    out->status = r->status;
    out->reason = "the server did not switch protocols (status is not 101)";
    return 0;
  }
  out->status = 101; /* provisional: reset to 0 when everything checks out */
  if (!any_field_has_token(r->headers, r->nheaders, "Upgrade", "websocket")) {
    out->reason = "the response's Upgrade header is not 'websocket'";
    return 0;
  }
  if (!any_field_has_token(r->headers, r->nheaders, "Connection", "upgrade")) {
    out->reason = "the response's Connection header does not contain 'upgrade'";
    return 0;
  }
  if (count_field(r->headers, r->nheaders, "Sec-WebSocket-Accept", &accept) != 1) {
    out->reason = "the response has no single Sec-WebSocket-Accept header";
    return 0;
  }
  pyws_handshake_accept(key, strlen(key), expected);
  if (!(accept.len == PYWS_ACCEPT_LEN && memcmp(accept.ptr, expected, PYWS_ACCEPT_LEN) == 0)) {
    out->reason = "Sec-WebSocket-Accept does not match the key sent";
    return 0;
  }
  if (!extensions_offered &&
      count_field(r->headers, r->nheaders, "Sec-WebSocket-Extensions", NULL) > 0) {
    out->reason = "the server selected an extension that was not offered";
    return 0;
  }
  nproto = count_field(r->headers, r->nheaders, "Sec-WebSocket-Protocol", &proto);
  if (nproto > 1) {
    out->reason = "the server selected more than one subprotocol";
    return 0;
  }
  if (nproto == 1) {
    for (i = 0; i < noffered; i++) {
      if (str_eq(proto, offered[i])) {
        out->subprotocol = (long)i;
        break;
      }
    }
    if (out->subprotocol < 0) {
      out->reason = "the server selected a subprotocol that was not offered";
      return 0;
    }
  }
  out->status = 0;
  return 0;
}
