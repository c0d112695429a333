// lua/l_sys.c: the hs.sys module: clocks, environment, processes and files for run records,
// benchmarks and the command-line tools. Glue over POSIX and core/sys.h, core/sha256.h; it does
// no numerics. Failures of the environment (missing file, unreadable folder) return nil, message.
//   versions() time() clock() sleep(s) getenv(name) hostname() pid() exe() cpu_model() nproc()
//   set_threads(n) get_threads() mkdir_p(path) listdir(path) stat(path) write_file_atomic(path, s)
//   read_file(path) sha256(s) sha256_file(path) rss_peak() isatty(fd)
//   test_kill_point(name): test-only, see HISTOPS_TEST_KILL_AT in core/sys.h
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <git2/common.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "blas.h"
#include "l_common.h"
#include "png_io.h"
#include "parallel.h"
#include "sha256.h"
#include "sys.h"

#ifndef HS_VERSION
#define HS_VERSION "0.0.0"
#endif

#define MEM_GUARD "hs.sys.memory"

// An hs_alloc'd block owned by a userdata, so a Lua error cannot leak it.
typedef struct {
    void *p;
} mem_guard;

static int mem_gc(lua_State *L) {
    mem_guard *g = luaL_checkudata(L, 1, MEM_GUARD);
    hs_free(g->p);
    g->p = NULL;
    return 0;
}

static mem_guard *new_guard(lua_State *L) {
    mem_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->p = NULL;
    luaL_setmetatable(L, MEM_GUARD);
    return g;
}

static int fail_nil(lua_State *L) {  // nil, last core message
    lua_pushnil(L);
    lua_pushstring(L, hs_last_error()->msg);
    return 2;
}

