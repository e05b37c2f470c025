/* testutil.h - helpers shared by the test suites (not part of rocmforge)
 *
 * Running the CLI and reading its output, unique temporary paths, small
 * files. Every helper fails the current Criterion test on an I/O error.
 */
#ifndef RF_TESTUTIL_H
#define RF_TESTUTIL_H

#include <stddef.h>

typedef struct rf_test_result {
    int status;     /* exit status, or -1 if killed by a signal */
    char *out, *err; /* captured stdout and stderr, NUL-terminated */
} rf_test_result_t;

/* Whole file as a NUL-terminated buffer (free it). */
char *rf_test_slurp(const char *path);

/* Write text to path (replacing it). */
void rf_test_write_file(const char *path, const char *text);

/* RF_TMPDIR/PREFIX_PID_NAME; the last 16 results stay valid. */
const char *rf_test_tmp_path(const char *prefix, const char *name);

/* Run `sh -c "(RF_BIN ARGS) <stdin >out 2>err"`; stdin_path NULL means
 * /dev/null. ARGS is shell syntax and may be a pipeline. */
rf_test_result_t rf_test_run(const char *args, const char *stdin_path);

void rf_test_result_free(rf_test_result_t *r);

#endif /* RF_TESTUTIL_H */
