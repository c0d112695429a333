// lua/l_serve.c: the hs.serve module, Lua face of core/httpd.h: start the HTTP server, pop
// batches of jobs and answer them, metrics and model info, SIGTERM/SIGHUP flags for the
// serving loop, per-image input statistics, and a small HTTP client / load generator for tests
// and `histops loadtest`. No model code: the loop in lua/hs/cmd/serve.lua runs the model.
//   hs.serve.available() -> bool (built with libmicrohttpd)
//   hs.serve.start{host=, port=, max_body=, max_images=, max_pixels=, queue=, max_connections=, idle_timeout=,
//                  request_timeout=, log=, log_max_bytes=, log_keep=} -> server | nil, msg
//   server:port()  server:set_model(name, version, models_json)  server:drain()
//   server:pending()  server:pop(max, wait_ms, window_ms) -> {job, ...}  server:stop()
//   server:metric_add(name, labels, v)  :metric_set(...)  :metric_observe(...)  :metrics_text()
//   job:route() job:count() job:image(i) job:stats(i) job:filename(i) job:param(k) job:accept()
//   job:id() job:queue_seconds() job:respond(status, content_type, body [, log_fields [, header]])
//   hs.serve.image_stats(img) -> {intensity = {r,g,b}, od = {h,e,d}, height=, width=, channels=}
//   hs.serve.decode_body(content_type, body [, max]) -> {img, ...} | nil, msg, http_status
//   hs.serve.catch_signals()  hs.serve.signal() -> "term" | "hup" | nil (each reported once)
//   hs.serve.fetch{host=, port=, method=, path=, headers=, body=, timeout=} -> {status=, content_type=, body=}
//   hs.serve.loadtest{host=, port=, path=, content_type=, body=, connections=, requests=, timeout=}
#include <signal.h>
#include <string.h>

#include "alloc.h"
#include "httpd.h"
#include "l_common.h"
#include "png_io.h"

#define SERVER_MT "hs.serve.server"
#define JOB_MT "hs.serve.job"

typedef struct {
    hs_httpd *s;  // NULL once stopped
} server_box;

typedef struct {
    hs_httpd_job *j;  // NULL once answered
} job_box;

static hs_httpd *check_server(lua_State *L, int idx) {
    server_box *b = luaL_checkudata(L, idx, SERVER_MT);
    luaL_argcheck(L, b->s != NULL, idx, "server is stopped");
    return b->s;
}

static hs_httpd_job *check_job(lua_State *L, int idx) {
    job_box *b = luaL_checkudata(L, idx, JOB_MT);
    luaL_argcheck(L, b->j != NULL, idx, "job was already answered");
    return b->j;
}

static int l_available(lua_State *L) {
    lua_pushboolean(L, hs_httpd_available());
    return 1;
}

