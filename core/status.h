// core/status.h: the error convention of the histops core.
// Every public function that can fail on caller input returns hs_status; on failure the message,
// file and line are kept in a thread-local slot read by hs_last_error(). Not a logging facility.
#ifndef HS_STATUS_H
#define HS_STATUS_H

typedef enum {
    HS_OK = 0,
    HS_ERR_ARG,      // bad argument (value out of range, NULL where not allowed)
    HS_ERR_SHAPE,    // shapes do not agree
    HS_ERR_DTYPE,    // dtype not supported by the op
    HS_ERR_NOMEM,    // allocation failed
    HS_ERR_IO,       // file could not be opened, read or written
    HS_ERR_FORMAT,   // file content malformed (truncated, corrupt, absurd sizes)
    HS_ERR_STATE,    // object used in the wrong state (e.g. graph not compiled)
    HS_ERR_UNSUPPORTED
} hs_status;

typedef struct {
    hs_status code;
    char msg[512];
    const char *file;
    int line;
} hs_error;

// Record an error in the thread-local slot and return its code. Use through HS_FAIL.
hs_status hs_fail_at(hs_status code, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
#define HS_FAIL(code, ...) hs_fail_at((code), __FILE__, __LINE__, __VA_ARGS__)

// Propagate a failing status unchanged (message already recorded).
#define HS_TRY(expr)                      \
    do {                                  \
        hs_status hs_try_s_ = (expr);     \
        if (hs_try_s_ != HS_OK)           \
            return hs_try_s_;             \
    } while (0)

// The last error recorded on this thread (code HS_OK and empty message if none).
const hs_error *hs_last_error(void);
void hs_clear_error(void);
const char *hs_status_name(hs_status s);

#endif
