// core/filter.h: linear and rank filters on images: generic separable filtering, Gaussian blur,
// box blur, median, unsharp mask. U8 and F32 (H,W) / (H,W,C) images (see geometry.h), agreeing
// with OpenCV 4.6 (cv2.GaussianBlur, cv2.blur, cv2.medianBlur). Not morphology (morph.h).
//
// dst is caller-allocated, contiguous, of src's shape and dtype, and must not alias src; every
// function assigns (=) dst. Rows are processed in parallel (hs_parallel_for); results do not
// depend on the thread count.
#ifndef HS_FILTER_H
#define HS_FILTER_H

#include "geometry.h"
#include "status.h"
#include "tensor.h"

// OpenCV's kernel size for a Gaussian of the given sigma: round(sigma*(U8 ? 3 : 4)*2 + 1) | 1.
int hs_filter_gaussian_ksize(double sigma, hs_dtype dt);
// k[ksize] = cv2.getGaussianKernel(ksize, sigma): sigma <= 0 derives it from ksize (and ksize 1,
// 3, 5, 7 then use OpenCV's fixed binomial tables). HS_ERR_ARG unless ksize is odd and >= 1.
hs_status hs_filter_gaussian_kernel(float *k, int ksize, double sigma);

// dst = src filtered by kx (nx taps, along W) then ky (ny taps, along H); the anchor is the
// centre tap n/2. Float arithmetic; U8 output rounds to nearest and saturates.
hs_status hs_filter_separable(hs_tensor *dst, const hs_tensor *src, const float *kx, int nx, const float *ky, int ny,
                              hs_border border);
// cv2.GaussianBlur(src, (ksize, ksize), sigma, borderType=border). ksize 0 derives it from sigma
// (hs_filter_gaussian_ksize); sigma <= 0 needs ksize > 0. U8 is OpenCV's bit-exact fixed-point
// path (8-bit kernel fractions, one rounding at the end).
hs_status hs_filter_gaussian(hs_tensor *dst, const hs_tensor *src, double sigma, int ksize, hs_border border);
// cv2.blur with a ksize x ksize window (anchor at the centre, ksize >= 1).
hs_status hs_filter_box(hs_tensor *dst, const hs_tensor *src, int ksize, hs_border border);
// cv2.medianBlur: ksize odd >= 3, border replicate. U8 any odd ksize (sorting networks for 3 and
// 5, a sliding histogram above); F32 any odd ksize. Exact.
hs_status hs_filter_median(hs_tensor *dst, const hs_tensor *src, int ksize);
// Plain-loop reference of hs_filter_median (per-pixel insertion sort; for tests, slow).
hs_status hs_filter_median_ref(hs_tensor *dst, const hs_tensor *src, int ksize);
// Unsharp mask: dst = src + amount * (src - gaussian(src, sigma)), float arithmetic, U8 rounded
// and saturated. sigma > 0.
hs_status hs_filter_unsharp(hs_tensor *dst, const hs_tensor *src, double sigma, double amount);

#endif
