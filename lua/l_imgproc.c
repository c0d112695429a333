// lua/l_imgproc.c: the hs.imgproc module: filters, morphology, thresholds, components,
// distance/watershed, geometry, tiling and augmentation over hs.tensor images ((H,W) or
// (H,W,C), U8 or F32). Argument checking and conversion only; the math is in core/filter.c,
// morph.c, segment.c, geometry.c and augment.c. Pixel coordinates are 1-based, as all Lua indices.
#include <math.h>
#include <string.h>

#include "augment.h"
#include "filter.h"
#include "geometry.h"
#include "l_common.h"
#include "morph.h"
#include "segment.h"

// ---- option helpers: opts is a table at index idx (or nil/none) ----

static int opt_field(lua_State *L, int idx, const char *key) {
    if (lua_type(L, idx) != LUA_TTABLE)
        return LUA_TNIL;
    return lua_getfield(L, idx, key);  // pushes; caller pops
}

// Returns a string that stays valid while the options table is alive (interned Lua string).
static const char *opt_str(lua_State *L, int idx, const char *key, const char *def) {
    int t = opt_field(L, idx, key);
    if (t == LUA_TNIL) {
        if (lua_type(L, idx) == LUA_TTABLE)
            lua_pop(L, 1);
        return def;
    }
    if (t != LUA_TSTRING)
        luaL_error(L, "bad option '%s' (string expected, got %s)", key, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

static void check_opts(lua_State *L, int idx) {
    luaL_argcheck(L, lua_isnoneornil(L, idx) || lua_istable(L, idx), idx, "options table expected");
}

// Push a new tensor (dt, shape) and return it.
static hs_tensor *push_new(lua_State *L, hs_dtype dt, int ndim, const int64_t *shape) {
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_tensor_new(slot, dt, ndim, shape) != HS_OK)
        lhs_core_error(L);
    return *slot;
}

static hs_tensor *push_like(lua_State *L, const hs_tensor *t, hs_dtype dt) {
    return push_new(L, dt, t->ndim, t->shape);
}

// As push_new but uninitialised: only for results a core function assigns in full (filters,
// resize), where zeroing first would be a wasted pass over the image.
static hs_tensor *push_out(lua_State *L, hs_dtype dt, int ndim, const int64_t *shape) {
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_tensor_new_uninit(slot, dt, ndim, shape) != HS_OK)
        lhs_core_error(L);
    return *slot;
}

static hs_border check_border(lua_State *L, int opts, const char *def) {
    const char *name = opt_str(L, opts, "border", def);
    hs_border b;
    if (hs_geometry_border_from_name(&b, name) != HS_OK)
        lhs_core_error(L);
    return b;
}

static int check_ksize(lua_State *L, int arg) {
    lua_Integer k = luaL_checkinteger(L, arg);
    luaL_argcheck(L, k >= 1 && k <= 4097, arg, "kernel size out of range 1..4097");
    return (int)k;
}

// ---- filters ----

static int l_gaussian(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    double sigma = luaL_checknumber(L, 2);
    check_opts(L, 3);
    hs_border b = check_border(L, 3, "reflect101");
    lua_Integer ksize = lhs_optinteger(L, 3, "ksize", 0);
    luaL_argcheck(L, ksize >= 0 && ksize <= 4097, 3, "ksize out of range 0..4097");
    hs_tensor *dst = push_out(L, src->dtype, src->ndim, src->shape);
    LHS_CHECK(L, hs_filter_gaussian(dst, src, sigma, (int)ksize, b));
    return 1;
}

static int l_box(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    int k = check_ksize(L, 2);
    check_opts(L, 3);
    hs_border b = check_border(L, 3, "reflect101");
    hs_tensor *dst = push_out(L, src->dtype, src->ndim, src->shape);
    LHS_CHECK(L, hs_filter_box(dst, src, k, b));
    return 1;
}

static int l_median(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    luaL_argcheck(L, k >= -1000000 && k <= 1000000, 2, "kernel size out of range");
    hs_tensor *dst = push_out(L, src->dtype, src->ndim, src->shape);
    LHS_CHECK(L, hs_filter_median(dst, src, (int)k));
    return 1;
}

