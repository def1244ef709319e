/*
 * lsim.c - the simulation object of the main state.
 *
 * consensus._sim(cfg) wraps a cs_sim in a box (LCS_SIM).  The friendly
 * API (consensus.sim, sim:spawn, sim:at, sim:run, the report) is Lua, in
 * consensus/api.lua; it fills a complete configuration table and calls
 * the raw methods here:
 *   box:_byzantine(id)            mark a node Byzantine
 *   box:_at(ms, id)               schedule scenario action 'id'
 *   box:_run(protocols, actions)  build node states, run, return results
 *
 * _run creates one node state per node (lnode.c), copies each node's
 * protocol into it (ltransfer.c), runs the core, and turns what the core
 * recorded into plain Lua tables.  The node states live in a LCS_RUN
 * userdata whose __gc closes them, so an error raised while building them
 * leaks nothing; after the run they are closed at once.
 *
 * Scenario actions and node output run in this (main) state at window
 * barriers, always inside lua_pcall: nothing may longjmp through the core.
 */
#include "lconsensus.h"
#include "ltransfer.h"
#include "cs_log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct simbox {
    cs_sim *sim; /* NULL once closed */
    lcs_limits lim;
    uint32_t f;
    int strict;
    int ran;
    unsigned threads; /* the run's, also for building the node states */
    lcs_run *run;     /* while running: for trace lines of faults */
} simbox;

static simbox *checkbox(lua_State *L)
{
    simbox *box = luaL_checkudata(L, 1, LCS_SIM);

    if (box->sim == NULL) {
        luaL_error(L, "simulation is closed");
    }
    return box;
}

static int box_gc(lua_State *L)
{
    simbox *box = luaL_checkudata(L, 1, LCS_SIM);

    cs_sim_free(box->sim);
    box->sim = NULL;
    return 0;
}

static lua_Number field_num(lua_State *L, int t, const char *k, lua_Number d)
{
    lua_Number v;

    if (lua_getfield(L, t, k) == LUA_TNIL) {
        v = d;
    } else if (lua_isnumber(L, -1)) {
        v = lua_tonumber(L, -1);
    } else {
        return luaL_error(L, "sim: field '%s' must be a number", k);
    }
    lua_pop(L, 1);
    return v;
}

/* consensus._sim{nodes=, faulty=, seed=, threads=, latency={kind,a,b,min}
 * (ms), loss=, duplicate=, until_ms=, slots=, stop_when_decided=,
 * validity=, strict=, budget=, memory=, max_msg=} */
static int l_newsim(lua_State *L)
{
    cs_sim_config cfg;
    simbox *box;
    double nodes, threads, faulty, slots, until;
    int rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    cs_sim_config_init(&cfg);
    nodes = field_num(L, 1, "nodes", 4);
    faulty = field_num(L, 1, "faulty", 0);
    threads = field_num(L, 1, "threads", 1);
    slots = field_num(L, 1, "slots", 1);
    until = field_num(L, 1, "until_ms", 60000);
    luaL_argcheck(L, nodes >= 1 && nodes <= 1000000 && nodes == floor(nodes), 1,
                  "nodes must be an integer >= 1");
    luaL_argcheck(L, faulty >= 0 && faulty <= nodes, 1,
                  "faulty must be between 0 and nodes");
    luaL_argcheck(L, threads >= 1 && threads <= 1024, 1,
                  "threads must be between 1 and 1024");
    luaL_argcheck(L, slots >= 0 && slots < 4294967296.0, 1,
                  "slots must be >= 0");
    luaL_argcheck(L, until >= 0 && until < 9e12, 1, "until_ms must be >= 0");
    cfg.nodes = (uint32_t)nodes;
    cfg.threads = (unsigned)threads;
    cfg.seed = (uint64_t)(lua_Integer)field_num(L, 1, "seed", 1);
    cfg.expect_slots = (uint32_t)slots;
    cfg.until = (cs_time)llround(until * 1000);
    cfg.net.loss = field_num(L, 1, "loss", 0);
    cfg.net.duplicate = field_num(L, 1, "duplicate", 0);
    lua_getfield(L, 1, "stop_when_decided");
    cfg.stop_when_decided = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_getfield(L, 1, "validity");
    cfg.check_validity = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 2);
    cfg.inbox_cap = (uint32_t)field_num(L, 1, "inbox", 0);
    cfg.overflow = (int)field_num(L, 1, "overflow", CS_OVERFLOW_DROP_NEWEST);
    lua_getfield(L, 1, "trace");
    cfg.trace = lua_toboolean(L, -1);
    lua_getfield(L, 1, "live");
    cfg.live = lua_toboolean(L, -1);
    lua_getfield(L, 1, "fifo");
    cfg.fifo = lua_toboolean(L, -1);
    lua_pop(L, 3);
    if (lua_getfield(L, 1, "latency") == LUA_TTABLE) {
        cfg.net.latency.kind = (int)field_num(L, -1, "kind", 0);
        cfg.net.latency.a = field_num(L, -1, "a", 10) * 1000;
        cfg.net.latency.b = field_num(L, -1, "b", 0) * 1000;
        cfg.net.latency.min = field_num(L, -1, "min", 0) * 1000;
    }
    lua_pop(L, 1);
    if (cs_net_validate(&cfg.net) != CS_OK) {
        return luaL_error(L, "sim: bad network model (latency must be > 0 "
                             "ms, probabilities within [0, 1])");
    }

    box = lua_newuserdatauv(L, sizeof *box, 1); /* uv 1: results */
    box->sim = NULL;                            /* closed until created */
    luaL_setmetatable(L, LCS_SIM);
    box->f = (uint32_t)faulty;
    box->threads = (unsigned)threads;
    box->ran = 0;
    box->run = NULL;
    lua_getfield(L, 1, "strict");
    box->strict = lua_toboolean(L, -1);
    lua_pop(L, 1);
    box->lim.budget = (long)field_num(L, 1, "budget", 0);
    box->lim.watchdog = field_num(L, 1, "watchdog", LCS_WATCHDOG_SECS);
    box->lim.mem = (size_t)field_num(L, 1, "memory", 64.0 * 1024 * 1024);
    box->lim.max_msg = (size_t)field_num(L, 1, "max_msg", 1024 * 1024);
    box->lim.allow = (int)field_num(L, 1, "allow", 0);
    if ((rc = cs_sim_new(&box->sim, &cfg)) != CS_OK) {
        return luaL_error(L, "sim: %s", cs_strerror(rc));
    }
    return 1;
}

