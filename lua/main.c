/*
 * main.c - the consensus-lua host.
 *
 * A stock Lua state with every standard library, the consensus module
 * preloaded (so scripts `require "consensus"` without any LUA_CPATH), and
 * the command line handed to consensus.cli.  Like lua.c, the whole run
 * happens in protected mode: an error becomes "consensus-lua: message" on
 * stderr and a non-zero exit status, and whatever was already written to
 * stdout stays (it is flushed on exit).  A usage error (a table with
 * 'message' and 'exit') prints as one line, without a traceback.
 */
#include "lconsensus.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *progname = "consensus-lua";

static int msghandler(lua_State *L)
{
    const char *msg;

    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "exit");
        if (lua_isinteger(L, -1)) {
            lua_pop(L, 1);
            return 1; /* a usage error: keep the table */
        }
        lua_pop(L, 1);
    }
    msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") &&
            lua_type(L, -1) == LUA_TSTRING) {
            return 1;
        }
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* pmain(argc, argv): returns the exit status. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    int i;

    luaL_checkversion(L);
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_consensus);
    lua_setfield(L, -2, "consensus");
    lua_pop(L, 1);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "consensus");
    lua_call(L, 1, 1);
    /* The running executable, for modes that start more runs of it. */
    {
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

        if (n > 0) {
            lua_pushlstring(L, exe, (size_t)n);
        } else {
            lua_pushstring(L, argv[0]);
        }
        lua_setfield(L, -2, "_exe");
    }
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "consensus.host");
    lua_call(L, 1, 1);
    lua_createtable(L, argc, 0);
    for (i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_call(L, 1, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    int status, code = 2;

    if (L == NULL) {
        fprintf(stderr, "%s: cannot create state: not enough memory\n",
                progname);
        return 2;
    }
    lua_pushcfunction(L, msghandler);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    status = lua_pcall(L, 2, 1, 1);
    if (status == LUA_OK) {
        code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        lua_getfield(L, -1, "message");
        lua_getfield(L, -2, "exit");
        fprintf(stderr, "%s: %s\n", progname,
                lua_tostring(L, -2) ? lua_tostring(L, -2) : "error");
        code = (int)lua_tointeger(L, -1);
    } else {
        const char *msg = lua_tostring(L, -1);

        fprintf(stderr, "%s: %s\n", progname, msg ? msg : "error");
        code = 2;
    }
    fflush(stdout);
    lua_close(L);
    return code;
}
