/* testutil.c - helpers shared by the test suites (see testutil.h) */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *rf_test_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

void rf_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text), "%s", path);
    cr_assert_eq(fclose(f), 0, "%s", path);
}

const char *rf_test_tmp_path(const char *prefix, const char *name)
{
    static char buf[16][512];
    static int next;
    char *p = buf[next++ % 16];
    snprintf(p, sizeof buf[0], "%s/%s_%d_%s", RF_TMPDIR, prefix, (int)getpid(), name);
    return p;
}

rf_test_result_t rf_test_run(const char *args, const char *stdin_path)
{
    char out[512], err[512];
    snprintf(out, sizeof out, "%s/run_%d.out", RF_TMPDIR, (int)getpid());
    snprintf(err, sizeof err, "%s/run_%d.err", RF_TMPDIR, (int)getpid());
    size_t size = strlen(args) + strlen(RF_BIN) + 2048;
    char *cmd = malloc(size);
    cr_assert_not_null(cmd);
    snprintf(cmd, size, "('%s' %s) <'%s' >'%s' 2>'%s'", RF_BIN, args,
             stdin_path ? stdin_path : "/dev/null", out, err);
    int raw = system(cmd);
    free(cmd);
    rf_test_result_t r = {.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1};
    r.out = rf_test_slurp(out);
    r.err = rf_test_slurp(err);
    return r;
}

void rf_test_result_free(rf_test_result_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}
