/* unicode.c - UTF-8 decoding, character classes and NFC for the tokenizer
 *
 * UTF-8 decoding follows the WHATWG Encoding Standard's decoder, because the
 * reference tokenizer receives its text from JavaScript, where invalid bytes
 * become U+FFFD exactly that way: a byte that cannot start a sequence, or a
 * sequence cut short by a byte outside the range the lead byte allows, gives
 * one U+FFFD for the bytes consumed so far, and decoding restarts at the
 * offending byte. Overlong forms, surrogates and values above U+10FFFF are
 * excluded by the narrowed ranges after E0, ED, F0 and F4.
 *
 * Character classes come from utf8proc's general categories, plus a table of
 * code points assigned from Unicode 15.1 to 17.0 (utf8proc 2.8 reports them as
 * unassigned; the reference runtime, Node 20 with ICU 78, knows them). The
 * table was made by comparing /\p{L}/u, /\p{N}/u and /\p{P}/u in Node 20.20
 * with utf8proc_category() over every code point: all differences are new
 * assignments, none is a changed category.
 */
#include "unicode.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "error.h"

/* ------------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------------ */

/* One decoding step at p[i] (i < len): stores the code point (U+FFFD when
 * invalid) and returns the number of bytes consumed (>= 1); *valid says
 * whether they formed a well-formed sequence. */
static size_t utf8_step(const unsigned char *p, size_t i, size_t len, uint32_t *cp, bool *valid)
{
    unsigned b0 = p[i];
    if (b0 < 0x80) {
        *cp = b0;
        *valid = true;
        return 1;
    }
    unsigned need;
    uint32_t value;
    unsigned lower = 0x80, upper = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
        value = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        value = b0 & 0x0F;
        if (b0 == 0xE0)
            lower = 0xA0; /* overlong */
        else if (b0 == 0xED)
            upper = 0x9F; /* surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        value = b0 & 0x07;
        if (b0 == 0xF0)
            lower = 0x90; /* overlong */
        else if (b0 == 0xF4)
            upper = 0x8F; /* above U+10FFFF */
    } else {
        *cp = RF__UC_REPLACEMENT;
        *valid = false;
        return 1;
    }
    size_t j = i + 1;
    for (unsigned k = 0; k < need; k++, j++) {
        if (j >= len || p[j] < lower || p[j] > upper) {
            *cp = RF__UC_REPLACEMENT;
            *valid = false;
            return j - i;
        }
        value = (value << 6) | (p[j] & 0x3Fu);
        lower = 0x80;
        upper = 0xBF;
    }
    *cp = value;
    *valid = true;
    return j - i;
}

uint32_t rf__utf8_next(const char *s, size_t len, size_t *pos)
{
    uint32_t cp;
    bool valid;
    *pos += utf8_step((const unsigned char *)s, *pos, len, &cp, &valid);
    return cp;
}

size_t rf__utf8_encode(uint32_t cp, char out[4])
{
    if (cp >= 0xD800 && (cp <= 0xDFFF || cp > 0x10FFFF))
        cp = RF__UC_REPLACEMENT;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t rf__utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* Most text is ASCII: skip it eight bytes at a time. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        bool valid;
        size_t n = utf8_step(p, i, len, &cp, &valid);
        if (!valid)
            return i;
        i += n;
    }
    return len;
}

size_t rf__utf8_incomplete_tail(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        size_t start = len - k;
        unsigned b0 = p[start];
        if (b0 >= 0x80 && b0 <= 0xBF)
            continue; /* a continuation byte: the lead is further back */
        size_t need;
        if (b0 >= 0xC2 && b0 <= 0xDF)
            need = 2;
        else if (b0 >= 0xE0 && b0 <= 0xEF)
            need = 3;
        else if (b0 >= 0xF0 && b0 <= 0xF4)
            need = 4;
        else
            return 0;
        if (need <= k)
            return 0; /* complete (or invalid), nothing to hold back */
        /* The bytes present must be a valid beginning: utf8_step stops at
         * the end of the buffer having consumed all of them only then. */
        uint32_t cp;
        bool valid;
        size_t n = utf8_step(p, start, len, &cp, &valid);
        return n == k ? k : 0;
    }
    return 0;
}

int rf__utf8_sanitize(const char *s, size_t len, char **out, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)s;
    /* Each invalid byte becomes at most three bytes. */
    if (len > (SIZE_MAX - 1) / 3)
        return -ENOMEM;
    char *buf = malloc(len * 3 + 1);
    if (buf == NULL)
        return -ENOMEM;
    size_t o = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        bool valid;
        size_t n = utf8_step(p, i, len, &cp, &valid);
        if (valid) {
            memcpy(buf + o, p + i, n);
            o += n;
        } else {
            buf[o++] = (char)0xEF;
            buf[o++] = (char)0xBF;
            buf[o++] = (char)0xBD;
        }
        i += n;
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return 0;
}

