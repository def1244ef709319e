/*
 * cs_log.h - durable append-only record log (core/log.c); internal.
 *
 * One file of checksummed records, used under --data-dir for each node's
 * node.store and decision log.  The on-disk format and the fsync policy
 * are specified in docs/data-dir.md; this header gives the contracts.
 *
 * A record is acknowledged once it is durable: in CS_LOG_SYNC_EACH mode
 * when cs_log_append returns CS_OK, in CS_LOG_SYNC_BATCH mode when a later
 * cs_log_sync returns CS_OK.  Opening a log recovers it: every record is
 * verified, a torn tail (an incomplete or bad last record with no valid
 * record after it) is cut off, and a bad record followed by valid data is
 * CS_ECORRUPT, never used.
 *
 * A cs_log is not thread-safe: one thread at a time (the worker that owns
 * the node).  It holds an exclusive flock(2) on its file, so a second open
 * of the same file, from this process or another, fails with CS_ESTATE.
 * Not fork-safe: a child inherits the descriptor and the lock.
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include "consensus.h"

typedef struct cs_log cs_log;

/* Flags for cs_log_open: exactly one of the SYNC_ modes, optionally
 * SALVAGE and NOSYNC. */
#define CS_LOG_SYNC_EACH 0x1  /* fdatasync in every append */
#define CS_LOG_SYNC_BATCH 0x2 /* durable only at cs_log_sync */
#define CS_LOG_SALVAGE \
    0x4 /* cut at a corrupt record instead of
                                   failing with CS_ECORRUPT (reported) */
#define CS_LOG_NOSYNC \
    0x8 /* track sync points as the mode says but
                                   never call fsync: acknowledged survives
                                   a process crash and drop_unsynced, not
                                   a host crash.  For fast simulations.
                                   The directory entry of a file it
                                   creates is not synced either, and a
                                   later syncing open of the file, once
                                   it has records, does not do it. */

/* Largest payload of one record; cs_log_append fails with CS_ETOOBIG
 * above it, and recovery treats a larger length field as damage. */
#define CS_LOG_MAX_RECORD ((size_t)1 << 26)

/* What cs_log_open found.  Every field is set on every return. */
typedef struct cs_log_recovery {
    uint64_t records;    /* valid records in the log after recovery */
    uint64_t bytes;      /* file size after recovery */
    uint64_t cut_bytes;  /* bytes cut off the end (torn or salvaged) */
    uint64_t bad_offset; /* offset of the first bad record, if any */
    int created;         /* the file was new (or empty): header written */
    int torn;            /* a torn tail was cut off */
    int salvaged;        /* CS_LOG_SALVAGE cut valid-looking data away */
    int err;             /* errno of the failing call on CS_EIO/CS_ESTATE */
} cs_log_recovery;

/* Open the log at 'path', creating it (mode 0644) if missing, and recover
 * it as described above.  Recovery ends with an fdatasync of the file,
 * and of its directory while the log is empty (a new file), so every
 * record it reports is durable and counts as synced.  That is one or two
 * fsyncs per open, milliseconds on a real disk, none with NOSYNC.  On
 * CS_OK the caller owns *out (cs_log_free).  Details go to *rec when
 * 'rec' is not NULL.  May block on disk I/O.
 * Returns CS_OK; CS_EINVAL (bad arguments or flags, not a regular file);
 * CS_ENOMEM; CS_EIO (rec->err holds the errno: missing or unwritable
 * directory, I/O error); CS_ESTATE (the file is open elsewhere, rec->err
 * is EWOULDBLOCK); CS_ECORRUPT (not a log of this version, or a bad record
 * followed by valid data at rec->bad_offset; the file is left untouched).
 * On any failure *out is NULL, and no valid record has been removed. */
int cs_log_open(cs_log **out, const char *path, int flags,
                cs_log_recovery *rec);

/* Close the file (releasing its lock) and free the log.  It does not
 * sync: in CS_LOG_SYNC_BATCH mode, records appended since the last
 * cs_log_sync stay unacknowledged.  NULL is ok. */
void cs_log_free(cs_log *lg);

