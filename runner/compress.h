/* compress.h - zstd compression of results, with per-run dictionaries
 *
 * Outputs are stored as zstd frames. Once a run has enough results, a
 * dictionary is trained from a sample of them and stored in zstd_dicts; later
 * frames of that run are compressed with it, and the frame header carries the
 * dictionary id (zstd_dicts.dict_id == the id ZDICT writes), so a reader
 * finds the dictionary by itself. Decompression of a frame that names a
 * dictionary looks it up in the database (cached).
 *
 * Used by the result writer (compress), by export and status (decompress),
 * and by the SQLite extension (rf_decompress()).
 */
#ifndef RF_COMPRESS_H
#define RF_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h" /* rf_bytes_t */

struct sqlite3;

typedef struct rf_compressor rf_compressor_t;

/* A compressor for one database connection (borrowed; must outlive it).
 * level: zstd level (1..19; 0 = default 3). */
int rf_compressor_open(rf_compressor_t **out, struct sqlite3 *db, int level, rf_err_t *err);
void rf_compressor_close(rf_compressor_t *c); /* NULL is fine */

/* Compress data into out (appended). With run_id >= 0, uses the run's newest
 * dictionary if one exists; *dict_id receives the id used (0 if none; dict_id
 * may be NULL). Frames carry their content size and a checksum. Returns 0,
 * -ENOMEM, RF_ENOTFOUND/RF_EFORMAT (the run's dictionary row is missing or
 * damaged) or a database error; on failure out's contents are unchanged. */
int rf_compress(rf_compressor_t *c, int64_t run_id, const void *data, size_t len,
                rf_bytes_t *out, uint32_t *dict_id, rf_err_t *err);

/* Decompress one frame into out (appended), finding its dictionary by the id
 * in the frame header. Returns 0, RF_EFORMAT (not exactly one zstd frame,
 * corrupt, or larger than max_size), RF_ENOTFOUND (the dictionary is not in
 * the database), -ENOMEM. A frame declaring more than max_size bytes is
 * refused before decoding; one without a declared size (streamed) is decoded
 * with output bounded at max_size. On failure out's contents are unchanged. */
int rf_decompress(rf_compressor_t *c, const void *frame, size_t len, size_t max_size,
                  rf_bytes_t *out, rf_err_t *err);

/* Train a dictionary for run_id from up to max_samples of its stored outputs
 * (decompressed) if it has at least min_samples and no dictionary trained
 * from as many; store it in zstd_dicts. Returns 0 (trained), 1 (not enough
 * results yet, or too little text to learn from: nothing done), or an error:
 * RF_ERANGE (bad arguments; dict_size >= 1024), RF_EFORMAT (a stored output
 * does not decompress, or zstd cannot train on these samples), RF_EDB
 * (the dictionary's id and the next ones are all taken), a database error.
 * When another run's dictionary already has the trained id, the dictionary
 * is stored under the next free id (its header rebuilt). Writes one row;
 * joins the caller's transaction if one is open. */
int rf_compress_train(rf_compressor_t *c, int64_t run_id, size_t min_samples,
                      size_t max_samples, size_t dict_size, rf_err_t *err);

/* For compressing off the connection's thread (the runner's thread pool):
 * the run's newest dictionary id (0: none) and a malloc'd copy of its bytes
 * (*dict NULL when none). Returns 0 or an error as rf_compress. */
int rf_compress_run_dict(rf_compressor_t *c, int64_t run_id, uint32_t *dict_id, void **dict,
                         size_t *dict_size, rf_err_t *err);

/* Compress data into out (appended) as rf_compress does, with cdict (a
 * ZSTD_CDict made from rf_compress_run_dict's bytes; NULL: no dictionary)
 * and a context of its own: safe on any thread. Returns 0, -ENOMEM or
 * RF_EFORMAT; on failure out's contents are unchanged. */
struct ZSTD_CDict_s;
int rf_compress_frame(const struct ZSTD_CDict_s *cdict, int level, const void *data, size_t len,
                      rf_bytes_t *out, rf_err_t *err);

#endif /* RF_COMPRESS_H */
