/* cli_util.c - helpers shared by the subcommands
 *
 * rf__cli_open_tokenizer opens a GGUF's tokenizer and reports failures the
 * way every command does.
 *
 * Model files and token pieces hold arbitrary bytes, but JSON strings must
 * be valid UTF-8: rf__json_from_bytes replaces each invalid byte with U+FFFD
 * so output stays parseable, and rf__json_u64 keeps integers above 2^63
 * exact by writing them as strings.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

void rf__cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "rocmforge: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || s[0] > 0xf4 || n < len)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0; /* overlong, surrogate, or past U+10FFFF */
    return len;
}

json_t *rf__json_from_bytes(const char *data, size_t len)
{
    /* Fast path: most text is valid UTF-8 already. */
    json_t *j = json_stringn(data, len);
    if (j != NULL)
        return j;
    char *clean = malloc(len * 3 + 1);
    if (clean == NULL)
        return NULL;
    const unsigned char *s = (const unsigned char *)data;
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_sequence(s + i, len - i);
        if (k) {
            memcpy(clean + out, s + i, k);
            out += k;
            i += k;
        } else {
            memcpy(clean + out, "\xef\xbf\xbd", 3);
            out += 3;
            i += 1;
        }
    }
    j = json_stringn(clean, out);
    free(clean);
    return j;
}

json_t *rf__json_u64(uint64_t x)
{
    if (x <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)x);
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, x);
    return json_string(buf);
}

int rf__cli_open_tokenizer(const char *cmd, const char *path, rf_tokenizer_t **tok)
{
    rf_gguf_t *g = NULL;
    rf_err_t err = {0};
    int rc = rf_gguf_open(&g, path, &err);
    if (rc < 0) {
        rf__cli_error(cmd, "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return rc;
    }
    rc = rf_tokenizer_open(tok, g, &err);
    rf_gguf_close(g);
    if (rc < 0)
        rf__cli_error(cmd, "%s: %s", path, err.msg[0] ? err.msg : rf_strerror(rc));
    return rc;
}