static int l_unsharp(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    double sigma = luaL_checknumber(L, 2), amount = luaL_optnumber(L, 3, 1.0);
    hs_tensor *dst = push_like(L, src, src->dtype);
    LHS_CHECK(L, hs_filter_unsharp(dst, src, sigma, amount));
    return 1;
}

// Read a table of numbers (a kernel) into a new float array pinned as a userdata on the stack.
static float *check_kernel(lua_State *L, int arg, int *n) {
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer len = luaL_len(L, arg);
    luaL_argcheck(L, len >= 1 && len <= 4097, arg, "kernel must have 1..4097 taps");
    float *k = lua_newuserdatauv(L, (size_t)len * sizeof *k, 0);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, arg, i);
        int isnum;
        k[i - 1] = (float)lua_tonumberx(L, -1, &isnum);
        if (!isnum)
            luaL_argerror(L, arg, "kernel entries must be numbers");
        lua_pop(L, 1);
    }
    *n = (int)len;
    return k;
}

static int l_separable(lua_State *L) {
    lua_settop(L, 4);  // kernels are copied into userdata pushed above the arguments
    hs_tensor *src = lhs_checktensor(L, 1);
    int nx, ny;
    float *kx = check_kernel(L, 2, &nx);
    float *ky = check_kernel(L, 3, &ny);
    check_opts(L, 4);
    hs_border b = check_border(L, 4, "reflect101");
    hs_tensor *dst = push_like(L, src, src->dtype);
    LHS_CHECK(L, hs_filter_separable(dst, src, kx, nx, ky, ny, b));
    return 1;
}

// ---- morphology ----

static hs_morph_shape check_shape_name(lua_State *L, const char *name) {
    hs_morph_shape s;
    if (hs_morph_shape_from_name(&s, name) != HS_OK)
        lhs_core_error(L);
    return s;
}

static int l_structuring_element(lua_State *L) {
    hs_morph_shape s = check_shape_name(L, luaL_checkstring(L, 1));
    lua_Integer kw = luaL_checkinteger(L, 2), kh = luaL_optinteger(L, 3, kw);
    luaL_argcheck(L, kw >= 1 && kw <= 1024, 2, "size must be in 1..1024");
    luaL_argcheck(L, kh >= 1 && kh <= 1024, 3, "size must be in 1..1024");
    int64_t shape[2] = {kh, kw};
    hs_tensor *k = push_new(L, HS_DTYPE_U8, 2, shape);
    LHS_CHECK(L, hs_morph_structuring_element(k, s));
    return 1;
}

// morph(t, opts | kernel_tensor): opts {shape="rect", ksize=5} or {kernel=tensor}.
static int morph_common(lua_State *L, hs_morph_op op) {
    hs_tensor *src = lhs_checktensor(L, 1);
    const hs_tensor *kernel = lhs_totensor(L, 2);
    if (!kernel) {
        check_opts(L, 2);
        if (lua_istable(L, 2)) {
            lua_getfield(L, 2, "kernel");
            kernel = lhs_totensor(L, -1);
            lua_pop(L, 1);  // the options table keeps it alive
        }
        if (!kernel) {
            hs_morph_shape s = check_shape_name(L, opt_str(L, 2, "shape", "rect"));
            lua_Integer k = lhs_optinteger(L, 2, "ksize", 3);
            luaL_argcheck(L, k >= 1 && k <= 1024, 2, "ksize must be in 1..1024");
            int64_t shape[2] = {k, k};
            hs_tensor *kt = push_new(L, HS_DTYPE_U8, 2, shape);
            LHS_CHECK(L, hs_morph_structuring_element(kt, s));
            kernel = kt;
        }
    }
    hs_tensor *dst = push_like(L, src, src->dtype);
    LHS_CHECK(L, hs_morph_apply(dst, src, kernel, op));
    return 1;
}

static int l_erode(lua_State *L) { return morph_common(L, HS_MORPH_ERODE); }
static int l_dilate(lua_State *L) { return morph_common(L, HS_MORPH_DILATE); }
static int l_open(lua_State *L) { return morph_common(L, HS_MORPH_OPEN); }
static int l_close(lua_State *L) { return morph_common(L, HS_MORPH_CLOSE); }

