// lua/l_image.c: the hs.image module: image file I/O (PNG, JPEG), layout/dtype conversions,
// colour spaces, stain deconvolution and normalisation, contrast. Argument checking and
// allocation of results only; the work is in core/png_io.c, jpeg_io.c, color.c, stain.c and
// contrast.c. Images are hs.tensor (H,W,C) (U8, U16 for 16-bit PNG, or F32); (H,W) is gray.
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "color.h"
#include "contrast.h"
#include "jpeg_io.h"
#include "l_common.h"
#include "png_io.h"
#include "stain.h"

// ---- helpers ----

// Environmental failures (unreadable/corrupt file) give nil, message; anything else raises.
static int push_env_failure(lua_State *L) {
    const hs_error *e = hs_last_error();
    if (e->code != HS_ERR_IO && e->code != HS_ERR_FORMAT)
        return lhs_core_error(L);
    lua_pushnil(L);
    lua_pushstring(L, e->msg);
    return 2;
}

static hs_tensor *check_image(lua_State *L, int idx, int channels, const char *op) {
    hs_tensor *t = lhs_checktensor(L, idx);
    if (hs_color_check_image(t, channels, op) != HS_OK)
        lhs_core_error(L);
    return t;
}

// New (H,W,c) tensor (c == 0: (H,W)) of dtype dt, with t's H and W, pushed on the stack.
// Uninitialised: every caller passes it to a core function that assigns all of it (zeroing a
// 48 MB float image first would cost as much as a colour conversion).
static hs_tensor *push_new_image(lua_State *L, const hs_tensor *t, int c, hs_dtype dt) {
    int64_t shape[3] = {t->shape[0], t->shape[1], c};
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_tensor_new_uninit(slot, dt, c ? 3 : 2, shape) != HS_OK)
        lhs_core_error(L);
    return *slot;
}

static hs_tensor *push_new_like(lua_State *L, const hs_tensor *t) {
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_tensor_new(slot, t->dtype, t->ndim, t->shape) != HS_OK)
        lhs_core_error(L);
    return *slot;
}

static void check_opts(lua_State *L, int idx) {
    luaL_argcheck(L, lua_isnoneornil(L, idx) || lua_istable(L, idx), idx, "options table expected");
}

// ---- I/O ----

static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_image_read(slot, path) != HS_OK)
        return push_env_failure(L);
    return 1;
}

static int l_decode(lua_State *L) {
    size_t n;
    const char *buf = luaL_checklstring(L, 1, &n);
    const char *label = luaL_optstring(L, 2, "(string)");
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_image_decode(slot, buf, n, label) != HS_OK)
        return push_env_failure(L);
    return 1;
}

static int l_info(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    hs_image_info info;
    if (hs_image_read_info(&info, path) != HS_OK)
        return push_env_failure(L);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, info.width);
    lua_setfield(L, -2, "width");
    lua_pushinteger(L, info.height);
    lua_setfield(L, -2, "height");
    lua_pushinteger(L, info.channels);
    lua_setfield(L, -2, "channels");
    lua_pushinteger(L, info.bit_depth);
    lua_setfield(L, -2, "bit_depth");
    lua_pushstring(L, info.format == HS_IMAGE_FORMAT_PNG ? "png" : "jpeg");
    lua_setfield(L, -2, "format");
    return 1;
}

