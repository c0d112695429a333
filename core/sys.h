// core/sys.h: the few operating-system services the core and the Lua host need: atomic file
// writes (temp file in the same folder, fsync, rename), whole-file reads, mkdir -p, sorted
// directory listings and the CPU model. POSIX only; not a portability layer.
#ifndef HS_SYS_H
#define HS_SYS_H

#include <stddef.h>

#include "status.h"

#define HS_SYS_PATH_MAX 4096

// An open temporary file that replaces `path` only when committed. Between open and
// commit/abort the destination is untouched; a crash leaves at most a "<path>.tmp.XXXXXX" file.
typedef struct {
    int fd;                               // -1 when not open
    char path[HS_SYS_PATH_MAX];           // destination
    char tmp[HS_SYS_PATH_MAX + 16];       // temporary file name
} hs_sys_atomic;

// Create the temporary file next to path. HS_ERR_IO (message names the file) on failure,
// HS_ERR_ARG for a path longer than HS_SYS_PATH_MAX - 1.
hs_status hs_sys_atomic_open(hs_sys_atomic *a, const char *path);
// Write all n bytes (retrying short writes). HS_ERR_IO on failure; the caller then aborts.
hs_status hs_sys_atomic_write(hs_sys_atomic *a, const void *buf, size_t n);
// fsync, close, rename over path, fsync the folder. On failure the temp file is removed.
hs_status hs_sys_atomic_commit(hs_sys_atomic *a);
// Close and remove the temp file (no-op when not open). Never fails.
void hs_sys_atomic_abort(hs_sys_atomic *a);

// Whole-file helpers built on the above.
hs_status hs_sys_write_file_atomic(const char *path, const void *buf, size_t n);
// *out: hs_alloc'd copy of the file plus a terminating NUL (not counted in *n); hs_free it.
// HS_ERR_IO when the file cannot be opened or read, HS_ERR_NOMEM.
hs_status hs_sys_read_file(char **out, size_t *n, const char *path);

// mkdir -p with mode 0777 (umask applies); existing folders are fine, an existing file is not.
hs_status hs_sys_mkdir_p(const char *path);

// Names in a folder (without "." and ".."), sorted bytewise. *names is one hs_alloc'd block
// (an array of *n pointers followed by the strings): free it with hs_free. HS_ERR_IO on failure.
hs_status hs_sys_listdir(char ***names, int *n, const char *path);

// ---- test-only fault hooks (never set them outside tests) ----
// Read once from the environment, on first use:
//   HISTOPS_FAULT_WRITE_AFTER=<bytes>: atomic writes of this process fail once <bytes> bytes in
//     total have been written through hs_sys_atomic_write, with the message of a full disk
//     ("cannot write '<path>': No space left on device (injected ...)"); simulates ENOSPC.
//   HISTOPS_TEST_KILL_AT=<point>:<n>[,<point>:<n>...] (up to 4): the n-th time the process
//     passes the kill point <point> it sends itself SIGKILL. hs_sys_atomic_write is the point "atomic-write" (killed after writing
//     half of that buffer to the temporary file); callers add their own points with
//     hs_sys_test_kill_point ("checkpoint-write", "record-write", ...).
void hs_sys_test_kill_point(const char *point);

// "model name" of the first processor in /proc/cpuinfo (or "unknown"), into buf (NUL-terminated).
void hs_sys_cpu_model(char *buf, size_t n);

#endif
