/*
 * test_log.c - the durable record log (core/log.c).
 *
 * The contract under test: what cs_log_append acknowledged is there after
 * a reopen, bit for bit; a torn tail is cut and reported; damage in the
 * middle is CS_ECORRUPT and never handed out; drop_unsynced forgets
 * exactly the unsynced records; allocation and I/O failures return their
 * codes and leave a log (and a file) that is still right.  I/O failures
 * come from the test hook (EINTR, short writes, ENOSPC, a failed fsync)
 * and from a real RLIMIT_FSIZE.  The crash tests fork a writer, SIGKILL it
 * at a random moment and check what a reopen finds against what the
 * writer had acknowledged through a pipe.
 *
 * Files live in one mkdtemp directory under /tmp, removed at the end.
 * Randomness comes from cs_rng with fixed seeds.  The crash tests sleep a
 * few hundred microseconds to land the kill somewhere interesting; the
 * assertions hold wherever it lands.  No test asserts a time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cs_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif

#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define FILE_HDR 16             /* as docs/data-dir.md specifies */
#define REC_HDR 8
#define PATHLEN 512
#define MAXPAY (200 * 1024)     /* largest payload the tests write */

static char tmpdir[64];

/* ------------------------------------------------------------- helpers */

static void assert_no_leaks(void)
{
#ifdef HAVE_LSAN
    assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static void tpath(char *out, const char *name)
{
    snprintf(out, PATHLEN, "%s/%s", tmpdir, name);
}

static long file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* The lowest free descriptor: equal before and after means no fd leak. */
static int next_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);

    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The payload of record 'seq' of a test log: its length and bytes are a
 * function of seq, mostly short, now and then over the 64 KiB read-ahead
 * and rarely empty. */
static size_t payload_len(uint64_t seq)
{
    uint64_t h = mix(seq);

    if (h % 97 == 0) {
        return 0;
    }
    if (h % 31 == 0) {
        return 20000 + (size_t)(h >> 40) % 100000;
    }
    return 8 + (size_t)(h >> 32) % 600;
}

static void payload_fill(uint64_t seq, unsigned char *buf, size_t len)
{
    uint64_t h = mix(seq ^ 0x5eed);
    size_t i;

    for (i = 0; i < len; i++) {
        if (i % 8 == 0) {
            h = mix(h + i);
        }
        buf[i] = (unsigned char)(h >> (8 * (i % 8)));
    }
}

static void append_seq(cs_log *lg, uint64_t seq)
{
    static unsigned char buf[MAXPAY];
    size_t len = payload_len(seq);

    payload_fill(seq, buf, len);
    assert_int_equal(cs_log_append(lg, buf, len), CS_OK);
}

/* cs_log_iter callback: record i must be payload i. */
static int check_seq(void *ud, uint64_t index, const void *data, size_t len)
{
    static unsigned char want[MAXPAY];
    uint64_t *seen = ud;

    if (index != *seen || len != payload_len(index)) {
        return 1000;
    }
    payload_fill(index, want, len);
    if (len > 0 && memcmp(data, want, len) != 0) {
        return 1001;
    }
    (*seen)++;
    return 0;
}

static void assert_seqs(cs_log *lg, uint64_t n)
{
    uint64_t seen = 0;

    assert_int_equal(cs_log_count(lg), n);
    assert_int_equal(cs_log_iter(lg, check_seq, &seen), CS_OK);
    assert_int_equal(seen, n);
}

/* Offset of record i in a log of payload_len records. */
static long seq_offset(uint64_t i)
{
    long off = FILE_HDR;
    uint64_t k;

    for (k = 0; k < i; k++) {
        off += REC_HDR + (long)payload_len(k);
    }
    return off;
}

/* A log at 'path' holding records 0..n-1, closed. */
static void make_log(const char *path, uint64_t n)
{
    cs_log *lg;
    uint64_t i;

    unlink(path);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_BATCH, NULL), CS_OK);
    for (i = 0; i < n; i++) {
        append_seq(lg, i);
    }
    assert_int_equal(cs_log_sync(lg), CS_OK);
    cs_log_free(lg);
    assert_int_equal(file_size(path), seq_offset(n));
}

static void raw_write(const char *path, long off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);

    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void raw_flip(const char *path, long off)
{
    unsigned char b;
    int fd = open(path, O_RDWR);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static void le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void rm_tree(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char sub[PATHLEN];

    if (lstat(path, &st) != 0) {
        return;
    }
    if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_tree(sub);
            }
        }
        closedir(d);
        chmod(path, 0700);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* --------------------------------------------------------- fault hook */

static int hk_skip[5], hk_times[5], hk_err[5], hk_calls[5];
static size_t hk_maxlen;

/* Let hk_skip[op] calls pass, then fail hk_times[op] with hk_err[op];
 * writes are cut to hk_maxlen bytes when it is set. */
static int test_hook(int op, size_t *len)
{
    hk_calls[op]++;
    if (op == CS__LOG_IO_WRITE && hk_maxlen > 0 && *len > hk_maxlen) {
        *len = hk_maxlen;
    }
    if (hk_times[op] > 0) {
        if (hk_skip[op] > 0) {
            hk_skip[op]--;
            return 0;
        }
        hk_times[op]--;
        return hk_err[op];
    }
    return 0;
}

