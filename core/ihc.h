// core/ihc.h: IHC quantification of DAB + hematoxylin images: find nuclei, measure their DAB
// optical density, classify them negative / 1+ / 2+ / 3+, and summarise (labelling index,
// H-score); plus the label-image kernels it needs (fill holes, area filter, expand labels,
// overlay). Not stain separation itself (stain.h) nor generic segmentation (segment.h).
//
// Dimension letters: H rows, W columns. rgb images are (H,W,3) U8 (any strides for inputs);
// channels are (H,W) F32; masks (H,W) U8 (nonzero = foreground); label images (H,W) I32,
// 0 = background, objects 1..count. Outputs are caller-allocated, contiguous, and assigned (=).
//
// Optical density (OD) here is the base-10 stain density of the Ruifrok-Johnston model:
// OD = 6 * skimage.color.rgb2hed(rgb) (rgb2hed divides log(rgb) by log(1e-6) = -6 ln 10), so an
// image rendered as I = 255 * 10^-(od_h * h + od_d * d) gives back od_h and od_d.
//
// Pipeline (hs_ihc_segment then hs_ihc_measure):
//   rgb2hed -> nuclear channel (H + DAB, or H alone for cytoplasmic/membrane stains) -> Gaussian
//   smoothing (optionally minus a wide Gaussian background) -> threshold (Otsu on the channel scaled to 0..255 over 0..2 OD, floored at
//   min_threshold; or a fixed OD) -> opening (ellipse) -> fill holes -> distance transform +
//   watershed (hs_segment_split_nuclei) to split touching nuclei -> remove objects outside
//   [min_area, max_area] -> per-nucleus mean DAB OD (over the nucleus, or over the nucleus
//   expanded by cell_radius) -> class: 0 below t1, 1+ in [t1,t2), 2+ in [t2,t3), 3+ from t3.
// Summary: labelling index = 100 * positive / count; H-score = 1*%1+ + 2*%2+ + 3*%3+ (0..300).
#ifndef HS_IHC_H
#define HS_IHC_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef enum { HS_IHC_NUCLEAR_HDAB = 0, HS_IHC_NUCLEAR_H } hs_ihc_nuclear;   // detection channel
typedef enum { HS_IHC_NUCLEUS = 0, HS_IHC_CELL } hs_ihc_compartment;          // where DAB is measured

typedef struct {
    hs_ihc_nuclear nuclear;       // default HDAB (nuclear markers: Ki-67, ER, p53)
    double sigma;                 // Gaussian smoothing of the nuclear channel, pixels (0: none); 1
    double background_sigma;      // subtract a Gaussian background of this sigma first (local
                                  // contrast for nuclei on stained cytoplasm; 0: none); 0
    double threshold;             // fixed OD threshold; <= 0 means Otsu (default 0)
    double min_threshold;         // Otsu floor, OD (tiles without nuclei find none); 0.15
    int open_radius;              // opening with an ellipse of side 2r+1 (0: none); 1
    int fill_holes;               // 1
    int min_distance;             // watershed peak separation, pixels (0: no splitting); 4
    int64_t min_area, max_area;   // kept object areas in pixels (max_area 0: no limit); 30, 0
    hs_ihc_compartment compartment;  // default NUCLEUS
    int cell_radius;              // CELL: nucleus expanded by this many pixels; 4
    double thresholds[3];         // DAB OD t1 < t2 < t3: 0.10, 0.30, 0.60 (see ihc.c)
} hs_ihc_params;

typedef struct {
    int64_t area;                 // pixels of the nucleus
    double cx, cy;                // centroid, 0-based (column, row)
    double nuclear_od;            // mean nuclear-channel OD over the nucleus
    double dab_od;                // mean DAB OD over the measured compartment
    int cls;                      // 0 negative, 1, 2, 3 for 1+, 2+, 3+
} hs_ihc_nucleus;

typedef struct {
    int64_t count, positive, negative;
    int64_t by_class[3];          // 1+, 2+, 3+
    double labelling_index;       // percent positive (0 when count is 0)
    double h_score;               // 0..300
} hs_ihc_summary;

void hs_ihc_defaults(hs_ihc_params *p);
// HS_ERR_ARG naming the first bad field (thresholds not increasing, negative sizes, ...).
hs_status hs_ihc_check_params(const hs_ihc_params *p);

// nuclear, dab: (H,W) F32 ODs of rgb ((H,W,3) U8/U16/F32 as stain.h); either may be NULL.
// Allocates an (H,W,3) F32 scratch internally.
hs_status hs_ihc_channels(hs_tensor *nuclear, hs_tensor *dab, const hs_tensor *rgb, hs_ihc_nuclear mode);

// dst = mask with every background region not connected (4-connectivity) to the image border
// turned into foreground (255); other foreground 255, background 0. dst may alias mask.
hs_status hs_ihc_fill_holes(hs_tensor *dst, const hs_tensor *mask);
// In place: objects with area outside [min_area, max_area] (max_area 0: no upper limit) become
// 0; the others are renumbered 1..*count keeping their order. *count is the label count on entry
// (labels above it are treated as background) and the new count on return.
hs_status hs_ihc_filter_area(hs_tensor *labels, int64_t *count, int64_t min_area, int64_t max_area);
// dst: each background pixel of labels within Euclidean distance radius of an object takes the
// nearest object's label (ties: the smaller label); object pixels keep theirs (as
// skimage.segmentation.expand_labels, up to ties). radius 0..256.
hs_status hs_ihc_expand_labels(hs_tensor *dst, const hs_tensor *labels, int radius);

// Nuclei of a nuclear-channel OD image: labels (H,W) I32 = 1..*count; *threshold (may be NULL)
// receives the OD threshold used. Allocates its scratch (a few (H,W) images) internally.
hs_status hs_ihc_segment(hs_tensor *labels, int64_t *count, double *threshold, const hs_tensor *nuclear,
                         const hs_ihc_params *p);
// nuclei[0..count-1] for labels 1..count: area, centroid, mean nuclear OD over the nucleus (nuclear
// may be NULL: 0), mean DAB OD over the compartment of p, class by p->thresholds. Scratch for
// HS_IHC_CELL is allocated internally.
hs_status hs_ihc_measure(hs_ihc_nucleus *nuclei, int64_t count, const hs_tensor *labels, const hs_tensor *nuclear,
                         const hs_tensor *dab, const hs_ihc_params *p);
// Class of one DAB OD under thresholds t[3].
int hs_ihc_classify(double dab_od, const double t[3]);
// Counts, labelling index and H-score of nuclei[0..count-1] (nuclei may be NULL when count 0).
void hs_ihc_summarize(hs_ihc_summary *s, const hs_ihc_nucleus *nuclei, int64_t count);

// dst (H,W,3) U8 = rgb with the outline of every labelled object (pixels within `thickness`
// (>= 1) of a different label or the image border, square neighbourhood) painted with its class
// colour: negative blue, 1+ yellow, 2+ orange, 3+ red. dst may alias rgb only if contiguous U8.
hs_status hs_ihc_overlay(hs_tensor *dst, const hs_tensor *rgb, const hs_tensor *labels, const hs_ihc_nucleus *nuclei,
                         int64_t count, int thickness);
// dst (H,W) U8: 0 background, 1 negative, 2 1+, 3 2+, 4 3+ (labels above count: 0).
hs_status hs_ihc_class_map(hs_tensor *dst, const hs_tensor *labels, const hs_ihc_nucleus *nuclei, int64_t count);
// The overlay colours: palette[cls] for cls 0..3 (RGB).
extern const uint8_t hs_ihc_palette[4][3];

#endif