static int l_byzantine(lua_State *L)
{
    simbox *box = checkbox(L);
    lua_Integer id = luaL_checkinteger(L, 2);

    luaL_argcheck(L, id >= 0 && id < (lua_Integer)cs_sim_nodes(box->sim), 2,
                  "no such node");
    cs_sim_set_byzantine(box->sim, (uint32_t)id, 1);
    return 0;
}

static int l_at(lua_State *L)
{
    simbox *box = checkbox(L);
    lua_Number ms = luaL_checknumber(L, 2);
    lua_Integer id = luaL_checkinteger(L, 3);

    luaL_argcheck(L, ms >= 0 && ms < 9e12, 2, "time must be >= 0 ms");
    if (cs_sim_at(box->sim, (cs_time)llround(ms * 1000), (uint64_t)id) !=
        CS_OK) {
        return luaL_error(L, "at: out of memory");
    }
    return 0;
}

/* ---------------------------------------------------------- faults */

static uint32_t check_id(lua_State *L, simbox *box, int idx)
{
    lua_Integer id = luaL_checkinteger(L, idx);

    luaL_argcheck(L, id >= 0 && id < (lua_Integer)cs_sim_nodes(box->sim), idx,
                  "no such node");
    return (uint32_t)id;
}

/* Read the list of node ids at 'idx' into a new array (in a userdata). */
static uint32_t *id_list(lua_State *L, simbox *box, int idx, size_t *n)
{
    size_t i, len;
    uint32_t *ids;

    luaL_checktype(L, idx, LUA_TTABLE);
    len = lua_rawlen(L, idx);
    ids = lua_newuserdatauv(L, (len ? len : 1) * sizeof *ids, 0);
    for (i = 0; i < len; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
            lua_tointeger(L, -1) >= (lua_Integer)cs_sim_nodes(box->sim)) {
            luaL_error(L, "node lists hold node ids 0..%d",
                       (int)cs_sim_nodes(box->sim) - 1);
        }
        ids[i] = (uint32_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    *n = len;
    return ids;
}

static cs_time now_of(simbox *box)
{
    return cs_sim_now(box->sim, 0);
}

static void trace_fault(simbox *box, const char *json_tail)
{
    char t[32], line[96];

    if (box->run == NULL || box->run->trace == NULL) {
        return;
    }
    lcs_fmt_ms(t, sizeof t, now_of(box));
    snprintf(line, sizeof line, "{\"t\":%s,%s", t, json_tail);
    lcs_trace_line(box->run, line);
}

/* box:_partition{{0,1},{2,3}}: nodes in no group form one more group. */
static int l_partition(lua_State *L)
{
    simbox *box = checkbox(L);
    uint32_t n = cs_sim_nodes(box->sim), g, ngroups, *group;
    size_t k, len;

    luaL_checktype(L, 2, LUA_TTABLE);
    ngroups = (uint32_t)lua_rawlen(L, 2);
    group = lua_newuserdatauv(L, n * sizeof *group, 0);
    for (k = 0; k < n; k++) {
        group[k] = 0; /* the rest */
    }
    for (g = 1; g <= ngroups; g++) {
        uint32_t *ids;

        lua_rawgeti(L, 2, g);
        ids = id_list(L, box, lua_gettop(L), &len);
        for (k = 0; k < len; k++) {
            group[ids[k]] = g;
        }
        lua_pop(L, 2);
    }
    if (cs_sim_partition(box->sim, group) != CS_OK) {
        return luaL_error(L, "partition: out of memory");
    }
    if (box->run != NULL && box->run->trace != NULL) {
        FILE *f = box->run->trace;
        char t[32];

        lcs_fmt_ms(t, sizeof t, now_of(box));
        fprintf(f, "{\"t\":%s,\"ev\":\"partition\",\"group\":[", t);
        for (k = 0; k < n; k++) {
            fprintf(f, k ? ",%u" : "%u", (unsigned)group[k]);
        }
        fputs("]}\n", f);
    }
    return 0;
}

static int l_cut(lua_State *L)
{
    simbox *box = checkbox(L);
    size_t nf, nt;
    uint32_t *from = id_list(L, box, 2, &nf), *to = id_list(L, box, 3, &nt);

    if (cs_sim_cut(box->sim, from, nf, to, nt) != CS_OK) {
        return luaL_error(L, "cut: out of memory");
    }
    trace_fault(box, "\"ev\":\"cut\",\"node\":null}");
    return 0;
}

static int l_heal(lua_State *L)
{
    simbox *box = checkbox(L);

    cs_sim_heal(box->sim);
    trace_fault(box, "\"ev\":\"heal\",\"node\":null}");
    return 0;
}

/* box:_link(from, to, {kind, a, b, min} in ms or nil) */
static int l_link(lua_State *L)
{
    simbox *box = checkbox(L);
    uint32_t from = check_id(L, box, 2), to = check_id(L, box, 3);
    cs_latency lat;
    int rc;

    if (lua_isnoneornil(L, 4)) {
        rc = cs_sim_set_link(box->sim, from, to, NULL);
    } else {
        luaL_checktype(L, 4, LUA_TTABLE);
        lat.kind = (int)field_num(L, 4, "kind", 0);
        lat.a = field_num(L, 4, "a", 10) * 1000;
        lat.b = field_num(L, 4, "b", 0) * 1000;
        lat.min = field_num(L, 4, "min", 0) * 1000;
        rc = cs_sim_set_link(box->sim, from, to, &lat);
    }
    if (rc != CS_OK) {
        return luaL_error(L, "link: %s",
                          rc == CS_EINVAL ? "bad latency (must be > 0 ms)"
                                          : cs_strerror(rc));
    }
    return 0;
}

static cs_time check_at(lua_State *L, simbox *box, int idx)
{
    lua_Number ms = luaL_checknumber(L, idx);
    cs_time t = (cs_time)llround(ms * 1000);

    luaL_argcheck(L, ms >= 0 && ms < 9e12, idx, "time must be >= 0 ms");
    luaL_argcheck(L, t >= now_of(box), idx, "time is in the past");
    return t;
}

/* A node fault the core refused: in a live run (CS_EINVAL), or out of
 * memory. */
static int fault_error(lua_State *L, const char *what, int rc)
{
    return luaL_error(L, "%s: %s", what,
                      rc == CS_EINVAL ? "not supported in a live run"
                                      : cs_strerror(rc));
}

static int l_crash(lua_State *L)
{
    simbox *box = checkbox(L);
    uint32_t id = check_id(L, box, 2);
    cs_time at = check_at(L, box, 3);
    int flags = lua_toboolean(L, 4) ? CS_CRASH_LOSE_UNSYNCED : 0;
    int rc;

    if ((rc = cs_sim_crash(box->sim, id, at, flags)) != CS_OK) {
        return fault_error(L, "crash", rc);
    }
    return 0;
}

static int l_restart(lua_State *L)
{
    simbox *box = checkbox(L);
    uint32_t id = check_id(L, box, 2);
    int rc;

    if ((rc = cs_sim_restart(box->sim, id, check_at(L, box, 3))) != CS_OK) {
        return fault_error(L, "restart", rc);
    }
    return 0;
}

static int l_pause(lua_State *L)
{
    simbox *box = checkbox(L);
    uint32_t id = check_id(L, box, 2);
    cs_time at = check_at(L, box, 3);
    lua_Number ms = luaL_checknumber(L, 4);
    int rc;

    luaL_argcheck(L, ms >= 0 && ms < 9e12, 4, "duration must be >= 0 ms");
    if ((rc = cs_sim_pause(box->sim, id, at, (cs_time)llround(ms * 1000))) !=
        CS_OK) {
        return fault_error(L, "pause", rc);
    }
    return 0;
}

static int l_clock(lua_State *L)
{
    simbox *box = checkbox(L);
    uint32_t id = check_id(L, box, 2);
    lua_Number skew = luaL_optnumber(L, 3, 0), drift = luaL_optnumber(L, 4, 0);
    int rc;

    luaL_argcheck(L, skew > -9e12 && skew < 9e12, 3, "skew out of range");
    rc = cs_sim_set_clock(box->sim, id, (cs_time)llround(skew * 1000), drift);
    if (rc == CS_ESTATE) {
        return luaL_error(L, "clock: a live run sets clocks before it starts");
    } else if (rc != CS_OK) {
        return luaL_argerror(L, 4, "drift must be > -1");
    }
    return 0;
}

/* The notes nodes made so far (from a scenario action), or {}. */
static int l_notes(lua_State *L)
{
    checkbox(L);
    if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
        lua_newtable(L);
        return 1;
    }
    lua_getfield(L, -1, "notes");
    return 1;
}

