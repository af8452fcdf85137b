/*
 * HTTP/1.x head parsing.  Lines end with CRLF (a bare LF is accepted, as
 * RFC 9112 section 2.2 allows); the head ends at the first empty line.  The
 * parser refuses what could be used to smuggle or confuse: obsolete line
 * folding, whitespace between a field name and its colon, control
 * characters in values, non-token characters in names and methods.
 */
#include "pyws_http.h"

#include <string.h>

#include "pyws_error.h"

static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

int pyws_str_ieq(pyws_str a, const char *b) {
  size_t i, n = strlen(b);
  if (a.len != n) return 0;
  for (i = 0; i < n; i++) {
    if (lower(a.ptr[i]) != lower(b[i])) return 0;
  }
  return 1;
}

int pyws_list_next(pyws_str list, size_t *pos, pyws_str *item) {
  size_t i = *pos;
  while (i < list.len) {
    size_t start, end;
    while (i < list.len && (is_ows(list.ptr[i]) || list.ptr[i] == ',')) i++;
    start = i;
    while (i < list.len && list.ptr[i] != ',') i++;
    end = i;
    while (end > start && is_ows(list.ptr[end - 1])) end--;
    if (end > start) {
      item->ptr = list.ptr + start;
      item->len = end - start;
      *pos = i;
      return 1;
    }
  }
  *pos = i;
  return 0;
}

int pyws_list_has_token(pyws_str list, const char *token) {
  size_t pos = 0;
  pyws_str item;
  while (pyws_list_next(list, &pos, &item)) {
    if (pyws_str_ieq(item, token)) return 1;
  }
  return 0;
}

int pyws_http_parse_version(const char *s, size_t len, int *major, int *minor) {
  if (len != 8 || memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' || s[5] > '9' ||
      s[6] != '.' || s[7] < '0' || s[7] > '9') {
    return PYWS_ERR_HTTP_PARSE;
  }
  *major = s[5] - '0';
  *minor = s[7] - '0';
  return 0;
}

/* Find the end of the line starting at `pos`: returns the index of '\n' and
 * sets *content_end (excluding a CR), or -1 if there is no '\n' yet. */
static long line_end(const uint8_t *d, size_t len, size_t pos, size_t *content_end) {
  const uint8_t *nl = memchr(d + pos, '\n', len - pos);
  size_t e;
  if (nl == NULL) return -1;
  e = (size_t)(nl - d);
  *content_end = (e > pos && d[e - 1] == '\r') ? e - 1 : e;
  return (long)e;
}

static int parse_headers(const uint8_t *d, size_t len, size_t pos, size_t max_size,
                         pyws_http_head *out, const char **why) {
  out->nheaders = 0;
  for (;;) {
    size_t ce, i, colon, vs, ve;
    long nl = line_end(d, len, pos, &ce);
    if (nl < 0) {
      if (len >= max_size) {
        *why = "request head too large";
        return PYWS_ERR_HTTP_TOO_LARGE;
      }
      return PYWS_ERR_INCOMPLETE;
    }
    if ((size_t)nl + 1 > max_size) {
      *why = "head too large";
      return PYWS_ERR_HTTP_TOO_LARGE;
    }
    if (ce == pos) { /* the empty line */
      out->head_len = (size_t)nl + 1;
      return 0;
    }
    if (is_ows((char)d[pos])) {
      *why = "obsolete line folding in header";
      return PYWS_ERR_HTTP_PARSE;
    }
    if (out->nheaders == PYWS_HTTP_MAX_HEADERS) {
      *why = "too many header fields";
      return PYWS_ERR_HTTP_TOO_LARGE;
    }
    for (i = pos; i < ce && d[i] != ':'; i++) {
      if (!is_tchar(d[i])) {
        *why = "invalid character in header name";
        return PYWS_ERR_HTTP_PARSE;
      }
    }
    if (i == ce || i == pos) {
      *why = "header line without a name and colon";
      return PYWS_ERR_HTTP_PARSE;
    }
    colon = i;
    vs = colon + 1;
    ve = ce;
    while (vs < ve && is_ows((char)d[vs])) vs++;
    while (ve > vs && is_ows((char)d[ve - 1])) ve--;
    for (i = vs; i < ve; i++) {
      if ((d[i] < 0x20 && d[i] != '\t') || d[i] == 0x7f) {
        *why = "control character in header value";
        return PYWS_ERR_HTTP_PARSE;
      }
    }
    out->headers[out->nheaders].name.ptr = (const char *)d + pos;
    out->headers[out->nheaders].name.len = colon - pos;
    out->headers[out->nheaders].value.ptr = (const char *)d + vs;
    out->headers[out->nheaders].value.len = ve - vs;
    out->nheaders++;
    pos = (size_t)nl + 1;
  }
}

/* Split the first line into three parts at single spaces: a SP b SP c,
 * where c may contain spaces only if `rest_may_have_spaces`. */