static void hook_reset(void)
{
    memset(hk_skip, 0, sizeof hk_skip);
    memset(hk_times, 0, sizeof hk_times);
    memset(hk_err, 0, sizeof hk_err);
    memset(hk_calls, 0, sizeof hk_calls);
    hk_maxlen = 0;
    cs__log_set_hook(test_hook);
}

static int per_test_teardown(void **state)
{
    (void)state;
    cs__log_set_hook(NULL);
    cs_fail_alloc_at(0);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/cs-test-log-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rm_tree(tmpdir);
    return 0;
}

/* ------------------------------------------------------------- crc32c */

/* Bit-at-a-time reference. */
static uint32_t crc_ref(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    int k;

    while (n-- > 0) {
        c ^= *p++;
        for (k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
    }
    return ~c;
}

static void test_crc32c_matches_known_vectors_and_reference(void **state)
{
    unsigned char b[1000];
    size_t i, a, n;
    cs_rng r;

    (void)state;
    assert_int_equal(cs__crc32c(0, "123456789", 9), 0xE3069283u);
    /* RFC 3720 B.4: 32 zero bytes, 32 0xff bytes, 0..31. */
    memset(b, 0, 32);
    assert_int_equal(cs__crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, 32);
    assert_int_equal(cs__crc32c(0, b, 32), 0x62A8AB43u);
    for (i = 0; i < 32; i++) {
        b[i] = (unsigned char)i;
    }
    assert_int_equal(cs__crc32c(0, b, 32), 0x46DD794Eu);
    assert_int_equal(cs__crc32c(0, NULL, 0), 0);
    /* Every alignment and tail length, and chaining at any split. */
    cs_rng_init(&r, 7, 0);
    for (i = 0; i < sizeof b; i++) {
        b[i] = (unsigned char)cs_rng_next(&r);
    }
    for (i = 0; i < 300; i++) {
        a = (size_t)cs_rng_below(&r, 16);
        n = (size_t)cs_rng_below(&r, sizeof b - a);
        assert_int_equal(cs__crc32c(0, b + a, n), crc_ref(b + a, n));
        assert_int_equal(
            cs__crc32c(cs__crc32c(0, b + a, n / 3), b + a + n / 3, n - n / 3),
            crc_ref(b + a, n));
    }
}

/* ----------------------------------------------------------- round trip */

static void test_open_creates_file_with_header(void **state)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;

    (void)state;
    tpath(path, "new.log");
    unlink(path);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_non_null(lg);
    assert_int_equal(rec.created, 1);
    assert_int_equal(rec.torn, 0);
    assert_int_equal(rec.records, 0);
    assert_int_equal(rec.bytes, FILE_HDR);
    assert_int_equal(file_size(path), FILE_HDR);
    assert_int_equal(cs_log_count(lg), 0);
    assert_seqs(lg, 0);
    cs_log_free(lg);
    cs_log_free(NULL);

    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.created, 0);
    cs_log_free(lg);
}

static void test_append_reopen_reads_back_in_order(void **state)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;
    uint64_t i;

    (void)state;
    tpath(path, "roundtrip.log");
    unlink(path);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    for (i = 0; i < 30; i++) {
        append_seq(lg, i);
        assert_int_equal(cs_log_synced(lg), i + 1);   /* SYNC_EACH */
    }
    assert_seqs(lg, 30);
    cs_log_free(lg);
    assert_int_equal(file_size(path), seq_offset(30));
    /* Batches are cheaper; the large records need several read-aheads. */
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_BATCH, &rec), CS_OK);
    assert_int_equal(rec.records, 30);
    for (i = 30; i < 300; i++) {
        append_seq(lg, i);
    }
    assert_int_equal(cs_log_sync(lg), CS_OK);
    cs_log_free(lg);

    /* Reopen, check, then keep appending to the recovered log. */
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_BATCH, &rec), CS_OK);
    assert_int_equal(rec.records, 300);
    assert_int_equal(rec.bytes, (uint64_t)seq_offset(300));
    assert_int_equal(rec.torn, 0);
    assert_int_equal(rec.cut_bytes, 0);
    assert_int_equal(cs_log_synced(lg), 300);
    assert_seqs(lg, 300);
    for (i = 300; i < 350; i++) {
        append_seq(lg, i);
    }
    assert_int_equal(cs_log_synced(lg), 300);
    assert_int_equal(cs_log_sync(lg), CS_OK);
    assert_int_equal(cs_log_synced(lg), 350);
    assert_int_equal(cs_log_sync(lg), CS_OK);       /* nothing to do */
    cs_log_free(lg);

    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.records, 350);
    assert_seqs(lg, 350);
    cs_log_free(lg);
}

static int stop_at_two(void *ud, uint64_t index, const void *data,
                       size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
    return index == 2 ? 77 : 0;
}

static int reenter(void *ud, uint64_t index, const void *data, size_t len)
{
    cs_log *lg = ud;

    (void)index;
    (void)data;
    (void)len;
    if (cs_log_append(lg, "x", 1) != CS_ESTATE ||
        cs_log_sync(lg) != CS_ESTATE ||
        cs_log_drop_unsynced(lg) != CS_ESTATE ||
        cs_log_iter(lg, stop_at_two, NULL) != CS_ESTATE) {
        return 1;
    }
    return 0;
}

