/* cli_db.c - helpers for the commands that open a job database
 *
 * The commands that look at or steer a job database (runs, status, export,
 * cancel, retry, requeue) never create one: a mistyped path must be an
 * error naming the path, not a new empty database. They also share how a
 * run is named on the command line (--run NAME) and how times are shown.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "db.h"

int rf__cli_open_db(const char *cmd, const char *path, unsigned flags, rf_db_t **db)
{
    *db = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT)
            rf__cli_error(cmd, "database %s does not exist; check the path (rocmforge submit "
                          "creates a job database)", path);
        else
            rf__cli_error(cmd, "database %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        rf__cli_error(cmd, "database %s is not a regular file; give the job database's path",
                      path);
        return RF_EFORMAT;
    }
    rf_err_t err = {0};
    int rc = rf_db_open(db, path, flags & ~(unsigned)RF_DB_CREATE, &err);
    if (rc < 0)
        rf__cli_error(cmd, "%s", err.msg[0] ? err.msg : rf_strerror(rc));
    return rc;
}

int rf__cli_find_run(const char *cmd, rf_db_t *db, const char *name, int64_t *run_id)
{
    *run_id = 0;
    sqlite3_stmt *stmt;
    rf_err_t err = {0};
    int rc = rf_db_prepare(db, "SELECT run_id FROM runs WHERE name = ?1", &stmt, &err);
    if (rc < 0) {
        rf__cli_error(cmd, "%s", err.msg);
        return rc;
    }
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        *run_id = sqlite3_column_int64(stmt, 0);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        rf__cli_error(cmd, "database %s has no run named '%s'; 'rocmforge runs %s' lists them",
                      rf_db_path(db), name, rf_db_path(db));
        rc = RF_ENOTFOUND;
    } else {
        rc = rf_db_error(db, step, "find run", &err);
        rf__cli_error(cmd, "%s", err.msg);
    }
    rf_db_done(stmt);
    return rc;
}

int64_t rf__cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rf__cli_format_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "-");
}
