/* db_sql.h - the job database's SQL, compiled in (private to runner/)
 *
 * The definitions are generated at build time by runner/embed_sql.cmake from
 * schemas/schema.sql and schemas/migrations/NNNN_name.sql.
 */
#ifndef RF_DB_SQL_H
#define RF_DB_SQL_H

/* One migration: running sql moves user_version from version-1 to version. */
typedef struct rf__migration {
    int version;
    const char *name;   /* file name, for messages */
    const char *sql;
} rf__migration_t;

extern const int rf__schema_version;       /* user_version schema.sql creates */
extern const char *const rf__schema_sql;   /* schemas/schema.sql */
extern const rf__migration_t rf__migrations[]; /* [rf__n_migrations], by version */
extern const int rf__n_migrations;

struct rf_db;
struct rf_err;

/* Bring db from its user_version up to target with migrations[0..n) (one
 * transaction each); a version-0 database with no tables gets rf__schema_sql
 * instead, which must leave user_version == target. rf_db_open calls it with
 * the compiled-in lists; tests call it with their own. Returns 0,
 * RF_EVERSION (newer than target, or a missing step), RF_EFORMAT (tables but
 * no version: not a job database) or a database error. */
int rf__db_upgrade(struct rf_db *db, const rf__migration_t *migrations, int n,
                   int target, struct rf_err *err);

#endif /* RF_DB_SQL_H */
