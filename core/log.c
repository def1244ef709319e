/*
 * log.c - durable append-only record log.
 *
 * One regular file: a 16-byte header (magic, version, CRC32C of both),
 * then records of an 8-byte little-endian header (payload length, CRC32C)
 * and the payload.  The CRC covers the record's file offset, its length
 * and its payload, so a stale or copied record never validates anywhere
 * but where it was written.  docs/data-dir.md has the byte layout.
 *
 * Appends build header and payload in one scratch buffer and pwrite it
 * at the end in one call, retrying EINTR and short writes.  If the write
 * fails (ENOSPC, EFBIG, EIO) the partial record is cut off with ftruncate
 * and the log stays usable.  A failed fdatasync is not retried: Linux
 * may already have dropped the dirty pages and a second fsync would
 * report success for data that is gone, so the log becomes 'failed' and
 * refuses writes until it is reopened, which re-verifies what is on disk.
 *
 * Recovery walks the records from the header.  At the first record that
 * is incomplete, too long or fails its CRC it scans every later byte
 * offset for a valid record.  None: the damage is a torn tail (a write
 * cut by a crash) and is truncated.  One: the log was damaged in the
 * middle, CS_ECORRUPT, and the file is not touched (unless the caller
 * asked for CS_LOG_SALVAGE).  The scan is O(tail bytes) plus a CRC for
 * each offset whose length field fits the file: cheap for a torn record,
 * quadratic only for a long tail of small little-endian integers.
 * Recovery ends with fdatasync of the file (and, while the log is empty,
 * fsync of its directory): records a crashed process left in the page
 * cache, and the file's own directory entry, are durable before the open
 * reports them.  CS_LOG_NOSYNC keeps all the bookkeeping of sync points
 * but makes no sync call, for runs where only simulated crashes matter.
 *
 * Invariants: the file is FILE_HDR + the sum of (REC_HDR + len) over the
 * 'count' records, ending at 'end', except transiently inside append;
 * synced <= end and synced_count <= count; 'failed' is sticky.
 *
 * Locking: none.  A log is used by one thread at a time (the worker that
 * owns its node).  flock(2) keeps other opens of the file out.  The only
 * global is the test hook, which tests set while no log is in use.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* flock(2) beside _POSIX_C_SOURCE */
#endif
#ifndef _DARWIN_C_SOURCE
#define _DARWIN_C_SOURCE 1
#endif
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif

#include "cs_log.h"
#include "cs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define FILE_HDR 16 /* magic[8], version, crc */
#define REC_HDR 8   /* len, crc */
#define LOG_VERSION 1
#define RD_CHUNK 65536 /* read-ahead for recovery and iteration */

static const unsigned char log_magic[8] = { 'C', 'S',  'L',  'O',
                                            'G', '\r', '\n', 0x1a };

/* A read-ahead window: buf holds the file's bytes [pos, pos + len). */
typedef struct rdbuf {
    unsigned char *buf;
    size_t len, cap;
    uint64_t pos;
} rdbuf;

struct cs_log {
    int fd;
    int flags;
    int err;         /* errno of the last CS_EIO */
    int failed;      /* a sync (or undoing a write) failed */
    int busy;        /* inside cs_log_iter */
    uint64_t end;    /* offset just past the last record */
    uint64_t count;  /* records before 'end' */
    uint64_t synced; /* 'end' at the last successful sync */
    uint64_t synced_count;
    unsigned char *wbuf; /* append scratch: header + payload */
    size_t wcap;
};

static cs__log_hook io_hook; /* tests only */

/* ---------------------------------------------------------------- crc32c */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    uint32_t i, c;
    int k;

    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_tab[0][i] = c;
    }
    /* Slice-by-8: tab[k][b] is the CRC of byte b followed by k zeros. */
    for (i = 0; i < 256; i++) {
        c = crc_tab[0][i];
        for (k = 1; k < 8; k++) {
            c = crc_tab[0][c & 0xff] ^ (c >> 8);
            crc_tab[k][i] = c;
        }
    }
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

uint32_t cs__crc32c(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    uint32_t c = ~crc, hi;

    CS_ASSERT(pthread_once(&crc_once, crc_init) == 0);
    /* Byte loads keep this independent of alignment and endianness. */
    while (n >= 8) {
        c ^= get32(p);
        hi = get32(p + 4);
        c = crc_tab[7][c & 0xff] ^ crc_tab[6][(c >> 8) & 0xff] ^
            crc_tab[5][(c >> 16) & 0xff] ^ crc_tab[4][c >> 24] ^
            crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
            crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0) {
        c = crc_tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    }
    return ~c;
}