static void test_iter_stops_on_nonzero_and_refuses_reentry(void **state)
{
    char path[PATHLEN];
    cs_log *lg;

    (void)state;
    tpath(path, "iter.log");
    make_log(path, 5);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    assert_int_equal(cs_log_iter(lg, stop_at_two, NULL), 77);
    assert_int_equal(cs_log_iter(lg, reenter, lg), CS_OK);
    append_seq(lg, 5);                  /* usable again after the walk */
    assert_seqs(lg, 6);
    cs_log_free(lg);
}

static void test_bad_arguments_are_einval_or_etoobig(void **state)
{
    char path[PATHLEN];
    cs_log *lg = (cs_log *)&lg;
    int fd = next_fd();

    (void)state;
    tpath(path, "args.log");
    unlink(path);
    assert_int_equal(cs_log_open(&lg, path, 0, NULL), CS_EINVAL);
    assert_null(lg);
    assert_int_equal(cs_log_open(&lg, path,
                                 CS_LOG_SYNC_EACH | CS_LOG_SYNC_BATCH, NULL),
                     CS_EINVAL);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH | 0x100, NULL),
                     CS_EINVAL);
    assert_int_equal(cs_log_open(&lg, NULL, CS_LOG_SYNC_EACH, NULL),
                     CS_EINVAL);
    assert_int_equal(cs_log_open(&lg, "", CS_LOG_SYNC_EACH, NULL), CS_EINVAL);
    assert_int_equal(cs_log_open(NULL, path, CS_LOG_SYNC_EACH, NULL),
                     CS_EINVAL);
    assert_int_equal(access(path, F_OK), -1);       /* nothing created */
    /* A directory or a device is not a log. */
    assert_int_equal(cs_log_open(&lg, "/dev/null", CS_LOG_SYNC_EACH, NULL),
                     CS_EINVAL);
    assert_int_equal(next_fd(), fd);

    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    assert_int_equal(cs_log_append(lg, NULL, 1), CS_EINVAL);
    assert_int_equal(cs_log_append(lg, NULL, 0), CS_OK);
    assert_int_equal(cs_log_append(lg, path, CS_LOG_MAX_RECORD + 1),
                     CS_ETOOBIG);
    assert_int_equal(cs_log_count(lg), 1);
    assert_int_equal(cs_log_iter(lg, NULL, NULL), CS_EINVAL);
    cs_log_free(lg);
    assert_int_equal(file_size(path), FILE_HDR + REC_HDR);
}

static void test_second_open_of_same_file_is_estate(void **state)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *a, *b;

    (void)state;
    tpath(path, "locked.log");
    make_log(path, 3);
    assert_int_equal(cs_log_open(&a, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    assert_int_equal(cs_log_open(&b, path, CS_LOG_SYNC_EACH, &rec),
                     CS_ESTATE);
    assert_null(b);
    assert_int_equal(rec.err, EWOULDBLOCK);
    append_seq(a, 3);
    cs_log_free(a);
    assert_int_equal(cs_log_open(&b, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    assert_seqs(b, 4);
    cs_log_free(b);
}

/* ------------------------------------------------------------ recovery */

/* Reopen a log of n good records followed by 'tail' garbage: the tail is
 * cut, reported, and the log takes appends where it left off. */
static void expect_torn(const char *path, uint64_t n, long tail)
{
    cs_log_recovery rec;
    cs_log *lg;

    assert_int_equal(file_size(path), seq_offset(n) + tail);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.torn, 1);
    assert_int_equal(rec.salvaged, 0);
    assert_int_equal(rec.records, n);
    assert_int_equal(rec.cut_bytes, (uint64_t)tail);
    assert_int_equal(rec.bad_offset, (uint64_t)seq_offset(n));
    assert_int_equal(rec.bytes, (uint64_t)seq_offset(n));
    assert_int_equal(file_size(path), seq_offset(n));
    assert_seqs(lg, n);
    append_seq(lg, n);
    cs_log_free(lg);

    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.torn, 0);
    assert_seqs(lg, n + 1);
    cs_log_free(lg);
}

static void test_torn_tail_is_truncated_and_reported(void **state)
{
    static unsigned char rec[REC_HDR + MAXPAY];
    char path[PATHLEN];
    uint64_t n = 40;
    size_t len = payload_len(n);
    long end;

    (void)state;
    tpath(path, "torn.log");
    /* Build record n by hand the way the log would: only its CRC needs
     * the library, and a wrong CRC is what we want in one case. */
    le32(rec, (uint32_t)len);
    payload_fill(n, rec + REC_HDR, len);

    /* 1: a few bytes of the header. */
    make_log(path, n);
    end = seq_offset(n);
    raw_write(path, end, rec, 3);
    expect_torn(path, n, 3);

    /* 2: the whole header and half the payload. */
    make_log(path, n);
    le32(rec + 4, 0x12345678);
    raw_write(path, end, rec, REC_HDR + len / 2);
    expect_torn(path, n, (long)(REC_HDR + len / 2));

    /* 3: a complete last record whose CRC is wrong (the sectors of a torn
     * write hold stale bytes). */
    make_log(path, n);
    raw_write(path, end, rec, REC_HDR + len);
    expect_torn(path, n, (long)(REC_HDR + len));

    /* 4: a length field pointing far past the end. */
    make_log(path, n);
    le32(rec, 0x7fffff);
    raw_write(path, end, rec, REC_HDR + 100);
    expect_torn(path, n, REC_HDR + 100);

    /* 5: zeros, as after a crash that extended the file but not its
     * data. */
    make_log(path, n);
    memset(rec, 0, 4096);
    raw_write(path, end, rec, 4096);
    expect_torn(path, n, 4096);
}

static void test_torn_header_of_new_file_is_completed(void **state)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;

    (void)state;
    tpath(path, "torn-header.log");
    make_log(path, 0);
    assert_int_equal(truncate(path, 7), 0);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.created, 1);
    assert_int_equal(rec.torn, 1);
    assert_int_equal(file_size(path), FILE_HDR);
    append_seq(lg, 0);
    cs_log_free(lg);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_seqs(lg, 1);
    cs_log_free(lg);
}

