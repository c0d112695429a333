// lua/l_json.c: the hs.json module, a strict JSON (RFC 8259) encoder/decoder for run records,
// case parameters and configs. Written directly against the Lua stack (not cJSON) so that
// integers stay Lua integers and errors carry a line/column. Not a streaming parser.
//   hs.json.encode(value [, {indent = true|n, sort_keys = true}]) -> string   (raises on error)
//   hs.json.decode(string) -> value | nil, "json: <what> at line L column C (byte B)"
//   hs.json.null            sentinel for JSON null (decode gives it, encode accepts it)
//   hs.json.array(t)        mark t as an array (so that an empty t encodes as []); returns t
// Tables with keys exactly 1..n are arrays, tables with string keys objects (keys sorted by
// default so encodings are reproducible); anything else (mixed keys, NaN, inf, functions,
// cycles) is an error. Decoded arrays carry the array mark, so [] round-trips.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define ARRAY_MT "hs.json.array"
#define BUF_MT "hs.json.buffer"
#define MAX_DEPTH 256

// ---------------------------------------------------------------- encoder

typedef struct {
    char *p;  // malloc'd, freed by __gc so a raised error cannot leak it
    size_t len, cap;
} jbuf;

static int buf_gc(lua_State *L) {
    jbuf *b = luaL_checkudata(L, 1, BUF_MT);
    free(b->p);
    b->p = NULL;
    return 0;
}

static void add(lua_State *L, jbuf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            luaL_error(L, "json.encode: out of memory");
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void adds(lua_State *L, jbuf *b, const char *s) { add(L, b, s, strlen(s)); }

typedef struct {
    jbuf *b;
    int indent;  // spaces per level; 0 = compact
    int sort;
} enc;

static void newline(lua_State *L, const enc *e, int depth) {
    if (!e->indent)
        return;
    add(L, e->b, "\n", 1);
    for (int i = 0; i < depth * e->indent; i++)
        add(L, e->b, " ", 1);
}

static void encode_string(lua_State *L, jbuf *b, const char *s, size_t n) {
    add(L, b, "\"", 1);
    size_t run = 0;  // bytes copied verbatim in one go
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (esc) {
            add(L, b, s + i - run, run);
            run = 0;
            adds(L, b, esc);
        } else {
            run++;
        }
    }
    add(L, b, s + n - run, run);
    add(L, b, "\"", 1);
}

static void encode_number(lua_State *L, jbuf *b, int idx) {
    char num[64];
    if (lua_isinteger(L, idx)) {
        snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        adds(L, b, num);
        return;
    }
    double d = (double)lua_tonumber(L, idx);
    if (isnan(d) || isinf(d))
        luaL_error(L, "json.encode: cannot encode %s (JSON has no NaN or infinity)", isnan(d) ? "NaN" : "inf");
    // the shortest of %.15g, %.16g, %.17g that reads back exactly
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, d);
        if (strtod(num, NULL) == d)
            break;
    }
    if (!strpbrk(num, ".eEn"))  // keep floats floats: 1.0 stays "1.0", not the integer 1
        strcat(num, ".0");
    adds(L, b, num);
}

typedef struct {
    const char *s;
    size_t n;
} key;

static int cmp_key(const void *a, const void *b) {
    const key *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void encode_value(lua_State *L, const enc *e, int idx, int depth);

static int is_array_marked(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, ARRAY_MT);
    int r = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return r;
}

