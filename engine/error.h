/* error.h - error codes and error messages shared by every module
 *
 * Functions return int: 0 is success, a negative value is an error, a positive
 * value means "not done, not broken" (documented per function). Negative values
 * above RF_ERR_BASE are -errno; project codes come from the X-macro table below
 * and rf_strerror() names both kinds.
 *
 * Functions that can fail on input data also take an rf_err_t: a caller-owned
 * buffer that receives one line saying what went wrong and where (file, byte
 * offset, key, tensor). It is optional: pass NULL when the code is enough.
 */
#ifndef RF_ERROR_H
#define RF_ERROR_H

#include <stddef.h>

#define RF_ERR_BASE (-1000)

/* X(name, value, message) */
#define RF_ERROR_TABLE(X)                                                     \
    X(RF_EFORMAT,   -1001, "malformed file or data")                          \
    X(RF_ETRUNC,    -1002, "file is truncated")                               \
    X(RF_EVERSION,  -1003, "unsupported format version")                      \
    X(RF_ETYPE,     -1004, "value has the wrong type")                        \
    X(RF_ERANGE,    -1005, "value out of range")                              \
    X(RF_ENOTFOUND, -1006, "key or tensor not found")                         \
    X(RF_EUNSUPPORTED, -1007, "unsupported feature")                          \
    X(RF_EUSAGE,    -1008, "invalid command-line usage")                      \
    X(RF_EGPU,      -1009, "GPU runtime error")                               \
    X(RF_ENOGPU,    -1010, "no GPU available")                                \
    X(RF_EDB,       -1011, "database error")

enum {
#define RF__ERR_ENUM(name, value, msg) name = value,
    RF_ERROR_TABLE(RF__ERR_ENUM)
#undef RF__ERR_ENUM
};

/* Message for any return code: project codes, -errno and 0. Never NULL. */
const char *rf_strerror(int code);

/* A one-line diagnostic filled in by functions that fail on input. */
typedef struct rf_err {
    int code;       /* the code the failing function returned */
    char msg[512];  /* NUL-terminated, no trailing newline */
} rf_err_t;

/* Format a message into err (if err is non-NULL) and return code, so that
 * `return rf_err_set(err, RF_EFORMAT, "...", ...);` both records and returns.
 * A message already set is kept: the innermost failure describes the cause. */
int rf_err_set(rf_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear err (safe on NULL). */
void rf_err_clear(rf_err_t *err);

#endif /* RF_ERROR_H */