static void expect_corrupt(const char *path, long bad, uint64_t good)
{
    cs_log_recovery rec;
    cs_log *lg = (cs_log *)&lg;
    long size = file_size(path);
    int fd = next_fd();

    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec),
                     CS_ECORRUPT);
    assert_null(lg);
    assert_int_equal(rec.bad_offset, (uint64_t)bad);
    assert_int_equal(rec.records, good);
    assert_int_equal(file_size(path), size);        /* untouched */
    assert_int_equal(next_fd(), fd);
}

static void test_corruption_in_the_middle_is_ecorrupt(void **state)
{
    char path[PATHLEN];
    unsigned char big[4] = { 0xff, 0xff, 0xff, 0x00 };
    cs_log_recovery rec;
    cs_log *lg;

    (void)state;
    tpath(path, "corrupt.log");

    /* A flipped payload bit in record 7 of 20. */
    make_log(path, 20);
    raw_flip(path, seq_offset(7) + REC_HDR + 3);
    expect_corrupt(path, seq_offset(7), 7);

    /* A flipped CRC byte in record 0. */
    make_log(path, 20);
    raw_flip(path, seq_offset(0) + 5);
    expect_corrupt(path, seq_offset(0), 0);

    /* A length field that now runs past the end of the file: still
     * valid records after it, so not a torn tail. */
    make_log(path, 20);
    raw_write(path, seq_offset(11), big, sizeof big);
    expect_corrupt(path, seq_offset(11), 11);

    /* Damage in the second-to-last record with one good record after. */
    make_log(path, 20);
    raw_flip(path, seq_offset(18) + REC_HDR);
    expect_corrupt(path, seq_offset(18), 18);

    /* CS_LOG_SALVAGE keeps the good prefix and says what it cut. */
    assert_int_equal(cs_log_open(&lg, path,
                                 CS_LOG_SYNC_EACH | CS_LOG_SALVAGE, &rec),
                     CS_OK);
    assert_int_equal(rec.salvaged, 1);
    assert_int_equal(rec.torn, 0);
    assert_int_equal(rec.records, 18);
    assert_int_equal(rec.cut_bytes, (uint64_t)(seq_offset(20) -
                                               seq_offset(18)));
    assert_seqs(lg, 18);
    cs_log_free(lg);
    assert_int_equal(file_size(path), seq_offset(18));
}

static void test_foreign_file_is_ecorrupt_and_untouched(void **state)
{
    char path[PATHLEN];
    const char *text = "this is somebody's notes file, not a log\n";
    int fd;

    (void)state;
    tpath(path, "foreign.log");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    expect_corrupt(path, 0, 0);
    assert_int_equal(truncate(path, 5), 0);     /* short, not our prefix */
    expect_corrupt(path, 0, 0);

    /* A header with a bad version or CRC is refused as well. */
    make_log(path, 2);
    raw_flip(path, 8);
    expect_corrupt(path, 0, 0);
}

static void test_file_changed_under_open_log_is_ecorrupt_on_iter(void **st)
{
    char path[PATHLEN];
    cs_log *lg;
    uint64_t seen = 0;

    (void)st;
    tpath(path, "changed.log");
    make_log(path, 10);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    raw_flip(path, seq_offset(4) + REC_HDR + 1);
    assert_int_equal(cs_log_iter(lg, check_seq, &seen), CS_ECORRUPT);
    assert_int_equal(seen, 4);          /* never handed out record 4 */
    assert_int_equal(truncate(path, seq_offset(2)), 0);
    seen = 0;
    assert_int_equal(cs_log_iter(lg, check_seq, &seen), CS_ECORRUPT);
    assert_int_equal(seen, 2);
    cs_log_free(lg);
}

/* ------------------------------------------------------- drop_unsynced */

