/* test_unicode.c - UTF-8 decoding as WHATWG does it, JavaScript's \s, categories, NFC */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

/* Decode all of s and return the code points in out (up to max). */
static size_t decode_all(const char *s, size_t len, uint32_t *out, size_t max)
{
    size_t n = 0;
    for (size_t pos = 0; pos < len && n < max;)
        out[n++] = rf__utf8_next(s, len, &pos);
    return n;
}

static void assert_sanitized(const char *in, size_t in_len, const char *want, size_t want_len)
{
    char *out = NULL;
    size_t out_len = 0;
    cr_assert_eq(rf__utf8_sanitize(in, in_len, &out, &out_len), 0);
    cr_assert_eq(out_len, want_len, "sanitized length %zu, want %zu", out_len, want_len);
    cr_assert(memcmp(out, want, want_len) == 0);
    cr_assert_eq(out[out_len], 0, "the result is NUL-terminated");
    free(out);
}

#define FFFD "\xEF\xBF\xBD"

Test(unicode, valid_sequences_decode_to_their_code_points)
{
    const char s[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    uint32_t cp[8];
    size_t n = decode_all(s, sizeof s - 1, cp, 8);
    cr_assert_eq(n, 4);
    cr_assert_eq(cp[0], 'a');
    cr_assert_eq(cp[1], 0xE9);
    cr_assert_eq(cp[2], 0x20AC);
    cr_assert_eq(cp[3], 0x1F600);
    cr_assert_eq(rf__utf8_valid_prefix(s, sizeof s - 1), sizeof s - 1);
}

/* The example of "U+FFFD substitution of maximal subparts" that the Unicode
 * standard and WHATWG use; TextDecoder gives "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd". */
Test(unicode, each_maximal_invalid_subsequence_is_one_replacement)
{
    const char in[] = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
    const char want[] = "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d";
    assert_sanitized(in, sizeof in - 1, want, sizeof want - 1);
}

Test(unicode, overlongs_surrogates_and_out_of_range_are_invalid_byte_by_byte)
{
    /* Each of these lead bytes allows no second byte of the sequence given,
     * so every byte is its own replacement, as TextDecoder decodes them. */
    assert_sanitized("\xC0\x80", 2, FFFD FFFD, 6);
    assert_sanitized("\xE0\x80\x80", 3, FFFD FFFD FFFD, 9);
    assert_sanitized("\xED\xA0\x80", 3, FFFD FFFD FFFD, 9);
    assert_sanitized("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD, 12);
    assert_sanitized("\xF5", 1, FFFD, 3);
    assert_sanitized("\xFF" "a", 2, FFFD "a", 4);
    /* A truncated sequence is one replacement, and the byte that cut it
     * short starts afresh. */
    assert_sanitized("\xE2\x82", 2, FFFD, 3);
    assert_sanitized("\xF0\x9F\x98" "A", 4, FFFD "A", 4);
    cr_assert_eq(rf__utf8_valid_prefix("ab\xE2\x82", 4), 2);
}

Test(unicode, nul_is_an_ordinary_character)
{
    const char s[] = "a\0b";
    uint32_t cp[4];
    cr_assert_eq(decode_all(s, 3, cp, 4), 3);
    cr_assert_eq(cp[1], 0);
    cr_assert_eq(rf__utf8_valid_prefix(s, 3), 3);
    assert_sanitized(s, 3, s, 3);
}

Test(unicode, incomplete_tail_holds_back_only_valid_beginnings)
{
    cr_assert_eq(rf__utf8_incomplete_tail("\xE2", 1), 1);
    cr_assert_eq(rf__utf8_incomplete_tail("a\xE2\x82", 3), 2);
    cr_assert_eq(rf__utf8_incomplete_tail("a\xF0\x9F\x98", 4), 3);
    cr_assert_eq(rf__utf8_incomplete_tail("\xE2\x82\xAC", 3), 0, "complete");
    cr_assert_eq(rf__utf8_incomplete_tail("\xC3\xA9", 2), 0, "complete");
    cr_assert_eq(rf__utf8_incomplete_tail("\xE0\x80", 2), 0, "overlong: already invalid");
    cr_assert_eq(rf__utf8_incomplete_tail("\xED\xA0", 2), 0, "surrogate: already invalid");
    cr_assert_eq(rf__utf8_incomplete_tail("\x80", 1), 0, "a lone continuation byte");
    cr_assert_eq(rf__utf8_incomplete_tail("abc", 3), 0);
    cr_assert_eq(rf__utf8_incomplete_tail("", 0), 0);
}

Test(unicode, encode_round_trips_and_replaces_surrogates)
{
    const uint32_t cps[] = {0, 'A', 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        size_t n = rf__utf8_encode(cps[i], buf);
        size_t pos = 0;
        cr_assert_eq(rf__utf8_next(buf, n, &pos), cps[i], "U+%04X", cps[i]);
        cr_assert_eq(pos, n);
    }
    char buf[4];
    cr_assert_eq(rf__utf8_encode(0xD800, buf), 3);
    cr_assert(memcmp(buf, FFFD, 3) == 0);
}

Test(unicode, space_is_javascripts_backslash_s)
{
    const uint32_t spaces[] = {'\t', '\n', 0x0B, 0x0C, '\r', ' ', 0xA0, 0x1680, 0x2000, 0x200A,
                               0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF};
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++)
        cr_assert(rf__uc_is_space(spaces[i]), "U+%04X is \\s in JavaScript", spaces[i]);
    /* NEL is White_Space in Unicode but not \s in JavaScript; U+180E left
     * Zs in Unicode 6.3; ZERO WIDTH SPACE was never a space; the ASCII
     * separators 1C-1F are spaces to Python, not to JavaScript. */
    const uint32_t not_spaces[] = {0x85, 0x180E, 0x200B, 0x1C, 0x1F, 0, 'a'};
    for (size_t i = 0; i < sizeof not_spaces / sizeof not_spaces[0]; i++)
        cr_assert(!rf__uc_is_space(not_spaces[i]), "U+%04X is not \\s", not_spaces[i]);
    cr_assert(rf__uc_flags('\r') & RF__UC_CRLF);
    cr_assert(rf__uc_flags('\n') & RF__UC_CRLF);
    cr_assert(!(rf__uc_flags(0x2028) & RF__UC_CRLF), "only \\r and \\n count for [\\r\\n]");
}

Test(unicode, letters_numbers_and_punctuation_are_general_categories)
{
    const uint32_t letters[] = {'a', 'Z', 0xC9, 0xDF, 0x416, 0x4E2D, 0x627, 0x2B0 /* Lm */,
                                0x1D400 /* math bold A */, 0x20000 /* CJK ext B */};
    for (size_t i = 0; i < sizeof letters / sizeof letters[0]; i++)
        cr_assert(rf__uc_is_letter(letters[i]), "U+%04X is \\p{L}", letters[i]);
    const uint32_t not_letters[] = {'1', '_', 0x301 /* Mn */, 0x1F600, 0x2160 /* Nl */, ' '};
    for (size_t i = 0; i < sizeof not_letters / sizeof not_letters[0]; i++)
        cr_assert(!rf__uc_is_letter(not_letters[i]), "U+%04X is not \\p{L}", not_letters[i]);
    const uint32_t numbers[] = {'0', '9', 0x663 /* Arabic-Indic 3 */, 0x216B /* Nl */,
                                0xBD /* No */, 0xB2 /* No */};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        cr_assert(rf__uc_is_number(numbers[i]), "U+%04X is \\p{N}", numbers[i]);
    const uint32_t punct[] = {'!', '_', '\'', '"', '@', 0xBF, 0x300C, 0x2014};
    for (size_t i = 0; i < sizeof punct / sizeof punct[0]; i++)
        cr_assert(rf__uc_is_punct(punct[i]), "U+%04X is \\p{P}", punct[i]);
    const uint32_t symbols[] = {'$', '+', '<', '=', '>', '^', '`', '|', '~'};
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++)
        cr_assert(!rf__uc_is_punct(symbols[i]), "'%c' is a symbol (S*), not \\p{P}", symbols[i]);
}