static int l_down(lua_State *L)
{
    simbox *box = checkbox(L);

    lua_pushboolean(L, cs_sim_node_down(box->sim, check_id(L, box, 2)));
    return 1;
}

static int l_now(lua_State *L)
{
    simbox *box = checkbox(L);

    lua_pushnumber(L, (lua_Number)now_of(box) / 1000.0);
    return 1;
}

/* ------------------------------------------------------------- the run */

static int run_gc(lua_State *L)
{
    lcs_run *run = luaL_checkudata(L, 1, LCS_RUN);
    uint32_t i;

    if (run->nodes != NULL) {
        for (i = 0; i < run->n; i++) {
            lcs_node_free(&run->nodes[i]);
        }
        free(run->nodes);
        run->nodes = NULL;
    }
    lcs_types_free(run);
    free(run->pks);
    run->pks = NULL;
    if (run->trace != NULL) {
        fclose(run->trace); /* flushes what was written */
        run->trace = NULL;
    }
    return 0;
}

static int main_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Append the value on top to the list in results[key]; pops it. */
static void append(lua_State *L, int results, const char *key)
{
    lua_getfield(L, results, key);
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

static void push_ms(lua_State *L, cs_time t)
{
    lua_pushnumber(L, (lua_Number)t / 1000.0);
}

static void push_value(lua_State *L, const void *p, size_t len)
{
    if (p == NULL || !lcs_decode(L, p, len)) {
        lua_pushnil(L);
    }
}

typedef struct outarg {
    lcs_run *run;
    uint32_t node;
    cs_time at;
    int kind;
    const void *data;
    size_t len;
} outarg;

/* Protected: turn one node record into results or stderr output. */
static int do_output(lua_State *L)
{
    const outarg *o = lua_touserdata(L, 1);
    lcs_run *run = o->run;
    const int results = 2; /* passed in: a new frame */
    char t[32];

    lcs_fmt_ms(t, sizeof t, o->at);
    switch (o->kind) {
    case LCS_OUT_LOG:
        fprintf(stderr, "[%s ms] node %u: %.*s\n", t, (unsigned)o->node,
                (int)o->len, (const char *)o->data);
        lcs_trace_text(run, "log", o->node, o->at, "text", o->data, o->len);
        break;
    case LCS_OUT_NOTE:
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, o->node);
        lua_setfield(L, -2, "node");
        push_ms(L, o->at);
        lua_setfield(L, -2, "t");
        push_value(L, o->data, o->len);
        lua_setfield(L, -2, "value");
        append(L, results, "notes");
        break;
    case CS_OUT_CORE:
    case LCS_OUT_ERROR: {
        const char *s = o->data, *nl = memchr(s, '\n', o->len);
        size_t wlen = nl != NULL ? (size_t)(nl - s) : 0;
        const char *msg = nl != NULL ? nl + 1 : s;
        size_t mlen = o->len - (size_t)(msg - s);

        run->errors++;
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, o->node);
        lua_setfield(L, -2, "node");
        push_ms(L, o->at);
        lua_setfield(L, -2, "t");
        lua_pushlstring(L, s, wlen);
        lua_setfield(L, -2, "handler");
        lua_pushlstring(L, msg, mlen);
        lua_setfield(L, -2, "message");
        append(L, results, "errors");
        fprintf(stderr,
                "consensus-lua: node %u failed at t=%s ms (seed "
                "%llu) in %.*s: %.*s\n",
                (unsigned)o->node, t, (unsigned long long)cs_sim_seed(run->sim),
                (int)wlen, s, (int)mlen, msg);
        fflush(stderr);
        lcs_trace_text(run, "error", o->node, o->at, "message", msg, mlen);
        break;
    }
    case LCS_OUT_COUNT: {
        const char *sp = memchr(o->data, ' ', o->len);
        lua_Integer n = strtoll(o->data, NULL, 10);

        if (sp == NULL) {
            break;
        }
        lua_getfield(L, results, "counters");
        lua_pushlstring(L, sp + 1,
                        o->len - (size_t)(sp + 1 - (const char *)o->data));
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        n += lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushinteger(L, n);
        lua_rawset(L, -3);
        lua_pop(L, 1);
        break;
    }
    default:
        break;
    }
    return 0;
}