// save(path, t [, {quality=95}]) -> true | nil, msg (I/O); raises on bad input.
static int l_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    hs_tensor *t = lhs_checktensor(L, 2);
    check_opts(L, 3);
    double q = lhs_optnumber(L, 3, "quality", -1);
    if (hs_image_write(path, t, (int)q) != HS_OK) {
        if (hs_last_error()->code == HS_ERR_IO) {
            lua_pushnil(L);
            lua_pushstring(L, hs_last_error()->msg);
            return 2;
        }
        return lhs_core_error(L);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int push_buffer(lua_State *L, hs_status s, void *buf, size_t n) {
    if (s != HS_OK)
        return lhs_core_error(L);
    lua_pushlstring(L, buf, n);
    hs_free(buf);
    return 1;
}

static int l_encode_png(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    lua_Integer level = luaL_optinteger(L, 2, -1);
    void *buf;
    size_t n;
    hs_status s = hs_png_encode(&buf, &n, t, (int)level);
    return push_buffer(L, s, buf, n);
}

static int l_encode_jpeg(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    lua_Integer q = luaL_optinteger(L, 2, -1);
    void *buf;
    size_t n;
    hs_status s = hs_jpeg_encode(&buf, &n, t, (int)q);
    return push_buffer(L, s, buf, n);
}

// ---- layout and dtype ----

static double default_float_scale(hs_dtype dt) {
    return dt == HS_DTYPE_U8 ? 1.0 / 255 : dt == HS_DTYPE_U16 ? 1.0 / 65535 : 1.0;
}

static int l_to_chw(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    float scale = (float)luaL_optnumber(L, 2, default_float_scale(t->dtype));
    luaL_argcheck(L, t->ndim == 2 || t->ndim == 3, 1, "expected an (H,W,C) or (H,W) image");
    int64_t shape[3] = {t->ndim == 3 ? t->shape[2] : 1, t->shape[0], t->shape[1]};
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new_uninit(slot, HS_DTYPE_F32, 3, shape));
    LHS_CHECK(L, hs_color_to_chw(*slot, t, scale));
    return 1;
}

static int l_from_chw(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    float scale = (float)luaL_optnumber(L, 2, 255.0);
    hs_dtype dt = lhs_checkdtype(L, 3, HS_DTYPE_U8);
    luaL_argcheck(L, t->ndim == 3, 1, "expected a (C,H,W) tensor");
    int64_t shape[3] = {t->shape[1], t->shape[2], t->shape[0]};
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new_uninit(slot, dt, 3, shape));
    LHS_CHECK(L, hs_color_from_chw(*slot, t, scale));
    return 1;
}

static int convert_to(lua_State *L, hs_dtype dt, double def_scale) {
    hs_tensor *t = lhs_checktensor(L, 1);
    float scale = (float)luaL_optnumber(L, 2, def_scale);
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new_uninit(slot, dt, t->ndim, t->shape));
    LHS_CHECK(L, hs_color_convert(*slot, t, scale));
    return 1;
}

static int l_to_float(lua_State *L) {
    return convert_to(L, HS_DTYPE_F32, default_float_scale(lhs_checktensor(L, 1)->dtype));
}

static int l_to_u8(lua_State *L) {
    hs_dtype dt = lhs_checktensor(L, 1)->dtype;
    return convert_to(L, HS_DTYPE_U8, dt == HS_DTYPE_U8 ? 1.0 : dt == HS_DTYPE_U16 ? 1.0 / 257 : 255.0);
}

// ---- colour ----

static int l_rgb2gray(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 3, "rgb2gray");
    hs_tensor *out = push_new_image(L, t, 0, t->dtype);
    LHS_CHECK(L, hs_color_rgb2gray(out, t));
    return 1;
}

static int l_gray2rgb(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 1, "gray2rgb");
    hs_tensor *out = push_new_image(L, t, 3, t->dtype);
    LHS_CHECK(L, hs_color_gray2rgb(out, t));
    return 1;
}

typedef hs_status (*rgb_fn)(hs_tensor *out, const hs_tensor *in);

static int map3(lua_State *L, rgb_fn fn, const char *op) {
    hs_tensor *t = check_image(L, 1, 3, op);
    hs_tensor *out = push_new_image(L, t, 3, HS_DTYPE_F32);
    LHS_CHECK(L, fn(out, t));
    return 1;
}