// morphology(t, op_name, opts)
static int l_morphology(lua_State *L) {
    hs_morph_op op;
    if (hs_morph_op_from_name(&op, luaL_checkstring(L, 2)) != HS_OK)
        return lhs_core_error(L);
    lua_remove(L, 2);
    return morph_common(L, op);
}

// ---- thresholds ----

static int l_threshold(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    double t = luaL_checknumber(L, 2);
    check_opts(L, 3);
    int invert = lhs_optboolean(L, 3, "invert", 0);
    hs_tensor *dst = push_like(L, src, HS_DTYPE_U8);
    LHS_CHECK(L, hs_segment_threshold(dst, src, t, invert));
    return 1;
}

// otsu(t [, {invert=true}]) -> mask, threshold. Default invert: dark objects (nuclei) are 255.
static int l_otsu(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    check_opts(L, 2);
    int invert = lhs_optboolean(L, 2, "invert", 1);
    hs_tensor *dst = push_like(L, src, HS_DTYPE_U8);
    double t = 0;
    LHS_CHECK(L, hs_segment_otsu(dst, &t, src, invert));
    lua_pushnumber(L, t);
    return 2;
}

static int l_adaptive_threshold(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    check_opts(L, 2);
    lua_Integer block = lhs_optinteger(L, 2, "block", 11);
    luaL_argcheck(L, block >= -100000 && block <= 100000, 2, "block out of range");
    double c = lhs_optnumber(L, 2, "c", 2);
    const char *m = opt_str(L, 2, "method", "mean");
    int invert = lhs_optboolean(L, 2, "invert", 0);
    hs_adaptive_method method;
    if (strcmp(m, "mean") == 0)
        method = HS_ADAPTIVE_MEAN;
    else if (strcmp(m, "gaussian") == 0)
        method = HS_ADAPTIVE_GAUSSIAN;
    else
        return luaL_argerror(L, 2, lua_pushfstring(L, "unknown method '%s' (mean, gaussian)", m));
    hs_tensor *dst = push_like(L, src, HS_DTYPE_U8);
    LHS_CHECK(L, hs_segment_adaptive_threshold(dst, src, (int)block, c, method, invert));
    return 1;
}

// ---- components, distance, watershed ----

static hs_dtype label_dtype(lua_State *L, int opts) {
    const char *n = opt_str(L, opts, "dtype", "i32");
    if (strcmp(n, "i32") == 0 || strcmp(n, "I32") == 0 || strcmp(n, "int32") == 0)
        return HS_DTYPE_I32;
    if (strcmp(n, "i64") == 0 || strcmp(n, "I64") == 0 || strcmp(n, "int64") == 0)
        return HS_DTYPE_I64;
    luaL_argerror(L, opts, lua_pushfstring(L, "labels dtype must be i32 or i64, got '%s'", n));
    return HS_DTYPE_I32;
}

static void push_stats(lua_State *L, const hs_component *s, int64_t count, int nmean) {
    lua_createtable(L, (int)count, 0);
    for (int64_t k = 0; k < count; k++) {
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, s[k].area);
        lua_setfield(L, -2, "area");
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, s[k].x + 1);
        lua_setfield(L, -2, "x");
        lua_pushinteger(L, s[k].y + 1);
        lua_setfield(L, -2, "y");
        lua_pushinteger(L, s[k].w);
        lua_setfield(L, -2, "w");
        lua_pushinteger(L, s[k].h);
        lua_setfield(L, -2, "h");
        lua_setfield(L, -2, "bbox");
        lua_createtable(L, 0, 2);
        lua_pushnumber(L, s[k].cx + 1);
        lua_setfield(L, -2, "x");
        lua_pushnumber(L, s[k].cy + 1);
        lua_setfield(L, -2, "y");
        lua_setfield(L, -2, "centroid");
        lua_createtable(L, nmean, 0);
        for (int c = 0; c < nmean; c++) {
            lua_pushnumber(L, s[k].mean[c]);
            lua_rawseti(L, -2, c + 1);
        }
        lua_setfield(L, -2, "mean");
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
}

