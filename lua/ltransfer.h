/*
 * ltransfer.h - copy a protocol (a Lua value with its functions and their
 * upvalues) from the main state into a node's state.
 */
#ifndef LTRANSFER_H
#define LTRANSFER_H

#include <lua.h>

/* Copy the value at 'idx' of 'from' onto the top of 'to'.  'name' begins
 * error paths (e.g. "Vote"; NULL reads "value").  Returns 1 on success with
 * the copy pushed on 'to' and 'from''s stack unchanged; on failure returns
 * 0, pushes nothing on 'to', and pushes an error message string on 'from'
 * (the caller raises it), e.g. "Vote.receive: upvalue 'conn' is a
 * userdata".  Never raises in 'to' outside a protected call, never leaks.
 *
 * Tables (with their metatables) and Lua functions (with their upvalues)
 * are copied deeply, with identity and shared upvalues kept within one
 * call.  Library values (package.loaded[M] and package.loaded[M][K]) map to
 * the value at the same path in 'to'; from's globals table maps to to's,
 * which first receives from's user-defined globals (those that cannot be
 * copied are skipped).  The value at 'idx' itself is always copied, even
 * when it is a loaded module.  On failure 'to''s globals may already hold
 * some of those user globals.  'from' and 'to' must be distinct states (not
 * threads of one state); 'from' needs the usual few free stack slots. */
int lcs_transfer(lua_State *from, int idx, lua_State *to, const char *name);

/* Same as lcs_transfer, with a cache of dumped functions: 'cache_idx' is a
 * table in 'from' that maps a Lua function to its dumped chunk (a string).
 * The caller creates it (a weak-keyed table is fine) and reuses it for all
 * node states of one run, so each function is dumped once, not once per
 * node.  The cache is filled as a side effect; a 'cache_idx' of 0 or a
 * non-table means no cache, and an entry that is not a string is ignored. */
int lcs_transfer_cached(lua_State *from, int idx, lua_State *to,
                        const char *name, int cache_idx);

#endif
