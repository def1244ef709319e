/*
 * embed.c - consensus-lua inside another C program, two ways.
 *
 *   embed lua     a Lua state of our own, with the consensus module
 *                 preloaded, runs a protocol written in Lua (a string here)
 *   embed core    the C core alone: the nodes are C callbacks, messages are
 *                 bytes, the checker judges the decisions; no Lua at all
 *   embed         both
 *
 * Exit status 0 when every run's checks hold, 1 otherwise, 2 on an error.
 *
 * Build against an installed consensus-lua (cmake --install, see
 * docs/embedding.md):
 *
 *   cc -o embed examples/embed.c $(pkg-config --cflags --libs consensus-lua)
 *
 * or against a build tree (cmake -B build; the archive is
 * build/libconsensus-lua.a, the generated header is in build/include):
 *
 *   cc -o embed examples/embed.c -Icore -Ibuild/include \
 *      $(pkg-config --cflags lua5.4) build/libconsensus-lua.a \
 *      $(pkg-config --libs lua5.4) -lsodium -lpthread -lm -ldl
 */
#include <consensus.h>      /* the core: cs_sim_*, cs_msg_* */
#include <consensus_lua.h>  /* luaopen_consensus */

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------- a protocol in Lua */

/* Any script that runs under consensus-lua runs here too.  The chunk
 * returns the report; report:print() writes the usual summary. */
static const char *const vote_lua =
    "local consensus = require 'consensus'\n"
    "local Vote = {}\n"
    "function Vote.start(node)\n"
    "  node.votes = 0\n"
    "  if node.id == 0 then\n"
    "    node:propose(42)\n"
    "    node:broadcast { type = 'PROPOSE', value = 42 }\n"
    "  end\n"
    "end\n"
    "function Vote.receive(node, msg, from)\n"
    "  if msg.type == 'PROPOSE' then\n"
    "    node:broadcast { type = 'VOTE', value = msg.value }\n"
    "  elseif msg.type == 'VOTE' then\n"
    "    node.votes = node.votes + 1\n"
    "    if node.votes == 2 * node.n // 3 + 1 then\n"
    "      node:decide(msg.value)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local sim = consensus.sim { nodes = 7, seed = 3, threads = 2,\n"
    "  network = { latency = 'uniform:5:20' }, name = 'embedded vote' }\n"
    "sim:spawn(Vote)\n"
    "return sim:run():print()\n";

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    luaL_traceback(L, L, msg != NULL ? msg : "(error object)", 1);
    return 1;
}

/* Run vote_lua in a fresh state; returns the report's status (0 to 3). */
static int run_lua(void)
{
    lua_State *L = luaL_newstate();
    int status;

    if (L == NULL) {
        fprintf(stderr, "embed: cannot create a Lua state\n");
        return 2;
    }
    luaL_openlibs(L);
    /* `require "consensus"` now finds the module without any .so: what
     * lua.c does for its own libraries, and what consensus-lua does. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_consensus);
    lua_setfield(L, -2, "consensus");
    lua_pop(L, 1);

    lua_pushcfunction(L, traceback);
    if (luaL_loadbuffer(L, vote_lua, strlen(vote_lua), "=vote") != LUA_OK ||
        lua_pcall(L, 0, 1, 1) != LUA_OK) {
        fprintf(stderr, "embed: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 2;
    }
    lua_getfield(L, -1, "status");  /* [traceback, report, status] */
    status = (int)lua_tointeger(L, -1);
    lua_close(L);
    return status;
}

/* ------------------------------------------ a protocol in C callbacks */

/* Every node broadcasts its input bit; once it has heard from all n nodes
 * it decides the majority (ties: 0).  Node 2 is Byzantine and sends 1 to
 * even nodes and 0 to odd ones, so honest nodes may hear different bits;
 * with one liar among five the honest majority still carries. */
#define N 5
#define LIAR 2

typedef struct node_state {
    int heard, ones;
} node_state;

/* Each node's data is touched only by the worker running that node, and
 * never by two threads at once: no lock needed. */
static node_state nodes[N];

static int input_of(uint32_t id)
{
    return id == 0 ? 0 : 1; /* honest inputs: 0, 1, 1, 1, 1 */
}

static int send_bit(cs_sim *sim, uint32_t from, uint32_t to, int bit)
{
    unsigned char b = (unsigned char)bit;
    cs_msg *m;
    int rc;

    if ((rc = cs_msg_new(&m, &b, 1, 0)) != CS_OK) {
        return rc;
    }
    rc = cs_sim_send(sim, from, to, m);
    cs_msg_unref(m); /* the simulation took its own reference */
    return rc;
}

