// core/conv3x3.c: direct 3x3 stride-1 convolution kernels on packed tiles (see conv3x3.h), the
// fast path of conv2d for small and medium channel counts, where im2col + sgemm spends its time
// packing. Not an op: no shape checks, no threads; conv2d.c validates, tiles and runs these on
// lanes. Input loads go through per-column-tap lane masks (all ones but in the dense layout).
//
// Letters: C input channels, Cout output channels, Wo output width, Wp packed width, nvr vectors
// per output row, NV output vectors per register block, CO output channels per register block.
//
// Forward: a register block is CO output channels x NV vectors of 16 output pixels (16 zmm
// accumulators); for every input channel and tap it loads NV input vectors and broadcasts CO
// weights (packed so that each block reads one pointer at constant offsets), so each load feeds
// several FMAs. The last vector of a row is stored under a mask; a block that runs out of
// positions repeats its last one with an empty store mask. Weight gradient: vectors over 16
// output channels instead (dout transposed per chunk of rows), for one input channel up to 3
// such vectors x 9 taps of accumulators, each pixel loading its dout vectors and broadcasting
// its 9 window values: no horizontal sums, any row width. With few input channels the transpose
// does not pay: hs_conv3x3_dw_px keeps vectors over pixels, 3 output channels x 9 taps of 16-lane
// partial sums per input channel, reduced at the end of the tile. Every sum runs in an order
// fixed by the shapes, never by the threads.
#include "conv3x3.h"

#include <string.h>

#ifdef __AVX512F__
#include <immintrin.h>

#define CO 8    // output channels per forward register block
#define NV 2    // 16-pixel vectors per forward register block (8 x 3 made GCC spill accumulators)

int hs_conv3x3_available(void) {
    return 1;
}

typedef struct {
    int64_t in, out;   // offsets in the packed tile (channel 0) and in the destination (channel 0)
    __mmask16 m;       // store mask
} pos;

static __mmask16 tail_mask(int64_t Wo) {
    int64_t r = Wo % 16;
    return r == 0 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
}

// Positions [p0, p0 + NV) of the tile (p = (t * rows + r) * nvr + v), walked from the cursor
// (t, r, v) of p0 without divisions; past the end: repeat the last position with an empty mask.
typedef struct {
    int64_t t, r, v;
} cursor;

static void positions(pos ps[NV], cursor *cu, const hs_conv3x3_tile *x, int64_t img_stride, int64_t p0,
                      int64_t npos, __mmask16 tm) {
    for (int v = 0; v < NV; v++) {
        if (p0 + v >= npos) {
            ps[v] = ps[v - 1];   // npos >= 1, so v >= 1 here
            ps[v].m = 0;
            continue;
        }
        ps[v].in = cu->t * x->in_img + cu->r * x->Wp + 16 * cu->v;
        ps[v].out = cu->t * img_stride + cu->r * x->Wo + 16 * cu->v;
        ps[v].m = cu->v == x->nvr - 1 ? tm : (__mmask16)0xFFFF;
        if (++cu->v == x->nvr) {
            cu->v = 0;
            if (++cu->r == x->rows) {
                cu->r = 0;
                cu->t++;
            }
        }
    }
}