static void test_drop_unsynced_forgets_exactly_the_unsynced(void **state)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;

    (void)state;
    tpath(path, "drop.log");
    make_log(path, 0);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_BATCH, NULL), CS_OK);
    assert_int_equal(cs_log_drop_unsynced(lg), CS_OK);      /* nothing */
    append_seq(lg, 0);
    append_seq(lg, 1);
    append_seq(lg, 2);
    assert_int_equal(cs_log_sync(lg), CS_OK);
    append_seq(lg, 3);
    append_seq(lg, 4);
    assert_int_equal(cs_log_count(lg), 5);
    assert_int_equal(cs_log_synced(lg), 3);
    assert_int_equal(cs_log_drop_unsynced(lg), CS_OK);
    assert_int_equal(cs_log_count(lg), 3);
    assert_int_equal(file_size(path), seq_offset(3));
    assert_seqs(lg, 3);
    /* Appends after the drop land where the dropped ones were. */
    append_seq(lg, 3);
    assert_int_equal(cs_log_sync(lg), CS_OK);
    append_seq(lg, 4);              /* unsynced, but in the page cache */
    cs_log_free(lg);

    /* A process crash keeps page-cache writes: the reopen finds and
     * syncs record 4. */
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.records, 5);
    assert_int_equal(cs_log_synced(lg), 5);
    assert_int_equal(cs_log_drop_unsynced(lg), CS_OK);      /* no-op */
    append_seq(lg, 5);
    assert_int_equal(cs_log_drop_unsynced(lg), CS_OK);      /* no-op */
    assert_seqs(lg, 6);
    cs_log_free(lg);
}

/* ---------------------------------------------------------- allocation */

static void test_alloc_failure_is_enomem_and_leaks_nothing(void **state)
{
    char path[PATHLEN], fresh[PATHLEN];
    cs_log *lg;
    long size, n;
    int fd, rc;
    uint64_t seen, nrec;

    (void)state;
    tpath(path, "alloc.log");
    tpath(fresh, "alloc-new.log");
    /* Records over the 64 KiB read-ahead make recovery grow its buffer. */
    for (n = 0; payload_len((uint64_t)n) <= 65536; n++) {
    }
    nrec = (uint64_t)n + 3;
    make_log(path, nrec);
    size = file_size(path);
    fd = next_fd();

    for (n = 1;; n++) {
        lg = (cs_log *)&lg;
        cs_fail_alloc_at(n);
        rc = cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL);
        cs_fail_alloc_at(0);
        if (rc == CS_OK) {
            break;
        }
        assert_int_equal(rc, CS_ENOMEM);
        assert_null(lg);
        assert_int_equal(file_size(path), size);
        assert_int_equal(next_fd(), fd);
        assert_no_leaks();
    }
    assert_true(n > 3);
    assert_seqs(lg, nrec);

    /* Each failing iter or append changes nothing. */
    for (n = 1; n < 4; n++) {
        seen = 0;
        cs_fail_alloc_at(n);
        rc = cs_log_iter(lg, check_seq, &seen);
        cs_fail_alloc_at(0);
        assert_true(rc == CS_OK || rc == CS_ENOMEM);
    }
    cs_log_free(lg);
    unlink(fresh);
    assert_int_equal(cs_log_open(&lg, fresh, CS_LOG_SYNC_EACH, NULL), CS_OK);
    cs_fail_alloc_at(1);
    rc = cs_log_append(lg, "abc", 3);
    cs_fail_alloc_at(0);
    assert_int_equal(rc, CS_ENOMEM);
    assert_int_equal(cs_log_count(lg), 0);
    assert_int_equal(file_size(fresh), FILE_HDR);
    append_seq(lg, 0);
    cs_log_free(lg);
    assert_int_equal(next_fd(), fd);

    /* A new file is not even created when allocation fails. */
    unlink(fresh);
    cs_fail_alloc_at(1);
    rc = cs_log_open(&lg, fresh, CS_LOG_SYNC_EACH, NULL);
    cs_fail_alloc_at(0);
    assert_int_equal(rc, CS_ENOMEM);
    assert_int_equal(access(fresh, F_OK), -1);
    assert_no_leaks();
}

/* ---------------------------------------------------------- I/O errors */

static void test_eintr_and_short_writes_are_retried(void **state)
{
    char path[PATHLEN];
    cs_log *lg;

    (void)state;
    tpath(path, "eintr.log");
    make_log(path, 0);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    hook_reset();
    hk_times[CS__LOG_IO_WRITE] = 3;
    hk_err[CS__LOG_IO_WRITE] = EINTR;
    hk_times[CS__LOG_IO_SYNC] = 2;
    hk_err[CS__LOG_IO_SYNC] = EINTR;
    append_seq(lg, 0);
    assert_int_equal(hk_calls[CS__LOG_IO_WRITE], 4);
    assert_int_equal(hk_calls[CS__LOG_IO_SYNC], 3);

    /* Writes of at most 7 bytes: many short writes per record. */
    hook_reset();
    hk_maxlen = 7;
    append_seq(lg, 1);
    append_seq(lg, 2);
    assert_true(hk_calls[CS__LOG_IO_WRITE] > 20);
    cs__log_set_hook(NULL);
    assert_seqs(lg, 3);
    cs_log_free(lg);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    assert_seqs(lg, 3);
    cs_log_free(lg);
}