/* ------------------------------------------------------------------------
 * Character classes
 * ------------------------------------------------------------------------ */

typedef struct cp_range {
    uint32_t first, last;
} cp_range_t;

/* Letters (L*) assigned in Unicode 15.1, 16.0 and 17.0. */
static const cp_range_t new_letters[] = {
    {0x088f, 0x088f}, {0x0c5c, 0x0c5c}, {0x0cdc, 0x0cdc}, {0x1c89, 0x1c8a},
    {0xa7cb, 0xa7cf}, {0xa7d2, 0xa7d2}, {0xa7d4, 0xa7d4}, {0xa7da, 0xa7dc},
    {0xa7f1, 0xa7f1}, {0x105c0, 0x105f3}, {0x10940, 0x10959}, {0x10d4a, 0x10d65},
    {0x10d6f, 0x10d85}, {0x10ec2, 0x10ec7}, {0x11380, 0x11389}, {0x1138b, 0x1138b},
    {0x1138e, 0x1138e}, {0x11390, 0x113b5}, {0x113b7, 0x113b7}, {0x113d1, 0x113d1},
    {0x113d3, 0x113d3}, {0x11bc0, 0x11be0}, {0x11db0, 0x11ddb}, {0x13460, 0x143fa},
    {0x16100, 0x1611d}, {0x16d40, 0x16d6c}, {0x16ea0, 0x16eb8}, {0x16ebb, 0x16ed3},
    {0x16ff2, 0x16ff3}, {0x187f8, 0x187ff}, {0x18cff, 0x18cff}, {0x18d09, 0x18d1e},
    {0x18d80, 0x18df2}, {0x1e5d0, 0x1e5ed}, {0x1e5f0, 0x1e5f0}, {0x1e6c0, 0x1e6de},
    {0x1e6e0, 0x1e6e2}, {0x1e6e4, 0x1e6e5}, {0x1e6e7, 0x1e6ed}, {0x1e6f0, 0x1e6f4},
    {0x1e6fe, 0x1e6ff}, {0x2b73a, 0x2b73f}, {0x2cea2, 0x2cead}, {0x2ebf0, 0x2ee5d},
    {0x323b0, 0x33479},
};

/* Numbers (N*) assigned in Unicode 15.1, 16.0 and 17.0. */
static const cp_range_t new_numbers[] = {
    {0x10d40, 0x10d49}, {0x116d0, 0x116e3}, {0x11bf0, 0x11bf9}, {0x11de0, 0x11de9},
    {0x16130, 0x16139}, {0x16d70, 0x16d79}, {0x16ff4, 0x16ff6}, {0x1ccf0, 0x1ccf9},
    {0x1e5f1, 0x1e5fa},
};

/* Punctuation (P*) assigned in Unicode 15.1, 16.0 and 17.0. */
static const cp_range_t new_punct[] = {
    {0x1b4e, 0x1b4f}, {0x1b7f, 0x1b7f}, {0x10d6e, 0x10d6e}, {0x10ed0, 0x10ed0},
    {0x113d4, 0x113d5}, {0x113d7, 0x113d8}, {0x11be1, 0x11be1}, {0x16d6d, 0x16d6f},
    {0x1e5ff, 0x1e5ff},
};

static bool in_ranges(const cp_range_t *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].first)
            hi = mid;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

#define N_RANGES(a) (sizeof(a) / sizeof((a)[0]))

/* ASCII classes, filled in by hand from the Unicode categories: letters and
 * digits, the six JavaScript whitespace characters, and the punctuation (P*)
 * among the printable characters; $ + < = > ^ ` | ~ are symbols (S*). */
#define L_ RF__UC_LETTER
#define N_ RF__UC_NUMBER
#define S_ RF__UC_SPACE
#define P_ RF__UC_PUNCT
#define CR_ (RF__UC_SPACE | RF__UC_CRLF)
static const unsigned char ascii_flags[128] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  S_, CR_, S_, S_, CR_, 0,  0,  /* 00-0f */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,   0,  0,  0,   0,  0,  /* 10-1f */
    S_, P_, P_, P_, 0,  P_, P_, P_, P_, P_, P_,  0,  P_, P_,  P_, P_, /*  !"#$%&'()*+,-./ */
    N_, N_, N_, N_, N_, N_, N_, N_, N_, N_, P_,  P_, 0,  0,   0,  P_, /* 0-9 :;<=>? */
    P_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,  L_, L_, L_,  L_, L_, /* @A-O */
    L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,  P_, P_, P_,  0,  P_, /* P-Z [\]^_ */
    0,  L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,  L_, L_, L_,  L_, L_, /* `a-o */
    L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,  P_, 0,  P_,  0,  0,  /* p-z {|}~ DEL */
};
#undef L_
#undef N_
#undef S_
#undef P_
#undef CR_

