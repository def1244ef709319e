/*
 * fuzz_trace.c - libFuzzer target for the --trace writer (lua/ltrace.c).
 *
 * The input is read as a little program: a few message type names to
 * intern (through lcs_type_id, as node states do), then trace records
 * with arbitrary kinds, nodes, peers, type ids, sizes, timer tags, drop
 * reasons, times, slots and decision values (arbitrary bytes: the writer
 * decodes them to JSON), and free text for log and error lines with any
 * byte in it.  Everything is written to a memory stream, and every line
 * the writer produced must be one line: no raw newline or control byte
 * may escape a JSON string.  The writer must never crash, hang or leak.
 *
 * Build: cmake -DCS_FUZZ=ON with clang (tests/fuzz/README.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lconsensus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static unsigned byte(reader *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

static uint64_t word(reader *r, int bytes)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < bytes; i++) {
        v |= (uint64_t)byte(r) << (8 * i);
    }
    return v;
}

/* A slice of the input of at most 'max' bytes. */
static const uint8_t *slice(reader *r, size_t max, size_t *len)
{
    const uint8_t *s = r->p;
    size_t n = byte(r) % (max + 1);

    s = r->p;
    if ((size_t)(r->end - r->p) < n) {
        n = (size_t)(r->end - r->p);
    }
    r->p += n;
    *len = n;
    return s;
}

static void check_lines(const char *out, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c < 0x20 && c != '\n') {
            fprintf(stderr, "fuzz_trace: raw control byte 0x%02x\n", c);
            abort();
        }
    }
    if (len > 0 && out[len - 1] != '\n') {
        fprintf(stderr, "fuzz_trace: the output ends inside a line\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = { data, data + size };
    lcs_run run;
    lcs_limits lim = { .max_msg = 1 << 20 };
    char *out = NULL;
    size_t outlen = 0, len;
    uint32_t i, n = 1 + byte(&r) % 8;
    unsigned ntypes = byte(&r) % 6, k;

    memset(&run, 0, sizeof run);
    run.n = n;
    run.L = luaL_newstate();
    if (run.L == NULL || lcs_types_init(&run) != CS_OK) {
        abort();
    }
    luaL_openlibs(run.L);
    luaL_getsubtable(run.L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(run.L, luaopen_consensus);
    lua_setfield(run.L, -2, "consensus");
    lua_pop(run.L, 1);
    luaL_requiref(run.L, "consensus", luaopen_consensus, 0);
    lua_pop(run.L, 1);
    run.nodes = calloc(n, sizeof *run.nodes);
    run.trace = open_memstream(&out, &outlen);
    if (run.nodes == NULL || run.trace == NULL) {
        abort();
    }
    for (i = 0; i < n; i++) {
        run.nodes[i].run = &run;
        run.nodes[i].id = i;
        run.nodes[i].n = n;
        run.nodes[i].lim = &lim;
    }
    for (k = 0; k < ntypes; k++) {
        const uint8_t *name = slice(&r, 40, &len);

        lcs_type_id(&run.nodes[k % n], (const char *)name, len);
    }
    while (r.p < r.end) {
        unsigned op = byte(&r) % 4;

        if (op < 3) {
            cs_trace_rec rec;
            const uint8_t *val;

            memset(&rec, 0, sizeof rec);
            rec.kind = (int)(byte(&r) % 12);
            rec.at = (cs_time)word(&r, 5);
            rec.node = byte(&r) % n;
            rec.peer = byte(&r) & 1 ? CS_NO_NODE : byte(&r) % n;
            rec.src = byte(&r) % n;
            rec.id = word(&r, 3);
            rec.msg_kind = byte(&r) % 10;
            rec.size = (uint32_t)word(&r, 2);
            rec.tag = byte(&r);
            rec.reason = (int)(byte(&r) % 6);
            rec.arg = (cs_time)word(&r, 4);
            rec.slot = (int64_t)word(&r, 8);
            val = slice(&r, 64, &len);
            rec.data = val;
            rec.len = len;
            lcs_trace_rec(&run, NULL, &rec);
        } else {
            const uint8_t *text = slice(&r, 80, &len);

            lcs_trace_text(&run, byte(&r) & 1 ? "log" : "error",
                           byte(&r) % n, (cs_time)word(&r, 4),
                           byte(&r) & 1 ? "text" : "message",
                           (const char *)text, len);
        }
    }
    fclose(run.trace);
    check_lines(out, outlen);
    free(out);
    free(run.nodes);
    lcs_types_free(&run);
    lua_close(run.L);
    return 0;
}