/* Append one record of 'len' bytes (data may be NULL when len is 0) at
 * the end of the file, with one write.  In CS_LOG_SYNC_EACH mode it then
 * fdatasyncs, and CS_OK means the record is durable.  Blocks on disk I/O.
 * Returns CS_OK; CS_ETOOBIG (len > CS_LOG_MAX_RECORD); CS_ENOMEM (nothing
 * written); CS_ESTATE (called from a cs_log_iter callback); CS_EIO, with
 * the errno in cs_log_errno: if the write failed (ENOSPC, EFBIG, EIO) the
 * partial record is cut off again and the log stays usable; if the sync
 * failed, or the cut did, the record may or may not survive and the log is
 * failed: every later append, sync and drop returns CS_EIO, and only
 * cs_log_free and a fresh cs_log_open (which re-verifies) remain. */
int cs_log_append(cs_log *lg, const void *data, size_t len);

/* Make every record appended so far durable (fdatasync), which
 * acknowledges them in CS_LOG_SYNC_BATCH mode.  Nothing to do costs
 * nothing.  Blocks.  Returns CS_OK, CS_ESTATE (inside cs_log_iter), or
 * CS_EIO (errno in cs_log_errno; the log is then failed, see above). */
int cs_log_sync(cs_log *lg);

/* Called by cs_log_iter for each record, in order; 'index' counts from 0.
 * 'data' is valid only during the call.  Return 0 to go on; any other
 * value stops the walk and cs_log_iter returns it. */
typedef int (*cs_log_fn)(void *ud, uint64_t index, const void *data,
                         size_t len);

/* Read the records back in append order, synced or not, verifying each
 * checksum again.  'fn' must not call any cs_log function on 'lg' (they
 * fail with CS_ESTATE while the walk runs).  Returns CS_OK, fn's non-zero
 * value, CS_ENOMEM, CS_EIO, or CS_ECORRUPT if the file changed under the
 * log since it was opened. */
int cs_log_iter(cs_log *lg, cs_log_fn fn, void *ud);

/* Simulate a disk that lost its unsynced writes (the simulator's
 * "lose_unsynced" crash): truncate the file back to the end of the last
 * synced record and forget the records after it.  No-op in
 * CS_LOG_SYNC_EACH mode.  Returns CS_OK, CS_ESTATE or CS_EIO. */
int cs_log_drop_unsynced(cs_log *lg);

/* Records in the log, synced or not. */
uint64_t cs_log_count(const cs_log *lg);

/* Records covered by the last successful sync: the acknowledged ones. */
uint64_t cs_log_synced(const cs_log *lg);

/* The errno of the last CS_EIO this log returned, or 0. */
int cs_log_errno(const cs_log *lg);

/* Create directory 'path' (mode 0755) if it does not exist, then fsync
 * its parent so that the new entry is durable.  An existing directory is
 * fine.  Returns CS_OK, CS_EINVAL, CS_ENOMEM or CS_EIO (errno in *err when
 * 'err' is not NULL). */
int cs_log_mkdir(const char *path, int *err);

/* ------------------------------------------------------ shared, tests */

/* CRC32C (Castagnoli, reflected 0x82F63B78) of 'n' bytes, continuing
 * from 'crc' (0 to start): cs__crc32c(cs__crc32c(0, a), b) is the CRC of
 * a followed by b.  cs__crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t cs__crc32c(uint32_t crc, const void *p, size_t n);

/* Fault injection for tests.  When set, the hook is called before each
 * write, data sync, truncate and directory sync a log makes; it returns 0
 * to let the call go ahead (for a write it may lower *len to force a short
 * write) or an errno value that the call then fails with.  Global and not
 * thread-safe: set it only while no log is in use on another thread. */
enum {
    CS__LOG_IO_WRITE = 1,
    CS__LOG_IO_SYNC,
    CS__LOG_IO_TRUNC,
    CS__LOG_IO_DIRSYNC
};
typedef int (*cs__log_hook)(int op, size_t *len);
void cs__log_set_hook(cs__log_hook hook);

#endif