static void on_output(void *ud, cs_sim *sim, uint32_t node, cs_time at,
                      int kind, const void *data, size_t len)
{
    lcs_run *run = ud;
    lua_State *L = run->L;
    outarg o = { run, node, at, kind, data, len };

    if ((kind == LCS_OUT_ERROR || kind == CS_OUT_CORE) && run->strict) {
        cs_sim_stop(sim);
    }
    lua_pushcfunction(L, do_output);
    lua_pushlightuserdata(L, &o);
    lua_pushvalue(L, run->results_idx);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_pop(L, 1); /* out of memory in the main state: drop it */
    }
}

/* A scenario action runs under an instruction budget (the handlers' when
 * one is set, else ACTION_BUDGET): an endless loop in it must end the run,
 * not hang it.  Actions are few, so their hook costs nothing that counts.
 * The main state's extra space points at the run while the action runs
 * (our own host and the stock interpreter leave it unused). */
#define ACTION_HOOK_EVERY 1000
#define ACTION_BUDGET 50000000

static void action_hook(lua_State *L, lua_Debug *ar)
{
    lcs_run *run = *(lcs_run **)lua_getextraspace(L);
    long budget;

    (void)ar;
    if (run == NULL) {
        return;
    }
    budget = run->lim.budget > 0 ? run->lim.budget : ACTION_BUDGET;

    run->action_steps += ACTION_HOOK_EVERY;
    if (run->action_steps > budget) {
        luaL_error(L,
                   "instruction budget exceeded (%I VM instructions in "
                   "one scenario action)",
                   (LUAI_UACINT)budget);
    }
}