static int l_versions(lua_State *L) {
    lua_newtable(L);
    lua_pushstring(L, HS_VERSION);
    lua_setfield(L, -2, "histops");
    lua_pushstring(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua");
    lua_pushstring(L, hs_blas_version());
    lua_setfield(L, -2, "openblas");
    int major = 0, minor = 0, rev = 0;
    if (git_libgit2_version(&major, &minor, &rev) == 0) {
        lua_pushfstring(L, "%d.%d.%d", major, minor, rev);
        lua_setfield(L, -2, "libgit2");
    }
    lua_pushstring(L, cJSON_Version());
    lua_setfield(L, -2, "cjson");
    lua_pushstring(L, hs_png_version());
    lua_setfield(L, -2, "libpng");
    lua_pushstring(L, hs_jpeg_version());
    lua_setfield(L, -2, "libjpeg");
#if defined(__VERSION__)
    lua_pushstring(L, __VERSION__);
    lua_setfield(L, -2, "compiler");
#endif
    return 1;
}

static double now(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int l_time(lua_State *L) {
    lua_pushnumber(L, now(CLOCK_REALTIME));
    return 1;
}

static int l_clock(lua_State *L) {
    lua_pushnumber(L, now(CLOCK_MONOTONIC));
    return 1;
}

static int l_sleep(lua_State *L) {
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s < 1e9, 1, "seconds must be in [0, 1e9)");
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return 0;
}

static int l_getenv(lua_State *L) {
    const char *v = getenv(luaL_checkstring(L, 1));
    if (v)
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    return 1;
}

static int l_hostname(lua_State *L) {
    char name[256];
    if (gethostname(name, sizeof name) != 0)
        return luaL_fileresult(L, 0, "gethostname");
    name[sizeof name - 1] = '\0';
    lua_pushstring(L, name);
    return 1;
}

static int l_pid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

// Path of the running executable (the histops binary), for tools that re-run it.
static int l_exe(lua_State *L) {
    char buf[HS_SYS_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0)
        return luaL_fileresult(L, 0, "/proc/self/exe");
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int l_cpu_model(lua_State *L) {
    char buf[256];
    hs_sys_cpu_model(buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int l_nproc(lua_State *L) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    lua_pushinteger(L, n > 0 ? n : 1);
    return 1;
}

// Threads of hs_parallel_for (OpenBLAS stays single-threaded inside its tasks, see blas.h).
static int l_set_threads(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 1024, 1, "thread count must be in 1..1024");
    LHS_CHECK(L, hs_set_num_threads((int)n));
    return 0;
}

static int l_get_threads(lua_State *L) {
    lua_pushinteger(L, hs_get_num_threads());
    lua_pushinteger(L, hs_blas_get_threads());
    return 2;
}

static int l_mkdir_p(lua_State *L) {
    if (hs_sys_mkdir_p(luaL_checkstring(L, 1)) != HS_OK)
        return fail_nil(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_listdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    mem_guard *g = new_guard(L);
    char **names;
    int n;
    if (hs_sys_listdir(&names, &n, path) != HS_OK)
        return fail_nil(L);
    g->p = names;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_stat(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0)
        return luaL_fileresult(L, 0, path);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec * 1e-9);
    lua_setfield(L, -2, "mtime");
    lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : "other");
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    return 1;
}

static int l_write_file_atomic(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (hs_sys_write_file_atomic(path, s, n) != HS_OK)
        return fail_nil(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_read_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    mem_guard *g = new_guard(L);
    char *buf;
    size_t n;
    if (hs_sys_read_file(&buf, &n, path) != HS_OK)
        return fail_nil(L);
    g->p = buf;
    lua_pushlstring(L, buf, n);
    return 1;
}

static int l_sha256(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    uint8_t d[HS_SHA256_DIGEST_SIZE];
    char hex[HS_SHA256_HEX_SIZE];
    hs_sha256_digest(d, s, n);
    lua_pushstring(L, hs_sha256_hex(hex, d));
    return 1;
}

static int l_sha256_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return luaL_fileresult(L, 0, path);
    hs_sha256 ctx;
    hs_sha256_init(&ctx);
    unsigned char buf[1 << 16];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return luaL_fileresult(L, 0, path);
        }
        if (r == 0)
            break;
        hs_sha256_update(&ctx, buf, (size_t)r);
    }
    close(fd);
    uint8_t d[HS_SHA256_DIGEST_SIZE];
    char hex[HS_SHA256_HEX_SIZE];
    hs_sha256_final(d, &ctx);
    lua_pushstring(L, hs_sha256_hex(hex, d));
    return 1;
}

static int l_rss_peak(lua_State *L) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return luaL_fileresult(L, 0, "getrusage");
    lua_pushinteger(L, (lua_Integer)ru.ru_maxrss * 1024);  // Linux reports KiB
    return 1;
}

static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

// Test-only crash hook: SIGKILL the process on the n-th pass when HISTOPS_TEST_KILL_AT=name:n.
static int l_test_kill_point(lua_State *L) {
    hs_sys_test_kill_point(luaL_checkstring(L, 1));
    return 0;
}

static const luaL_Reg funcs[] = {
    {"versions", l_versions}, {"time", l_time}, {"clock", l_clock}, {"sleep", l_sleep},
    {"getenv", l_getenv}, {"hostname", l_hostname}, {"pid", l_pid}, {"exe", l_exe},
    {"cpu_model", l_cpu_model}, {"nproc", l_nproc}, {"set_threads", l_set_threads},
    {"get_threads", l_get_threads}, {"mkdir_p", l_mkdir_p}, {"listdir", l_listdir}, {"stat", l_stat},
    {"write_file_atomic", l_write_file_atomic}, {"read_file", l_read_file}, {"sha256", l_sha256},
    {"sha256_file", l_sha256_file}, {"rss_peak", l_rss_peak}, {"isatty", l_isatty}, {"test_kill_point", l_test_kill_point},
    {NULL, NULL}};

int luaopen_hs_sys(lua_State *L);
int luaopen_hs_sys(lua_State *L) {
    if (luaL_newmetatable(L, MEM_GUARD)) {
        lua_pushcfunction(L, mem_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
