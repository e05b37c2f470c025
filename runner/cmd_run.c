/* cmd_run.c - `rocmforge run DB -m MODEL.gguf`: run the queued jobs
 *
 * Parses the options, opens the database and the model, hashes the model
 * file (job_metrics.model_hash; checkpoints are only resumed on the same
 * model), and hands over to the worker loop (worker.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "db.h"
#include "engine.h"
#include "scheduler.h"
#include "worker.h"

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge run DB -m MODEL.gguf [options]\n"
            "\n"
            "Run the queued jobs of the job database DB (see `rocmforge submit`) on MODEL and\n"
            "store each result the moment its group commit lands. Several `run` processes\n"
            "may share one database; a killed run loses only the work in flight, which the\n"
            "next run redoes (long generations resume from their last checkpoint).\n"
            "SIGINT/SIGTERM drain: no new jobs, running ones are checkpointed, finished ones\n"
            "committed, the rest released; exit 0. A second signal exits at once.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE            GGUF model (required)\n"
            "      --device cpu|gpu|auto   backend (default auto: the GPU when this build has\n"
            "                              the GPU backend and a device is present)\n"
            "      --gpu N                 which GPU (default 0)\n"
            "      --gpus all|0,1,...      one worker process per GPU, all on DB\n"
            "      --workers N             N worker processes on the chosen device\n"
            "      --gpu-memory F          GPU: fraction of device memory to use; the KV pool\n"
            "                              takes what the weights leave (default 0.90)\n"
            "  -t, --threads N             CPU threads (default: all cores)\n"
            "  -c, --ctx N                 positions per sequence (default: the model's, at\n"
            "                              most 4096); prompt + max_tokens must fit\n"
            "      --max-seqs N            sequences decoded together (default 8)\n"
            "      --max-batched-tokens N  tokens per forward pass (default 512)\n"
            "      --kv-memory BYTES       KV cache pool, e.g. 512M or 2G (default: room for\n"
            "                              --max-seqs sequences of the full context); when\n"
            "                              blocks run out the newest sequence is preempted\n"
            "      --kv-block-size N       positions per KV block (default 16)\n"
            "      --until-empty           exit when no job is left to claim (default)\n"
            "      --watch                 keep polling for new jobs until a signal\n"
            "      --poll-ms N             claim poll period while idle (default 500)\n"
            "      --lease-ms N            job lease; a dead run's jobs return after it\n"
            "                              (default 60000)\n"
            "      --checkpoint-tokens N   checkpoint generations every N tokens (default 64;\n"
            "                              0: never)\n"
            "      --zstd-level N          result compression level 1..19 (default 3)\n"
            "      --worker-id ID          lease owner name (default host:pid:start)\n"
            "      --progress bar|lines|none  stderr progress (default: bar on a terminal)\n"
            "      --stop-after N          drain after N jobs are committed (testing)\n"
            "  -h, --help                  show this help\n"
            "\n"
            "Exit status: 0 done (or drained by a signal), 1 a model or database error\n"
            "(committed results are kept), 2 usage error.\n");
}

/* A 64-bit hash of the whole file (four interleaved multiply-rotate lanes,
 * so it runs at memory speed), printed as "fh64:" + 16 hex digits. It
 * identifies the model file in metrics and checkpoints; it is not a
 * cryptographic digest. */
static int hash_file(const char *path, char out[32])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    enum { CHUNK = 1 << 20 };
    uint64_t *buf = malloc(CHUNK);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full;
    uint64_t lane[4] = {P1, P2, P1 ^ P2, P1 + P2}, total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int rc = -errno;
            free(buf);
            close(fd);
            return rc;
        }
        if (n == 0)
            break;
        size_t words = (size_t)n / 8;
        if ((size_t)n % 8) {
            memset((char *)buf + n, 0, 8 - (size_t)n % 8);
            words++;
        }
        for (size_t i = 0; i < words; i++) {
            uint64_t *l = &lane[i & 3];
            *l ^= buf[i] * P2;
            *l = ((*l << 31) | (*l >> 33)) * P1;
        }
        total += (uint64_t)n;
    }
    free(buf);
    close(fd);
    uint64_t h = total * P1;
    for (int i = 0; i < 4; i++) {
        h ^= lane[i] * P2;
        h = ((h << 27) | (h >> 37)) * P1 + P2;
    }
    h ^= h >> 29;
    snprintf(out, 32, "fh64:%016" PRIx64, h);
    return 0;
}