static int l_start(lua_State *L) {
    static const char *const keys[] = {"host",  "port",            "max_body",     "max_images",      "max_pixels",
                                       "queue", "max_connections", "idle_timeout", "request_timeout", "log",
                                       "log_max_bytes", "log_keep", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lhs_checkoptkeys(L, 1, keys);   // a misspelt limit must not silently keep its default
    hs_httpd_opts o;
    hs_httpd_default_opts(&o);
    o.host = lhs_optstring(L, 1, "host", o.host);
    o.port = (int)lhs_optinteger_range(L, 1, "port", o.port, 0, 65535);
    o.max_body = (size_t)lhs_optinteger_range(L, 1, "max_body", (lua_Integer)o.max_body, 1, (lua_Integer)1 << 40);
    o.max_images = (int)lhs_optinteger_range(L, 1, "max_images", o.max_images, 1, HS_HTTPD_MAX_IMAGES);
    o.max_pixels = (int64_t)lhs_optinteger_range(L, 1, "max_pixels", o.max_pixels, 1, HS_IMAGE_MAX_PIXELS);
    o.queue_capacity = (int)lhs_optinteger_range(L, 1, "queue", o.queue_capacity, 1, 1 << 20);
    o.max_connections = (int)lhs_optinteger_range(L, 1, "max_connections", o.max_connections, 1, 1 << 16);
    o.idle_timeout_s = (int)lhs_optinteger_range(L, 1, "idle_timeout", o.idle_timeout_s, 1, 1 << 20);
    o.request_timeout_ms = (int)lhs_optinteger_range(L, 1, "request_timeout", o.request_timeout_ms, 1, 1 << 30);
    o.log_path = lhs_optstring(L, 1, "log", NULL);
    o.log_max_bytes = (uint64_t)lhs_optinteger_range(L, 1, "log_max_bytes", (lua_Integer)o.log_max_bytes, 0, (lua_Integer)1 << 50);
    o.log_keep = (int)lhs_optinteger_range(L, 1, "log_keep", o.log_keep, 0, 99);
    server_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->s = NULL;
    luaL_setmetatable(L, SERVER_MT);
    if (hs_httpd_start(&b->s, &o) != HS_OK) {
        const hs_error *e = hs_last_error();
        if (e->code == HS_ERR_ARG)
            return lhs_core_error(L);
        lua_pushnil(L);
        lua_pushstring(L, e->msg);
        return 2;
    }
    return 1;
}

static int l_server_release(lua_State *L) {
    server_box *b = luaL_checkudata(L, 1, SERVER_MT);
    hs_httpd_stop(b->s);
    b->s = NULL;
    return 0;
}

static int l_server_port(lua_State *L) {
    lua_pushinteger(L, hs_httpd_port(check_server(L, 1)));
    return 1;
}

static int l_server_set_model(lua_State *L) {
    hs_httpd *s = check_server(L, 1);
    LHS_CHECK(L, hs_httpd_set_model(s, luaL_checkstring(L, 2), luaL_checkstring(L, 3), luaL_optstring(L, 4, "{}")));
    return 0;
}

static int l_server_drain(lua_State *L) {
    hs_httpd_drain(check_server(L, 1));
    return 0;
}

static int l_server_pending(lua_State *L) {
    lua_pushinteger(L, hs_httpd_pending(check_server(L, 1)));
    return 1;
}

static int l_server_pop(lua_State *L) {
    hs_httpd *s = check_server(L, 1);
    lua_Integer max = luaL_optinteger(L, 2, 16);
    lua_Integer wait = luaL_optinteger(L, 3, 100), window = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, max >= 1 && max <= 4096, 2, "max must be in 1..4096");
    luaL_argcheck(L, wait >= 0 && wait <= 3600000, 3, "wait_ms must be in 0..3600000");
    luaL_argcheck(L, window >= 0 && window <= 60000, 4, "window_ms must be in 0..60000");
    // boxes first (so no job can be lost to an allocation error), then the pop
    lua_createtable(L, (int)max, 0);
    job_box **boxes = lua_newuserdatauv(L, (size_t)max * sizeof *boxes, 0);  // scratch
    for (lua_Integer i = 0; i < max; i++) {
        job_box *b = lua_newuserdatauv(L, sizeof *b, 0);
        b->j = NULL;
        luaL_setmetatable(L, JOB_MT);
        boxes[i] = b;
        lua_rawseti(L, -3, i + 1);
    }
    lua_pop(L, 1);  // scratch (the table keeps the boxes)
    hs_httpd_job *jobs[4096];
    int n = 0;
    LHS_CHECK(L, hs_httpd_pop(s, jobs, (int)max, &n, (int)wait, (int)window));
    for (int i = 0; i < n; i++)
        boxes[i]->j = jobs[i];
    for (lua_Integer i = max; i > n; i--) {
        lua_pushnil(L);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

// Labels from the table at index 3 (name -> string/number), formatted and escaped into buf.
// The label strings stay on the stack until the caller returns.
static hs_metrics *metrics_labels(lua_State *L, char *buf, size_t n) {
    hs_httpd *s = check_server(L, 1);
    luaL_checkstring(L, 2);
    const char *kv[16];
    int np = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_newtable(L);  // the names, sorted for a stable series identity
        int names = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING, 3, "label names must be strings");
            luaL_argcheck(L, np < 8, 3, "at most 8 labels");
            lua_pushvalue(L, -2);
            lua_rawseti(L, names, ++np);
            lua_pop(L, 1);
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "sort");
        lua_pushvalue(L, names);
        lua_call(L, 1, 0);
        lua_pop(L, 1);
        for (int i = 0; i < np; i++) {
            lua_rawgeti(L, names, i + 1);
            kv[2 * i] = lua_tostring(L, -1);
            lua_pushvalue(L, -1);
            lua_gettable(L, 3);
            kv[2 * i + 1] = luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);  // the raw value; its string form stays
        }
    }
    if (hs_metrics_labels(buf, n, kv, np) != HS_OK)
        lhs_core_error(L);
    return hs_httpd_metrics(s);
}