static int on_action(void *ud, cs_sim *sim, uint64_t id)
{
    lcs_run *run = ud;
    lua_State *L = run->L;
    void *saved = *(void **)lua_getextraspace(L);
    lua_Hook old_hook = lua_gethook(L);
    int old_mask = lua_gethookmask(L), old_count = lua_gethookcount(L);
    int rc;

    (void)sim;
    *(lcs_run **)lua_getextraspace(L) = run;
    run->action_steps = 0;
    lua_sethook(L, action_hook, LUA_MASKCOUNT, ACTION_HOOK_EVERY);
    lua_pushcfunction(L, main_msgh);
    lua_rawgeti(L, run->actions_idx, (lua_Integer)id);
    rc = lua_pcall(L, 0, 0, -2);
    lua_sethook(L, old_hook, old_mask, old_count);
    *(void **)lua_getextraspace(L) = saved;
    if (rc != LUA_OK) {
        lua_setfield(L, run->results_idx, "action_error");
        lua_pop(L, 1);
        run->failed_action = 1;
        return 1;
    }
    lua_pop(L, 1);
    return 0;
}

static const char *vkind(int kind)
{
    switch (kind) {
    case CS_V_AGREEMENT:
        return "agreement";
    case CS_V_INTEGRITY:
        return "integrity";
    case CS_V_VALIDITY:
        return "validity";
    case CS_V_UNIQUE:
        return "uniqueness";
    default:
        return "termination";
    }
}

