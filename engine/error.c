/* error.c - error codes to text, and the rf_err_t diagnostic buffer
 *
 * Project codes come from RF_ERROR_TABLE in error.h; codes above RF_ERR_BASE
 * are negated errno values and go through strerror().
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *rf_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define RF__ERR_CASE(name, value, msg) \
    case value:                        \
        return msg;
        RF_ERROR_TABLE(RF__ERR_CASE)
#undef RF__ERR_CASE
    default:
        break;
    }
    if (code < 0 && code > RF_ERR_BASE)
        return strerror(-code);
    return "unknown error";
}

int rf_err_set(rf_err_t *err, int code, const char *fmt, ...)
{
    if (err == NULL || err->msg[0] != '\0')
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

void rf_err_clear(rf_err_t *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}