static void test_enospc_mid_record_cuts_it_and_log_stays_usable(void **st)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;

    (void)st;
    tpath(path, "enospc.log");
    make_log(path, 4);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    /* The first write gets 5 bytes out, the next finds the disk full. */
    hook_reset();
    hk_maxlen = 5;
    hk_skip[CS__LOG_IO_WRITE] = 1;
    hk_times[CS__LOG_IO_WRITE] = 1;
    hk_err[CS__LOG_IO_WRITE] = ENOSPC;
    assert_int_equal(cs_log_append(lg, "0123456789abcdef", 16), CS_EIO);
    assert_int_equal(cs_log_errno(lg), ENOSPC);
    assert_int_equal(hk_calls[CS__LOG_IO_TRUNC], 1);
    assert_int_equal(file_size(path), seq_offset(4));
    assert_int_equal(cs_log_count(lg), 4);
    cs__log_set_hook(NULL);
    append_seq(lg, 4);
    assert_seqs(lg, 5);
    cs_log_free(lg);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.torn, 0);
    assert_seqs(lg, 5);

    /* If the cut fails too, the log refuses further writes. */
    hook_reset();
    hk_times[CS__LOG_IO_WRITE] = 1;
    hk_err[CS__LOG_IO_WRITE] = ENOSPC;
    hk_times[CS__LOG_IO_TRUNC] = 1;
    hk_err[CS__LOG_IO_TRUNC] = EIO;
    assert_int_equal(cs_log_append(lg, "x", 1), CS_EIO);
    assert_int_equal(cs_log_errno(lg), ENOSPC);     /* the first cause */
    cs__log_set_hook(NULL);
    assert_int_equal(cs_log_append(lg, "x", 1), CS_EIO);
    assert_int_equal(cs_log_sync(lg), CS_EIO);
    assert_int_equal(cs_log_drop_unsynced(lg), CS_EIO);
    assert_seqs(lg, 5);                 /* reading still works */
    cs_log_free(lg);
}

static void test_failed_fsync_fails_the_log_until_reopen(void **state)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;

    (void)state;
    tpath(path, "fsync.log");
    make_log(path, 3);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    hook_reset();
    hk_skip[CS__LOG_IO_SYNC] = 1;       /* record 3's sync goes through */
    hk_times[CS__LOG_IO_SYNC] = 1;
    hk_err[CS__LOG_IO_SYNC] = EIO;
    append_seq(lg, 3);
    assert_int_equal(cs_log_errno(lg), 0);
    {
        size_t len = payload_len(4);
        static unsigned char buf[MAXPAY];

        payload_fill(4, buf, len);
        assert_int_equal(cs_log_append(lg, buf, len), CS_EIO);
    }
    assert_int_equal(cs_log_errno(lg), EIO);
    assert_int_equal(cs_log_synced(lg), 4);         /* 4 not acknowledged */
    assert_int_equal(cs_log_append(lg, "x", 1), CS_EIO);
    assert_int_equal(cs_log_sync(lg), CS_EIO);      /* never retried */
    assert_int_equal(hk_calls[CS__LOG_IO_SYNC], 2);
    cs__log_set_hook(NULL);
    cs_log_free(lg);
    /* The unacknowledged record made it to the file; reopening verifies
     * and syncs it. */
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_BATCH, &rec), CS_OK);
    assert_int_equal(rec.records, 5);
    assert_seqs(lg, 5);
    cs_log_free(lg);

    /* A failing file sync in open fails the open. */
    hook_reset();
    hk_times[CS__LOG_IO_SYNC] = 1;
    hk_err[CS__LOG_IO_SYNC] = EIO;
    lg = (cs_log *)&lg;
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_EIO);
    assert_null(lg);
    assert_int_equal(rec.err, EIO);
    assert_int_equal(hk_calls[CS__LOG_IO_DIRSYNC], 0);  /* has records */

    /* A new (empty) log also syncs its directory, and fails with it. */
    tpath(path, "fsync-new.log");
    unlink(path);
    hk_times[CS__LOG_IO_DIRSYNC] = 1;
    hk_err[CS__LOG_IO_DIRSYNC] = EIO;
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_EIO);
    assert_int_equal(rec.err, EIO);
    assert_int_equal(rec.created, 1);
    /* EINVAL from a directory fsync means "not supported": ignored. */
    hk_times[CS__LOG_IO_DIRSYNC] = 1;
    hk_err[CS__LOG_IO_DIRSYNC] = EINVAL;
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_OK);
    assert_int_equal(rec.created, 0);   /* the header was already there */
    assert_int_equal(hk_calls[CS__LOG_IO_DIRSYNC], 2);
    cs_log_free(lg);
}

