/*
 * permessage-deflate negotiation (see pyws_pmd.h).
 *
 * The header grammar (RFC 6455 section 9.1):
 *   extension-list = 1#extension
 *   extension      = token *( OWS ";" OWS token [ "=" ( token | quoted-string ) ] )
 * A quoted value must be a token once unquoted.  Several fields are read as
 * one list.  Empty list elements are allowed (RFC 9110 section 5.6.1).
 *
 * RFC 7692 section 7.1: an offer with an unknown or repeated parameter, or
 * a value out of range, is declined (not refused), and the next offer is
 * tried; a client fails the connection on any answer it did not ask for.
 */
#include "pyws_pmd.h"

#include <string.h>

#include "pyws_error.h"

/* A parameter value longer than this cannot be valid for our parameters;
 * it is still parsed, just not kept. */
#define VALUE_KEEP 8

typedef struct cursor {
  const char *s;
  size_t len, pos;
} cursor;

/* One permessage-deflate element as read: what each parameter said. */
typedef struct pmd_element {
  int server_no_context_takeover; /* 0 absent, 1 present */
  int client_no_context_takeover;
  int server_max_window_bits; /* 0 absent, else 8..15 */
  int client_max_window_bits; /* 0 absent, -1 present without value, else 8..15 */
  int invalid;                /* an unknown, repeated or bad parameter */
} pmd_element;

int pyws_pmd_params_valid(const pyws_pmd_params *p) {
  return p->server_no_context_takeover <= 1 && p->client_no_context_takeover <= 1 &&
         p->server_max_window_bits >= PYWS_PMD_MIN_WINDOW_BITS &&
         p->server_max_window_bits <= PYWS_PMD_MAX_WINDOW_BITS &&
         p->client_max_window_bits >= PYWS_PMD_MIN_WINDOW_BITS &&
         p->client_max_window_bits <= PYWS_PMD_MAX_WINDOW_BITS;
}

static int is_tchar(char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
    return 1;
  }
  return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static void skip_ows(cursor *c) {
  while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t')) {
    c->pos++;
  }
}

static int at(const cursor *c, char ch) { return c->pos < c->len && c->s[c->pos] == ch; }

static int read_token(cursor *c, pyws_str *out) {
  size_t start = c->pos;
  while (c->pos < c->len && is_tchar(c->s[c->pos])) {
    c->pos++;
  }
  out->ptr = c->s + start;
  out->len = c->pos - start;
  return out->len > 0;
}

/* A token or a quoted-string; `value` gets the unquoted text (truncated to
 * VALUE_KEEP, *len the full length), *token whether it is a token.  0 on a
 * syntax error. */
static int read_value(cursor *c, char value[VALUE_KEEP], size_t *len, int *token) {
  pyws_str t;
  *len = 0;
  *token = 1;
  if (!at(c, '"')) {
    if (!read_token(c, &t)) {
      return 0;
    }
    memcpy(value, t.ptr, t.len < VALUE_KEEP ? t.len : VALUE_KEEP);
    *len = t.len;
    return 1;
  }
  c->pos++;
  for (;;) {
    char ch;
    if (c->pos >= c->len) {
      return 0; /* unterminated */
    }
    ch = c->s[c->pos++];
    if (ch == '"') {
      break;
    }
    if (ch == '\\') {
      if (c->pos >= c->len) {
        return 0;
      }
      ch = c->s[c->pos++];
    }
    if ((unsigned char)ch < 0x20 && ch != '\t') {
      return 0; /* control characters are not allowed in a quoted-string */
    }
    if (!is_tchar(ch)) {
      *token = 0;
    }
    if (*len < VALUE_KEEP) {
      value[*len] = ch;
    }
    (*len)++;
  }
  if (*len == 0) {
    *token = 0;
  }
  return 1;
}

/* "8" to "15", without leading zeros; 0 otherwise. */
static int window_bits(const char *v, size_t len) {
  if (len == 1 && (v[0] == '8' || v[0] == '9')) {
    return v[0] - '0';
  }
  if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') {
    return 10 + (v[1] - '0');
  }
  return 0;
}

static void apply_param(pmd_element *e, pyws_str name, int has_value, const char *value,
                        size_t value_len, int value_is_token) {
  int bits = (has_value && value_is_token) ? window_bits(value, value_len) : 0;
  if (pyws_str_ieq(name, "server_no_context_takeover")) {
    if (e->server_no_context_takeover || has_value) e->invalid = 1;
    e->server_no_context_takeover = 1;
  } else if (pyws_str_ieq(name, "client_no_context_takeover")) {
    if (e->client_no_context_takeover || has_value) e->invalid = 1;
    e->client_no_context_takeover = 1;
  } else if (pyws_str_ieq(name, "server_max_window_bits")) {
    if (e->server_max_window_bits || bits == 0) e->invalid = 1;
    e->server_max_window_bits = bits ? bits : 15;
  } else if (pyws_str_ieq(name, "client_max_window_bits")) {
    if (e->client_max_window_bits || (has_value && bits == 0)) e->invalid = 1;
    e->client_max_window_bits = has_value ? (bits ? bits : 15) : -1;
  } else {
    e->invalid = 1;
  }
}