static int l_metric_update(lua_State *L, int kind) {
    char labels[1024];
    hs_metrics *m = metrics_labels(L, labels, sizeof labels);
    const char *name = lua_tostring(L, 2);
    double v = luaL_optnumber(L, 4, 1);
    hs_status st = kind == 0 ? hs_metrics_add(m, name, labels, v)
                   : kind == 1 ? hs_metrics_set(m, name, labels, v)
                               : hs_metrics_observe(m, name, labels, v);
    LHS_CHECK(L, st);
    return 0;
}
static int l_metric_add(lua_State *L) {
    return l_metric_update(L, 0);
}
static int l_metric_set(lua_State *L) {
    return l_metric_update(L, 1);
}
static int l_metric_observe(lua_State *L) {
    return l_metric_update(L, 2);
}

static int l_metrics_text(lua_State *L) {
    hs_httpd *s = check_server(L, 1);
    char *text;
    size_t n;
    LHS_CHECK(L, hs_metrics_render(hs_httpd_metrics(s), &text, &n));
    lua_pushlstring(L, text, n);
    hs_free(text);
    return 1;
}

// ---- jobs ----

static int l_job_release(lua_State *L) {  // __gc/__close: an unanswered job gets a 500
    job_box *b = luaL_checkudata(L, 1, JOB_MT);
    if (b->j) {
        static const char msg[] = "{\"error\":\"the model runner dropped this request\",\"status\":500}\n";
        hs_httpd_job_respond(b->j, 500, "application/json", msg, sizeof msg - 1, "", "");
        b->j = NULL;
    }
    return 0;
}

static int l_job_route(lua_State *L) {
    static const char *names[] = {"predict", "segment", "ihc"};
    lua_pushstring(L, names[hs_httpd_job_route(check_job(L, 1))]);
    return 1;
}

static int l_job_count(lua_State *L) {
    lua_pushinteger(L, hs_httpd_job_count(check_job(L, 1)));
    return 1;
}

static int check_index(lua_State *L, hs_httpd_job *j, int arg) {
    lua_Integer i = luaL_checkinteger(L, arg);
    luaL_argcheck(L, i >= 1 && i <= hs_httpd_job_count(j), arg, "image index out of range");
    return (int)i - 1;
}

static int l_job_image(lua_State *L) {
    hs_httpd_job *j = check_job(L, 1);
    int i = check_index(L, j, 2);
    hs_tensor **slot = lhs_newtensor(L);
    *slot = hs_httpd_job_take_image(j, i);
    if (!*slot)
        return luaL_error(L, "image %d of this job was already taken", i + 1);
    return 1;
}

static void push_stats(lua_State *L, const hs_httpd_input_stats *st) {
    lua_createtable(L, 0, 5);
    lua_createtable(L, 3, 0);
    for (int c = 0; c < 3; c++) {
        lua_pushnumber(L, st->intensity[c]);
        lua_rawseti(L, -2, c + 1);
    }
    lua_setfield(L, -2, "intensity");
    lua_createtable(L, 3, 0);
    for (int c = 0; c < 3; c++) {
        lua_pushnumber(L, st->od[c]);
        lua_rawseti(L, -2, c + 1);
    }
    lua_setfield(L, -2, "od");
    lua_pushinteger(L, st->height);
    lua_setfield(L, -2, "height");
    lua_pushinteger(L, st->width);
    lua_setfield(L, -2, "width");
    lua_pushinteger(L, st->channels);
    lua_setfield(L, -2, "channels");
}

static int l_job_stats(lua_State *L) {
    hs_httpd_job *j = check_job(L, 1);
    push_stats(L, hs_httpd_job_stats(j, check_index(L, j, 2)));
    return 1;
}

static int l_job_filename(lua_State *L) {
    hs_httpd_job *j = check_job(L, 1);
    lua_pushstring(L, hs_httpd_job_filename(j, check_index(L, j, 2)));
    return 1;
}

static int l_job_param(lua_State *L) {
    const char *v = hs_httpd_job_param(check_job(L, 1), luaL_checkstring(L, 2));
    if (v)
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    return 1;
}

static int l_job_accept(lua_State *L) {
    lua_pushstring(L, hs_httpd_job_accept(check_job(L, 1)));
    return 1;
}

