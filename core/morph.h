// core/morph.h: binary and grey-level morphology of (H,W[,C]) U8/F32 images with a structuring
// element: erode, dilate, open, close, and the structuring elements of
// cv2.getStructuringElement. Matches cv2.erode/dilate/morphologyEx with the default border
// (pixels outside the image are ignored). Not connected components (segment.h).
//
// dst is caller-allocated, contiguous, of src's shape and dtype; every function assigns (=) dst.
// A structuring element is a (kh,kw) U8 tensor, nonzero = member, anchored at (kh/2, kw/2).
#ifndef HS_MORPH_H
#define HS_MORPH_H

#include "status.h"
#include "tensor.h"

typedef enum { HS_MORPH_RECT = 0, HS_MORPH_ELLIPSE, HS_MORPH_CROSS, HS_MORPH_SHAPE_COUNT } hs_morph_shape;
typedef enum { HS_MORPH_ERODE = 0, HS_MORPH_DILATE, HS_MORPH_OPEN, HS_MORPH_CLOSE, HS_MORPH_OP_COUNT } hs_morph_op;

// "rect", "ellipse", "cross".
hs_status hs_morph_shape_from_name(hs_morph_shape *s, const char *name);
// "erode", "dilate", "open", "close".
hs_status hs_morph_op_from_name(hs_morph_op *op, const char *name);
// kernel: (kh,kw) U8, contiguous = cv2.getStructuringElement(shape, (kw, kh)) (entries 0/1).
// kh, kw >= 1 are taken from kernel's shape.
hs_status hs_morph_structuring_element(hs_tensor *kernel, hs_morph_shape shape);
// dst = op(src, kernel). Erode is the minimum over the element's members, dilate the maximum;
// open = dilate(erode(src)), close = erode(dilate(src)). src may not alias dst.
hs_status hs_morph_apply(hs_tensor *dst, const hs_tensor *src, const hs_tensor *kernel, hs_morph_op op);

#endif
