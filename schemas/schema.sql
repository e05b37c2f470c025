-- schema.sql - the job database of rocmforge (PRAGMA user_version = 1)
--
-- This file is the schema at the newest version. A database is created by
-- running it whole; an older database is brought up to date by the numbered
-- files in migrations/ (NNNN_name.sql moves user_version NNNN-1 -> NNNN),
-- applied in order inside one transaction each by the runner when it opens
-- the database. Times are milliseconds since the Unix epoch (*_ms). JSON
-- columns hold UTF-8 JSON text. Every table is STRICT.
--
-- Job lifecycle (jobs.state), and who moves it (runner/jobq.h has the details):
--   queued --claim--> running --complete--> done
--                       |  \--fail (attempts < max_attempts)--> queued (backoff)
--                       |   \-fail (attempts = max_attempts, or permanent)--> failed
--                       |--release (drain; the attempt is not counted)--> queued
--                       |--lease expired, reclaimed by a claim--> running
--                       \--lease expired, attempts = max_attempts: a claim--> failed
--   queued|running --cancel--> cancelled ; failed|cancelled --retry--> queued
--   done|failed|cancelled --requeue (results and metrics deleted)--> queued
-- A running job belongs to lease_owner until lease_expires_ms; completion,
-- failure, checkpoints and heartbeats are fenced by lease_owner and attempts
-- (the claim's attempt number), so a worker that lost its lease cannot
-- overwrite another's work.

PRAGMA user_version = 1;

-- A named batch of jobs (one `submit --run NAME` target).
CREATE TABLE runs (
    run_id        INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    created_ms    INTEGER NOT NULL,
    defaults      TEXT NOT NULL DEFAULT '{}',   -- JSON: default params for its jobs
    status        TEXT NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'cancelled'))
) STRICT;

CREATE TABLE jobs (
    job_id            INTEGER PRIMARY KEY,
    run_id            INTEGER NOT NULL REFERENCES runs(run_id),
    custom_id         TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('completion', 'chat', 'score')),
    input             TEXT NOT NULL,            -- JSON: {"prompt"} | {"messages"} | {"context","continuation"}
    params            TEXT NOT NULL,            -- JSON: sampling params, defaults applied
    metadata          TEXT,                     -- JSON: the user's own fields (e.g. "expected")
    source_file       TEXT,                     -- file the line came from
    source_line       INTEGER,                  -- 1-based line number in it
    input_hash        TEXT NOT NULL,            -- hash of kind+input+params: resubmission check
    priority          INTEGER NOT NULL DEFAULT 0,   -- higher first
    not_before_ms     INTEGER NOT NULL DEFAULT 0,   -- not claimed before this time
    state             TEXT NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts          INTEGER NOT NULL DEFAULT 0,   -- claims so far
    max_attempts      INTEGER NOT NULL DEFAULT 3,
    lease_owner       TEXT,                     -- workers.worker_id while running
    lease_expires_ms  INTEGER,
    created_ms        INTEGER NOT NULL,
    claimed_ms        INTEGER,                  -- first claim (queue wait ends)
    finished_ms       INTEGER,
    error             TEXT,                     -- last error, one line
    checkpoint        BLOB,                     -- tokens generated so far (resume)
    UNIQUE (run_id, custom_id)
) STRICT;

-- The claim query: queued jobs by priority, then age, that may start now;
-- and expired leases to reclaim.
CREATE INDEX jobs_claim ON jobs (state, priority DESC, job_id)
    WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_expires_ms)
    WHERE state = 'running';
CREATE INDEX jobs_run_state ON jobs (run_id, state);

-- Input lines that could not become jobs; the other lines go in.
CREATE TABLE rejected_lines (
    run_id        INTEGER NOT NULL REFERENCES runs(run_id),
    source_file   TEXT NOT NULL,
    source_line   INTEGER NOT NULL,
    custom_id     TEXT,                         -- when the line had one
    reason        TEXT NOT NULL,                -- one line: what and where
    line          TEXT,                         -- the line, cut to 4 KiB
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (run_id, source_file, source_line)
) STRICT;

-- zstd dictionaries trained per run once enough results exist.
CREATE TABLE zstd_dicts (
    dict_id       INTEGER PRIMARY KEY,          -- the id zstd stores in frames
    run_id        INTEGER REFERENCES runs(run_id),
    created_ms    INTEGER NOT NULL,
    n_samples     INTEGER NOT NULL,
    dict          BLOB NOT NULL
) STRICT;

-- One row per generated sample (n > 1 gives several per job).
CREATE TABLE results (
    job_id            INTEGER NOT NULL REFERENCES jobs(job_id),
    sample            INTEGER NOT NULL DEFAULT 0,
    output            BLOB NOT NULL,            -- zstd frame of the UTF-8 text (or score JSON)
    dict_id           INTEGER REFERENCES zstd_dicts(dict_id),
    output_bytes      INTEGER NOT NULL,         -- uncompressed size
    finish_reason     TEXT NOT NULL,            -- stop | length | context | error
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    logprobs          BLOB,                     -- zstd frame of JSON, when asked
    created_ms        INTEGER NOT NULL,
    PRIMARY KEY (job_id, sample)
) STRICT;

CREATE TABLE job_metrics (
    job_id            INTEGER PRIMARY KEY REFERENCES jobs(job_id),
    worker_id         TEXT,
    model_hash        TEXT,
    queue_ms          INTEGER,                  -- created/not_before to first claim
    ttft_ms           INTEGER,                  -- claim to first token
    prefill_ms        INTEGER,
    decode_ms         INTEGER,
    e2e_ms            INTEGER,                  -- claim to result committed
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    decode_tokens_per_s REAL,
    mean_batch_size   REAL,                     -- sequences per step while it ran
    preemptions       INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE workers (
    worker_id     TEXT PRIMARY KEY,             -- host:pid:start
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_ms    INTEGER NOT NULL,
    heartbeat_ms  INTEGER NOT NULL,
    model         TEXT,
    device        TEXT,
    stopped_ms    INTEGER
) STRICT;