static int l_job_id(lua_State *L) {
    lua_pushstring(L, hs_httpd_job_id(check_job(L, 1)));
    return 1;
}

static int l_job_queue_seconds(lua_State *L) {
    lua_pushnumber(L, hs_httpd_job_queue_seconds(check_job(L, 1)));
    return 1;
}

static int l_job_respond(lua_State *L) {
    job_box *b = luaL_checkudata(L, 1, JOB_MT);
    luaL_argcheck(L, b->j != NULL, 1, "job was already answered");
    lua_Integer status = luaL_checkinteger(L, 2);
    luaL_argcheck(L, status >= 100 && status <= 599, 2, "HTTP status must be in 100..599");
    const char *ct = luaL_checkstring(L, 3);
    size_t n;
    const char *body = luaL_checklstring(L, 4, &n);
    const char *fields = luaL_optstring(L, 5, "");
    const char *header = luaL_optstring(L, 6, "");
    hs_httpd_job *j = b->j;
    b->j = NULL;
    LHS_CHECK(L, hs_httpd_job_respond(j, (int)status, ct, body, n, fields, header));
    return 0;
}

// ---- free functions ----

static int l_image_stats(lua_State *L) {
    hs_tensor *img = lhs_checktensor(L, 1);
    hs_httpd_input_stats st;
    LHS_CHECK(L, hs_httpd_input_stats_compute(&st, img));
    push_stats(L, &st);
    return 1;
}