// rgb2hsv(img [, {dtype = "u8"}]): F32 in skimage's convention, or (U8 image, dtype "u8") U8 in
// OpenCV's (H = degrees / 2, S and V 0..255, as cv2.cvtColor(COLOR_RGB2HSV)).
static int l_rgb2hsv(lua_State *L) {
    check_opts(L, 2);
    if (lua_istable(L, 2) && lua_getfield(L, 2, "dtype") != LUA_TNIL) {
        const char *dt = luaL_checkstring(L, -1);
        luaL_argcheck(L, strcmp(dt, "u8") == 0 || strcmp(dt, "f32") == 0, 2, "dtype must be \"u8\" or \"f32\"");
        int u8 = dt[0] == 'u';
        lua_pop(L, 1);
        if (u8) {
            hs_tensor *t = check_image(L, 1, 3, "rgb2hsv");
            luaL_argcheck(L, t->dtype == HS_DTYPE_U8, 1, "dtype \"u8\" needs a U8 image");
            hs_tensor *out = push_new_image(L, t, 3, HS_DTYPE_U8);
            LHS_CHECK(L, hs_color_rgb2hsv_u8(out, t));
            return 1;
        }
    }
    return map3(L, hs_color_rgb2hsv, "rgb2hsv");
}
static int l_hsv2rgb(lua_State *L) { return map3(L, hs_color_hsv2rgb, "hsv2rgb"); }
static int l_rgb2lab(lua_State *L) { return map3(L, hs_color_rgb2lab, "rgb2lab"); }
static int l_lab2rgb(lua_State *L) { return map3(L, hs_color_lab2rgb, "lab2rgb"); }
static int l_rgb2hed(lua_State *L) { return map3(L, hs_stain_rgb2hed, "rgb2hed"); }
static int l_hed2rgb(lua_State *L) { return map3(L, hs_stain_hed2rgb, "hed2rgb"); }

// ---- stains ----

// Read n rows of 3 numbers from a table of tables or an (n,3) tensor at idx; returns n.
static int read_rows(lua_State *L, int idx, double rows[3][3]) {
    hs_tensor *t = lhs_totensor(L, idx);
    if (t) {
        luaL_argcheck(L, t->ndim == 2 && (t->shape[0] == 2 || t->shape[0] == 3) && t->shape[1] == 3, idx,
                      "expected a (2,3) or (3,3) tensor of stain vectors");
        for (int i = 0; i < t->shape[0]; i++)
            for (int j = 0; j < 3; j++)
                rows[i][j] = hs_tensor_get_flat(t, i * 3 + j);
        return (int)t->shape[0];
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)luaL_len(L, idx);
    luaL_argcheck(L, n == 2 || n == 3, idx, "expected 2 or 3 stain vectors");
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        luaL_argcheck(L, lua_istable(L, -1) && luaL_len(L, -1) == 3, idx, "each stain vector needs 3 numbers");
        for (int j = 0; j < 3; j++) {
            lua_geti(L, -1, j + 1);
            int ok;
            rows[i][j] = lua_tonumberx(L, -1, &ok);
            luaL_argcheck(L, ok, idx, "stain vector entries must be numbers");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return n;
}

static void push_matrix(lua_State *L, const hs_stain_matrix *m) {
    int64_t shape[2] = {3, 3};
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_tensor_new(slot, HS_DTYPE_F64, 2, shape) != HS_OK)
        lhs_core_error(L);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            hs_tensor_set_flat(*slot, i * 3 + j, m->rgb_from_stain[i][j]);
}

// A stain matrix argument: a name, a (3,3) tensor as returned by stain_matrix, or vectors.
static void check_matrix(lua_State *L, int idx, hs_stain_matrix *m) {
    if (lua_type(L, idx) == LUA_TSTRING) {
        if (hs_stain_matrix_named(m, lua_tostring(L, idx)) != HS_OK)
            luaL_argerror(L, idx, hs_last_error()->msg);
        return;
    }
    double rows[3][3];
    hs_tensor *t = lhs_totensor(L, idx);
    int n = read_rows(L, idx, rows);
    hs_status s = t && n == 3 ? hs_stain_matrix_set(m, (const double(*)[3])rows)
                              : hs_stain_matrix_from_vectors(m, (const double(*)[3])rows, n);
    if (s != HS_OK)
        luaL_argerror(L, idx, hs_last_error()->msg);
}

