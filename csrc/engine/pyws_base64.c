/*
 * RFC 4648 base64.  Decoding is strict on purpose: a Sec-WebSocket-Key must
 * be exactly the encoding of 16 bytes, so anything non-canonical is refused.
 */
#include "pyws_base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t pyws_base64_encode(const uint8_t *in, size_t len, char *out) {
  size_t i, o = 0;
  for (i = 0; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = alphabet[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = alphabet[v >> 18];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

static int value_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

long pyws_base64_decode(const char *in, size_t len, uint8_t *out) {
  size_t i, o = 0;
  if (len % 4 != 0) {
    return -1;
  }
  for (i = 0; i < len; i += 4) {
    int a = value_of(in[i]), b = value_of(in[i + 1]);
    int last = i + 4 == len;
    int pad2 = last && in[i + 2] == '=' && in[i + 3] == '=';
    int pad1 = last && !pad2 && in[i + 3] == '=';
    int c = pad2 ? 0 : value_of(in[i + 2]);
    int d = (pad1 || pad2) ? 0 : value_of(in[i + 3]);
    uint32_t v;
    if (a < 0 || b < 0 || c < 0 || d < 0) {
      return -1;
    }
    v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
    out[o++] = (uint8_t)(v >> 16);
    if (pad2) {
      if (v & 0xffffu) return -1; /* non-zero unused bits */
      break;
    }
    out[o++] = (uint8_t)(v >> 8);
    if (pad1) {
      if (v & 0xffu) return -1;
      break;
    }
    out[o++] = (uint8_t)v;
  }
  return (long)o;
}