// connected_components(mask [, image] [, opts]) -> labels, count, stats
static int l_connected_components(lua_State *L) {
    hs_tensor *mask = lhs_checktensor(L, 1);
    int opts = 2;
    const hs_tensor *image = NULL;
    if (lhs_totensor(L, 2)) {
        image = lhs_totensor(L, 2);
        opts = 3;
    } else {
        luaL_argcheck(L, lua_isnoneornil(L, 2) || lua_istable(L, 2), 2, "hs.tensor image or options table expected");
    }
    check_opts(L, opts);
    lua_Integer conn = lhs_optinteger(L, opts, "connectivity", 8);
    luaL_argcheck(L, conn == 4 || conn == 8, opts, "connectivity must be 4 or 8");
    hs_dtype dt = label_dtype(L, opts);
    int want_stats = lhs_optboolean(L, opts, "stats", 1);
    int64_t shape[2] = {mask->ndim >= 2 ? mask->shape[0] : 0, mask->ndim >= 2 ? mask->shape[1] : 0};
    hs_tensor *labels = push_new(L, dt, 2, shape);
    int64_t count = 0;
    LHS_CHECK(L, hs_segment_label(labels, &count, mask, (int)conn));
    lua_pushinteger(L, count);
    if (!want_stats)
        return 2;
    int nmean = image ? (image->ndim == 3 ? (int)image->shape[2] : 1) : 0;
    hs_component *s = lua_newuserdatauv(L, (size_t)(count > 0 ? count : 1) * sizeof *s, 0);
    LHS_CHECK(L, hs_segment_stats(s, count, labels, image));
    push_stats(L, s, count, nmean > HS_SEGMENT_MAX_CHANNELS ? HS_SEGMENT_MAX_CHANNELS : nmean);
    lua_remove(L, -2);
    return 3;
}

// component_stats(labels, count [, image]) -> stats
static int l_component_stats(lua_State *L) {
    hs_tensor *labels = lhs_checktensor(L, 1);
    lua_Integer count = luaL_checkinteger(L, 2);
    luaL_argcheck(L, count >= 0 && count <= 100000000, 2, "count out of range");
    const hs_tensor *image = lua_isnoneornil(L, 3) ? NULL : lhs_checktensor(L, 3);
    int nmean = image ? (image->ndim == 3 ? (int)image->shape[2] : 1) : 0;
    hs_component *s = lua_newuserdatauv(L, (size_t)(count > 0 ? count : 1) * sizeof *s, 0);
    LHS_CHECK(L, hs_segment_stats(s, count, labels, image));
    push_stats(L, s, count, nmean > HS_SEGMENT_MAX_CHANNELS ? HS_SEGMENT_MAX_CHANNELS : nmean);
    return 1;
}

static int l_distance_transform(lua_State *L) {
    hs_tensor *mask = lhs_checktensor(L, 1);
    int64_t shape[2] = {mask->ndim >= 2 ? mask->shape[0] : 0, mask->ndim >= 2 ? mask->shape[1] : 0};
    hs_tensor *dist = push_new(L, HS_DTYPE_F32, 2, shape);
    LHS_CHECK(L, hs_segment_distance(dist, mask));
    return 1;
}

// watershed(surface, markers [, mask] [, opts]) -> labels (markers' dtype if I32/I64, else I32)
static int l_watershed(lua_State *L) {
    hs_tensor *surface = lhs_checktensor(L, 1);
    hs_tensor *markers = lhs_checktensor(L, 2);
    const hs_tensor *mask = NULL;
    int opts = 3;
    if (lhs_totensor(L, 3)) {
        mask = lhs_totensor(L, 3);
        opts = 4;
    } else {
        luaL_argcheck(L, lua_isnoneornil(L, 3) || lua_istable(L, 3), 3, "hs.tensor mask or options table expected");
    }
    check_opts(L, opts);
    lua_Integer conn = lhs_optinteger(L, opts, "connectivity", 4);
    luaL_argcheck(L, conn == 4 || conn == 8, opts, "connectivity must be 4 or 8");
    luaL_argcheck(L, markers->ndim == 2, 2, "markers must be (H,W)");
    hs_dtype dt = markers->dtype == HS_DTYPE_I64 ? HS_DTYPE_I64 : HS_DTYPE_I32;
    hs_tensor *labels = push_like(L, markers, dt);
    LHS_CHECK(L, hs_tensor_copy(labels, markers));
    LHS_CHECK(L, hs_segment_watershed(labels, surface, mask, (int)conn));
    return 1;
}