static int on_start(void *ud, cs_sim *sim, uint32_t id)
{
    unsigned char bit = (unsigned char)input_of(id);
    cs_msg *m;
    uint32_t to;
    int rc;

    (void)ud;
    if (id == LIAR) {
        for (to = 0; to < N; to++) {
            if ((rc = send_bit(sim, id, to, to % 2 == 0)) != CS_OK) {
                return 1;
            }
        }
        return 0;
    }
    /* One buffer for the whole broadcast, shared by every receiver. */
    if (cs_msg_new(&m, &bit, 1, 0) != CS_OK) {
        return 1;
    }
    /* Validity: a decided value must be one an honest node proposed. */
    rc = cs_sim_propose(sim, id, 1, 0, &bit, 1);
    if (rc == CS_OK) {
        rc = cs_sim_broadcast(sim, id, m, 1);
    }
    cs_msg_unref(m);
    return rc != CS_OK;
}

static int on_message(void *ud, cs_sim *sim, uint32_t id, uint32_t from,
                      cs_msg *msg)
{
    node_state *st = &nodes[id];
    unsigned char decision;

    (void)ud;
    (void)from;
    if (cs_msg_len(msg) != 1 || id == LIAR) {
        return 0;
    }
    st->ones += *(const unsigned char *)cs_msg_data(msg) != 0;
    if (++st->heard == N) {
        decision = (unsigned char)(2 * st->ones > N);
        return cs_sim_decide(sim, id, 1, &decision, 1) != CS_OK;
    }
    return 0;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case CS_V_AGREEMENT:
        return "agreement";
    case CS_V_INTEGRITY:
        return "integrity";
    case CS_V_VALIDITY:
        return "validity";
    case CS_V_TERMINATION:
        return "termination";
    default:
        return "uniqueness";
    }
}

/* Run the C protocol; returns 0 when the checks hold, 1 if not, 2 on an
 * error. */
static int run_core(void)
{
    cs_sim_config cfg;
    cs_callbacks cb;
    cs_sim *sim;
    cs_stats st;
    const cs_violation *v;
    const cs_decision *d;
    size_t nv, nd, i;
    int rc;

    cs_sim_config_init(&cfg);   /* 4 nodes, seed 1, 10 ms, 60 s, 1 slot */
    cfg.nodes = N;
    cfg.seed = 7;
    cfg.threads = 2;
    cfg.net.latency.kind = CS_LAT_UNIFORM;
    cfg.net.latency.a = CS_MS(5);   /* latencies are in microseconds */
    cfg.net.latency.b = CS_MS(20);
    if ((rc = cs_sim_new(&sim, &cfg)) != CS_OK) {
        fprintf(stderr, "embed: cs_sim_new: %s\n", cs_strerror(rc));
        return 2;
    }
    cs_sim_set_byzantine(sim, LIAR, 1);

    memset(&cb, 0, sizeof cb);  /* unused callbacks stay NULL */
    cb.start = on_start;
    cb.message = on_message;
    if ((rc = cs_sim_run(sim, &cb)) != CS_OK) {
        fprintf(stderr, "embed: cs_sim_run: %s\n", cs_strerror(rc));
        cs_sim_free(sim);
        return 2;
    }

    cs_sim_stats(sim, &st);
    printf("=== C callbacks ===\n");
    printf("%llu messages sent, %llu delivered, ended at t=%.3f ms\n",
           (unsigned long long)st.sent, (unsigned long long)st.delivered,
           (double)st.end / 1000.0);
    nd = cs_sim_decisions(sim, &d);
    for (i = 0; i < nd; i++) {
        printf("node %u decided %u at t=%.3f ms%s\n", (unsigned)d[i].node,
               (unsigned)*(const unsigned char *)d[i].val,
               (double)d[i].at / 1000.0,
               cs_sim_is_byzantine(sim, d[i].node) ? " (Byzantine)" : "");
    }
    nv = cs_sim_violations(sim, &v);
    for (i = 0; i < nv; i++) {
        printf("VIOLATED: %s, node %u, slot %lld\n", kind_name(v[i].kind),
               (unsigned)v[i].node, (long long)v[i].slot);
    }
    printf("checks: %s\n", nv == 0 ? "OK" : "VIOLATED");
    cs_sim_free(sim);
    return nv == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "both";
    int lua_status = 0, core_status = 0;

    if (argc > 2 || (strcmp(what, "lua") != 0 && strcmp(what, "core") != 0 &&
                     strcmp(what, "both") != 0)) {
        fprintf(stderr, "usage: %s [lua|core]\n", argv[0]);
        return 2;
    }
    printf("consensus-lua %s\n", CS_VERSION);
    if (strcmp(what, "core") != 0) {
        lua_status = run_lua();
    }
    if (strcmp(what, "lua") != 0) {
        core_status = run_core();
    }
    if (lua_status == 2 || core_status == 2) {
        return 2;
    }
    return lua_status != 0 || core_status != 0;
}
