// core/status.c: thread-local error slot behind HS_FAIL / hs_last_error.
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local hs_error last_error = {HS_OK, "", "", 0};

hs_status hs_fail_at(hs_status code, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error.msg, sizeof last_error.msg, fmt, ap);
    va_end(ap);
    last_error.code = code;
    // keep the path relative to the source tree: "core/conv2d.c" rather than an absolute path
    const char *rel = strstr(file, "core/");
    last_error.file = rel ? rel : file;
    last_error.line = line;
    return code;
}

const hs_error *hs_last_error(void) { return &last_error; }

void hs_clear_error(void) {
    last_error.code = HS_OK;
    last_error.msg[0] = '\0';
    last_error.file = "";
    last_error.line = 0;
}

const char *hs_status_name(hs_status s) {
    switch (s) {
    case HS_OK: return "ok";
    case HS_ERR_ARG: return "bad argument";
    case HS_ERR_SHAPE: return "shape mismatch";
    case HS_ERR_DTYPE: return "unsupported dtype";
    case HS_ERR_NOMEM: return "out of memory";
    case HS_ERR_IO: return "i/o error";
    case HS_ERR_FORMAT: return "malformed data";
    case HS_ERR_STATE: return "invalid state";
    case HS_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown";
}