static int split3(const uint8_t *d, size_t end, int rest_may_have_spaces,
                  pyws_str parts[3]) {
  const uint8_t *sp1 = memchr(d, ' ', end), *sp2;
  if (sp1 == NULL) return -1;
  sp2 = memchr(sp1 + 1, ' ', end - (size_t)(sp1 + 1 - d));
  if (sp2 == NULL) return -1;
  parts[0].ptr = (const char *)d;
  parts[0].len = (size_t)(sp1 - d);
  parts[1].ptr = (const char *)sp1 + 1;
  parts[1].len = (size_t)(sp2 - sp1 - 1);
  parts[2].ptr = (const char *)sp2 + 1;
  parts[2].len = end - (size_t)(sp2 + 1 - d);
  if (!rest_may_have_spaces && memchr(parts[2].ptr, ' ', parts[2].len)) return -1;
  return 0;
}

static int first_line(const uint8_t *d, size_t len, size_t max_size, size_t *ce,
                      long *nl, const char **why) {
  *nl = line_end(d, len, 0, ce);
  if (*nl < 0) {
    if (len >= max_size) {
      *why = "head too large";
      return PYWS_ERR_HTTP_TOO_LARGE;
    }
    return PYWS_ERR_INCOMPLETE;
  }
  if ((size_t)*nl + 1 > max_size) {
    *why = "head too large";
    return PYWS_ERR_HTTP_TOO_LARGE;
  }
  return 0;
}

int pyws_http_parse_request(const uint8_t *d, size_t len, size_t max_size,
                            pyws_http_head *out, const char **why) {
  size_t ce, i;
  long nl;
  pyws_str parts[3];
  int rv;
  memset(out, 0, offsetof(pyws_http_head, headers));
  out->nheaders = 0;
  if ((rv = first_line(d, len, max_size, &ce, &nl, why)) != 0) return rv;
  if (split3(d, ce, 0, parts) != 0 || parts[0].len == 0 || parts[1].len == 0) {
    *why = "malformed request line";
    return PYWS_ERR_HTTP_PARSE;
  }
  for (i = 0; i < parts[0].len; i++) {
    if (!is_tchar((unsigned char)parts[0].ptr[i])) {
      *why = "invalid character in method";
      return PYWS_ERR_HTTP_PARSE;
    }
  }
  for (i = 0; i < parts[1].len; i++) {
    unsigned char c = (unsigned char)parts[1].ptr[i];
    if (c <= 0x20 || c == 0x7f) {
      *why = "invalid character in request target";
      return PYWS_ERR_HTTP_PARSE;
    }
  }
  if (pyws_http_parse_version(parts[2].ptr, parts[2].len, &out->version_major,
                              &out->version_minor) != 0) {
    *why = "malformed HTTP version";
    return PYWS_ERR_HTTP_PARSE;
  }
  out->method = parts[0];
  out->target = parts[1];
  return parse_headers(d, len, (size_t)nl + 1, max_size, out, why);
}

int pyws_http_parse_response(const uint8_t *d, size_t len, size_t max_size,
                             pyws_http_head *out, const char **why) {
  size_t ce;
  long nl;
  pyws_str parts[3];
  int rv;
  memset(out, 0, offsetof(pyws_http_head, headers));
  out->nheaders = 0;
  if ((rv = first_line(d, len, max_size, &ce, &nl, why)) != 0) return rv;
  if (split3(d, ce, 1, parts) != 0) {
    /* "HTTP/1.1 101" with no reason phrase and no second space. */
    const uint8_t *sp1 = memchr(d, ' ', ce);
    if (sp1 == NULL) {
      *why = "malformed status line";
      return PYWS_ERR_HTTP_PARSE;
    }
    parts[0].ptr = (const char *)d;
    parts[0].len = (size_t)(sp1 - d);
    parts[1].ptr = (const char *)sp1 + 1;
    parts[1].len = ce - (size_t)(sp1 + 1 - d);
    parts[2].ptr = parts[1].ptr + parts[1].len;
    parts[2].len = 0;
  }
  if (pyws_http_parse_version(parts[0].ptr, parts[0].len, &out->version_major,
                              &out->version_minor) != 0 ||
      parts[1].len != 3 || parts[1].ptr[0] < '1' || parts[1].ptr[0] > '9' ||
      parts[1].ptr[1] < '0' || parts[1].ptr[1] > '9' || parts[1].ptr[2] < '0' ||
      parts[1].ptr[2] > '9') {
    *why = "malformed status line";
    return PYWS_ERR_HTTP_PARSE;
  }
  out->status = (parts[1].ptr[0] - '0') * 100 + (parts[1].ptr[1] - '0') * 10 +
                (parts[1].ptr[2] - '0');
  out->reason = parts[2];
  return parse_headers(d, len, (size_t)nl + 1, max_size, out, why);
}