/* The CRC stored in a record header: over offset, length and payload. */
static uint32_t record_crc(uint64_t off, const void *data, uint32_t len)
{
    unsigned char pre[12];

    put64(pre, off);
    put32(pre + 8, len);
    return cs__crc32c(cs__crc32c(0, pre, sizeof pre), data, len);
}

static void make_header(unsigned char h[FILE_HDR])
{
    memcpy(h, log_magic, sizeof log_magic);
    put32(h + 8, LOG_VERSION);
    put32(h + 12, cs__crc32c(0, h, 12));
}

/* ------------------------------------------------------------ system I/O */

void cs__log_set_hook(cs__log_hook hook)
{
    io_hook = hook;
}

/* 0, or the errno the test hook wants this call to fail with. */
static int hooked(int op, size_t *len)
{
    size_t none = 0;

    return io_hook ? io_hook(op, len ? len : &none) : 0;
}

static int write_all(int fd, const unsigned char *p, size_t n, uint64_t off,
                     int *err)
{
    while (n > 0) {
        size_t k = n;
        int e = hooked(CS__LOG_IO_WRITE, &k);
        ssize_t r;

        if (e != 0) {
            errno = e;
            r = -1;
        } else {
            r = pwrite(fd, p, k < n ? k : n, (off_t)off);
        }
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *err = errno;
            return CS_EIO;
        }
        if (r == 0) { /* no progress: would loop forever */
            *err = EIO;
            return CS_EIO;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return CS_OK;
}

/* Read up to 'n' bytes at 'off'; *got < n only at end of file. */
static int read_at(int fd, unsigned char *p, size_t n, uint64_t off,
                   size_t *got, int *err)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(off + done));

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *err = errno;
            return CS_EIO;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return CS_OK;
}

static int sync_fd(int fd)
{
#if defined(__APPLE__) && defined(F_FULLFSYNC)
    /* fsync on macOS does not flush the drive's cache. */
    if (fcntl(fd, F_FULLFSYNC) == 0) {
        return 0;
    }
    return fsync(fd);
#else
    /* fdatasync also writes the metadata needed to read the data back,
     * which includes the file size an append changed. */
    return fdatasync(fd);
#endif
}

static int data_sync(int fd, int *err)
{
    for (;;) {
        int e = hooked(CS__LOG_IO_SYNC, NULL);

        if (e == 0 && sync_fd(fd) == 0) {
            return CS_OK;
        }
        if (e != 0) {
            errno = e;
        }
        if (errno != EINTR) {
            *err = errno;
            return CS_EIO;
        }
    }
}

static int truncate_to(int fd, uint64_t off, int *err)
{
    for (;;) {
        int e = hooked(CS__LOG_IO_TRUNC, NULL);

        if (e == 0 && ftruncate(fd, (off_t)off) == 0) {
            return CS_OK;
        }
        if (e != 0) {
            errno = e;
        }
        if (errno != EINTR) {
            *err = errno;
            return CS_EIO;
        }
    }
}

/* The directory part of 'path' in a new string: "a/b" -> "a", "b" -> ".",
 * "/b" -> "/", trailing slashes ignored.  NULL when out of memory. */
static char *dir_of(const char *path)
{
    size_t n = strlen(path), cut;
    char *d;

    while (n > 1 && path[n - 1] == '/') {
        n--;
    }
    cut = n;
    while (cut > 0 && path[cut - 1] != '/') {
        cut--;
    }
    if (cut == 0) {
        path = ".";
        cut = 2;
    } else if (cut == 1) {
        cut = 2; /* keep the root's "/" */
    }
    if ((d = cs_malloc(cut)) == NULL) {
        return NULL;
    }
    memcpy(d, path, cut - 1);
    d[cut - 1] = '\0';
    return d;
}

/* fsync a directory, so that entries created in it are durable. */
static int dir_sync(const char *dir, int *err)
{
    int fd, e, rc = CS_OK;

    do {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        *err = errno;
        return CS_EIO;
    }
    e = hooked(CS__LOG_IO_DIRSYNC, NULL);
    if (e == 0 && fsync(fd) != 0) {
        e = errno;
    }
    /* Some file systems cannot sync a directory and say EINVAL; there is
     * nothing more we could do on them. */
    if (e != 0 && e != EINVAL) {
        *err = e;
        rc = CS_EIO;
    }
    close(fd);
    return rc;
}

/* ------------------------------------------------------------- reading */

/* Point *p at the file's bytes [off, off + n), reading ahead from 'off'
 * when they are not in 'rd' yet.  The caller knows off + n <= size; a
 * shorter read means the file shrank under us: CS_ECORRUPT. */