// stain_matrix("hed" | {{r,g,b},{r,g,b}[,{r,g,b}]}) -> (3,3) F64 tensor of rgb_from_stain rows.
static int l_stain_matrix(lua_State *L) {
    hs_stain_matrix m;
    if (lua_type(L, 1) == LUA_TSTRING) {
        check_matrix(L, 1, &m);
    } else {
        double rows[3][3];
        int n = read_rows(L, 1, rows);
        if (hs_stain_matrix_from_vectors(&m, (const double(*)[3])rows, n) != HS_OK)
            luaL_argerror(L, 1, hs_last_error()->msg);
    }
    push_matrix(L, &m);
    return 1;
}

static int l_deconvolve(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 3, "deconvolve");
    hs_stain_matrix m;
    check_matrix(L, 2, &m);
    hs_tensor *out = push_new_image(L, t, 3, HS_DTYPE_F32);
    LHS_CHECK(L, hs_stain_separate(out, t, &m));
    return 1;
}

static int l_combine(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 3, "combine");
    hs_stain_matrix m;
    check_matrix(L, 2, &m);
    hs_tensor *out = push_new_image(L, t, 3, HS_DTYPE_F32);
    LHS_CHECK(L, hs_stain_combine(out, t, &m));
    return 1;
}

static void push_vec(lua_State *L, const double *v, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static void read_vec(lua_State *L, int idx, const char *key, double *v, int n) {
    lua_getfield(L, idx, key);
    if (!lua_istable(L, -1))
        luaL_error(L, "bad target: field '%s' must be a table of %d numbers", key, n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, -1, i + 1);
        int ok;
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "bad target: %s[%d] must be a number", key, i + 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int l_reinhard_fit(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 3, "reinhard_fit");
    hs_stain_reinhard r;
    LHS_CHECK(L, hs_stain_reinhard_fit(&r, t));
    lua_createtable(L, 0, 2);
    push_vec(L, r.mean, 3);
    lua_setfield(L, -2, "mean");
    push_vec(L, r.std, 3);
    lua_setfield(L, -2, "std");
    return 1;
}

static hs_dtype normalised_dtype(const hs_tensor *t) { return t->dtype == HS_DTYPE_U8 ? HS_DTYPE_U8 : HS_DTYPE_F32; }

// reinhard_apply(t, target) -> same kind of image (U8 for U8 input, else F32 in [0,1]).
static int l_reinhard_apply(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 3, "reinhard_apply");
    luaL_checktype(L, 2, LUA_TTABLE);
    hs_stain_reinhard r;
    read_vec(L, 2, "mean", r.mean, 3);
    read_vec(L, 2, "std", r.std, 3);
    hs_tensor *out = push_new_image(L, t, 3, normalised_dtype(t));
    LHS_CHECK(L, hs_stain_reinhard_apply(out, t, &r));
    return 1;
}

static hs_stain_macenko_opts macenko_opts(lua_State *L, int idx) {
    check_opts(L, idx);
    hs_stain_macenko_opts o = hs_stain_macenko_default_opts();
    o.io = lhs_optnumber(L, idx, "io", o.io);
    o.alpha = lhs_optnumber(L, idx, "alpha", o.alpha);
    o.beta = lhs_optnumber(L, idx, "beta", o.beta);
    return o;
}

static int l_macenko_fit(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 3, "macenko_fit");
    hs_stain_macenko_opts o = macenko_opts(L, 2);
    hs_stain_macenko m;
    LHS_CHECK(L, hs_stain_macenko_fit(&m, t, &o));
    lua_createtable(L, 0, 2);
    lua_createtable(L, 2, 0);
    for (int s = 0; s < 2; s++) {
        push_vec(L, m.stains[s], 3);
        lua_rawseti(L, -2, s + 1);
    }
    lua_setfield(L, -2, "stains");
    push_vec(L, m.max_conc, 2);
    lua_setfield(L, -2, "max_conc");
    return 1;
}