// One forward register block: output channels [co0, co0 + cob) at the NV positions ps. wb: the
// block's packed weights (hs_conv3x3_pack_weights), (ci, tap, c) at wb + (ci * 9 + tap) * cob + c,
// so every broadcast is a constant offset from one pointer. masked: the dense layout's column
// masks (the padded layout needs none, and plain loads are cheaper).
static inline __attribute__((always_inline)) void fwd_block(hs_conv3x3_dst out, const hs_conv3x3_tile *x,
                                                            const float *wb, const float *bias, int64_t co0,
                                                            const int cob, const pos *ps, const float *scale,
                                                            const float *shift, int relu, int accumulate,
                                                            const int masked) {
    __m512 acc[CO][NV];
    const int64_t plane = x->nb * x->in_img, Wp = x->Wp;
    const __mmask16 km[3] = {(__mmask16)x->km[0], (__mmask16)x->km[1], (__mmask16)x->km[2]};
    _Pragma("GCC unroll 16")
    for (int c = 0; c < cob; c++) {
        _Pragma("GCC unroll 16")
        for (int v = 0; v < NV; v++)
            acc[c][v] = accumulate ? _mm512_maskz_loadu_ps(ps[v].m, out.base + (co0 + c) * out.ch_stride + ps[v].out)
                                   : _mm512_set1_ps(bias ? bias[co0 + c] : 0.0f);
    }
    const float *in[NV];
    _Pragma("GCC unroll 16")
    for (int v = 0; v < NV; v++)
        in[v] = x->xp + ps[v].in + x->koff;
    const float *wk = wb;
    for (int64_t ci = 0, o = 0; ci < x->C; ci++, wk += 9 * cob, o += plane) {
        _Pragma("GCC unroll 16")
        for (int kh = 0; kh < 3; kh++) {   // the next channel's rows: L2 latency off the FMA chains
            const char *nx = (const char *)(in[0] + o + plane + kh * Wp);   // the others: mostly the same row
            _mm_prefetch(nx, _MM_HINT_T0);
            _mm_prefetch(nx + 64, _MM_HINT_T0);
            _mm_prefetch(nx + 128, _MM_HINT_T0);
            _mm_prefetch(nx + 192, _MM_HINT_T0);
        }
        _Pragma("GCC unroll 16")
        for (int kh = 0; kh < 3; kh++) {
            _Pragma("GCC unroll 16")
            for (int kw = 0; kw < 3; kw++) {
                const int64_t d = o + kh * Wp + kw;
                __m512 xv[NV];
                _Pragma("GCC unroll 16")
                for (int v = 0; v < NV; v++)
                    xv[v] = masked ? _mm512_maskz_loadu_ps(km[kw], in[v] + d) : _mm512_loadu_ps(in[v] + d);
                _Pragma("GCC unroll 16")
                for (int c = 0; c < cob; c++) {
                    __m512 wv = _mm512_set1_ps(wk[(kh * 3 + kw) * cob + c]);
                    _Pragma("GCC unroll 16")
                    for (int v = 0; v < NV; v++)
                        acc[c][v] = _mm512_fmadd_ps(wv, xv[v], acc[c][v]);
                }
            }
        }
    }
    _Pragma("GCC unroll 16")
    for (int c = 0; c < cob; c++) {
        __m512 sc = _mm512_set1_ps(scale ? scale[co0 + c] : 1.0f), sh = _mm512_set1_ps(shift ? shift[co0 + c] : 0.0f);
        _Pragma("GCC unroll 16")
        for (int v = 0; v < NV; v++) {
            __m512 a = acc[c][v];
            if (scale || shift)
                a = _mm512_add_ps(_mm512_mul_ps(a, sc), sh);   // as the unfused epilogue: no FMA
            if (relu)
                a = _mm512_max_ps(a, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(out.base + (co0 + c) * out.ch_stride + ps[v].out, ps[v].m, a);
        }
    }
}

// Output channels [co_lo, co_hi) at every position of the tile, positions outer. co_lo is a
// multiple of 8 (the packed blocks are 8 channels, then one each of 4, 2, 1 at the end).
static inline __attribute__((always_inline)) void fwd_range_t(hs_conv3x3_dst out, const hs_conv3x3_tile *x,
                                                              const float *w, const float *bias, int64_t co_lo,
                                                              int64_t co_hi, const float *scale, const float *shift,
                                                              int relu, int accumulate, const int masked) {
    int64_t npos = x->nb * x->rows * x->nvr, K = x->C * 9;
    __mmask16 tm = tail_mask(x->Wo);
    cursor cu = {0, 0, 0};
    for (int64_t p0 = 0; p0 < npos; p0 += NV) {
        pos ps[NV];
        positions(ps, &cu, x, out.img_stride, p0, npos, tm);
        int64_t co0 = co_lo;
        for (; co0 + 8 <= co_hi; co0 += 8)
            fwd_block(out, x, w + co0 * K, bias, co0, 8, ps, scale, shift, relu, accumulate, masked);
        if (co_hi - co0 >= 4) {
            fwd_block(out, x, w + co0 * K, bias, co0, 4, ps, scale, shift, relu, accumulate, masked);
            co0 += 4;
        }
        if (co_hi - co0 >= 2) {
            fwd_block(out, x, w + co0 * K, bias, co0, 2, ps, scale, shift, relu, accumulate, masked);
            co0 += 2;
        }
        if (co_hi - co0 >= 1)
            fwd_block(out, x, w + co0 * K, bias, co0, 1, ps, scale, shift, relu, accumulate, masked);
    }
}

static void fwd_range(hs_conv3x3_dst out, const hs_conv3x3_tile *x, const float *w, const float *bias,
                      int64_t co_lo, int64_t co_hi, const float *scale, const float *shift, int relu, int accumulate) {
    if (x->km[0] == 0xFFFF && x->km[1] == 0xFFFF && x->km[2] == 0xFFFF)
        fwd_range_t(out, x, w, bias, co_lo, co_hi, scale, shift, relu, accumulate, 0);
    else
        fwd_range_t(out, x, w, bias, co_lo, co_hi, scale, shift, relu, accumulate, 1);
}

// Positions outer while all the weights fit in about L1 + a bit (the tile's inputs of a
// position group stay in L1 across the output channels); with more weights, blocks of 8 output
// channels outer, so that each block's weights stay in cache across the positions.
#define FWD_W_FLOATS 16384

void hs_conv3x3_fwd(hs_conv3x3_dst out, const hs_conv3x3_tile *x, const float *w, const float *bias, int64_t Cout,
                    const float *scale, const float *shift, int relu, int accumulate) {
    if (Cout * x->C * 9 <= FWD_W_FLOATS) {
        fwd_range(out, x, w, bias, 0, Cout, scale, shift, relu, accumulate);
        return;
    }
    for (int64_t co0 = 0; co0 < Cout; co0 += 8)
        fwd_range(out, x, w, bias, co0, co0 + 8 < Cout ? co0 + 8 : Cout, scale, shift, relu, accumulate);
}

// One weight-gradient register block: input channel ci, output channels [co0, co0 + 16 ncv) of
// the transposed partial dwt (C, 9, ldco), summed over the chunk's rows [q0, q1) (q = t * rows + r)
// whose dout block is dB (pixel, 16 ncv). Vectors run over output channels, so no horizontal
// sums: each pixel loads ncv dout vectors and broadcasts the 9 x values of its window.
static inline __attribute__((always_inline)) void dw_block(float *dwt, int64_t ldco, const hs_conv3x3_tile *x,
                                                           const float *dB, int64_t q0, int64_t q1, int64_t co0,
                                                           const int ncv, int64_t ci) {
    __m512 acc[3][9];
    float *dst = dwt + ci * 9 * ldco + co0;
    _Pragma("GCC unroll 16")
    for (int v = 0; v < ncv; v++)
        _Pragma("GCC unroll 16")
        for (int k = 0; k < 9; k++)
            acc[v][k] = _mm512_loadu_ps(dst + k * ldco + 16 * v);
    const int64_t Wp = x->Wp, Wo = x->Wo;
    const float *xc = x->xp + ci * x->nb * x->in_img;
    const float *d = dB;
    int64_t t = q0 / x->rows, r = q0 % x->rows;
    for (int64_t q = q0; q < q1; q++) {
        const float *xr = xc + t * x->in_img + r * Wp;
        if (++r == x->rows) {
            r = 0;
            t++;
        }
        for (int64_t j = 0; j < Wo; j++, d += 16 * ncv) {
            __m512 dv[3];
            _Pragma("GCC unroll 16")
            for (int v = 0; v < ncv; v++)
                dv[v] = _mm512_loadu_ps(d + 16 * v);
            _Pragma("GCC unroll 16")
            for (int kh = 0; kh < 3; kh++) {
                _Pragma("GCC unroll 16")
                for (int kw = 0; kw < 3; kw++) {
                    __m512 xv = _mm512_set1_ps(xr[kh * Wp + j + kw]);
                    _Pragma("GCC unroll 16")
                    for (int v = 0; v < ncv; v++)
                        acc[v][kh * 3 + kw] = _mm512_fmadd_ps(xv, dv[v], acc[v][kh * 3 + kw]);
                }
            }
        }
    }
    _Pragma("GCC unroll 16")
    for (int v = 0; v < ncv; v++)
        _Pragma("GCC unroll 16")
        for (int k = 0; k < 9; k++)
            _mm512_storeu_ps(dst + k * ldco + 16 * v, acc[v][k]);
}

// Output-channel blocks of the weight gradient: 3 vectors each, then 2, then 1.
static int dw_ncv(int64_t nv, int64_t v0) {
    return nv - v0 >= 3 ? 3 : nv - v0 >= 2 ? 2 : 1;
}

// r[i] lane j = element (i, j) of a 16 x 16 block -> r[j] lane i: unpack pairs of rows, shuffle
// pairs of pairs (r[4n + b] lane group L: column 4L + b, rows 4n..4n+3), then transpose the 4 x 4
// grid of 128-bit lane groups across r[b], r[4 + b], r[8 + b], r[12 + b].
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16];
    _Pragma("GCC unroll 16")
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    _Pragma("GCC unroll 16")
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    _Pragma("GCC unroll 16")
    for (int b = 0; b < 4; b++) {
        __m512 u0 = _mm512_shuffle_f32x4(r[b], r[4 + b], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 u1 = _mm512_shuffle_f32x4(r[b], r[4 + b], _MM_SHUFFLE(3, 2, 3, 2));
        __m512 u2 = _mm512_shuffle_f32x4(r[8 + b], r[12 + b], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 u3 = _mm512_shuffle_f32x4(r[8 + b], r[12 + b], _MM_SHUFFLE(3, 2, 3, 2));
        t[b] = _mm512_shuffle_f32x4(u0, u2, _MM_SHUFFLE(2, 0, 2, 0));
        t[4 + b] = _mm512_shuffle_f32x4(u0, u2, _MM_SHUFFLE(3, 1, 3, 1));
        t[8 + b] = _mm512_shuffle_f32x4(u1, u3, _MM_SHUFFLE(2, 0, 2, 0));
        t[12 + b] = _mm512_shuffle_f32x4(u1, u3, _MM_SHUFFLE(3, 1, 3, 1));
    }
    _Pragma("GCC unroll 16")
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

// The chunk's dout rows [q0, q1) (np pixels) transposed into blocks: the block of vectors
// [v0, v0 + ncv) at dT + np * 16 v0, element (p, c) at p * 16 ncv + c; channels >= Cout are 0.
// 16 channels x 16 pixels at a time through transpose16.
static void transpose_dout(float *dT, int64_t ldco, const float *dout, int64_t img_stride, int64_t ch_stride,
                           int64_t Cout, int64_t rows, int64_t Wo, int64_t q0, int64_t q1) {
    int64_t np = (q1 - q0) * Wo, nv = ldco / 16;
    for (int64_t v0 = 0; v0 < nv; v0 += dw_ncv(nv, v0)) {
        int64_t w = 16 * dw_ncv(nv, v0);
        float *blk = dT + np * 16 * v0;
        int64_t t = q0 / rows, r = q0 % rows;
        for (int64_t q = q0; q < q1; q++) {
            const float *src = dout + t * img_stride + r * Wo;
            if (++r == rows) {
                r = 0;
                t++;
            }
            float *dst = blk + (q - q0) * Wo * w;
            for (int64_t cv = 0; cv < w / 16; cv++) {
                int64_t co0 = 16 * (v0 + cv), nco = Cout - co0 < 16 ? Cout - co0 : 16;
                for (int64_t j0 = 0; j0 < Wo; j0 += 16) {
                    int64_t nj = Wo - j0 < 16 ? Wo - j0 : 16;
                    __mmask16 m = (__mmask16)((1u << nj) - 1u);
                    __m512 rr[16];
                    _Pragma("GCC unroll 16")
                    for (int c = 0; c < 16; c++)
                        rr[c] = c < nco ? _mm512_maskz_loadu_ps(m, src + (co0 + c) * ch_stride + j0) : _mm512_setzero_ps();
                    transpose16(rr);
                    for (int64_t j = 0; j < nj; j++)
                        _mm512_storeu_ps(dst + (j0 + j) * w + 16 * cv, rr[j]);
                }
            }
        }
    }
}

void hs_conv3x3_dw(float *dwt, const hs_conv3x3_tile *x, const float *dout, int64_t img_stride, int64_t ch_stride,
                   int64_t Cout, float *scratch) {
    int64_t ldco = hs_conv3x3_dw_ldco(Cout), nq = x->nb * x->rows;
    int64_t qc = HS_CONV3X3_DW_CHUNK / x->Wo < 1 ? 1 : HS_CONV3X3_DW_CHUNK / x->Wo;   // rows per chunk
    for (int64_t q0 = 0; q0 < nq; q0 += qc) {
        int64_t q1 = q0 + qc < nq ? q0 + qc : nq;
        transpose_dout(scratch, ldco, dout, img_stride, ch_stride, Cout, x->rows, x->Wo, q0, q1);
        // output-channel blocks outer: the block's dout (contiguous) stays in L1 across ci
        int64_t nv = ldco / 16, np = (q1 - q0) * x->Wo;
        for (int64_t v0 = 0; v0 < nv; v0 += dw_ncv(nv, v0)) {
            const float *dB = scratch + np * 16 * v0;
            int ncv = dw_ncv(nv, v0);
            for (int64_t ci = 0; ci < x->C; ci++) {
                if (ncv == 3)
                    dw_block(dwt, ldco, x, dB, q0, q1, 16 * v0, 3, ci);
                else if (ncv == 2)
                    dw_block(dwt, ldco, x, dB, q0, q1, 16 * v0, 2, ci);
                else
                    dw_block(dwt, ldco, x, dB, q0, q1, 16 * v0, 1, ci);
            }
        }
    }
}

// The pixel-vectorised weight gradient (hs_conv3x3_dw_px): one register block, output channels
// [co0, co0 + cob) and input channel ci, 16-lane partial sums reduced at the end of the tile.
static inline __attribute__((always_inline)) void dwpx_block(float *dw, const hs_conv3x3_tile *x, const float *dout,
                                                           int64_t img_stride, int64_t ch_stride, int64_t co0,
                                                           const int cob, int64_t ci) {
    __m512 acc[3][9];
    _Pragma("GCC unroll 16")
    for (int c = 0; c < cob; c++)
        _Pragma("GCC unroll 16")
        for (int k = 0; k < 9; k++)
            acc[c][k] = _mm512_setzero_ps();
    const int64_t Wp = x->Wp, plane = x->nb * x->in_img;
    const __mmask16 km[3] = {(__mmask16)x->km[0], (__mmask16)x->km[1], (__mmask16)x->km[2]};
    const __mmask16 tm = tail_mask(x->Wo);
    for (int64_t t = 0; t < x->nb; t++) {
        for (int64_t r = 0; r < x->rows; r++) {
            const float *dr = dout + t * img_stride + co0 * ch_stride + r * x->Wo;
            const float *xr = x->xp + ci * plane + t * x->in_img + r * Wp + x->koff;
            for (int64_t v = 0; v < x->nvr; v++) {
                __mmask16 m = v == x->nvr - 1 ? tm : (__mmask16)0xFFFF;
                __m512 dv[3];
                _Pragma("GCC unroll 16")
                for (int c = 0; c < cob; c++)
                    dv[c] = _mm512_maskz_loadu_ps(m, dr + c * ch_stride + 16 * v);
                _Pragma("GCC unroll 16")
                for (int kh = 0; kh < 3; kh++) {
                    _Pragma("GCC unroll 16")
                    for (int kw = 0; kw < 3; kw++) {
                        __m512 xv = _mm512_maskz_loadu_ps(km[kw], xr + kh * Wp + kw + 16 * v);
                        _Pragma("GCC unroll 16")
                        for (int c = 0; c < cob; c++)
                            acc[c][kh * 3 + kw] = _mm512_fmadd_ps(dv[c], xv, acc[c][kh * 3 + kw]);
                    }
                }
            }
        }
    }
    _Pragma("GCC unroll 16")
    for (int c = 0; c < cob; c++)
        _Pragma("GCC unroll 16")
        for (int k = 0; k < 9; k++)
            dw[((co0 + c) * x->C + ci) * 9 + k] += _mm512_reduce_add_ps(acc[c][k]);
}

void hs_conv3x3_dw_px(float *dw, const hs_conv3x3_tile *x, const float *dout, int64_t img_stride,
                      int64_t ch_stride, int64_t Cout) {
    // output channels outer: the 3 dout planes of the tile stay in L1 while the x planes stream
    int64_t co0 = 0;
    for (; co0 + 3 <= Cout; co0 += 3)
        for (int64_t ci = 0; ci < x->C; ci++)
            dwpx_block(dw, x, dout, img_stride, ch_stride, co0, 3, ci);
    for (int64_t ci = 0; ci < x->C && Cout - co0 == 2; ci++)
        dwpx_block(dw, x, dout, img_stride, ch_stride, co0, 2, ci);
    for (int64_t ci = 0; ci < x->C && Cout - co0 == 1; ci++)
        dwpx_block(dw, x, dout, img_stride, ch_stride, co0, 1, ci);
}

#else   // no AVX-512: conv2d keeps its im2col + sgemm path (hs_conv3x3_available() == 0)

void hs_conv3x3_dw_px(float *dw, const hs_conv3x3_tile *x, const float *dout, int64_t img_stride,
                      int64_t ch_stride, int64_t Cout) {
    (void)dw, (void)x, (void)dout, (void)img_stride, (void)ch_stride, (void)Cout;
}

int hs_conv3x3_available(void) {
    return 0;
}

void hs_conv3x3_fwd(hs_conv3x3_dst out, const hs_conv3x3_tile *x, const float *w, const float *bias, int64_t Cout,
                    const float *scale, const float *shift, int relu, int accumulate) {
    (void)out, (void)x, (void)w, (void)bias, (void)Cout, (void)scale, (void)shift, (void)relu, (void)accumulate;
}

void hs_conv3x3_dw(float *dwt, const hs_conv3x3_tile *x, const float *dout, int64_t img_stride, int64_t ch_stride,
                   int64_t Cout, float *scratch) {
    (void)dwt, (void)x, (void)dout, (void)img_stride, (void)ch_stride, (void)Cout, (void)scratch;
}

#endif

int hs_conv3x3_dense(int64_t W, int64_t Wo, int64_t pad_w) {
    return pad_w == 1 && W == Wo && Wo < 16 && 16 % Wo == 0;
}

void hs_conv3x3_pack_weights(float *dst, const float *w, int64_t O, int64_t I, int flip, int64_t g0, int64_t g1) {
    int64_t end = 8 * g1 < O ? 8 * g1 : O;
    for (int64_t co0 = 8 * g0; co0 < end;) {
        int64_t cob = O - co0 >= 8 ? 8 : O - co0 >= 4 ? 4 : O - co0 >= 2 ? 2 : 1;
        float *blk = dst + co0 * I * 9;
        for (int64_t c = 0; c < cob; c++)
            for (int64_t i = 0; i < I; i++)
                for (int64_t k = 0; k < 9; k++)
                    blk[(i * 9 + k) * cob + c] = flip ? w[(i * O + co0 + c) * 9 + 8 - k] : w[((co0 + c) * I + i) * 9 + k];
        co0 += cob;
    }
}

#define MARGIN 16   // dense layout: zeros before and after, for the masked-off lanes of edge taps

int64_t hs_conv3x3_tile_floats(int64_t C, int64_t nb, int64_t rows, int64_t W, int64_t Wo, int64_t pad_w) {
    if (hs_conv3x3_dense(W, Wo, pad_w))
        return C * nb * (rows + 2) * W + 2 * MARGIN;
    return hs_conv3x3_tile_floats_padded(C, nb, rows, Wo);
}

int64_t hs_conv3x3_tile_floats_padded(int64_t C, int64_t nb, int64_t rows, int64_t Wo) {
    return C * nb * (rows + 2) * (16 * ((Wo + 15) / 16) + 2);
}

int64_t hs_conv3x3_dw_ldco(int64_t Cout) {
    return (Cout + 15) / 16 * 16;
}

// d[0, Wp) = lead zeros, src[0, n), zeros: one row of a packed tile. Rows are short (tens of
// floats) and there are C * (rows + 2) of them per tile, so the AVX-512 build writes them with
// masked vector loads and stores instead of three library calls.
static void pack_row(float *d, const float *src, int64_t Wp, int64_t lead, int64_t n) {
#ifdef __AVX512F__
    for (int64_t k = 0; k < Wp; k += 16) {   // packed columns k..k+15 = image columns k - lead ...
        int64_t lo = lead - k, hi = lead + n - k;   // lanes [lo, hi) hold image data
        lo = lo < 0 ? 0 : lo;
        hi = hi > 16 ? 16 : hi;
        __mmask16 ld = hi > lo ? (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u)) : 0;
        __mmask16 st = Wp - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (Wp - k)) - 1u);
        // lanes outside ld are neither read nor faulted: src + k - lead may point before src
        _mm512_mask_storeu_ps(d + k, st, _mm512_maskz_loadu_ps(ld, src + k - lead));
    }