static int fetch(int fd, rdbuf *rd, uint64_t size, uint64_t off, size_t n,
                 const unsigned char **p, int *err)
{
    size_t want = n < RD_CHUNK ? RD_CHUNK : n, got;
    int rc;

    if (off >= rd->pos && off - rd->pos <= rd->len &&
        n <= rd->len - (off - rd->pos)) {
        *p = rd->buf + (off - rd->pos);
        return CS_OK;
    }
    if (want > size - off) {
        want = (size_t)(size - off);
    }
    if (want > rd->cap) {
        unsigned char *nb = cs_realloc(rd->buf, want);

        if (nb == NULL) {
            return CS_ENOMEM;
        }
        rd->buf = nb;
        rd->cap = want;
    }
    rd->len = 0; /* the window is invalid until refilled */
    if ((rc = read_at(fd, rd->buf, want, off, &got, err)) != CS_OK) {
        return rc;
    }
    rd->pos = off;
    rd->len = got;
    if (got < n) {
        return CS_ECORRUPT;
    }
    *p = rd->buf;
    return CS_OK;
}

/* Is there a valid record at 'off' of a file of 'size' bytes?  On
 * *ok == 1, *len and *payload (inside rd, when not NULL) describe it. */
static int check_at(int fd, rdbuf *rd, uint64_t size, uint64_t off, int *ok,
                    uint32_t *len, const unsigned char **payload, int *err)
{
    const unsigned char *h;
    uint32_t n;
    int rc;

    *ok = 0;
    if (size - off < REC_HDR) {
        return CS_OK;
    }
    if ((rc = fetch(fd, rd, size, off, REC_HDR, &h, err)) != CS_OK) {
        return rc;
    }
    n = get32(h);
    if (n > CS_LOG_MAX_RECORD || n > size - off - REC_HDR) {
        return CS_OK;
    }
    if ((rc = fetch(fd, rd, size, off, REC_HDR + (size_t)n, &h, err)) !=
        CS_OK) {
        return rc;
    }
    if (record_crc(off, h + REC_HDR, n) != get32(h + 4)) {
        return CS_OK;
    }
    *ok = 1;
    *len = n;
    if (payload != NULL) {
        *payload = h + REC_HDR;
    }
    return CS_OK;
}

/* ------------------------------------------------------------- opening */

/* A file shorter than its header: new, or its creation was cut short. */
static int init_header(cs_log *lg, uint64_t size, cs_log_recovery *rec)
{
    unsigned char h[FILE_HDR], cur[FILE_HDR];
    size_t got;
    int rc;

    make_header(h);
    if (size > 0) {
        /* Only a prefix of our own header may be completed; anything
         * else is someone's file. */
        rc = read_at(lg->fd, cur, (size_t)size, 0, &got, &rec->err);
        if (rc != CS_OK) {
            return rc;
        }
        if (got != size || memcmp(cur, h, got) != 0) {
            return CS_ECORRUPT;
        }
        rec->torn = 1;
    }
    rec->created = 1;
    return write_all(lg->fd, h, FILE_HDR, 0, &rec->err);
}

static int check_header(cs_log *lg, cs_log_recovery *rec)
{
    unsigned char h[FILE_HDR];
    size_t got;
    int rc;

    if ((rc = read_at(lg->fd, h, FILE_HDR, 0, &got, &rec->err)) != CS_OK) {
        return rc;
    }
    if (got != FILE_HDR || memcmp(h, log_magic, sizeof log_magic) != 0 ||
        get32(h + 12) != cs__crc32c(0, h, 12) || get32(h + 8) != LOG_VERSION) {
        return CS_ECORRUPT;
    }
    return CS_OK;
}

/* Walk the records, then cut a torn tail or report damage. */
static int recover(cs_log *lg, rdbuf *rd, uint64_t size, cs_log_recovery *rec)
{
    uint64_t off = FILE_HDR, p;
    uint32_t len;
    int ok, found = 0, rc;

    for (;;) {
        rc = check_at(lg->fd, rd, size, off, &ok, &len, NULL, &rec->err);
        if (rc != CS_OK) {
            return rc;
        }
        if (!ok) {
            break;
        }
        lg->count++;
        off += REC_HDR + (uint64_t)len;
    }
    lg->end = off;
    if (off == size) {
        return CS_OK;
    }
    rec->bad_offset = off;
    /* A bad length field tells us nothing about where the next record
     * would be, so try every offset after the bad one. */
    for (p = off + 1; !found && size - p >= REC_HDR; p++) {
        rc = check_at(lg->fd, rd, size, p, &found, &len, NULL, &rec->err);
        if (rc != CS_OK) {
            return rc;
        }
    }
    if (found && !(lg->flags & CS_LOG_SALVAGE)) {
        return CS_ECORRUPT;
    }
    if (found) {
        rec->salvaged = 1;
    } else {
        rec->torn = 1;
    }
    rec->cut_bytes = size - off;
    return truncate_to(lg->fd, off, &rec->err);
}