static void push_results_tail(lua_State *L, lcs_run *run, int results)
{
    const cs_violation *v;
    const cs_decision *d;
    cs_stats st;
    size_t n, i;
    uint32_t k;

    cs_sim_stats(run->sim, &st);
#define SETI(name, val) \
    (lua_pushinteger(L, (lua_Integer)(val)), lua_setfield(L, results, name))
    SETI("sent", st.sent);
    SETI("delivered", st.delivered);
    SETI("dropped", st.dropped);
    SETI("duplicated", st.duplicated);
    SETI("bytes", st.bytes);
    SETI("timers", st.timers);
    SETI("windows", st.windows);
    SETI("dropped_partition", st.dropped_partition);
    SETI("dropped_down", st.dropped_down);
    SETI("dropped_overflow", st.dropped_overflow);
    SETI("crashes", st.crashes);
    SETI("restarts", st.restarts);
#undef SETI
    push_ms(L, st.end);
    lua_setfield(L, results, "end_ms");

    n = cs_sim_violations(run->sim, &v);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 7);
        lua_pushstring(L, vkind(v[i].kind));
        lua_setfield(L, -2, "kind");
        lua_pushinteger(L, v[i].slot);
        lua_setfield(L, -2, "slot");
        lua_pushinteger(L, v[i].node);
        lua_setfield(L, -2, "node");
        lua_pushinteger(L, v[i].other);
        lua_setfield(L, -2, "other");
        push_ms(L, v[i].at);
        lua_setfield(L, -2, "t");
        push_value(L, v[i].val, v[i].len);
        lua_setfield(L, -2, "value");
        push_value(L, v[i].other_val, v[i].other_len);
        lua_setfield(L, -2, "other_value");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, results, "violations");

    n = cs_sim_decisions(run->sim, &d);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, d[i].node);
        lua_setfield(L, -2, "node");
        lua_pushinteger(L, d[i].slot);
        lua_setfield(L, -2, "slot");
        push_ms(L, d[i].at);
        lua_setfield(L, -2, "t");
        push_value(L, d[i].val, d[i].len);
        lua_setfield(L, -2, "value");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, results, "decisions");

    {
        const cs_proposal *p;

        n = cs_sim_proposals(run->sim, &p);
        lua_createtable(L, (int)n, 0);
        for (i = 0; i < n; i++) {
            lua_createtable(L, 0, 4);
            lua_pushinteger(L, p[i].node);
            lua_setfield(L, -2, "node");
            if (!p[i].any) {
                lua_pushinteger(L, p[i].slot);
                lua_setfield(L, -2, "slot");
            }
            push_ms(L, p[i].at);
            lua_setfield(L, -2, "t");
            push_value(L, p[i].val, p[i].len);
            lua_setfield(L, -2, "value");
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, results, "proposals");
    }

    lua_createtable(L, (int)run->n, 0); /* per node: decided slots */
    for (k = 0; k < run->n; k++) {
        lua_pushinteger(L, cs_sim_decided(run->sim, k));
        lua_rawseti(L, -2, (lua_Integer)k);
    }
    lua_setfield(L, results, "decided_by_node");
    lua_newtable(L);
    for (k = 0; k < run->n; k++) {
        if (cs_sim_node_failed(run->sim, k)) {
            lua_pushinteger(L, k);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
    }
    lua_setfield(L, results, "failed");
}

/* Messages and bytes sent per type: results.by_type[name] = {messages=,
 * bytes=}.  Before the node states go. */
static void push_by_type(lua_State *L, lcs_run *run, int results)
{
    uint32_t t, k;

    lua_newtable(L);
    for (t = 1; t <= run->ntypes; t++) {
        uint64_t msgs = 0, bytes = 0;

        for (k = 0; k < run->n; k++) {
            const lcs_node *nd = &run->nodes[k];

            if (t < nd->ntype) {
                msgs += nd->type_msgs[t];
                bytes += nd->type_bytes[t];
            }
        }
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, (lua_Integer)msgs);
        lua_setfield(L, -2, "messages");
        lua_pushinteger(L, (lua_Integer)bytes);
        lua_setfield(L, -2, "bytes");
        lua_setfield(L, -2, run->types[t - 1]);
    }
    lua_setfield(L, results, "by_type");
}

static void trace_header(lcs_run *run, uint32_t f)
{
    FILE *out = run->trace;
    uint32_t i;
    int first = 1;

    fprintf(out,
            "{\"ev\":\"run\",\"seed\":%llu,\"nodes\":%u,"
            "\"faulty\":%u,\"byzantine\":[",
            (unsigned long long)cs_sim_seed(run->sim), (unsigned)run->n,
            (unsigned)f);
    for (i = 0; i < run->n; i++) {
        if (cs_sim_is_byzantine(run->sim, i)) {
            fprintf(out, first ? "%u" : ",%u", (unsigned)i);
            first = 0;
        }
    }
    fputs("]}\n", out);
}

/* ------------------------------------------------------- data dir */

typedef struct last_rec {
    unsigned char *p;
    size_t len;
    int found;
} last_rec;

static int keep_last(void *ud, uint64_t index, const void *data, size_t len)
{
    last_rec *l = ud;
    unsigned char *copy = malloc(len ? len : 1);

    (void)index;
    if (copy == NULL) {
        return CS_ENOMEM;
    }
    memcpy(copy, data, len);
    free(l->p);
    l->p = copy;
    l->len = len;
    l->found = 1;
    return CS_OK;
}

/* Open (or recover) one log of the data directory; raises on failure
 * with the file named. */
static cs_log *open_log(lua_State *L, const char *dir, unsigned node,
                        const char *what)
{
    char path[4096];
    cs_log_recovery rec;
    cs_log *lg = NULL;
    int rc;

    snprintf(path, sizeof path, "%s/node-%u.%s", dir, node, what);
    memset(&rec, 0, sizeof rec);
    rc = cs_log_open(&lg, path, CS_LOG_SYNC_EACH, &rec);
    if (rc == CS_ECORRUPT) {
        luaL_error(L,
                   "data directory: %s is corrupt at byte %d (a damaged "
                   "record before valid ones; refusing to use it)",
                   path, (int)rec.bad_offset);
    } else if (rc != CS_OK) {
        luaL_error(L, "data directory: cannot open %s: %s", path,
                   rec.err ? strerror(rec.err) : cs_strerror(rc));
    }
    return lg;
}