static void test_nosync_keeps_the_bookkeeping_without_syncing(void **st)
{
    char path[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;

    (void)st;
    tpath(path, "nosync.log");
    unlink(path);
    hook_reset();
    assert_int_equal(cs_log_open(&lg, path,
                                 CS_LOG_SYNC_BATCH | CS_LOG_NOSYNC, &rec),
                     CS_OK);
    append_seq(lg, 0);
    append_seq(lg, 1);
    assert_int_equal(cs_log_synced(lg), 0);
    assert_int_equal(cs_log_sync(lg), CS_OK);
    assert_int_equal(cs_log_synced(lg), 2);
    append_seq(lg, 2);
    assert_int_equal(cs_log_drop_unsynced(lg), CS_OK);
    assert_seqs(lg, 2);
    cs_log_free(lg);
    assert_int_equal(cs_log_open(&lg, path,
                                 CS_LOG_SYNC_EACH | CS_LOG_NOSYNC, &rec),
                     CS_OK);
    assert_int_equal(rec.records, 2);
    append_seq(lg, 2);
    assert_int_equal(cs_log_synced(lg), 3);
    assert_seqs(lg, 3);
    cs_log_free(lg);
    assert_int_equal(hk_calls[CS__LOG_IO_SYNC], 0);
    assert_int_equal(hk_calls[CS__LOG_IO_DIRSYNC], 0);
}

static void test_file_size_limit_is_eio_efbig_and_nothing_left(void **st)
{
    char path[PATHLEN];
    struct rlimit old, lim;
    void (*oldsig)(int);
    static unsigned char buf[5000];
    cs_log *lg;
    long size;

    (void)st;
    tpath(path, "fsize.log");
    make_log(path, 10);
    size = file_size(path);
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, NULL), CS_OK);
    /* A real kernel short write followed by EFBIG: the limit falls inside
     * the record. */
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    oldsig = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 1000;
    if (old.rlim_max != RLIM_INFINITY && lim.rlim_cur > old.rlim_max) {
        lim.rlim_cur = old.rlim_max;
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    memset(buf, 'z', sizeof buf);
    assert_int_equal(cs_log_append(lg, buf, sizeof buf), CS_EIO);
    assert_int_equal(cs_log_errno(lg), EFBIG);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(file_size(path), size);
    append_seq(lg, 10);
    assert_seqs(lg, 11);
    cs_log_free(lg);
}

static void test_unusable_paths_are_eio_with_errno(void **state)
{
    char path[PATHLEN], file[PATHLEN];
    cs_log_recovery rec;
    cs_log *lg;
    int fd = next_fd();

    (void)state;
    tpath(path, "no-such-dir/x.log");
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_EIO);
    assert_int_equal(rec.err, ENOENT);
    assert_null(lg);

    tpath(file, "plain");
    make_log(file, 0);
    tpath(path, "plain/x.log");
    assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec), CS_EIO);
    assert_int_equal(rec.err, ENOTDIR);

    assert_int_equal(cs_log_open(&lg, tmpdir, CS_LOG_SYNC_EACH, &rec), CS_EIO);
    assert_int_equal(rec.err, EISDIR);

    /* Permissions: root ignores them, so this part needs another user. */
    if (geteuid() != 0) {
        tpath(path, "ro");
        assert_int_equal(mkdir(path, 0500), 0);
        tpath(path, "ro/x.log");
        assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec),
                         CS_EIO);
        assert_int_equal(rec.err, EACCES);
    }
    assert_int_equal(next_fd(), fd);
}

