// core/segment.h: from images to objects: fixed, Otsu (cv2 semantics) and adaptive thresholds;
// connected components with per-component statistics; the exact Euclidean distance transform;
// marker-based watershed; and splitting touching nuclei (threshold -> distance -> peaks ->
// watershed). Not morphology (morph.h) or filtering (filter.h).
//
// Images are (H,W) or (H,W,C) tensors (see geometry.h); masks are (H,W) or (H,W,1) U8 or F32,
// nonzero = foreground, any strides. Label images are (H,W) I32 or I64, 0 = background, objects
// 1..count. Outputs are caller-allocated and contiguous; every function assigns (=) them.
#ifndef HS_SEGMENT_H
#define HS_SEGMENT_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

#define HS_SEGMENT_MAX_CHANNELS 4

typedef enum { HS_ADAPTIVE_MEAN = 0, HS_ADAPTIVE_GAUSSIAN } hs_adaptive_method;

// Per-component statistics (cv2.connectedComponentsWithStats plus mean intensities).
typedef struct {
    int64_t area;                              // pixels
    int64_t x, y, w, h;                        // bounding box: left, top, width, height (0-based)
    double cx, cy;                             // centroid (mean column, mean row)
    double mean[HS_SEGMENT_MAX_CHANNELS];      // mean of each image channel over the component
} hs_component;

// dst: U8 of src's dims = 255 where src > t (cv2 THRESH_BINARY), or where src <= t when invert
// (THRESH_BINARY_INV), else 0. src U8 or F32, any channels.
hs_status hs_segment_threshold(hs_tensor *dst, const hs_tensor *src, double t, int invert);
// Otsu's threshold of a U8 gray image exactly as cv2.threshold(..., THRESH_OTSU) (between-class
// variance in double, first maximum wins) into *t; dst (may be NULL) gets the mask as
// hs_segment_threshold(dst, src, *t, invert). HS_ERR_DTYPE for non-U8, HS_ERR_SHAPE for colour.
hs_status hs_segment_otsu(hs_tensor *dst, double *t, const hs_tensor *src, int invert);
// cv2.adaptiveThreshold(src, 255, method, THRESH_BINARY[_INV], block, c) on a U8 gray image:
// the local mean (box, or Gaussian with sigma from block) over block x block with replicated
// borders, rounded to U8; dst = 255 where src > mean - c (or <= when invert). F32 images are
// compared in float without rounding. block odd >= 3.
hs_status hs_segment_adaptive_threshold(hs_tensor *dst, const hs_tensor *src, int block, double c,
                                        hs_adaptive_method method, int invert);

// Connected components of mask's foreground with connectivity 4 or 8, as
// cv2.connectedComponents (single-threaded): labels 1..*count numbered in the order OpenCV's
// scan first meets them (8: by 2x2 blocks in raster order of blocks, 4: raster order of pixels).
// labels: (H,W) I32 or I64.
hs_status hs_segment_label(hs_tensor *labels, int64_t *count, const hs_tensor *mask, int connectivity);
// stats[0..count-1] describe labels 1..count of a label image ((H,W) I32/I64; labels outside
// 1..count are ignored). image (may be NULL: means are 0) is (H,W) or (H,W,C), C <=
// HS_SEGMENT_MAX_CHANNELS, U8 or F32, same H and W. Empty labels get area 0 and zero box.
hs_status hs_segment_stats(hs_component *stats, int64_t count, const hs_tensor *labels, const hs_tensor *image);
// dist: (H,W) F32 = exact Euclidean distance from each foreground pixel to the nearest background
// pixel (0 on background; +inf when the image has no background), Felzenszwalb-Huttenlocher.
hs_status hs_segment_distance(hs_tensor *dist, const hs_tensor *mask);
// Marker-based watershed by priority flood (as skimage.segmentation.watershed): labels (H,W)
// I32/I64 holds the markers (> 0) on entry and the flooded labels on return. Pixels are flooded
// in order of surface value (U8/F32 (H,W)), ties first-in first-out; only pixels where mask
// (may be NULL) is nonzero are flooded. connectivity 4 or 8.
hs_status hs_segment_watershed(hs_tensor *labels, const hs_tensor *surface, const hs_tensor *mask, int connectivity);
// Split touching nuclei of a binary mask: distance transform, markers = connected plateaus of
// local maxima of the distance within a (2*min_distance+1)^2 window, watershed of -distance
// inside the mask; foreground left without a marker gets labels of its own. labels: (H,W)
// I32/I64 = 1..*count. min_distance >= 1.
hs_status hs_segment_split_nuclei(hs_tensor *labels, int64_t *count, const hs_tensor *mask, int min_distance);

#endif