/* --data-dir: each node's node.store starts from its last synced
 * snapshot; decisions are appended to a log of its own.  Sets
 * results.recovered = {stores =, decisions =}. */
static void open_data_dir(lua_State *L, lcs_run *run, const char *dir,
                          int results)
{
    lua_Integer stores = 0, decisions = 0;
    uint32_t i;
    int err = 0;

    if (cs_log_mkdir(dir, &err) != CS_OK) {
        luaL_error(L, "data directory %s: %s", dir,
                   err ? strerror(err) : "cannot create it");
    }
    for (i = 0; i < run->n; i++) {
        lcs_node *nd = &run->nodes[i];
        last_rec last = { NULL, 0, 0 };

        nd->store_log = open_log(L, dir, i, "store");
        nd->dec_log = open_log(L, dir, i, "decisions");
        if (cs_log_iter(nd->store_log, keep_last, &last) != CS_OK) {
            free(last.p);
            luaL_error(L, "data directory: cannot read node %d's store",
                       (int)i);
        }
        if (last.found) {
            free(nd->saved);
            nd->saved = last.p;
            nd->saved_len = last.len;
            nd->has_saved = 1;
            lcs_node_restore(nd);
            stores++;
        }
        decisions += (lua_Integer)cs_log_count(nd->dec_log);
    }
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, stores);
    lua_setfield(L, -2, "stores");
    lua_pushinteger(L, decisions);
    lua_setfield(L, -2, "decisions");
    lua_setfield(L, results, "recovered");
}

/* box:_run(protocols, actions, name, trace_path, data_dir) -> results */
/* Open every node state (a fresh lua_State with its libraries: about a
 * quarter of a node's set-up) on 'threads' threads; the states share
 * nothing, so which thread opens which changes nothing.  The copy of the
 * protocol that follows reads the main state and stays on this thread.
 * Returns the first node that could not be opened, or run->n. */
typedef struct opener {
    lcs_run *run;
    uint32_t first, step, failed;
} opener;

static void *open_some(void *arg)
{
    opener *o = arg;
    uint32_t i;

    o->failed = o->run->n;
    for (i = o->first; i < o->run->n; i += o->step) {
        if (lcs_node_open(&o->run->nodes[i]) != CS_OK && i < o->failed) {
            o->failed = i;
        }
    }
    return NULL;
}

static uint32_t open_states(lcs_run *run, unsigned threads)
{
    opener o[8];
    pthread_t th[8];
    unsigned t, nt = threads < 8 ? threads : 8, started = 0;
    uint32_t failed = run->n;

    if (nt > run->n / 16) { /* a thread for at least 16 states */
        nt = run->n / 16;
    }
    if (nt < 1) {
        nt = 1;
    }
    for (t = 0; t < nt; t++) {
        o[t].run = run;
        o[t].first = t;
        o[t].step = nt;
    }
    for (t = 1; t < nt; t++) {
        if (pthread_create(&th[t], NULL, open_some, &o[t]) != 0) {
            break;
        }
        started++;
    }
    if (started + 1 < nt) { /* fewer threads: this one takes the rest */
        for (t = started + 1; t < nt; t++) {
            open_some(&o[t]);
        }
    }
    open_some(&o[0]);
    for (t = 1; t <= started; t++) {
        pthread_join(th[t], NULL);
    }
    for (t = 0; t < nt; t++) {
        if (o[t].failed < failed) {
            failed = o[t].failed;
        }
    }
    return failed;
}