/* Read one list element.  Returns 1 (an extension: *name, and *e filled if
 * it is permessage-deflate), 2 (an empty element), 0 at the end of the
 * list, -1 on a syntax error (*why set). */
static int read_element(cursor *c, pyws_str *name, pmd_element *e, const char **why) {
  int is_pmd;
  memset(e, 0, sizeof(*e));
  skip_ows(c);
  if (c->pos >= c->len) {
    return 0;
  }
  if (at(c, ',')) {
    c->pos++;
    return 2;
  }
  if (!read_token(c, name)) {
    *why = "malformed Sec-WebSocket-Extensions header: an extension name is not a token";
    return -1;
  }
  is_pmd = pyws_str_ieq(*name, "permessage-deflate");
  for (;;) {
    pyws_str pname;
    char value[VALUE_KEEP];
    size_t value_len = 0;
    int has_value = 0, value_is_token = 1;
    skip_ows(c);
    if (c->pos >= c->len) {
      return 1;
    }
    if (at(c, ',')) {
      c->pos++;
      return 1;
    }
    if (!at(c, ';')) {
      *why = "malformed Sec-WebSocket-Extensions header: expected ';' or ','";
      return -1;
    }
    c->pos++;
    skip_ows(c);
    if (!read_token(c, &pname)) {
      *why = "malformed Sec-WebSocket-Extensions header: a parameter name is not a token";
      return -1;
    }
    skip_ows(c);
    if (at(c, '=')) {
      c->pos++;
      skip_ows(c);
      if (!read_value(c, value, &value_len, &value_is_token)) {
        *why = "malformed Sec-WebSocket-Extensions header: bad parameter value";
        return -1;
      }
      has_value = 1;
    }
    if (is_pmd) {
      apply_param(e, pname, has_value, value, value_len, value_is_token);
    }
  }
}

/* Every element of every Sec-WebSocket-Extensions field, in order. */
typedef struct element_iter {
  const pyws_http_header *headers;
  size_t nheaders, field;
  cursor c;
  int in_field;
} element_iter;

static void iter_init(element_iter *it, const pyws_http_header *headers, size_t nheaders) {
  memset(it, 0, sizeof(*it));
  it->headers = headers;
  it->nheaders = nheaders;
}

/* 1: the next extension (*name, and *e if it is permessage-deflate); 0 at
 * the end of the last field; -1 on a syntax error (*why set). */
static int iter_next(element_iter *it, pyws_str *name, pmd_element *e, const char **why) {
  for (;;) {
    int r;
    if (!it->in_field) {
      while (it->field < it->nheaders &&
             !pyws_str_ieq(it->headers[it->field].name, "Sec-WebSocket-Extensions")) {
        it->field++;
      }
      if (it->field == it->nheaders) {
        return 0;
      }
      it->c.s = it->headers[it->field].value.ptr;
      it->c.len = it->headers[it->field].value.len;
      it->c.pos = 0;
      it->in_field = 1;
      it->field++;
    }
    r = read_element(&it->c, name, e, why);
    if (r == 0) {
      it->in_field = 0;
    } else if (r != 2) {
      return r;
    }
  }
}

#define APPEND_LIT(b, s)                                                      \
  do {                                                                        \
    int rv_ = pyws_buf_append((b), (s), sizeof(s) - 1);                       \
    if (rv_ != 0) return rv_;                                                 \
  } while (0)

static int append_bits(pyws_buf *b, const char *name, size_t name_len, int bits) {
  char digits[3];
  size_t n = 0;
  int rv;
  if ((rv = pyws_buf_append(b, name, name_len)) != 0) {
    return rv;
  }
  if (bits >= 10) {
    digits[n++] = '1';
  }
  digits[n++] = (char)('0' + bits % 10);
  return pyws_buf_append(b, digits, n);
}

#define APPEND_BITS(b, lit, bits)                                             \
  do {                                                                        \
    int rv_ = append_bits((b), (lit), sizeof(lit) - 1, (bits));               \
    if (rv_ != 0) return rv_;                                                 \
  } while (0)

static int write_element(pyws_buf *out, const pyws_pmd_params *p, int server_bits,
                         int client_bits) {
  APPEND_LIT(out, "permessage-deflate");
  if (p->server_no_context_takeover) APPEND_LIT(out, "; server_no_context_takeover");
  if (p->client_no_context_takeover) APPEND_LIT(out, "; client_no_context_takeover");
  if (server_bits) APPEND_BITS(out, "; server_max_window_bits=", server_bits);
  if (client_bits > 0) APPEND_BITS(out, "; client_max_window_bits=", client_bits);
  if (client_bits < 0) APPEND_LIT(out, "; client_max_window_bits");
  return 0;
}