// split_nuclei(mask [, {min_distance=3, dtype="i32"}]) -> labels, count
static int l_split_nuclei(lua_State *L) {
    hs_tensor *mask = lhs_checktensor(L, 1);
    check_opts(L, 2);
    lua_Integer md = lhs_optinteger(L, 2, "min_distance", 3);
    luaL_argcheck(L, md >= 1 && md <= 512, 2, "min_distance must be in 1..512");
    hs_dtype dt = label_dtype(L, 2);
    int64_t shape[2] = {mask->ndim >= 2 ? mask->shape[0] : 0, mask->ndim >= 2 ? mask->shape[1] : 0};
    hs_tensor *labels = push_new(L, dt, 2, shape);
    int64_t count = 0;
    LHS_CHECK(L, hs_segment_split_nuclei(labels, &count, mask, (int)md));
    lua_pushinteger(L, count);
    return 2;
}

// ---- geometry ----

static void image_dims(lua_State *L, const hs_tensor *t, hs_image_dims *d, const char *op) {
    if (hs_geometry_dims(d, t, op) != HS_OK)
        lhs_core_error(L);
}

static void dims_shape(int64_t shape[3], const hs_image_dims *d, int64_t h, int64_t w) {
    shape[0] = h;
    shape[1] = w;
    shape[2] = d->c;
}

// crop(t, x, y, w, h): x, y 1-based (column, row of the top-left pixel)
static int l_crop(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    lua_Integer x = luaL_checkinteger(L, 2), y = luaL_checkinteger(L, 3);
    lua_Integer w = luaL_checkinteger(L, 4), h = luaL_checkinteger(L, 5);
    luaL_argcheck(L, w >= 1, 4, "width must be >= 1");
    luaL_argcheck(L, h >= 1, 5, "height must be >= 1");
    hs_image_dims d;
    image_dims(L, src, &d, "crop");
    int64_t shape[3];
    dims_shape(shape, &d, h, w);
    hs_tensor *dst = push_new(L, src->dtype, d.ndim, shape);
    LHS_CHECK(L, hs_geometry_crop(dst, src, x - 1, y - 1));
    return 1;
}

// pad(t, n | {top=, bottom=, left=, right=} [, {border="constant", value=0}])
static int l_pad(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    lua_Integer top, bottom, left, right;
    if (lua_istable(L, 2)) {
        top = lhs_optinteger(L, 2, "top", 0);
        bottom = lhs_optinteger(L, 2, "bottom", 0);
        left = lhs_optinteger(L, 2, "left", 0);
        right = lhs_optinteger(L, 2, "right", 0);
    } else {
        top = bottom = left = right = luaL_checkinteger(L, 2);
    }
    luaL_argcheck(L, top >= 0 && bottom >= 0 && left >= 0 && right >= 0, 2, "padding must be >= 0");
    luaL_argcheck(L, top + bottom <= 1000000 && left + right <= 1000000, 2, "padding too large");
    check_opts(L, 3);
    hs_border b = check_border(L, 3, "constant");
    double value = lhs_optnumber(L, 3, "value", 0);
    hs_image_dims d;
    image_dims(L, src, &d, "pad");
    int64_t shape[3];
    dims_shape(shape, &d, d.h + top + bottom, d.w + left + right);
    hs_tensor *dst = push_new(L, src->dtype, d.ndim, shape);
    LHS_CHECK(L, hs_geometry_pad(dst, src, top, left, b, value));
    return 1;
}

static int l_flip(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    const char *dir = luaL_optstring(L, 2, "h");
    int horizontal = strcmp(dir, "h") == 0 || strcmp(dir, "horizontal") == 0;
    luaL_argcheck(L, horizontal || strcmp(dir, "v") == 0 || strcmp(dir, "vertical") == 0, 2,
                  "direction must be 'h' or 'v'");
    hs_tensor *dst = push_like(L, src, src->dtype);
    LHS_CHECK(L, hs_geometry_flip(dst, src, horizontal));
    return 1;
}

static int l_rot90(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    lua_Integer k = luaL_optinteger(L, 2, 1);
    k = ((k % 4) + 4) % 4;
    hs_image_dims d;
    image_dims(L, src, &d, "rot90");
    int64_t shape[3];
    dims_shape(shape, &d, k & 1 ? d.w : d.h, k & 1 ? d.h : d.w);
    hs_tensor *dst = push_new(L, src->dtype, d.ndim, shape);
    LHS_CHECK(L, hs_geometry_rot90(dst, src, (int)k));
    return 1;
}