int cs_log_open(cs_log **out, const char *path, int flags, cs_log_recovery *rec)
{
    const int known =
        CS_LOG_SYNC_EACH | CS_LOG_SYNC_BATCH | CS_LOG_SALVAGE | CS_LOG_NOSYNC;
    const int mode = flags & (CS_LOG_SYNC_EACH | CS_LOG_SYNC_BATCH);
    cs_log_recovery dummy;
    rdbuf rd = { NULL, 0, 0, 0 };
    struct stat st;
    cs_log *lg;
    char *dir;
    int rc;

    if (rec == NULL) {
        rec = &dummy;
    }
    memset(rec, 0, sizeof *rec);
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || path == NULL || path[0] == '\0' || (flags & ~known) ||
        (mode != CS_LOG_SYNC_EACH && mode != CS_LOG_SYNC_BATCH)) {
        return CS_EINVAL;
    }
    /* Allocate everything recovery needs (records above RD_CHUNK aside)
     * before touching the file. */
    if ((lg = cs_calloc(1, sizeof *lg)) != NULL) {
        lg->fd = -1;
    }
    dir = dir_of(path);
    rd.buf = cs_malloc(RD_CHUNK);
    if (lg == NULL || dir == NULL || rd.buf == NULL) {
        rc = CS_ENOMEM;
        goto fail;
    }
    rd.cap = RD_CHUNK;
    lg->flags = flags;
    do {
        lg->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    } while (lg->fd < 0 && errno == EINTR);
    if (lg->fd < 0) {
        rec->err = errno;
        rc = CS_EIO;
        goto fail;
    }
    if (flock(lg->fd, LOCK_EX | LOCK_NB) != 0) {
        rec->err = errno;
        rc = errno == EWOULDBLOCK ? CS_ESTATE : CS_EIO;
        goto fail;
    }
    if (fstat(lg->fd, &st) != 0) {
        rec->err = errno;
        rc = CS_EIO;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = CS_EINVAL;
        goto fail;
    }
    if ((uint64_t)st.st_size < FILE_HDR) {
        rc = init_header(lg, (uint64_t)st.st_size, rec);
        lg->end = FILE_HDR;
    } else {
        rc = check_header(lg, rec);
        if (rc == CS_OK) {
            rc = recover(lg, &rd, (uint64_t)st.st_size, rec);
        }
    }
    /* Sync even a clean file: a crashed writer may have left records in
     * the page cache only.  The directory needs it only while the log is
     * empty: records mean an earlier open got past its own dir_sync. */
    if (rc == CS_OK && !(flags & CS_LOG_NOSYNC)) {
        rc = data_sync(lg->fd, &rec->err);
        if (rc == CS_OK && lg->count == 0) {
            rc = dir_sync(dir, &rec->err);
        }
    }
    rec->records = lg->count;
    rec->bytes = lg->end;
    if (rc != CS_OK) {
        goto fail;
    }
    lg->synced = lg->end;
    lg->synced_count = lg->count;
    cs_free(rd.buf);
    cs_free(dir);
    *out = lg;
    return CS_OK;

fail:
    if (lg != NULL && lg->fd >= 0) {
        close(lg->fd); /* also drops the lock */
    }
    cs_free(lg);
    cs_free(dir);
    cs_free(rd.buf);
    return rc;
}

void cs_log_free(cs_log *lg)
{
    if (lg == NULL) {
        return;
    }
    /* close(2) is not retried on EINTR: on Linux the fd is gone anyway. */
    close(lg->fd);
    cs_free(lg->wbuf);
    cs_free(lg);
}

/* ------------------------------------------------------------- writing */

static int do_sync(cs_log *lg)
{
    if (lg->synced == lg->end) {
        return CS_OK;
    }
    if (!(lg->flags & CS_LOG_NOSYNC) && data_sync(lg->fd, &lg->err) != CS_OK) {
        lg->failed = 1; /* never retried: see the top comment */
        return CS_EIO;
    }
    lg->synced = lg->end;
    lg->synced_count = lg->count;
    return CS_OK;
}

