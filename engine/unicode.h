/* unicode.h - UTF-8 and Unicode helpers for the tokenizer (engine-private)
 *
 * The tokenizer's reference is a JavaScript implementation, so the helpers
 * here follow what JavaScript does rather than what a C library would do by
 * default:
 *   - UTF-8 is decoded as the WHATWG decoder (TextDecoder) decodes it: each
 *     maximal invalid subsequence becomes one U+FFFD.
 *   - "space" is JavaScript's regular-expression \s: WhiteSpace plus
 *     LineTerminator, which includes U+FEFF and excludes U+0085.
 *   - letter, number and punctuation are the Unicode general categories L*,
 *     N* and P*. utf8proc supplies them (its data is Unicode 15.0); the code
 *     points assigned to those categories from Unicode 15.1 to 17.0 are added
 *     from a small table, because the reference runtime (Node 20 with ICU 78)
 *     knows Unicode 17.0.
 *   - NFC comes from utf8proc.
 * Nothing here allocates except rf__uc_nfc and rf__utf8_sanitize.
 */
#ifndef RF_UNICODE_H
#define RF_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RF__UC_REPLACEMENT 0xFFFDu

/* Character classes, as bit flags. */
enum {
    RF__UC_LETTER = 1u << 0, /* \p{L} */
    RF__UC_NUMBER = 1u << 1, /* \p{N} */
    RF__UC_SPACE = 1u << 2,  /* JavaScript \s */
    RF__UC_PUNCT = 1u << 3,  /* \p{P} */
    RF__UC_CRLF = 1u << 4,   /* '\r' or '\n' */
};

/* Decode the code point at s[*pos] (*pos < len) and advance *pos past it.
 * An invalid or truncated sequence yields U+FFFD and advances past its
 * maximal valid prefix only (at least one byte), as WHATWG specifies. */
uint32_t rf__utf8_next(const char *s, size_t len, size_t *pos);

/* Write cp as UTF-8 to out; returns 1..4. Surrogates and values above
 * U+10FFFF are written as U+FFFD. */
size_t rf__utf8_encode(uint32_t cp, char out[4]);

/* Length of the longest prefix of s[0..len) that is valid UTF-8. */
size_t rf__utf8_valid_prefix(const char *s, size_t len);

/* Number of bytes at the end of s[0..len) that start a UTF-8 sequence that is
 * valid so far but incomplete (0..3): what an incremental decoder holds back. */
size_t rf__utf8_incomplete_tail(const char *s, size_t len);

/* s with every invalid subsequence replaced by U+FFFD, as a malloc'd buffer
 * (NUL-terminated; *out_len excludes the NUL). Returns 0 or -ENOMEM. */
int rf__utf8_sanitize(const char *s, size_t len, char **out, size_t *out_len);

/* RF__UC_* flags of a code point. */
unsigned rf__uc_flags(uint32_t cp);

static inline bool rf__uc_is_letter(uint32_t cp) { return (rf__uc_flags(cp) & RF__UC_LETTER) != 0; }
static inline bool rf__uc_is_number(uint32_t cp) { return (rf__uc_flags(cp) & RF__UC_NUMBER) != 0; }
static inline bool rf__uc_is_space(uint32_t cp) { return (rf__uc_flags(cp) & RF__UC_SPACE) != 0; }
static inline bool rf__uc_is_punct(uint32_t cp) { return (rf__uc_flags(cp) & RF__UC_PUNCT) != 0; }

/* NFC of valid UTF-8 s[0..len). Only the stretches around characters that
 * NFC might change go through utf8proc. When there are none, *out is NULL
 * and nothing is allocated; otherwise *out is a malloc'd NUL-terminated
 * buffer of *out_len bytes. Returns 0, -ENOMEM, or RF_EFORMAT if utf8proc
 * finds s is not valid UTF-8. */
int rf__uc_nfc(const char *s, size_t len, char **out, size_t *out_len);

#endif /* RF_UNICODE_H */
