/*
 * UTF-8 validation by ranges (RFC 3629 section 4).  The state packs how many
 * continuation bytes are still expected (bits 0-7) and the allowed range of
 * the next one (low bound bits 8-15, high bound bits 16-23): after E0 the
 * next byte must be A0..BF (no overlongs), after ED 80..9F (no surrogates),
 * after F0 90..BF, after F4 80..8F (nothing above U+10FFFF).  Runs of ASCII
 * are skipped 32 bytes at a time with SSE2 (part of every x86-64), else
 * eight at a time.
 */
#include "pyws_utf8.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define PACK(need, lo, hi) ((uint32_t)(need) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)

size_t pyws_ascii_prefix(const uint8_t *p, size_t len) {
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 32 <= len; i += 32) {
    __m128i a = _mm_loadu_si128((const __m128i *)(p + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(p + i + 16));
    if (_mm_movemask_epi8(_mm_or_si128(a, b)) != 0) break;
  }
#endif
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull) break;
  }
  while (i < len && p[i] < 0x80) i++;
  return i;
}

int pyws_utf8_feed(pyws_utf8_state *state, const uint8_t *p, size_t len) {
  uint32_t seen = *state & PYWS_UTF8_NON_ASCII;
  uint32_t st = *state & ~PYWS_UTF8_NON_ASCII;
  size_t i = 0;
  while (i < len) {
    uint8_t c = p[i];
    if (st == PYWS_UTF8_START) {
      if (c < 0x80) {
        i += pyws_ascii_prefix(p + i, len - i);
        continue;
      }
      seen = PYWS_UTF8_NON_ASCII;
      if (c >= 0xc2 && c <= 0xdf) st = PACK(1, 0x80, 0xbf);
      else if (c == 0xe0) st = PACK(2, 0xa0, 0xbf);
      else if (c == 0xed) st = PACK(2, 0x80, 0x9f);
      else if (c >= 0xe1 && c <= 0xef) st = PACK(2, 0x80, 0xbf);
      else if (c == 0xf0) st = PACK(3, 0x90, 0xbf);
      else if (c >= 0xf1 && c <= 0xf3) st = PACK(3, 0x80, 0xbf);
      else if (c == 0xf4) st = PACK(3, 0x80, 0x8f);
      else {
        *state = st | seen;
        return 0;
      }
    } else {
      uint8_t lo = (uint8_t)(st >> 8), hi = (uint8_t)(st >> 16);
      uint32_t need = st & 0xffu;
      if (c < lo || c > hi) {
        *state = st | seen;
        return 0;
      }
      need--;
      st = need ? PACK(need, 0x80, 0xbf) : PYWS_UTF8_START;
    }
    i++;
  }
  *state = st | seen;
  return 1;
}

int pyws_utf8_valid(const uint8_t *p, size_t len) {
  pyws_utf8_state st = PYWS_UTF8_START;
  return pyws_utf8_feed(&st, p, len) && pyws_utf8_complete(st);
}