static int l_decode_body(lua_State *L) {
    const char *ct = luaL_checkstring(L, 1);
    size_t n;
    const char *body = luaL_checklstring(L, 2, &n);
    lua_Integer max = luaL_optinteger(L, 3, 16);
    luaL_argcheck(L, max >= 1 && max <= HS_HTTPD_MAX_IMAGES, 3, "max out of range");
    hs_tensor *imgs[HS_HTTPD_MAX_IMAGES];
    int k = 0;
    hs_status st = hs_httpd_decode_body(imgs, NULL, &k, (int)max, ct, body, n);
    if (st != HS_OK) {
        const hs_error *e = hs_last_error();
        lua_pushnil(L);
        lua_pushstring(L, e->msg);
        lua_pushinteger(L, st == HS_ERR_UNSUPPORTED ? 415 : st == HS_ERR_NOMEM ? 500 : strstr(e->msg, "too many") ? 413 : 400);
        return 3;
    }
    lua_createtable(L, k, 0);
    for (int i = 0; i < k; i++) {
        lhs_pushtensor(L, imgs[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig) {
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
}

static int l_catch_signals(lua_State *L) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    (void)L;
    return 0;
}

static int l_signal(lua_State *L) {
    if (got_term) {
        got_term = 0;
        lua_pushliteral(L, "term");
    } else if (got_hup) {
        got_hup = 0;
        lua_pushliteral(L, "hup");
    } else {
        lua_pushnil(L);
    }
    return 1;
}

static int l_fetch(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *host = lhs_optstring(L, 1, "host", "127.0.0.1");
    int port = (int)lhs_optinteger_range(L, 1, "port", 8080, 1, 65535);
    const char *method = lhs_optstring(L, 1, "method", "GET");
    const char *path = lhs_optstring(L, 1, "path", "/");
    int timeout = (int)lhs_optinteger_range(L, 1, "timeout", 30000, 1, 1 << 30);
    size_t n = 0;
    const char *body = "";
    lua_getfield(L, 1, "body");
    if (!lua_isnil(L, -1))
        body = luaL_checklstring(L, -1, &n);
    lua_pop(L, 1);  // still referenced from the table
    lua_getfield(L, 1, "headers");  // a table name -> value, or a string of "Name: v\r\n" lines
    lua_pushliteral(L, "");
    if (lua_istable(L, -2)) {
        lua_pushnil(L);  // stack: hdrs acc key
        while (lua_next(L, -3)) {
            luaL_argcheck(L, lua_type(L, -2) == LUA_TSTRING, 1, "header names must be strings");
            const char *k = lua_tostring(L, -2);
            const char *v = luaL_checkstring(L, -1);
            lua_pushfstring(L, "%s%s: %s\r\n", lua_tostring(L, -3), k, v);
            lua_replace(L, -4);
            lua_pop(L, 1);
        }
    } else if (lua_type(L, -2) == LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
    }
    const char *headers = lua_tostring(L, -1);
    hs_httpd_response r;
    hs_status st = hs_httpd_fetch(&r, host, port, method, path, headers, body, n, timeout);
    if (st != HS_OK) {
        lua_pushnil(L);
        lua_pushstring(L, hs_last_error()->msg);
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r.status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, r.content_type);
    lua_setfield(L, -2, "content_type");
    lua_pushlstring(L, r.body, r.n);
    lua_setfield(L, -2, "body");
    hs_httpd_response_free(&r);
    return 1;
}

static int l_loadtest(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *host = lhs_optstring(L, 1, "host", "127.0.0.1");
    int port = (int)lhs_optinteger_range(L, 1, "port", 8080, 1, 65535);
    const char *path = lhs_optstring(L, 1, "path", "/v1/predict");
    const char *ct = lhs_optstring(L, 1, "content_type", "image/png");
    int conns = (int)lhs_optinteger_range(L, 1, "connections", 4, 1, 1024);
    lua_Integer reqs = lhs_optinteger_range(L, 1, "requests", 100, 1, 10000000);
    int timeout = (int)lhs_optinteger_range(L, 1, "timeout", 30000, 1, 1 << 30);
    lua_getfield(L, 1, "body");
    size_t n;
    const char *body = luaL_checklstring(L, -1, &n);
    lua_pop(L, 1);
    double *lat = lua_newuserdatauv(L, (size_t)reqs * sizeof *lat, 0);
    hs_httpd_load_result res;
    LHS_CHECK(L, hs_httpd_loadtest(&res, lat, host, port, path, ct, body, n, conns, reqs, timeout));
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, res.ok);
    lua_setfield(L, -2, "ok");
    lua_pushinteger(L, res.http_errors);
    lua_setfield(L, -2, "http_errors");
    lua_pushinteger(L, res.failures);
    lua_setfield(L, -2, "failures");
    lua_pushnumber(L, res.wall_seconds);
    lua_setfield(L, -2, "wall");
    lua_createtable(L, (int)reqs, 0);
    int k = 0;
    for (lua_Integer i = 0; i < reqs; i++)
        if (lat[i] == lat[i]) {
            lua_pushnumber(L, lat[i]);
            lua_rawseti(L, -2, ++k);
        }
    lua_setfield(L, -2, "latencies");
    return 1;
}

static const luaL_Reg server_methods[] = {
    {"port", l_server_port},         {"set_model", l_server_set_model}, {"drain", l_server_drain},
    {"pending", l_server_pending},   {"pop", l_server_pop},             {"stop", l_server_release},
    {"metric_add", l_metric_add},    {"metric_set", l_metric_set},      {"metric_observe", l_metric_observe},
    {"metrics_text", l_metrics_text}, {NULL, NULL}};

static const luaL_Reg job_methods[] = {
    {"route", l_job_route},       {"count", l_job_count},   {"image", l_job_image},   {"stats", l_job_stats},
    {"filename", l_job_filename}, {"param", l_job_param},   {"accept", l_job_accept}, {"id", l_job_id},
    {"queue_seconds", l_job_queue_seconds}, {"respond", l_job_respond}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"available", l_available},     {"start", l_start},   {"image_stats", l_image_stats},
    {"decode_body", l_decode_body}, {"catch_signals", l_catch_signals}, {"signal", l_signal},
    {"fetch", l_fetch},             {"loadtest", l_loadtest}, {NULL, NULL}};

static int l_server_tostring(lua_State *L) {
    server_box *b = luaL_checkudata(L, 1, SERVER_MT);
    if (b->s)
        lua_pushfstring(L, "hs.serve.server (port %d)", hs_httpd_port(b->s));
    else
        lua_pushliteral(L, "hs.serve.server (stopped)");
    return 1;
}

// Metatable `name`: methods in __index, `release` as both __gc and __close, then __tostring when
// given. Leaves the stack as it was.
static void new_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction release,
                          lua_CFunction tostring) {
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, release);
    lua_setfield(L, -2, "__close");
    if (tostring) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}

int luaopen_hs_serve(lua_State *L);
int luaopen_hs_serve(lua_State *L) {
    new_metatable(L, SERVER_MT, server_methods, l_server_release, l_server_tostring);
    new_metatable(L, JOB_MT, job_methods, l_job_release, NULL);
    luaL_newlib(L, funcs);
    return 1;
}