static int min_bits(int a, int b) { return a < b ? a : b; }

int pyws_pmd_negotiate(const pyws_http_header *headers, size_t nheaders,
                       const pyws_pmd_params *settings, pyws_pmd_params *agreed,
                       pyws_buf *response, const char **why) {
  element_iter it;
  pyws_str name;
  pmd_element e;
  int found = 0, r;
  /* Every field is read to the end, so a malformed header is refused even
   * after an acceptable offer. */
  iter_init(&it, headers, nheaders);
  while ((r = iter_next(&it, &name, &e, why)) == 1) {
    if (found || e.invalid || !pyws_str_ieq(name, "permessage-deflate")) {
      continue;
    }
    found = 1;
    agreed->server_no_context_takeover =
        (uint8_t)(e.server_no_context_takeover || settings->server_no_context_takeover);
    agreed->client_no_context_takeover =
        (uint8_t)(e.client_no_context_takeover || settings->client_no_context_takeover);
    agreed->server_max_window_bits = (uint8_t)min_bits(
        e.server_max_window_bits ? e.server_max_window_bits : 15,
        settings->server_max_window_bits);
    /* The client's window may be limited only if it said it supports the
     * parameter; its value, if any, is the largest it will use. */
    agreed->client_max_window_bits =
        (uint8_t)(e.client_max_window_bits == 0
                      ? 15
                      : min_bits(e.client_max_window_bits > 0 ? e.client_max_window_bits : 15,
                                 settings->client_max_window_bits));
  }
  if (r < 0) {
    return PYWS_ERR_HTTP_PARSE;
  }
  if (!found) {
    return 0;
  }
  {
    int server_bits = agreed->server_max_window_bits < 15 ? agreed->server_max_window_bits : 0;
    int client_bits = agreed->client_max_window_bits < 15 ? agreed->client_max_window_bits : 0;
    int rv = write_element(response, agreed, server_bits, client_bits);
    if (rv != 0) {
      return rv;
    }
  }
  return 1;
}

int pyws_pmd_offer(const pyws_pmd_params *settings, pyws_buf *out) {
  int server_bits =
      settings->server_max_window_bits < 15 ? settings->server_max_window_bits : 0;
  int client_bits =
      settings->client_max_window_bits < 15 ? settings->client_max_window_bits : -1;
  return write_element(out, settings, server_bits, client_bits);
}

int pyws_pmd_check_response(const pyws_http_header *headers, size_t nheaders,
                            const pyws_pmd_params *settings, pyws_pmd_params *agreed,
                            const char **why) {
  element_iter it;
  pyws_str name;
  pmd_element e, accepted;
  int found = 0, r;
  memset(&accepted, 0, sizeof(accepted));
  iter_init(&it, headers, nheaders);
  while ((r = iter_next(&it, &name, &e, why)) == 1) {
    if (!pyws_str_ieq(name, "permessage-deflate")) {
      *why = "the server selected an extension that was not offered";
      return PYWS_ERR_HTTP_PARSE;
    }
    if (found) {
      *why = "the server selected permessage-deflate more than once";
      return PYWS_ERR_HTTP_PARSE;
    }
    found = 1;
    accepted = e;
  }
  if (r < 0) {
    return PYWS_ERR_HTTP_PARSE;
  }
  if (!found) {
    return 0;
  }
  if (accepted.invalid || accepted.client_max_window_bits < 0) {
    *why = "the server answered permessage-deflate with an unknown, repeated or "
           "invalid parameter";
    return PYWS_ERR_HTTP_PARSE;
  }
  if (settings->server_no_context_takeover && !accepted.server_no_context_takeover) {
    *why = "the server did not accept server_no_context_takeover";
    return PYWS_ERR_HTTP_PARSE;
  }
  if (settings->server_max_window_bits < 15 &&
      (accepted.server_max_window_bits == 0 ||
       accepted.server_max_window_bits > settings->server_max_window_bits)) {
    *why = "the server did not accept the server_max_window_bits offered";
    return PYWS_ERR_HTTP_PARSE;
  }
  if (accepted.client_max_window_bits > settings->client_max_window_bits) {
    *why = "the server answered a client_max_window_bits larger than offered";
    return PYWS_ERR_HTTP_PARSE;
  }
  agreed->server_no_context_takeover = (uint8_t)accepted.server_no_context_takeover;
  agreed->client_no_context_takeover =
      (uint8_t)(accepted.client_no_context_takeover || settings->client_no_context_takeover);
  agreed->server_max_window_bits =
      (uint8_t)(accepted.server_max_window_bits ? accepted.server_max_window_bits : 15);
  agreed->client_max_window_bits = (uint8_t)min_bits(
      accepted.client_max_window_bits ? accepted.client_max_window_bits : 15,
      settings->client_max_window_bits);
  return 1;
}