static int l_run(lua_State *L)
{
    simbox *box = checkbox(L);
    const char *name = luaL_optstring(L, 4, "protocol");
    const char *trace = luaL_optstring(L, 5, NULL);
    const char *data_dir = luaL_optstring(L, 6, NULL);
    cs_callbacks cb;
    lcs_run *run;
    uint32_t i, n;
    int rc, results, cache;

    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (box->ran) {
        return luaL_error(L, "run: a simulation runs once; make a new one");
    }
    box->ran = 1;
    n = cs_sim_nodes(box->sim);
    lua_settop(L, 6); /* [box, protocols, actions, name, trace, dir] */

    run = lua_newuserdatauv(L, sizeof *run, 0); /* 7 */
    memset(run, 0, sizeof *run);
    luaL_setmetatable(L, LCS_RUN);
    run->L = L;
    run->n = n;
    run->lim = box->lim;
    run->strict = box->strict;
    run->sim = box->sim;
    run->actions_idx = 3;
    lua_newtable(L); /* 8: results */
    results = 8;
    run->results_idx = results;
    lua_newtable(L);
    lua_setfield(L, results, "notes");
    lua_newtable(L);
    lua_setfield(L, results, "errors");
    lua_newtable(L);
    lua_setfield(L, results, "counters");
    lua_newtable(L); /* 9: transfer cache */
    cache = 9;

    run->protocols_idx = 2;
    run->cache_idx = cache;
    run->name = name;
    if ((run->nodes = calloc(n, sizeof *run->nodes)) == NULL ||
        lcs_types_init(run) != CS_OK ||
        lcs_sign_setup(run, cs_sim_seed(box->sim)) != CS_OK) {
        return luaL_error(L, "run: out of memory");
    }
    if (trace != NULL) {
        if ((run->trace = fopen(trace, "w")) == NULL) {
            return luaL_error(L, "cannot write trace file %s: %s", trace,
                              strerror(errno));
        }
        trace_header(run, box->f);
    }
    for (i = 0; i < n; i++) {
        lcs_node *nd = &run->nodes[i];

        nd->run = run;
        nd->sim = box->sim;
        nd->id = i;
        nd->n = n;
        nd->f = box->f;
        nd->lim = &run->lim;
    }
    if ((i = open_states(run, box->threads)) < n) {
        return luaL_error(L,
                          "run: cannot create node %d: out of memory "
                          "(is --memory too small for a node state?)",
                          (int)i);
    }
    for (i = 0; i < n; i++) {
        lcs_node *nd = &run->nodes[i];

        if (lua_rawgeti(L, 2, (lua_Integer)i) != LUA_TTABLE) {
            return luaL_error(L,
                              "run: node %d has no protocol (call "
                              "sim:spawn first)",
                              (int)i);
        }
        if (!lcs_transfer_cached(L, -1, nd->L, name, cache)) {
            return lua_error(L);
        }
        lua_pop(L, 1);
        lcs_node_install(nd);
    }

    if (data_dir != NULL) {
        open_data_dir(L, run, data_dir, results);
    }
    memset(&cb, 0, sizeof cb);
    cb.ud = run;
    cb.start = lcs_node_start;
    cb.message = lcs_node_message;
    cb.timer = lcs_node_timer;
    cb.action = on_action;
    cb.output = on_output;
    cb.crash = lcs_node_crash;
    cb.restart = lcs_node_restart;
    cb.trace = lcs_trace_rec;
    box->run = run;
    lua_pushvalue(L, results); /* readable from actions: box:_notes() */
    lua_setiuservalue(L, 1, 1);
    /* Without an instruction budget, the watchdog stops runaway calls. */
    if ((rc = lcs_watch_start(
             run, run->lim.budget > 0 ? 0 : run->lim.watchdog)) == CS_OK) {
        rc = cs_sim_run(box->sim, &cb);
        lcs_watch_stop(run);
    }
    box->run = NULL;
    if (run->trace != NULL) {
        cs_stats st;
        char t[32];

        cs_sim_stats(box->sim, &st);
        lcs_fmt_ms(t, sizeof t, st.end);
        fprintf(run->trace, "{\"t\":%s,\"ev\":\"end\"}\n", t);
        if (fflush(run->trace) != 0) {
            return luaL_error(L, "trace: %s", strerror(errno));
        }
    }
    push_by_type(L, run, results);
    {
        lua_Integer forgeries = 0;

        for (i = 0; i < n; i++) {
            forgeries += (lua_Integer)run->nodes[i].forgeries;
        }
        lua_pushinteger(L, forgeries);
        lua_setfield(L, results, "forgeries_detected");
    }

    /* The node states are done; free them before building results. */
    lua_pushcfunction(L, run_gc);
    lua_pushvalue(L, 7);
    lua_call(L, 1, 0);
    if (rc != CS_OK && rc != CS_ESTOPPED) {
        return luaL_error(L, "run: %s", cs_strerror(rc));
    }
    lua_pushboolean(L, rc == CS_ESTOPPED);
    lua_setfield(L, results, "stopped");
    push_results_tail(L, run, results);
    lua_pushvalue(L, results);
    return 1;
}

static const luaL_Reg box_meta[] = { { "__gc", box_gc },
                                     { "__close", box_gc },
                                     { NULL, NULL } };

static const luaL_Reg box_methods[] = { { "_partition", l_partition },
                                        { "_cut", l_cut },
                                        { "_heal", l_heal },
                                        { "_link", l_link },
                                        { "_crash", l_crash },
                                        { "_restart", l_restart },
                                        { "_pause", l_pause },
                                        { "_clock", l_clock },
                                        { "_now", l_now },
                                        { "_down", l_down },
                                        { "_notes", l_notes },
                                        { "_byzantine", l_byzantine },
                                        { "_at", l_at },
                                        { "_run", l_run },
                                        { NULL, NULL } };

void lcs_open_sim(lua_State *L)
{
    if (luaL_newmetatable(L, LCS_SIM)) {
        luaL_setfuncs(L, box_meta, 0);
        luaL_newlib(L, box_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, LCS_RUN)) {
        lua_pushcfunction(L, run_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_newsim);
    lua_setfield(L, -2, "_sim");
}