Test(unicode, code_points_newer_than_utf8proc_follow_the_reference)
{
    /* Assigned in Unicode 16.0, which the reference runtime knows and
     * utf8proc 2.8 (Unicode 15.0) does not. */
    cr_assert(rf__uc_is_letter(0x1C89), "CYRILLIC CAPITAL LETTER TJE");
    cr_assert(rf__uc_is_number(0x10D40), "GARAY DIGIT ZERO");
    cr_assert(rf__uc_is_punct(0x1B4E), "BALINESE INVERTED CARIK SIKI");
    cr_assert_eq(rf__uc_flags(0x0378), 0, "still unassigned");
}

static void assert_nfc(const char *in, size_t in_len, const char *want, size_t want_len)
{
    char *out = NULL;
    size_t out_len = 0;
    cr_assert_eq(rf__uc_nfc(in, in_len, &out, &out_len), 0);
    const char *got = out ? out : in;
    cr_assert_eq(out_len, want_len, "NFC length %zu, want %zu", out_len, want_len);
    cr_assert(memcmp(got, want, want_len) == 0);
    free(out);
}

Test(unicode, nfc_composes_reorders_and_keeps_nul)
{
    assert_nfc("e\xCC\x81", 3, "\xC3\xA9", 2);                       /* e + acute */
    assert_nfc("A\xCC\x8A", 3, "\xC3\x85", 2);                       /* A + ring */
    assert_nfc("\xE2\x84\xAB", 3, "\xC3\x85", 2);                    /* ANGSTROM SIGN */
    assert_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", 9, "\xEA\xB0\x81", 3); /* jamo -> 각 */
    /* q has no precomposed forms: the marks only reorder (dot below, 220,
     * before dot above, 230). */
    assert_nfc("q\xCC\x87\xCC\xA3", 5, "q\xCC\xA3\xCC\x87", 5);
    assert_nfc("a\0e\xCC\x81", 5, "a\0\xC3\xA9", 4);
}

Test(unicode, nfc_of_text_below_u0300_allocates_nothing)
{
    char *out = (char *)1;
    size_t out_len = 0;
    const char s[] = "plain ASCII and Latin-1: caf\xC3\xA9";
    cr_assert_eq(rf__uc_nfc(s, sizeof s - 1, &out, &out_len), 0);
    cr_assert_null(out, "already NFC: no copy");
    cr_assert_eq(out_len, sizeof s - 1);
}