// resize(t, w, h [, "bilinear"|"area"|"nearest"])
static int l_resize(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    lua_Integer w = luaL_checkinteger(L, 2), h = luaL_checkinteger(L, 3);
    luaL_argcheck(L, w >= 1 && w <= 1000000, 2, "width must be in 1..1000000");
    luaL_argcheck(L, h >= 1 && h <= 1000000, 3, "height must be in 1..1000000");
    hs_interp m;
    if (hs_geometry_interp_from_name(&m, luaL_optstring(L, 4, "bilinear")) != HS_OK)
        return luaL_argerror(L, 4, hs_last_error()->msg);
    hs_image_dims d;
    image_dims(L, src, &d, "resize");
    int64_t shape[3];
    dims_shape(shape, &d, h, w);
    hs_tensor *dst = push_out(L, src->dtype, d.ndim, shape);
    LHS_CHECK(L, hs_geometry_resize(dst, src, m));
    return 1;
}

static hs_tissue_method check_tissue_method(lua_State *L, int opts) {
    const char *m = opt_str(L, opts, "method", "saturation");
    if (strcmp(m, "saturation") == 0)
        return HS_TISSUE_SATURATION;
    if (strcmp(m, "od") == 0)
        return HS_TISSUE_OD;
    luaL_argerror(L, opts, lua_pushfstring(L, "unknown tissue method '%s' (saturation, od)", m));
    return HS_TISSUE_SATURATION;
}

// tissue_fraction(t [, {method="saturation"|"od", threshold=}])
static int l_tissue_fraction(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    check_opts(L, 2);
    hs_tissue_method m = check_tissue_method(L, 2);
    double thr = lhs_optnumber(L, 2, "threshold", m == HS_TISSUE_SATURATION ? 0.07 : 0.15);
    double f = 0;
    LHS_CHECK(L, hs_geometry_tissue_fraction(&f, src, m, thr));
    lua_pushnumber(L, f);
    return 1;
}

// tiles(t, {size=, stride=size, min_tissue=0, method=, threshold=}) -> list of {x=,y=,tile=,tissue=}
static int l_tiles(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer size = lhs_optinteger(L, 2, "size", 256);
    lua_Integer stride = lhs_optinteger(L, 2, "stride", size);
    luaL_argcheck(L, size >= 1 && stride >= 1, 2, "size and stride must be >= 1");
    double min_tissue = lhs_optnumber(L, 2, "min_tissue", 0);
    hs_tissue_method m = check_tissue_method(L, 2);
    double thr = lhs_optnumber(L, 2, "threshold", m == HS_TISSUE_SATURATION ? 0.07 : 0.15);
    hs_image_dims d;
    image_dims(L, src, &d, "tiles");
    int64_t n = 0;
    LHS_CHECK(L, hs_geometry_tile_origins(NULL, 0, &n, d.h, d.w, size, stride));
    lua_createtable(L, (int)(n < 1000000 ? n : 0), 0);
    int out = 0;
    for (int64_t y = 0; y + size <= d.h; y += stride)
        for (int64_t x = 0; x + size <= d.w; x += stride) {
            hs_tensor view = *src;  // a borrowed window of src: no allocation
            view.shape[0] = size;
            view.shape[1] = size;
            view.data = (char *)src->data + (size_t)(y * src->stride[0] + x * src->stride[1]) * hs_dtype_size(src->dtype);
            view.storage = NULL;
            double f = 1;
            if (d.c >= 3 || m == HS_TISSUE_OD)
                LHS_CHECK(L, hs_geometry_tissue_fraction(&f, &view, m, thr));
            if (f < min_tissue)
                continue;
            lua_createtable(L, 0, 4);
            lua_pushinteger(L, x + 1);
            lua_setfield(L, -2, "x");
            lua_pushinteger(L, y + 1);
            lua_setfield(L, -2, "y");
            lua_pushnumber(L, f);
            lua_setfield(L, -2, "tissue");
            int64_t shape[3];
            dims_shape(shape, &d, size, size);
            hs_tensor *tile = push_new(L, src->dtype, d.ndim, shape);
            LHS_CHECK(L, hs_tensor_copy(tile, &view));
            lua_setfield(L, -2, "tile");
            lua_rawseti(L, -2, ++out);
        }
    return 1;
}