// macenko_apply(t [, target [, opts]]): target as returned by macenko_fit (nil: the usual H&E
// reference).
static int l_macenko_apply(lua_State *L) {
    hs_tensor *t = check_image(L, 1, 3, "macenko_apply");
    hs_stain_macenko target = hs_stain_macenko_default_target();
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "stains");
        if (!lua_istable(L, -1))
            return luaL_error(L, "bad target: field 'stains' must be a table of 2 vectors");
        for (int s = 0; s < 2; s++) {
            lua_geti(L, -1, s + 1);
            if (!lua_istable(L, -1))
                return luaL_error(L, "bad target: stains[%d] must be a table of 3 numbers", s + 1);
            for (int k = 0; k < 3; k++) {
                lua_geti(L, -1, k + 1);
                int ok;
                target.stains[s][k] = lua_tonumberx(L, -1, &ok);
                if (!ok)
                    return luaL_error(L, "bad target: stains[%d][%d] must be a number", s + 1, k + 1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        read_vec(L, 2, "max_conc", target.max_conc, 2);
    }
    hs_stain_macenko_opts o = macenko_opts(L, 3);
    hs_tensor *out = push_new_image(L, t, 3, normalised_dtype(t));
    LHS_CHECK(L, hs_stain_macenko_apply(out, t, &target, &o));
    return 1;
}

// ---- contrast ----

static int l_auto_contrast(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    check_opts(L, 2);
    double lo = lhs_optnumber(L, 2, "low", 1), hi = lhs_optnumber(L, 2, "high", 99);
    int joint = lhs_optboolean(L, 2, "joint", 0);
    hs_tensor *out = push_new_like(L, t);
    LHS_CHECK(L, hs_contrast_auto(out, t, lo, hi, joint));
    return 1;
}

static int l_gamma(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    double g = luaL_checknumber(L, 2);
    luaL_argcheck(L, g > 0 && isfinite(g), 2, "gamma must be positive");
    hs_tensor *out = push_new_like(L, t);
    LHS_CHECK(L, hs_contrast_gamma(out, t, g));
    return 1;
}

static int l_equalize_hist(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    hs_tensor *out = push_new_like(L, t);
    LHS_CHECK(L, hs_contrast_equalize_hist(out, t));
    return 1;
}

// clahe(t, {clip=2.0, tiles=8 | {tx, ty}})
static int l_clahe(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    check_opts(L, 2);
    double clip = lhs_optnumber(L, 2, "clip", 2.0);
    int tx = 8, ty = 8;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "tiles");
        if (lua_istable(L, -1)) {
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            tx = (int)luaL_checkinteger(L, -2);
            ty = (int)luaL_checkinteger(L, -1);
            lua_pop(L, 2);
        } else if (!lua_isnil(L, -1)) {
            tx = ty = (int)luaL_checkinteger(L, -1);
        }
        lua_pop(L, 1);
    }
    hs_tensor *out = push_new_like(L, t);
    LHS_CHECK(L, hs_contrast_clahe(out, t, clip, tx, ty));
    return 1;
}

static const luaL_Reg funcs[] = {
    {"load", l_load}, {"decode", l_decode}, {"info", l_info}, {"save", l_save},
    {"encode_png", l_encode_png}, {"encode_jpeg", l_encode_jpeg},
    {"to_chw", l_to_chw}, {"from_chw", l_from_chw}, {"to_float", l_to_float}, {"to_u8", l_to_u8},
    {"rgb2gray", l_rgb2gray}, {"gray2rgb", l_gray2rgb}, {"rgb2hsv", l_rgb2hsv}, {"hsv2rgb", l_hsv2rgb},
    {"rgb2lab", l_rgb2lab}, {"lab2rgb", l_lab2rgb}, {"rgb2hed", l_rgb2hed}, {"hed2rgb", l_hed2rgb},
    {"stain_matrix", l_stain_matrix}, {"deconvolve", l_deconvolve}, {"combine", l_combine},
    {"reinhard_fit", l_reinhard_fit}, {"reinhard_apply", l_reinhard_apply},
    {"macenko_fit", l_macenko_fit}, {"macenko_apply", l_macenko_apply},
    {"auto_contrast", l_auto_contrast}, {"gamma", l_gamma}, {"equalize_hist", l_equalize_hist},
    {"clahe", l_clahe}, {NULL, NULL}};

int luaopen_hs_image(lua_State *L);
int luaopen_hs_image(lua_State *L) {
    luaL_newlib(L, funcs);
    lua_pushinteger(L, HS_IMAGE_MAX_PIXELS);
    lua_setfield(L, -2, "MAX_PIXELS");
    return 1;
}