#else
    memset(d, 0, (size_t)lead * sizeof *d);
    memcpy(d + lead, src, (size_t)n * sizeof *d);
    memset(d + lead + n, 0, (size_t)(Wp - lead - n) * sizeof *d);
#endif
}

static hs_conv3x3_tile pack(float *dst, const float *img, int64_t img_stride, int64_t nb, int64_t C, int64_t H,
                            int64_t W, int64_t r0, int64_t rows, int64_t pad_w, int64_t Wo, int dense) {
    hs_conv3x3_tile t = {dst, C, nb, rows, 16 * ((Wo + 15) / 16) + 2, (Wo + 15) / 16, Wo, 0, 0, {0xFFFF, 0xFFFF, 0xFFFF}};
    if (dense) {
        // one row of rows*Wo outputs per image block; the vector's lane l sits in image column
        // l % Wo (16 % Wo == 0), so column tap kw reads column l % Wo + kw - 1 when that is inside
        t.xp = dst + MARGIN;
        t.Wp = W;
        t.rows = 1;
        t.Wo = rows * Wo;
        t.nvr = (rows * Wo + 15) / 16;
        t.koff = -1;
        for (int kw = 0; kw < 3; kw++) {
            unsigned m = 0;
            for (int l = 0; l < 16; l++) {
                int64_t j = l % Wo + kw - 1;
                if (j >= 0 && j < W)
                    m |= 1u << l;
            }
            t.km[kw] = m;
        }
        memset(dst, 0, MARGIN * sizeof *dst);
        memset(dst + MARGIN + C * nb * (rows + 2) * W, 0, MARGIN * sizeof *dst);
    }
    int64_t Wp = t.Wp, n = dense ? W : (W + pad_w <= Wp ? W : Wp - pad_w), lead = dense ? 0 : pad_w;
    float *base = dense ? dst + MARGIN : dst;
    t.in_img = (rows + 2) * Wp;
    for (int64_t c = 0; c < C; c++) {
        for (int64_t b = 0; b < nb; b++) {
            const float *src = img + b * img_stride + c * H * W;
            float *d = base + (c * nb + b) * t.in_img;
            for (int64_t r = 0; r < rows + 2; r++, d += Wp) {
                int64_t ih = r0 + r;
                if (ih < 0 || ih >= H) {
                    memset(d, 0, (size_t)Wp * sizeof *d);
                    continue;
                }
                pack_row(d, src + ih * W, Wp, lead, n);
            }
        }
    }
    return t;
}

hs_conv3x3_tile hs_conv3x3_pack(float *dst, const float *img, int64_t img_stride, int64_t nb, int64_t C, int64_t H,
                                int64_t W, int64_t r0, int64_t rows, int64_t pad_w, int64_t Wo) {
    return pack(dst, img, img_stride, nb, C, H, W, r0, rows, pad_w, Wo, hs_conv3x3_dense(W, Wo, pad_w));
}

hs_conv3x3_tile hs_conv3x3_pack_padded(float *dst, const float *img, int64_t img_stride, int64_t nb, int64_t C,
                                       int64_t H, int64_t W, int64_t r0, int64_t rows, int64_t pad_w, int64_t Wo) {
    return pack(dst, img, img_stride, nb, C, H, W, r0, rows, pad_w, Wo, 0);
}