static void encode_array(lua_State *L, const enc *e, int idx, lua_Integer n, int depth) {
    if (n == 0) {
        adds(L, e->b, "[]");
        return;
    }
    add(L, e->b, "[", 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            add(L, e->b, ",", 1);
        newline(L, e, depth + 1);
        lua_rawgeti(L, idx, i);
        encode_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    newline(L, e, depth);
    add(L, e->b, "]", 1);
}

static void encode_table(lua_State *L, const enc *e, int idx, int depth) {
    if (depth >= MAX_DEPTH)
        luaL_error(L, "json.encode: tables nested deeper than %d (a cycle?)", MAX_DEPTH);
    luaL_checkstack(L, 8, "json.encode: nesting too deep");
    if (is_array_marked(L, idx)) {
        encode_array(L, e, idx, (lua_Integer)lua_rawlen(L, idx), depth);
        return;
    }
    // classify: count keys, check whether they are exactly 1..n or all strings
    lua_Integer count = 0, max = 0;
    int all_int = 1, all_str = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (lua_isinteger(L, -1)) {
            lua_Integer k = lua_tointeger(L, -1);
            all_str = 0;
            if (k < 1)
                all_int = 0;
            else if (k > max)
                max = k;
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            all_int = 0;
        } else {
            luaL_error(L, "json.encode: cannot encode a table with a %s key", luaL_typename(L, -1));
        }
    }
    if (count == 0) {
        adds(L, e->b, "{}");
        return;
    }
    if (all_int && max == count) {
        encode_array(L, e, idx, count, depth);
        return;
    }
    if (!all_str)
        luaL_error(L, "json.encode: cannot encode a table mixing keys (or a sparse array): %s",
                   all_int ? "integer keys are not 1..n" : "both string and integer keys");
    key *keys = lua_newuserdatauv(L, sizeof *keys * (size_t)count, 0);  // strings pinned by the table
    int kidx = lua_gettop(L);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        keys[k].s = lua_tolstring(L, -1, &keys[k].n);
        k++;
    }
    if (e->sort)
        qsort(keys, (size_t)count, sizeof *keys, cmp_key);
    add(L, e->b, "{", 1);
    for (k = 0; k < count; k++) {
        if (k)
            add(L, e->b, ",", 1);
        newline(L, e, depth + 1);
        encode_string(L, e->b, keys[k].s, keys[k].n);
        adds(L, e->b, e->indent ? ": " : ":");
        lua_pushlstring(L, keys[k].s, keys[k].n);
        lua_rawget(L, idx);
        encode_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    newline(L, e, depth);
    add(L, e->b, "}", 1);
    lua_remove(L, kidx);
}

static void encode_value(lua_State *L, const enc *e, int idx, int depth) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: adds(L, e->b, "null"); break;
    case LUA_TBOOLEAN: adds(L, e->b, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER: encode_number(L, e->b, idx); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        encode_string(L, e->b, s, n);
        break;
    }
    case LUA_TTABLE: encode_table(L, e, idx, depth); break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {  // hs.json.null
            adds(L, e->b, "null");
            break;
        }
        /* fall through */
    default: luaL_error(L, "json.encode: cannot encode a %s value", luaL_typename(L, idx));
    }
}

static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    enc e = {NULL, 0, 1};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "indent");
        if (lua_isinteger(L, -1))
            e.indent = (int)luaL_checkinteger(L, -1);
        else
            e.indent = lua_toboolean(L, -1) ? 2 : 0;
        luaL_argcheck(L, e.indent >= 0 && e.indent <= 16, 2, "indent must be 0..16");
        lua_getfield(L, 2, "sort_keys");
        e.sort = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    lua_settop(L, 1);
    jbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    b->len = b->cap = 0;
    luaL_setmetatable(L, BUF_MT);
    e.b = b;
    encode_value(L, &e, 1, 0);
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    return 1;
}

// ---------------------------------------------------------------- decoder

typedef struct {
    lua_State *L;
    const char *s, *p, *end;
    int depth;
    const char *err;       // static message; NULL while fine
    const char *err_at;
} dec;

static int fail(dec *d, const char *msg, const char *at) {
    if (!d->err) {
        d->err = msg;
        d->err_at = at;
    }
    return 0;
}