static void test_mkdir_creates_or_accepts_a_directory(void **state)
{
    char path[PATHLEN];
    struct stat st;
    int err = 0;

    (void)state;
    tpath(path, "data");
    assert_int_equal(cs_log_mkdir(path, &err), CS_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(cs_log_mkdir(path, &err), CS_OK);      /* exists */
    tpath(path, "data/node-1/");
    assert_int_equal(cs_log_mkdir(path, &err), CS_OK);      /* slash */
    tpath(path, "data/a/b");
    assert_int_equal(cs_log_mkdir(path, &err), CS_EIO);
    assert_int_equal(err, ENOENT);
    tpath(path, "plain2");
    make_log(path, 0);
    assert_int_equal(cs_log_mkdir(path, &err), CS_EIO);
    assert_int_equal(err, ENOTDIR);
    assert_int_equal(cs_log_mkdir("", &err), CS_EINVAL);
    cs_fail_alloc_at(1);
    assert_int_equal(cs_log_mkdir(path, &err), CS_ENOMEM);
    cs_fail_alloc_at(0);
}

/* --------------------------------------------------------------- crash */

#define CRASH_BATCH 5           /* records per sync in batch mode */

/* The writer: append records from where recovery left off and report
 * each acknowledged sequence number on 'wfd', until killed. */
static void crash_child(const char *path, int mode, int wfd)
{
    cs_log_recovery rec;
    cs_log *lg;
    uint64_t seq;

    if (cs_log_open(&lg, path, mode, &rec) != CS_OK) {
        _exit(3);
    }
    for (seq = rec.records; seq < rec.records + 1000000; seq++) {
        static unsigned char buf[MAXPAY];
        size_t len = payload_len(seq);

        payload_fill(seq, buf, len);
        if (cs_log_append(lg, buf, len) != CS_OK) {
            _exit(4);
        }
        if (mode & CS_LOG_SYNC_BATCH) {
            if ((seq + 1) % CRASH_BATCH != 0) {
                continue;
            }
            if (cs_log_sync(lg) != CS_OK) {
                _exit(5);
            }
        }
        /* Acknowledged: tell the parent.  8 bytes < PIPE_BUF, atomic. */
        if (write(wfd, &seq, sizeof seq) != (ssize_t)sizeof seq) {
            _exit(6);
        }
    }
    for (;;) {
        pause();
    }
}

static void crash_rounds(int mode, int rounds, uint64_t seed,
                         uint64_t max_unacked)
{
    char path[PATHLEN], name[32];
    uint64_t prev = 0, acked, seq, lo, seen;
    int have, p[2], status, round;
    cs_log_recovery rec;
    struct timespec ts;
    cs_rng r;
    cs_log *lg;
    pid_t pid;
    ssize_t got;

    cs_rng_init(&r, seed, 0);
    for (round = 0; round < rounds; round++) {
        /* A fresh file every 10 rounds keeps the files small; within a
         * file each writer starts from what the previous crash left. */
        snprintf(name, sizeof name, "crash-%d-%d.log", mode, round / 10);
        tpath(path, name);
        if (round % 10 == 0) {
            unlink(path);
            prev = 0;
        }
        assert_int_equal(pipe(p), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(path, mode, p[1]);
        }
        close(p[1]);
        have = 0;
        acked = 0;
        /* Mostly let the writer get going first; sometimes kill it
         * while it may still be opening or recovering. */
        if (cs_rng_below(&r, 4) != 0) {
            got = read(p[0], &seq, sizeof seq);
            if (got == (ssize_t)sizeof seq) {
                have = 1;
                acked = seq;
            }
        }
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(50 + cs_rng_below(&r, 750)) * 1000;
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status)) {
            fail_msg("writer exited with status %d in round %d",
                     WEXITSTATUS(status), round);
        }
        while ((got = read(p[0], &seq, sizeof seq)) == (ssize_t)sizeof seq) {
            have = 1;
            acked = seq;
        }
        assert_int_equal(got, 0);
        close(p[0]);

        /* Every acknowledged record, at most max_unacked more, and each
         * one is exactly what was written. */
        assert_int_equal(cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec),
                         CS_OK);
        lo = prev;
        if (have && acked + 1 > lo) {
            lo = acked + 1;
        }
        if (rec.records < lo || rec.records > lo + max_unacked) {
            fail_msg("round %d: %llu records, acknowledged %llu, before %llu",
                     round, (unsigned long long)rec.records,
                     (unsigned long long)(have ? acked + 1 : 0),
                     (unsigned long long)prev);
        }
        seen = 0;
        assert_int_equal(cs_log_iter(lg, check_seq, &seen), CS_OK);
        assert_int_equal(seen, rec.records);
        assert_int_equal(file_size(path), (long)rec.bytes);
#ifdef CRASH_STATS             /* -DCRASH_STATS: where did the kills land? */
        fprintf(stderr, "round %d mode %d: acked %d/%llu records %llu "
                "torn %d cut %llu\n", round, mode, have,
                (unsigned long long)acked,
                (unsigned long long)rec.records, rec.torn,
                (unsigned long long)rec.cut_bytes);
#endif
        prev = rec.records;
        cs_log_free(lg);
    }
}

static void test_crash_keeps_every_acknowledged_record_sync_each(void **st)
{
    (void)st;
    crash_rounds(CS_LOG_SYNC_EACH, 50, 42, 1);
}

static void test_crash_keeps_every_acknowledged_record_sync_batch(void **st)
{
    (void)st;
    crash_rounds(CS_LOG_SYNC_BATCH, 30, 43, CRASH_BATCH);
}

/* Without fsync the writer appends hundreds of records before the kill,
 * which then often lands inside a write: torn tails for real. */
static void test_crash_keeps_every_acknowledged_record_nosync(void **st)
{
    (void)st;
    crash_rounds(CS_LOG_SYNC_EACH | CS_LOG_NOSYNC, 40, 44, 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, per_test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_crc32c_matches_known_vectors_and_reference),
        T(test_open_creates_file_with_header),
        T(test_append_reopen_reads_back_in_order),
        T(test_iter_stops_on_nonzero_and_refuses_reentry),
        T(test_bad_arguments_are_einval_or_etoobig),
        T(test_second_open_of_same_file_is_estate),
        T(test_torn_tail_is_truncated_and_reported),
        T(test_torn_header_of_new_file_is_completed),
        T(test_corruption_in_the_middle_is_ecorrupt),
        T(test_foreign_file_is_ecorrupt_and_untouched),
        T(test_file_changed_under_open_log_is_ecorrupt_on_iter),
        T(test_drop_unsynced_forgets_exactly_the_unsynced),
        T(test_alloc_failure_is_enomem_and_leaks_nothing),
        T(test_eintr_and_short_writes_are_retried),
        T(test_enospc_mid_record_cuts_it_and_log_stays_usable),
        T(test_failed_fsync_fails_the_log_until_reopen),
        T(test_nosync_keeps_the_bookkeeping_without_syncing),
        T(test_file_size_limit_is_eio_efbig_and_nothing_left),
        T(test_unusable_paths_are_eio_with_errno),
        T(test_mkdir_creates_or_accepts_a_directory),
        T(test_crash_keeps_every_acknowledged_record_sync_each),
        T(test_crash_keeps_every_acknowledged_record_sync_batch),
        T(test_crash_keeps_every_acknowledged_record_nosync),
    };
#undef T

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