/* The model's hash runs on its own thread while the engine loads the model:
 * reading a large file twice one after the other doubled the start-up. */
typedef struct {
    const char *path;
    char hash[32];
    int rc;
} hash_job_t;

static void *hash_thread(void *arg)
{
    hash_job_t *j = arg;
    j->rc = hash_file(j->path, j->hash);
    return NULL;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "512M", "2G", "1048576": bytes (binary multiples), > 0. */
static bool parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return false;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end == 'i' || *end == 'B')
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    if (*end != '\0' || v == 0 || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

int rf__cmd_run(int argc, char **argv)
{
    enum { O_DEVICE = 256, O_MAX_SEQS, O_MAX_BATCHED, O_UNTIL_EMPTY, O_WATCH, O_POLL, O_LEASE,
           O_CKPT, O_ZSTD, O_WORKER, O_PROGRESS, O_STOP_AFTER, O_KV_MEMORY, O_KV_BLOCK,
           O_GPU, O_GPU_MEMORY, O_WORKERS, O_GPUS };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'}, {"device", required_argument, NULL, O_DEVICE},
        {"max-seqs", required_argument, NULL, O_MAX_SEQS},
        {"max-batched-tokens", required_argument, NULL, O_MAX_BATCHED},
        {"until-empty", no_argument, NULL, O_UNTIL_EMPTY}, {"watch", no_argument, NULL, O_WATCH},
        {"poll-ms", required_argument, NULL, O_POLL}, {"lease-ms", required_argument, NULL, O_LEASE},
        {"checkpoint-tokens", required_argument, NULL, O_CKPT},
        {"zstd-level", required_argument, NULL, O_ZSTD},
        {"worker-id", required_argument, NULL, O_WORKER},
        {"progress", required_argument, NULL, O_PROGRESS},
        {"stop-after", required_argument, NULL, O_STOP_AFTER},
        {"kv-memory", required_argument, NULL, O_KV_MEMORY},
        {"kv-block-size", required_argument, NULL, O_KV_BLOCK},
        {"gpu", required_argument, NULL, O_GPU},
        {"gpu-memory", required_argument, NULL, O_GPU_MEMORY},
        {"workers", required_argument, NULL, O_WORKERS},
        {"gpus", required_argument, NULL, O_GPUS},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *device = "auto";
    long threads = 0, ctx = 0, max_seqs = 8, max_batched = 512, poll = 500, lease = 60000,
         ckpt = 64, level = 3, stop_after = 0, kv_block = 16;
    uint64_t kv_memory = 0;
    long gpu_index = 0, workers = 1;
    const char *gpus_arg = NULL;
    /* getopt_long reorders argv: workers get the arguments as given. */
    char *orig_argv[512];
    if (argc >= 512) {
        rf__cli_error("run", "too many arguments (%d)", argc);
        return RF_EXIT_USAGE;
    }
    memcpy(orig_argv, argv, (size_t)argc * sizeof *argv);
    orig_argv[argc] = NULL;
    double gpu_memory = 0.90;
    rf_worker_options_t wo = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:c:h", longopts, NULL)) != -1) {
        bool ok = true;
        const char *what = NULL;
        switch (c) {
        case 'm': model = optarg; break;
        case 't': ok = parse_long(optarg, 1, 1024, &threads); what = "--threads (1..1024)"; break;
        case 'c': ok = parse_long(optarg, 16, 1 << 20, &ctx); what = "--ctx (16..1048576)"; break;
        case O_DEVICE: device = optarg; break;
        case O_MAX_SEQS:
            ok = parse_long(optarg, 1, 4096, &max_seqs); what = "--max-seqs (1..4096)"; break;
        case O_MAX_BATCHED:
            ok = parse_long(optarg, 1, 1 << 20, &max_batched);
            what = "--max-batched-tokens (1..1048576)";
            break;
        case O_UNTIL_EMPTY: wo.watch = false; break;
        case O_WATCH: wo.watch = true; break;
        case O_POLL: ok = parse_long(optarg, 10, 3600000, &poll); what = "--poll-ms (10..3600000)"; break;
        case O_LEASE:
            ok = parse_long(optarg, 1000, 86400000, &lease); what = "--lease-ms (1000..86400000)";
            break;
        case O_CKPT:
            ok = parse_long(optarg, 0, 1000000, &ckpt); what = "--checkpoint-tokens (0..1000000)";
            break;
        case O_ZSTD: ok = parse_long(optarg, 1, 19, &level); what = "--zstd-level (1..19)"; break;
        case O_WORKER: wo.worker_id = optarg; break;
        case O_PROGRESS:
            if (strcmp(optarg, "bar") == 0)
                wo.progress = 1;
            else if (strcmp(optarg, "lines") == 0)
                wo.progress = 2;
            else if (strcmp(optarg, "none") == 0)
                wo.progress = -1;
            else
                ok = false, what = "--progress (bar, lines or none)";
            break;
        case O_STOP_AFTER:
            ok = parse_long(optarg, 1, 1L << 40, &stop_after); what = "--stop-after (>= 1)";
            break;
        case O_KV_MEMORY:
            ok = parse_bytes(optarg, &kv_memory);
            what = "--kv-memory (bytes, with an optional K, M or G suffix)";
            break;
        case O_GPU:
            ok = parse_long(optarg, 0, 1023, &gpu_index); what = "--gpu (a device index)";
            break;
        case O_GPU_MEMORY: {
            char *end;
            gpu_memory = strtod(optarg, &end);
            ok = *end == '\0' && gpu_memory > 0.05 && gpu_memory <= 1.0;
            what = "--gpu-memory (a fraction in (0.05, 1])";
            break;
        }
        case O_WORKERS:
            ok = parse_long(optarg, 1, 64, &workers); what = "--workers (1..64)";
            break;
        case O_GPUS: gpus_arg = optarg; break;
        case O_KV_BLOCK:
            ok = parse_long(optarg, 1, 1024, &kv_block); what = "--kv-block-size (1..1024)";
            break;
        case 'h': run_usage(stdout); return RF_EXIT_OK;
        default: run_usage(stderr); return RF_EXIT_USAGE;
        }
        if (!ok) {
            rf__cli_error("run", "bad value '%s' for %s", optarg, what);
            return RF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || model == NULL) {
        rf__cli_error("run", "%s", optind != argc - 1 ? "expected one database path"
                                                      : "no model: give -m MODEL.gguf");
        run_usage(stderr);
        return RF_EXIT_USAGE;
    }
    rf_device_t dev = RF_DEVICE_AUTO;
    if (strcmp(device, "gpu") == 0)
        dev = RF_DEVICE_GPU;
    else if (strcmp(device, "cpu") == 0)
        dev = RF_DEVICE_CPU;
    else if (strcmp(device, "auto") != 0) {
        rf__cli_error("run", "bad value '%s' for --device (cpu, gpu or auto)", device);
        return RF_EXIT_USAGE;
    }
    if (max_batched < max_seqs) {
        rf__cli_error("run", "--max-batched-tokens (%ld) must be at least --max-seqs (%ld)",
                      max_batched, max_seqs);
        return RF_EXIT_USAGE;
    }
    const char *db_path = argv[optind];
    if (access(db_path, F_OK) != 0) {
        rf__cli_error("run", "%s: no such database (create one with `rocmforge submit %s "
                      "FILE.jsonl`)", db_path, db_path);
        return RF_EXIT_FAIL;
    }
    if (gpus_arg != NULL || workers > 1) {
        int gpus[64], n = 0;
        if (gpus_arg != NULL && strcmp(gpus_arg, "all") == 0) {
            n = rf_engine_gpu_count();
            for (int k = 0; k < n && k < 64; k++)
                gpus[k] = k;
            n = n < 64 ? n : 64;
        } else if (gpus_arg != NULL) {
            for (const char *q = gpus_arg; *q != '\0' && n < 64;) {
                char *end;
                long v = strtol(q, &end, 10);
                if (end == q || v < 0 || v > 1023 || (*end != ',' && *end != '\0')) {
                    rf__cli_error("run", "bad value '%s' for --gpus (all, or indices like 0,1,2)",
                                  gpus_arg);
                    return RF_EXIT_USAGE;
                }
                gpus[n++] = (int)v;
                q = *end == ',' ? end + 1 : end;
            }
        }
        if (gpus_arg != NULL && n == 0) {
            rf__cli_error("run", "--gpus %s: no GPU found (this build has %s GPU backend)",
                          gpus_arg, rf_engine_gpu_available() ? "a" : "no usable");
            return RF_EXIT_FAIL;
        }
        int rc = rf__run_launch(argc, orig_argv, gpus_arg ? gpus : NULL,
                                gpus_arg ? n : (int)workers, db_path, wo.progress == -1);
        return rc;
    }

    int status = RF_EXIT_FAIL;
    rf_db_t *db = NULL;
    rf_engine_t *e = NULL;
    rf_sched_t *sched = NULL;
    rf_err_t err = {0};
    int64_t load_start = rf__cli_now_ms();
    hash_job_t hj = {.path = model};
    pthread_t hasher;
    bool hashing = pthread_create(&hasher, NULL, hash_thread, &hj) == 0;
    int rc;
    if (!hashing)
        hash_thread(&hj);
    if (rf__cli_open_db("run", db_path, 0, &db) != 0)
        goto done;
    rf_engine_options_t eo = {.device = dev, .gpu_index = (int)gpu_index,
                              .gpu_memory = kv_memory == 0 ? gpu_memory : 0,
                              .n_threads = (int)threads, .n_ctx = (uint32_t)ctx,
                              .max_seqs = (uint32_t)max_seqs, .kv_paged = true,
                              .kv_block_size = (uint32_t)kv_block, .kv_memory = kv_memory};
    rc = rf_engine_open(&e, model, &eo, &err);
    if (hashing) {
        pthread_join(hasher, NULL);
        hashing = false;
    }
    if (rc < 0) {
        rf__cli_error("run", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    if (hj.rc < 0) {
        rf__cli_error("run", "%s: %s", model, strerror(-hj.rc));
        goto done;
    }
    double load_s = (double)(rf__cli_now_ms() - load_start) / 1e3;
    rf_sched_options_t so = {.max_batched_tokens = (uint32_t)max_batched,
                             .max_seqs = (uint32_t)max_seqs,
                             .checkpoint_tokens = (uint32_t)ckpt};
    rc = rf_sched_open(&sched, e, &so, &err);
    if (rc < 0) {
        rf__cli_error("run", "%s", err.msg);
        goto done;
    }
    wo.model_path = model;
    wo.model_hash = hj.hash;
    char device_desc[300];
    snprintf(device_desc, sizeof device_desc, "%s%s", rf_engine_on_gpu(e) ? "gpu:" : "",
             rf_engine_device_name(e));
    wo.device = device_desc;
    wo.lease_ms = lease;
    wo.poll_ms = poll;
    wo.zstd_level = (int)level;
    wo.stop_after_jobs = stop_after;
    uint32_t kv_blocks = rf_engine_kv_blocks(e) - 1;
    char where[320];
    if (rf_engine_on_gpu(e))
        snprintf(where, sizeof where, "the GPU (%s)", rf_engine_device_name(e));
    else
        snprintf(where, sizeof where, "the CPU (%d threads)", rf_engine_n_threads(e));
    fprintf(stderr, "rocmforge run: %s on %s, context %u, up to %ld sequences, %ld tokens per "
            "step, KV pool %u blocks of %u positions (%.1f MiB), loaded in %.1f s\n",
            model, where, rf_engine_n_ctx(e), max_seqs, max_batched, kv_blocks,
            rf_engine_kv_block_size(e),
            (double)kv_blocks * (double)rf_engine_kv_block_bytes(e) / (1 << 20), load_s);
    rc = rf_worker_run(db, e, sched, &wo, &err);
    if (rc != 0)
        rf__cli_error("run", "%s", err.msg[0] ? err.msg : "failed");
    status = rc == 0 ? RF_EXIT_OK : RF_EXIT_FAIL;
done:
    if (hashing)
        pthread_join(hasher, NULL);
    rf_sched_close(sched);
    rf_engine_close(e);
    if (db != NULL)
        rf_db_close(db);
    return status;
}
