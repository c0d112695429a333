// core/safetensors.h: reading and writing the safetensors format (an 8-byte little-endian u64
// header length N, N bytes of JSON header, then the raw little-endian data buffer), the format
// of histops checkpoints and of the reference cases. Supports the dtypes of hs_dtype (F32, F64,
// I64, I32, U8, U16); others (F16, BF16, BOOL, ...) are rejected. Not memory-mapped: tensors are
// read into owned storage.
//
// Header: {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]}, ...}; offsets are relative to the start of the data buffer.
#ifndef HS_SAFETENSORS_H
#define HS_SAFETENSORS_H

#include <stddef.h>

#include "status.h"
#include "tensor.h"

// Headers longer than this are refused as absurd (a safety limit, not part of the format).
#define HS_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

typedef struct hs_safetensors hs_safetensors;  // a loaded file: named tensors plus metadata

// Read a whole file. *out is NULL on failure. Errors:
//   HS_ERR_IO      the file cannot be opened or read (message names the file);
//   HS_ERR_FORMAT  anything malformed: header length absurd (> HS_SAFETENSORS_MAX_HEADER) or past
//                  the end of the file, bad JSON, a missing or unsupported dtype, a bad shape,
//                  data_offsets out of range, overlapping, leaving gaps or not matching
//                  numel * dtype size, truncated data, a non-string metadata value, a duplicate
//                  name. The message names the file and, where there is one, the tensor.
//   HS_ERR_NOMEM.
hs_status hs_safetensors_read(hs_safetensors **out, const char *path);
// The same from n bytes in memory (copied; buf may be freed afterwards). label names the source
// in messages (e.g. a file name or "<buffer>").
hs_status hs_safetensors_parse(hs_safetensors **out, const void *buf, size_t n, const char *label);
void hs_safetensors_free(hs_safetensors *st);  // NULL is a no-op; frees tensors not taken

// Tensors are listed in bytewise-sorted name order, index 0 .. count-1.
int hs_safetensors_count(const hs_safetensors *st);
const char *hs_safetensors_name(const hs_safetensors *st, int i);
// Borrowed (owned by st); NULL once taken.
const hs_tensor *hs_safetensors_tensor(const hs_safetensors *st, int i);
// Index of name, or -1.
int hs_safetensors_find(const hs_safetensors *st, const char *name);
// Move tensor i out: the caller owns (and hs_tensor_free's) the result; st keeps NULL there.
hs_tensor *hs_safetensors_take(hs_safetensors *st, int i);

// Metadata pairs in header order, index 0 .. meta_count-1.
int hs_safetensors_meta_count(const hs_safetensors *st);
const char *hs_safetensors_meta_key(const hs_safetensors *st, int i);
const char *hs_safetensors_meta_value(const hs_safetensors *st, int i);
const char *hs_safetensors_meta_get(const hs_safetensors *st, const char *key);  // NULL if absent

// Write n tensors (any strides; written contiguous, little-endian, in sorted-name order) and
// nmeta metadata pairs (written in the given order) to path, ATOMICALLY: a temp file in the same
// folder is written, fsync'ed and renamed over path, so a reader never sees a partial file. The
// header is padded with spaces to a multiple of 8 bytes. Errors: HS_ERR_ARG (NULL or duplicate
// names, the name "__metadata__", NULL tensors/keys/values, negative counts), HS_ERR_IO, HS_ERR_NOMEM.
hs_status hs_safetensors_write(const char *path, int n, const char *const *names,
                               const hs_tensor *const *tensors, int nmeta, const char *const *keys,
                               const char *const *values);

#endif