static bool is_js_space(uint32_t cp)
{
    /* ECMAScript WhiteSpace (TAB VT FF SP NBSP ZWNBSP and category Zs) and
     * LineTerminator (LF CR LS PS), beyond ASCII. */
    switch (cp) {
    case 0x00A0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000: case 0xFEFF:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

unsigned rf__uc_flags(uint32_t cp)
{
    if (cp < 0x80)
        return ascii_flags[cp];
    if (is_js_space(cp))
        return RF__UC_SPACE;
    if (cp > 0x10FFFF)
        return 0;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
    switch (cat) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return RF__UC_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return RF__UC_NUMBER;
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return RF__UC_PUNCT;
    case UTF8PROC_CATEGORY_CN:
        if (in_ranges(new_letters, N_RANGES(new_letters), cp))
            return RF__UC_LETTER;
        if (in_ranges(new_numbers, N_RANGES(new_numbers), cp))
            return RF__UC_NUMBER;
        if (in_ranges(new_punct, N_RANGES(new_punct), cp))
            return RF__UC_PUNCT;
        return 0;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------
 * NFC
 * ------------------------------------------------------------------------ */

/* Characters NFC leaves alone and that never combine with what precedes
 * them (canonical combining class 0, never the second half of a canonical
 * composition, unchanged by NFC): text splits before each of them into
 * stretches that normalise independently. Below U+0300 everything
 * qualifies; above, the common scripts whose letters all do (Kana, CJK
 * ideographs, Hangul syllables). Checked against Node's normalize() and its
 * decompositions for every code point in these ranges. */
static bool nfc_boundary_before(uint32_t cp)
{
    return cp < 0x300 || (cp >= 0x3041 && cp <= 0x3096) || (cp >= 0x30A1 && cp <= 0x30FA) ||
           (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xAC00 && cp <= 0xD7A3);
}

typedef struct growbuf {
    char *data;
    size_t len, cap;
} growbuf_t;

static int growbuf_append(growbuf_t *b, const void *data, size_t n)
{
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2)
                return -ENOMEM;
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

/* NFC of one stretch, appended to b. */
static int nfc_stretch(growbuf_t *b, const char *s, size_t len)
{
    if (len > (size_t)PTRDIFF_MAX / 8)
        return -ENOMEM;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) {
        free(dst);
        return n == UTF8PROC_ERROR_NOMEM ? -ENOMEM : RF_EFORMAT;
    }
    int rc = growbuf_append(b, dst, (size_t)n);
    free(dst);
    return rc;
}

int rf__uc_nfc(const char *s, size_t len, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = len;
    growbuf_t b = {NULL, 0, 0};
    size_t copied = 0;    /* s[0..copied) is in b, or needs no change */
    size_t boundary = 0;  /* start of the last boundary character seen */
    size_t pos = 0;
    while (pos < len) {
        /* Bytes below 0xCC start code points below U+0300 (or continue
         * them): the common case, decided without decoding. */
        if ((unsigned char)s[pos] < 0xCC) {
            if ((unsigned char)s[pos] < 0x80 || (unsigned char)s[pos] >= 0xC0)
                boundary = pos;
            pos++;
            continue;
        }
        size_t at = pos;
        uint32_t cp = rf__utf8_next(s, len, &pos);
        if (nfc_boundary_before(cp)) {
            boundary = at;
            continue;
        }
        /* This character may change or combine: normalise from the last
         * boundary to the next one. */
        size_t start = boundary > copied ? boundary : copied;
        size_t end = pos;
        while (end < len) {
            size_t next = end;
            uint32_t c = rf__utf8_next(s, len, &next);
            if (nfc_boundary_before(c))
                break;
            end = next;
        }
        int rc = growbuf_append(&b, s + copied, start - copied);
        if (rc == 0)
            rc = nfc_stretch(&b, s + start, end - start);
        if (rc < 0) {
            free(b.data);
            return rc;
        }
        copied = pos = boundary = end;
    }
    if (b.data == NULL && copied == 0)
        return 0; /* nothing to change */
    if (growbuf_append(&b, s + copied, len - copied) < 0) {
        free(b.data);
        return -ENOMEM;
    }
    *out = b.data;
    *out_len = b.len;
    return 0;
}
