// core/conv3x3.h: the direct 3x3 stride-1 convolution kernels behind conv2d's fast path for
// small and medium channel counts (AVX-512; no im2col, no GEMM packing): the forward (also used
// for dx) with 16 output pixels per register times 8 output channels and packed weights
// broadcast, the weight gradient with 16 output channels per register (or, for few input
// channels, 16 pixels). Internal to core/: conv2d.c cuts the work into tiles and lanes and calls
// these on one tile at a time. Not a public op and not thread-aware.
//
// Letters: C channels of the kernel's input, Cout its output channels, Wo output row width,
// Wp packed row width, nb images and `rows` output rows per tile, nvr = ceil(Wo / 16) vectors per row.
//
// A tile's input is packed first (hs_conv3x3_pack): for each channel, nb blocks of rows + 2
// padded rows of Wp = 16 nvr + 2 floats, zeros outside the image, so that every load of the
// kernels is in bounds and needs no mask. Narrow "same" convs (16 % Wo == 0, padding 1: 8x8,
// 4x4 images) use the dense layout instead: rows of Wo floats without padding columns, a vector
// spanning 16 / Wo rows, and per-column-tap lane masks standing in for the padding.
// hs_conv3x3_available() says whether this build has the kernels (compiled with AVX-512F);
// without them conv2d never calls the others.
#ifndef HS_CONV3X3_H
#define HS_CONV3X3_H

#include <stdint.h>

// A packed tile, made by hs_conv3x3_pack. Output positions: nb x rows x nvr vectors of 16
// pixels, rows of Wo outputs (dense layout: one "row" of all the tile's rows*Wo outputs). Tap
// (kh, kw) of the vector at row r, vector v of image block t in channel c reads
// xp + (c * nb + t) * in_img + r * Wp + 16 v + kh * Wp + kw + koff under lane mask km[kw].
typedef struct {
    const float *xp;
    int64_t C, nb, rows, Wp, nvr, Wo;
    int64_t in_img, koff;
    unsigned km[3];
} hs_conv3x3_tile;

// Output (or dout) addressing of a tile: element (t, c, r, j) at
// base + t * img_stride + c * ch_stride + r * Wo + j.
typedef struct {
    float *base;
    int64_t img_stride, ch_stride;
} hs_conv3x3_dst;

int hs_conv3x3_available(void);

// Whether a conv with input width W, output width Wo and padding pad_w uses the dense layout.
int hs_conv3x3_dense(int64_t W, int64_t Wo, int64_t pad_w);
// Floats of a packed tile of nb images x `rows` output rows (either layout).
int64_t hs_conv3x3_tile_floats(int64_t C, int64_t nb, int64_t rows, int64_t W, int64_t Wo, int64_t pad_w);

// Packs rows [r0, r0 + rows + 2) (image rows, may be outside [0, H): zeros) of images
// img + t * img_stride, t < nb, each (C, H, W) with channel stride H*W, into dst (at least
// hs_conv3x3_tile_floats floats) and returns the tile. Padded layout: image column j at packed
// column j + pad_w of rows of Wp = 16 ceil(Wo / 16) + 2; dense layout: rows of W floats.
hs_conv3x3_tile hs_conv3x3_pack(float *dst, const float *img, int64_t img_stride, int64_t nb, int64_t C, int64_t H,
                                int64_t W, int64_t r0, int64_t rows, int64_t pad_w, int64_t Wo);

// Packs the weights of a conv with O output and I input channels for hs_conv3x3_fwd: blocks of 8
// output channels (then one each of 4, 2 and 1 for the rest), block [co0, co0 + cob) at dst +
// co0 * I * 9 holding (i, tap, c) at (i * 9 + tap) * cob + c. Source element (o, i, tap):
// w[o][i][tap] of w (O, I, 3, 3), or with flip != 0 w[i][o][8 - tap] of w (I, O, 3, 3) (the
// flipped, transposed weights that turn conv2d's dx into a 3x3 convolution of dout). Packs the
// output channels [8 g0, 8 g1) (clipped to O), so that callers can split the work.
void hs_conv3x3_pack_weights(float *dst, const float *w, int64_t O, int64_t I, int flip, int64_t g0, int64_t g1);

// out (nb, Cout, rows, Wo) = (accumulate ? out : bias) + conv3x3(tile, w), then per output
// channel co: v = v * scale[co] + shift[co] (NULL: 1 / 0), ReLU when relu != 0.
// w: hs_conv3x3_pack_weights of the (Cout, C, 3, 3) weights; bias (Cout) or NULL.
void hs_conv3x3_fwd(hs_conv3x3_dst out, const hs_conv3x3_tile *x, const float *w, const float *bias,
                    int64_t Cout, const float *scale, const float *shift, int relu, int accumulate);

// Weight gradient. dwt, the transposed partial (C, 9, ldco) with ldco = hs_conv3x3_dw_ldco(Cout),
// += sum over the tile's pixels of the 3x3 window of x at the pixel times dout there (conv2d's
// dW, dwt[ci][tap][co] = dW[co][ci][tap]; columns Cout..ldco-1 get zeros added). x: a tile of
// hs_conv3x3_pack_padded. dout element (t, c, r, j) at dout + t * img_stride + c * ch_stride +
// r * Wo + j. scratch: HS_CONV3X3_DW_CHUNK * ldco floats (or Wo * ldco if Wo is larger).
#define HS_CONV3X3_DW_CHUNK 128   // pixels of dout transposed at a time (whole rows, at least one)
int64_t hs_conv3x3_dw_ldco(int64_t Cout);
void hs_conv3x3_dw(float *dwt, const hs_conv3x3_tile *x, const float *dout, int64_t img_stride, int64_t ch_stride,
                   int64_t Cout, float *scratch);

// The same gradient vectorised over pixels instead, for few input channels and rows of 32 pixels
// or more: dw (Cout, C, 3, 3) += ..., from a tile of hs_conv3x3_pack (either layout).
void hs_conv3x3_dw_px(float *dw, const hs_conv3x3_tile *x, const float *dout, int64_t img_stride,
                      int64_t ch_stride, int64_t Cout);

// As hs_conv3x3_pack, always in the padded layout (the weight gradient's), and its size.
hs_conv3x3_tile hs_conv3x3_pack_padded(float *dst, const float *img, int64_t img_stride, int64_t nb, int64_t C,
                                       int64_t H, int64_t W, int64_t r0, int64_t rows, int64_t pad_w, int64_t Wo);
int64_t hs_conv3x3_tile_floats_padded(int64_t C, int64_t nb, int64_t rows, int64_t Wo);

#endif
