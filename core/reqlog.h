// core/reqlog.h: an append-only log of one line per request (JSON lines, composed by the
// caller) with size-based rotation: when a write would take the file past max_bytes, the file
// is renamed to PATH.1 (PATH.1 to PATH.2, ... up to PATH.<keep>, the oldest dropped) and a
// new PATH is started. Thread-safe; each line is written with one write(2) on an O_APPEND
// descriptor, so lines from several processes never interleave. Not a JSON encoder.
#ifndef HS_REQLOG_H
#define HS_REQLOG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct hs_reqlog hs_reqlog;

// Open (create, append) path. max_bytes: rotation threshold (0: never rotate; a single line
// longer than max_bytes is still written whole, into a fresh file). keep: rotated files kept
// (0..99; 0 = the full file is simply truncated away). HS_ERR_IO when it cannot be opened.
hs_status hs_reqlog_open(hs_reqlog **out, const char *path, uint64_t max_bytes, int keep);
void hs_reqlog_free(hs_reqlog *log);  // closes; NULL is a no-op

// Append line (n bytes, must not contain '\n'; a trailing newline is added). Rotates first if
// needed. HS_ERR_ARG for an embedded newline, HS_ERR_IO on a failed write or rename.
hs_status hs_reqlog_write(hs_reqlog *log, const char *line, size_t n);

// Number of rotations performed by this handle (for tests and the metrics page).
uint64_t hs_reqlog_rotations(const hs_reqlog *log);

#endif