static void skip_ws(dec *d) {
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int decode_value(dec *d);

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(dec *d, const char *p, unsigned *out) {
    if (d->end - p < 4)
        return fail(d, "truncated \\u escape", p);
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return fail(d, "bad hex digit in \\u escape", p + i);
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 1;
}

static void add_utf8(luaL_Buffer *b, unsigned cp) {
    char u[4];
    int n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    luaL_addlstring(b, u, (size_t)n);
}

// At the opening quote. Pushes the string.
static int decode_string(dec *d) {
    const char *start = ++d->p;
    // fast path: no escapes
    const char *q = start;
    while (q < d->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    if (q < d->end && *q == '"') {
        lua_pushlstring(d->L, start, (size_t)(q - start));
        d->p = q + 1;
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    const char *p = start;
    for (;;) {
        if (p >= d->end)
            return fail(d, "unterminated string", start - 1);
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(d, "control character in string (escape it)", p);
        if (c != '\\') {
            luaL_addchar(&b, (char)c);
            p++;
            continue;
        }
        if (++p >= d->end)
            return fail(d, "unterminated string", start - 1);
        switch (*p) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(d, p + 1, &cp))
                return 0;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {  // high surrogate: a low one must follow
                unsigned lo;
                if (d->end - p < 3 || p[1] != '\\' || p[2] != 'u' || !read_hex4(d, p + 3, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return fail(d, "unpaired UTF-16 surrogate in \\u escape", p - 5);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(d, "unpaired UTF-16 surrogate in \\u escape", p - 5);
            }
            add_utf8(&b, cp);
            break;
        }
        default: return fail(d, "invalid escape in string", p - 1);
        }
        p++;
    }
    luaL_pushresult(&b);
    d->p = p + 1;
    return 1;
}

static int decode_number(dec *d) {
    const char *p = d->p, *start = p;
    if (p < d->end && *p == '-')
        p++;
    if (p >= d->end || !(*p >= '0' && *p <= '9'))
        return fail(d, "invalid number", start);
    if (*p == '0')
        p++;
    else
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    if (p < d->end && *p == '.') {
        p++;
        if (p >= d->end || !(*p >= '0' && *p <= '9'))
            return fail(d, "invalid number (digit expected after '.')", p);
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < d->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < d->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= d->end || !(*p >= '0' && *p <= '9'))
            return fail(d, "invalid number (digit expected in exponent)", p);
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    char num[128];
    size_t n = (size_t)(p - start);
    if (n >= sizeof num)
        return fail(d, "number too long", start);
    memcpy(num, start, n);
    num[n] = '\0';
    // Lua's reader gives an integer for integer syntax that fits, else a float (as we want)
    if (lua_stringtonumber(d->L, num) == 0)
        return fail(d, "invalid number", start);
    d->p = p;
    return 1;
}

static int literal(dec *d, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return fail(d, "unexpected character", d->p);
    d->p += n;
    return 1;
}

static int decode_container(dec *d, int object) {
    lua_State *L = d->L;
    if (++d->depth > MAX_DEPTH)
        return fail(d, "nesting too deep", d->p);
    if (!lua_checkstack(L, 4))
        return fail(d, "nesting too deep", d->p);
    const char *open = d->p++;
    lua_newtable(L);
    if (!object)
        luaL_setmetatable(L, ARRAY_MT);
    skip_ws(d);
    char close = object ? '}' : ']';
    if (d->p < d->end && *d->p == close) {
        d->p++;
        d->depth--;
        return 1;
    }
    for (lua_Integer i = 1;; i++) {
        skip_ws(d);
        if (object) {
            if (d->p >= d->end || *d->p != '"')
                return fail(d, d->p >= d->end ? "unterminated object" : "expected a string key", d->p);
            if (!decode_string(d))
                return 0;
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':')
                return fail(d, "expected ':' after key", d->p);
            d->p++;
        }
        if (!decode_value(d))
            return 0;
        if (object)
            lua_rawset(L, -3);
        else
            lua_rawseti(L, -2, i);
        skip_ws(d);
        if (d->p >= d->end)
            return fail(d, object ? "unterminated object" : "unterminated array", open);
        if (*d->p == ',') {
            d->p++;
            continue;
        }
        if (*d->p == close) {
            d->p++;
            break;
        }
        return fail(d, object ? "expected ',' or '}'" : "expected ',' or ']'", d->p);
    }
    d->depth--;
    return 1;
}

static int decode_value(dec *d) {
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, "unexpected end of input", d->p);
    switch (*d->p) {
    case '{': return decode_container(d, 1);
    case '[': return decode_container(d, 0);
    case '"': return decode_string(d);
    case 't':
        if (!literal(d, "true"))
            return 0;
        lua_pushboolean(d->L, 1);
        return 1;
    case 'f':
        if (!literal(d, "false"))
            return 0;
        lua_pushboolean(d->L, 0);
        return 1;
    case 'n':
        if (!literal(d, "null"))
            return 0;
        lua_pushlightuserdata(d->L, NULL);
        return 1;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
            return decode_number(d);
        return fail(d, "unexpected character", d->p);
    }
}

static int l_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_settop(L, 1);
    dec d = {L, s, s, s + n, 0, NULL, NULL};
    if (decode_value(&d)) {
        skip_ws(&d);
        if (d.p < d.end)
            fail(&d, "trailing characters after the JSON value", d.p);
    }
    if (!d.err)
        return 1;
    lua_settop(L, 1);
    int line = 1, col = 1;
    for (const char *p = s; p < d.err_at && p < d.end; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    lua_pushnil(L);
    lua_pushfstring(L, "json: %s at line %d column %d (byte %d)", d.err, line, col, (int)(d.err_at - s) + 1);
    return 2;
}

static int l_array(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, ARRAY_MT);
    return 1;
}

static const luaL_Reg funcs[] = {{"encode", l_encode}, {"decode", l_decode}, {"array", l_array}, {NULL, NULL}};

int luaopen_hs_json(lua_State *L);
int luaopen_hs_json(lua_State *L) {
    if (luaL_newmetatable(L, BUF_MT)) {
        lua_pushcfunction(L, buf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newmetatable(L, ARRAY_MT);  // an empty marker: only its identity matters
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