// ---- augmentation ----

// augment(t, spec, seed) -> tensor, plan table
static int l_augment(lua_State *L) {
    hs_tensor *src = lhs_checktensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer seed = luaL_checkinteger(L, 3);
    hs_augment_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.p_hflip = lhs_optboolean(L, 2, "hflip", 0) ? 0.5 : lhs_optnumber(L, 2, "p_hflip", 0);
    spec.p_vflip = lhs_optboolean(L, 2, "vflip", 0) ? 0.5 : lhs_optnumber(L, 2, "p_vflip", 0);
    spec.rot90 = lhs_optboolean(L, 2, "rot90", 0);
    if (opt_field(L, 2, "crop") != LUA_TNIL) {  // crop = n or {w, h}
        if (lua_istable(L, -1)) {
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            spec.crop_w = luaL_checkinteger(L, -2);
            spec.crop_h = luaL_optinteger(L, -1, spec.crop_w);
            lua_pop(L, 2);
        } else {
            spec.crop_w = spec.crop_h = luaL_checkinteger(L, -1);
        }
    }
    lua_pop(L, 1);
    spec.brightness = lhs_optnumber(L, 2, "brightness", 0);
    spec.contrast = lhs_optnumber(L, 2, "contrast", 0);
    spec.hed_sigma = lhs_optnumber(L, 2, "hed_sigma", 0);
    spec.hed_bias = lhs_optnumber(L, 2, "hed_bias", 0);
    hs_image_dims d;
    image_dims(L, src, &d, "augment");
    hs_augment_plan plan;
    LHS_CHECK(L, hs_augment_draw(&plan, &spec, (uint64_t)seed, d.h, d.w));
    int64_t shape[3];
    dims_shape(shape, &d, plan.out_h, plan.out_w);
    hs_tensor *dst = push_new(L, src->dtype, d.ndim, shape);
    LHS_CHECK(L, hs_augment_apply(dst, src, &plan));
    lua_createtable(L, 0, 8);
    lua_pushboolean(L, plan.hflip);
    lua_setfield(L, -2, "hflip");
    lua_pushboolean(L, plan.vflip);
    lua_setfield(L, -2, "vflip");
    lua_pushinteger(L, plan.k);
    lua_setfield(L, -2, "k");
    lua_pushinteger(L, plan.x + 1);
    lua_setfield(L, -2, "x");
    lua_pushinteger(L, plan.y + 1);
    lua_setfield(L, -2, "y");
    lua_pushnumber(L, plan.brightness);
    lua_setfield(L, -2, "brightness");
    lua_pushnumber(L, plan.contrast);
    lua_setfield(L, -2, "contrast");
    return 2;
}

static const luaL_Reg funcs[] = {
    {"gaussian", l_gaussian}, {"box", l_box}, {"median", l_median}, {"unsharp", l_unsharp},
    {"separable", l_separable}, {"structuring_element", l_structuring_element}, {"erode", l_erode},
    {"dilate", l_dilate}, {"open", l_open}, {"close", l_close}, {"morphology", l_morphology},
    {"threshold", l_threshold}, {"otsu", l_otsu}, {"adaptive_threshold", l_adaptive_threshold},
    {"connected_components", l_connected_components}, {"component_stats", l_component_stats},
    {"distance_transform", l_distance_transform}, {"watershed", l_watershed}, {"split_nuclei", l_split_nuclei},
    {"crop", l_crop}, {"pad", l_pad}, {"flip", l_flip}, {"rot90", l_rot90}, {"resize", l_resize},
    {"tissue_fraction", l_tissue_fraction}, {"tiles", l_tiles}, {"augment", l_augment}, {NULL, NULL}};

int luaopen_hs_imgproc(lua_State *L);
int luaopen_hs_imgproc(lua_State *L) {
    if (luaL_getmetatable(L, LHS_TENSOR) == LUA_TNIL) {  // results are hs.tensor: load that first
        lua_getglobal(L, "require");
        lua_pushliteral(L, "hs.tensor");
        lua_call(L, 1, 0);
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