int cs_log_append(cs_log *lg, const void *data, size_t len)
{
    size_t n = REC_HDR + len;
    int e;

    if (lg == NULL || (data == NULL && len > 0)) {
        return CS_EINVAL;
    }
    if (lg->busy) {
        return CS_ESTATE;
    }
    if (lg->failed) {
        return CS_EIO;
    }
    if (len > CS_LOG_MAX_RECORD) {
        return CS_ETOOBIG;
    }
    if (n > lg->wcap) {
        size_t cap = lg->wcap ? lg->wcap : 256;
        unsigned char *nb;

        while (cap < n) {
            cap *= 2;
        }
        if ((nb = cs_realloc(lg->wbuf, cap)) == NULL) {
            return CS_ENOMEM;
        }
        lg->wbuf = nb;
        lg->wcap = cap;
    }
    put32(lg->wbuf, (uint32_t)len);
    put32(lg->wbuf + 4, record_crc(lg->end, data, (uint32_t)len));
    if (len > 0) {
        memcpy(lg->wbuf + REC_HDR, data, len);
    }
    /* One write, so a crash leaves at most this record torn. */
    if (write_all(lg->fd, lg->wbuf, n, lg->end, &lg->err) != CS_OK) {
        e = lg->err;
        /* Cut what part of the record got written, so that the file ends
         * on a record boundary again and later appends land right. */
        if (truncate_to(lg->fd, lg->end, &lg->err) != CS_OK) {
            lg->failed = 1;
        }
        lg->err = e;
        return CS_EIO;
    }
    lg->end += n;
    lg->count++;
    return (lg->flags & CS_LOG_SYNC_EACH) ? do_sync(lg) : CS_OK;
}

int cs_log_sync(cs_log *lg)
{
    if (lg == NULL) {
        return CS_EINVAL;
    }
    if (lg->busy) {
        return CS_ESTATE;
    }
    if (lg->failed) {
        return CS_EIO;
    }
    return do_sync(lg);
}

int cs_log_iter(cs_log *lg, cs_log_fn fn, void *ud)
{
    rdbuf rd = { NULL, 0, 0, 0 };
    const unsigned char *payload;
    uint64_t off = FILE_HDR, i;
    uint32_t len;
    int ok, rc = CS_OK;

    if (lg == NULL || fn == NULL) {
        return CS_EINVAL;
    }
    if (lg->busy) {
        return CS_ESTATE;
    }
    lg->busy = 1; /* count and end stay fixed meanwhile */
    for (i = 0; i < lg->count; i++) {
        rc = check_at(lg->fd, &rd, lg->end, off, &ok, &len, &payload, &lg->err);
        if (rc == CS_OK && !ok) {
            rc = CS_ECORRUPT; /* it was valid when we wrote or found it */
        }
        if (rc == CS_OK) {
            rc = fn(ud, i, payload, len);
        }
        if (rc != CS_OK) {
            break;
        }
        off += REC_HDR + (uint64_t)len;
    }
    lg->busy = 0;
    cs_free(rd.buf);
    return rc;
}

int cs_log_drop_unsynced(cs_log *lg)
{
    if (lg == NULL) {
        return CS_EINVAL;
    }
    if (lg->busy) {
        return CS_ESTATE;
    }
    if (lg->failed) {
        return CS_EIO;
    }
    if (lg->end == lg->synced) {
        return CS_OK;
    }
    /* No sync after the cut: a real disk that lost the writes would not
     * have synced either, and the next sync covers the new size. */
    if (truncate_to(lg->fd, lg->synced, &lg->err) != CS_OK) {
        lg->failed = 1;
        return CS_EIO;
    }
    lg->end = lg->synced;
    lg->count = lg->synced_count;
    return CS_OK;
}

uint64_t cs_log_count(const cs_log *lg)
{
    return lg->count;
}

uint64_t cs_log_synced(const cs_log *lg)
{
    return lg->synced_count;
}

int cs_log_errno(const cs_log *lg)
{
    return lg->err;
}

int cs_log_mkdir(const char *path, int *err)
{
    struct stat st;
    char *parent;
    int e = 0, rc = CS_OK;

    if (path == NULL || path[0] == '\0') {
        return CS_EINVAL;
    }
    if ((parent = dir_of(path)) == NULL) {
        return CS_ENOMEM;
    }
    if (mkdir(path, 0755) != 0) {
        e = errno;
        if (e == EEXIST) {
            e = (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ? 0 : ENOTDIR;
        }
    }
    /* Sync the parent even for an existing directory: whoever made it
     * may have crashed before its entry was durable. */
    if (e == 0) {
        rc = dir_sync(parent, &e);
    } else {
        rc = CS_EIO;
    }
    cs_free(parent);
    if (rc != CS_OK && err != NULL) {
        *err = e;
    }
    return rc;
}
