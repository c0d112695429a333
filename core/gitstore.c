// core/gitstore.c: libgit2 implementation of core/gitstore.h (the only file that includes git2.h)
// and the content-addressed artifact store. Objects are written first and refs moved last, by
// compare-and-swap under libgit2's lock files, so concurrent writers and killed processes can
// never leave a ref pointing at a missing or partial commit.
#include "gitstore.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "sha256.h"
#include "sys.h"

#define STALE_LOCK_S 2.0     // a ref lock untouched this long was left by a killed process
#define LOCK_WAIT_S 5.0      // give up on a busy ref lock after this long (> STALE_LOCK_S)
#define RACE_RETRIES 100     // expected_old == "": re-read and re-parent when another writer wins

struct hs_gitstore {
    git_repository *repo;
    char workdir[HS_SYS_PATH_MAX];
    char gitdir[HS_SYS_PATH_MAX];
};

// ---- small helpers ----

static const char *gmsg(void) {
    const git_error *e = git_error_last();
    return e && e->message ? e->message : "unknown libgit2 error";
}

static char *dup_str(const char *s) {
    if (!s)
        s = "";
    size_t len = strlen(s);
    char *d = hs_alloc(len + 1);
    if (d)
        memcpy(d, s, len + 1);
    return d;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void copy_trimmed(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
    size_t len = strlen(dst);
    while (len > 1 && dst[len - 1] == '/')
        dst[--len] = '\0';
}

static int is_hex40(const char *s) {
    for (int i = 0; i < 40; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return s[40] == '\0';
}

// libgit2 keeps a global init count; every open store holds one reference.
static hs_status lib_init(void) {
    if (git_libgit2_init() < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot initialise libgit2: %s", gmsg());
    // refs must never point at objects lost to a power cut: fsync objects and refs (a few ms per
    // record; HISTOPS_GIT_FSYNC=0 turns it off, e.g. for tests on a slow disk)
    const char *fs = getenv("HISTOPS_GIT_FSYNC");
    git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, fs && strcmp(fs, "0") == 0 ? 0 : 1);
    return HS_OK;
}

// Write and delete only inside our namespace: the store never moves branches, tags or HEAD.
static hs_status check_ref_name(const char *ref) {
    int valid = 0;
    if (!ref || git_reference_name_is_valid(&valid, ref) < 0 || !valid)
        return HS_FAIL(HS_ERR_ARG, "invalid ref name '%s'", ref ? ref : "(null)");
    size_t np = strlen(HS_GITSTORE_REF_PREFIX);
    if (strncmp(ref, HS_GITSTORE_REF_PREFIX, np) != 0 || ref[np] == '\0')
        return HS_FAIL(HS_ERR_ARG, "ref '%s' is outside %s (the store never moves branches, tags or HEAD)",
                       ref, HS_GITSTORE_REF_PREFIX);
    return HS_OK;
}

// A path inside a record: relative, '/'-separated, no empty, "." , ".." or ".git" component.
static hs_status check_tree_path(const char *path) {
    if (!path || !*path)
        return HS_FAIL(HS_ERR_ARG, "invalid file path '' in a record (empty)");
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.') ||
            (len == 4 && strncasecmp(p, ".git", 4) == 0))
            return HS_FAIL(HS_ERR_ARG, "invalid file path '%s' in a record (want a/b/c: no empty, '.', '..' or '.git' part)",
                           path);
        if (!slash)
            break;
        p = slash + 1;
    }
    return HS_OK;
}

static hs_status parse_oid(git_oid *out, const char *hex, const char *what) {
    if (!is_hex40(hex) || git_oid_fromstr(out, hex) < 0)
        return HS_FAIL(HS_ERR_ARG, "%s '%s' is not a 40-digit hex commit id", what, hex);
    return HS_OK;
}

// Current target of ref: 1 and *oid when it exists, 0 when not, -1 (error recorded) otherwise.
static int ref_target(git_oid *oid, hs_gitstore *s, const char *ref) {
    int rc = git_reference_name_to_id(oid, s->repo, ref);
    if (rc == 0)
        return 1;
    if (rc == GIT_ENOTFOUND)
        return 0;
    HS_FAIL(HS_ERR_STATE, "cannot read ref %s: %s", ref, gmsg());
    return -1;
}

static hs_status moved_error(hs_gitstore *s, const char *ref, const char *expected_old) {
    git_oid cur;
    char found[HS_GITSTORE_ID_SIZE] = "no ref";
    if (ref_target(&cur, s, ref) == 1)
        git_oid_tostr(found, sizeof found, &cur);
    return HS_FAIL(HS_ERR_STATE, "ref %s moved concurrently (expected %s, found %s)", ref,
                   expected_old ? expected_old : "no ref", found);
}

static hs_status lock_error(const hs_gitstore *s, const char *ref) {
    return HS_FAIL(HS_ERR_STATE,
                   "ref %s stays locked by %s/%s.lock (another git or histops process is updating it; if "
                   "none is running, a killed one left the lock file: remove it)",
                   ref, s->gitdir, ref);
}

// A ref's lock file lives for one write and rename (milliseconds), so one untouched for
// STALE_LOCK_S was left by a process killed mid-update; without removal that record could never
// be updated again (e.g. marked as killed). Breakers serialise on an flock (released by the kernel
// when its holder dies) and re-check the age under it, so two of them can never remove a lock
// that a live writer has just taken. Returns 1 when the lock file was removed.
static int break_stale_lock(const hs_gitstore *s, const char *ref) {
    char lock[HS_SYS_PATH_MAX], dir[HS_SYS_PATH_MAX], guard[HS_SYS_PATH_MAX];
    if (snprintf(lock, sizeof lock, "%s/%s.lock", s->gitdir, ref) >= (int)sizeof lock ||
        snprintf(dir, sizeof dir, "%s/histops", s->gitdir) >= (int)sizeof dir ||
        snprintf(guard, sizeof guard, "%s/histops/lock", s->gitdir) >= (int)sizeof guard)
        return 0;
    struct stat st;
    if (stat(lock, &st) != 0 || clock_s(CLOCK_REALTIME) - ((double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec) < STALE_LOCK_S)
        return 0;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return 0;
    int fd = open(guard, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return 0;
    int removed = 0;
    if (flock(fd, LOCK_EX) == 0) {
        double age = stat(lock, &st) == 0 ? clock_s(CLOCK_REALTIME) - ((double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec) : 0;
        if (age >= STALE_LOCK_S && unlink(lock) == 0)
            removed = 1;
        flock(fd, LOCK_UN);
    }
    close(fd);
    return removed;
}

// Commit-ish -> commit. Not found is HS_ERR_IO, with a hint when the repository has no commits.
static hs_status lookup_commit(git_commit **out, hs_gitstore *s, const char *spec) {
    *out = NULL;
    if (!spec || !*spec)
        return HS_FAIL(HS_ERR_ARG, "empty revision");
    git_object *obj = NULL;
    int rc = git_revparse_single(&obj, s->repo, spec);
    if (rc == GIT_ENOTFOUND) {
        const char *hint = git_repository_head_unborn(s->repo) == 1 ? " (the repository has no commits yet)" : "";
        return HS_FAIL(HS_ERR_IO, "no commit named '%s' in %s%s", spec, s->gitdir, hint);
    }
    if (rc < 0)
        return HS_FAIL(HS_ERR_ARG, "bad revision '%s': %s", spec, gmsg());
    git_object *peeled = NULL;
    rc = git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT);
    git_object_free(obj);
    if (rc < 0)
        return HS_FAIL(HS_ERR_IO, "'%s' does not name a commit: %s", spec, gmsg());
    *out = (git_commit *)peeled;
    return HS_OK;
}

static hs_status buf_to_text(char **text, size_t *n, git_diff *diff) {
    git_buf b = GIT_BUF_INIT;
    if (git_diff_to_buf(&b, diff, GIT_DIFF_FORMAT_PATCH) < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot format diff: %s", gmsg());
    char *t = hs_alloc(b.size + 1);
    if (!t) {
        git_buf_dispose(&b);
        return HS_FAIL(HS_ERR_NOMEM, "diff: out of memory for %zu bytes", b.size + 1);
    }
    if (b.size)
        memcpy(t, b.ptr, b.size);
    t[b.size] = '\0';
    *text = t;
    if (n)
        *n = b.size;
    git_buf_dispose(&b);
    return HS_OK;
}

static hs_status fill_commit(hs_gitstore_commit *e, const char *ref, const git_commit *c) {
    memset(e, 0, sizeof *e);
    git_oid_tostr(e->id, sizeof e->id, git_commit_id(c));
    e->time = (int64_t)git_commit_time(c);
    e->tz_offset = git_commit_time_offset(c);
    const git_signature *a = git_commit_author(c);
    e->author = dup_str(a ? a->name : "");
    e->email = dup_str(a ? a->email : "");
    e->message = dup_str(git_commit_message(c));
    e->ref = ref ? dup_str(ref) : NULL;
    if (!e->author || !e->email || !e->message || (ref && !e->ref))
        return HS_FAIL(HS_ERR_NOMEM, "out of memory while listing commits");
    return HS_OK;
}

// Growable array of commits.
typedef struct {
    hs_gitstore_commit *v;
    size_t n, cap;
} commit_vec;

static hs_gitstore_commit *vec_push(commit_vec *vec) {
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? 2 * vec->cap : 16;
        hs_gitstore_commit *v = hs_alloc(cap * sizeof *v);
        if (!v)
            return NULL;
        if (vec->n)
            memcpy(v, vec->v, vec->n * sizeof *v);
        hs_free(vec->v);
        vec->v = v;
        vec->cap = cap;
    }
    hs_gitstore_commit *e = &vec->v[vec->n++];
    memset(e, 0, sizeof *e);
    return e;
}

void hs_gitstore_commits_free(hs_gitstore_commit *c, size_t n) {
    if (!c)
        return;
    for (size_t i = 0; i < n; i++) {
        hs_free(c[i].ref);
        hs_free(c[i].author);
        hs_free(c[i].email);
        hs_free(c[i].message);
    }
    hs_free(c);
}

// ---- open / close ----

hs_status hs_gitstore_open(hs_gitstore **out, const char *path) {
    *out = NULL;
    if (!path || !*path)
        return HS_FAIL(HS_ERR_ARG, "gitstore: empty path");
    struct stat st;
    if (stat(path, &st) != 0)
        return HS_FAIL(HS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    HS_TRY(lib_init());
    git_repository *repo = NULL;
    int rc = git_repository_open_ext(&repo, path, 0, getenv("GIT_CEILING_DIRECTORIES"));
    if (rc < 0) {
        hs_status st2 = rc == GIT_ENOTFOUND
                            ? HS_FAIL(HS_ERR_STATE, "not inside a git repository: %s (run `git init` or pass --no-git)", path)
                            : HS_FAIL(HS_ERR_STATE, "cannot open the git repository at %s: %s", path, gmsg());
        git_libgit2_shutdown();
        return st2;
    }
    hs_gitstore *s = hs_calloc(1, sizeof *s);
    if (!s) {
        git_repository_free(repo);
        git_libgit2_shutdown();
        return HS_FAIL(HS_ERR_NOMEM, "gitstore: out of memory");
    }
    s->repo = repo;
    copy_trimmed(s->workdir, sizeof s->workdir, git_repository_workdir(repo));
    copy_trimmed(s->gitdir, sizeof s->gitdir, git_repository_commondir(repo));
    *out = s;
    return HS_OK;
}

void hs_gitstore_free(hs_gitstore *s) {
    if (!s)
        return;
    git_repository_free(s->repo);
    hs_free(s);
    git_libgit2_shutdown();
}

const char *hs_gitstore_workdir(const hs_gitstore *s) { return s->workdir; }
const char *hs_gitstore_gitdir(const hs_gitstore *s) { return s->gitdir; }

// ---- HEAD, dirty state, diffs ----

hs_status hs_gitstore_head(hs_gitstore *s, hs_gitstore_head_info *out) {
    memset(out, 0, sizeof *out);
    out->bare = git_repository_is_bare(s->repo) == 1;
    git_reference *head = NULL;
    if (git_reference_lookup(&head, s->repo, "HEAD") < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot read HEAD of %s: %s", s->gitdir, gmsg());
    hs_status st = HS_OK;
    if (git_reference_type(head) == GIT_REFERENCE_SYMBOLIC) {
        const char *target = git_reference_symbolic_target(head);
        const char *name = strncmp(target, "refs/heads/", 11) == 0 ? target + 11 : target;
        if (strlen(name) >= sizeof out->branch) {
            git_reference_free(head);
            return HS_FAIL(HS_ERR_UNSUPPORTED, "branch name longer than %d bytes", HS_GITSTORE_NAME_MAX - 1);
        }
        snprintf(out->branch, sizeof out->branch, "%s", name);
        git_reference *resolved = NULL;
        int rc = git_reference_resolve(&resolved, head);
        if (rc == GIT_ENOTFOUND) {
            out->unborn = 1;
        } else if (rc < 0) {
            st = HS_FAIL(HS_ERR_STATE, "cannot resolve HEAD (%s): %s", target, gmsg());
        } else {
            git_oid_tostr(out->commit, sizeof out->commit, git_reference_target(resolved));
            git_reference_free(resolved);
        }
    } else {
        out->detached = 1;
        git_oid_tostr(out->commit, sizeof out->commit, git_reference_target(head));
    }
    git_reference_free(head);
    return st;
}

hs_status hs_gitstore_dirty(hs_gitstore *s, int *dirty, char **patch, size_t *n) {
    *dirty = 0;
    if (patch)
        *patch = NULL;
    if (n)
        *n = 0;
    if (git_repository_is_bare(s->repo) == 1)
        return HS_FAIL(HS_ERR_STATE, "%s is a bare repository: it has no work tree to compare", s->gitdir);
    git_tree *tree = NULL;  // stays NULL with no commits: everything tracked counts as added
    git_reference *head = NULL;
    int rc = git_repository_head(&head, s->repo);
    if (rc == 0) {
        git_object *t = NULL;
        rc = git_reference_peel(&t, head, GIT_OBJECT_TREE);
        git_reference_free(head);
        if (rc < 0)
            return HS_FAIL(HS_ERR_STATE, "cannot read the tree of HEAD: %s", gmsg());
        tree = (git_tree *)t;
    } else if (rc != GIT_EUNBORNBRANCH && rc != GIT_ENOTFOUND) {
        return HS_FAIL(HS_ERR_STATE, "cannot read HEAD of %s: %s", s->gitdir, gmsg());
    }
    // the default options leave untracked files out and never write the index back
    git_diff_options opts;
    git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
    git_diff *diff = NULL;
    rc = git_diff_tree_to_workdir_with_index(&diff, s->repo, tree, &opts);
    git_tree_free(tree);
    if (rc < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot compare the work tree with HEAD: %s", gmsg());
    *dirty = git_diff_num_deltas(diff) > 0;
    hs_status st = patch ? buf_to_text(patch, n, diff) : HS_OK;
    git_diff_free(diff);
    return st;
}

static hs_status lookup_tree(git_tree **out, hs_gitstore *s, const char *spec) {
    git_commit *c = NULL;
    HS_TRY(lookup_commit(&c, s, spec));
    int rc = git_commit_tree(out, c);
    git_commit_free(c);
    if (rc < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot read the tree of '%s': %s", spec, gmsg());
    return HS_OK;
}

hs_status hs_gitstore_diff_commits(hs_gitstore *s, char **patch, size_t *n, const char *a, const char *b) {
    *patch = NULL;
    if (n)
        *n = 0;
    git_tree *ta = NULL, *tb = NULL;
    HS_TRY(lookup_tree(&ta, s, a));
    hs_status st = lookup_tree(&tb, s, b);
    if (st != HS_OK) {
        git_tree_free(ta);
        return st;
    }
    git_diff_options opts;
    git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
    git_diff *diff = NULL;
    int rc = git_diff_tree_to_tree(&diff, s->repo, ta, tb, &opts);
    git_tree_free(ta);
    git_tree_free(tb);
    if (rc < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot diff %s..%s: %s", a, b, gmsg());
    st = buf_to_text(patch, n, diff);
    git_diff_free(diff);
    return st;
}

// ---- writing records ----

static hs_status make_signature(git_signature **sig, hs_gitstore *s) {
    if (git_signature_default(sig, s->repo) == 0)
        return HS_OK;
    // no user.name/user.email configured (CI machines): a fixed identity, never a failure
    if (git_signature_now(sig, "histops", "histops@localhost") < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot make a commit signature: %s", gmsg());
    return HS_OK;
}

// Tree of the given files (optionally on top of base's files), written to the object database.
static hs_status build_tree(git_oid *tree_id, hs_gitstore *s, const git_tree *base, int n, const char *const *paths,
                            const git_oid *blobs, const void *const *contents) {
    git_index *index = NULL;  // in memory: the repository's own index is never touched
    if (git_index_new(&index) < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot create an in-memory index: %s", gmsg());
    hs_status st = HS_OK;
    if (base && git_index_read_tree(index, base) < 0)
        st = HS_FAIL(HS_ERR_STATE, "cannot read the previous record tree: %s", gmsg());
    for (int i = 0; st == HS_OK && i < n; i++) {
        if (!contents[i]) {
            git_index_remove_directory(index, paths[i], 0);
            git_index_remove(index, paths[i], 0);
            continue;
        }
        git_index_entry e;
        memset(&e, 0, sizeof e);
        e.mode = GIT_FILEMODE_BLOB;
        e.id = blobs[i];
        e.path = paths[i];
        // a file replacing a folder or the reverse: drop the old entries first
        git_index_remove_directory(index, paths[i], 0);
        for (const char *p = strchr(paths[i], '/'); p; p = strchr(p + 1, '/')) {
            char prefix[HS_SYS_PATH_MAX];
            size_t len = (size_t)(p - paths[i]);
            if (len >= sizeof prefix)
                break;
            memcpy(prefix, paths[i], len);
            prefix[len] = '\0';
            git_index_remove(index, prefix, 0);
        }
        if (git_index_add(index, &e) < 0)
            st = HS_FAIL(HS_ERR_ARG, "cannot add '%s' to a record: %s", paths[i], gmsg());
    }
    if (st == HS_OK && git_index_write_tree_to(tree_id, index, s->repo) < 0)
        st = HS_FAIL(HS_ERR_STATE, "cannot write the record tree: %s", gmsg());
    git_index_free(index);
    return st;
}

// One attempt: commit on top of the current ref value and move the ref. Returns HS_OK, or a
// libgit2 code in *retry (GIT_ELOCKED / GIT_EMODIFIED / GIT_EEXISTS) for the caller to decide.
static hs_status write_once(hs_gitstore *s, git_oid *new_id, int *retry, const char *ref, int n,
                            const char *const *paths, const git_oid *blobs, const void *const *contents,
                            const char *message, const char *expected_old, const git_oid *expected,
                            const git_signature *sig, unsigned flags) {
    *retry = 0;
    git_oid cur;
    int has = ref_target(&cur, s, ref);
    if (has < 0)
        return hs_last_error()->code;
    if ((!expected_old && has) || (expected && (!has || !git_oid_equal(&cur, expected))))
        return moved_error(s, ref, expected_old);
    git_commit *parent = NULL;
    git_tree *base = NULL;
    if (has) {
        if (git_commit_lookup(&parent, s->repo, &cur) < 0)
            return HS_FAIL(HS_ERR_STATE, "ref %s does not point at a commit: %s", ref, gmsg());
        if ((flags & HS_GITSTORE_KEEP_TREE) && git_commit_tree(&base, parent) < 0) {
            git_commit_free(parent);
            return HS_FAIL(HS_ERR_STATE, "cannot read the tree of %s: %s", ref, gmsg());
        }
    }
    git_oid tree_id;
    hs_status st = build_tree(&tree_id, s, base, n, paths, blobs, contents);
    git_tree_free(base);
    git_tree *tree = NULL;
    if (st == HS_OK && git_tree_lookup(&tree, s->repo, &tree_id) < 0)
        st = HS_FAIL(HS_ERR_STATE, "cannot read back the record tree: %s", gmsg());
    const git_commit *parents[1] = {parent};
    if (st == HS_OK && git_commit_create(new_id, s->repo, NULL, sig, sig, NULL, message, tree, has ? 1 : 0,
                                         parents) < 0)
        st = HS_FAIL(HS_ERR_STATE, "cannot create the record commit for %s: %s", ref, gmsg());
    git_tree_free(tree);
    git_commit_free(parent);
    if (st != HS_OK)
        return st;
    // the commit object exists now; only then does the ref move. The old value is compared under
    // the ref's lock; a zero id means "must not exist" (git_reference_create with force=0 checks
    // existence before taking the lock, so two creators could both win). This is what a libgit2
    // transaction (git_transaction_lock_ref + set_target + commit) does for one ref: the loose
    // ref's lock file is written, fsynced and renamed over the ref, after the comparison, all
    // under the lock; a kill at any point leaves the old ref and at worst a stale .lock (which
    // break_stale_lock removes once it is old enough).
    hs_sys_test_kill_point("record-ref");  // test-only crash hook: objects written, ref not moved
    git_oid zero;
    memset(&zero, 0, sizeof zero);
    git_reference *r = NULL;
    int rc = git_reference_create_matching(&r, s->repo, ref, new_id, 1, has ? &cur : &zero, "histops: record");
    git_reference_free(r);
    if (rc == 0)
        return HS_OK;
    if (rc == GIT_ELOCKED || rc == GIT_EMODIFIED || rc == GIT_EEXISTS) {
        *retry = rc;
        return HS_OK;
    }
    return HS_FAIL(HS_ERR_STATE, "cannot update ref %s: %s", ref, gmsg());
}

hs_status hs_gitstore_write(hs_gitstore *s, char new_id[HS_GITSTORE_ID_SIZE], const char *ref, int n,
                            const char *const *paths, const void *const *contents, const size_t *sizes,
                            const char *message, const char *expected_old, unsigned flags) {
    new_id[0] = '\0';
    HS_TRY(check_ref_name(ref));
    if (n < 0 || (n > 0 && (!paths || !contents || !sizes)))
        return HS_FAIL(HS_ERR_ARG, "write %s: %d files with NULL arrays", ref, n);
    for (int i = 0; i < n; i++) {
        HS_TRY(check_tree_path(paths[i]));
        if (!contents[i] && !(flags & HS_GITSTORE_KEEP_TREE))
            return HS_FAIL(HS_ERR_ARG, "write %s: NULL content for '%s' (removal needs HS_GITSTORE_KEEP_TREE)", ref,
                           paths[i]);
    }
    git_oid expected, *pexpected = NULL;
    if (expected_old && *expected_old) {
        HS_TRY(parse_oid(&expected, expected_old, "expected_old"));
        pexpected = &expected;
    }
    // blobs first: they do not depend on the parent, so they are written once for all attempts
    git_oid *blobs = hs_alloc((size_t)(n > 0 ? n : 1) * sizeof *blobs);
    if (!blobs)
        return HS_FAIL(HS_ERR_NOMEM, "write %s: out of memory", ref);
    hs_status st = HS_OK;
    for (int i = 0; st == HS_OK && i < n; i++)
        if (contents[i] && git_blob_create_from_buffer(&blobs[i], s->repo, contents[i], sizes[i]) < 0)
            st = HS_FAIL(HS_ERR_IO, "cannot store '%s' (%zu bytes) in %s: %s", paths[i], sizes[i], s->gitdir, gmsg());
    git_signature *sig = NULL;
    if (st == HS_OK)
        st = make_signature(&sig, s);
    int locked = 0, raced = 0;
    double t0 = clock_s(CLOCK_MONOTONIC);
    while (st == HS_OK) {
        int retry = 0;
        git_oid id;
        st = write_once(s, &id, &retry, ref, n, paths, blobs, contents, message ? message : "", expected_old,
                        pexpected, sig, flags);
        if (st != HS_OK)
            break;
        if (retry == 0) {
            git_oid_tostr(new_id, HS_GITSTORE_ID_SIZE, &id);
            break;
        }
        if (retry == GIT_ELOCKED) {
            if (break_stale_lock(s, ref))
                continue;
            if (clock_s(CLOCK_MONOTONIC) - t0 > LOCK_WAIT_S) {
                st = lock_error(s, ref);
                break;
            }
            locked++;
            sleep_ms(locked < 20 ? 1 + locked : 20);  // the holder keeps the lock for a rename only
        } else if (!expected_old || pexpected || ++raced > RACE_RETRIES) {
            // another writer moved the ref between our read and our swap
            st = moved_error(s, ref, expected_old);
        }
        // expected_old == "": loop, re-read the new value and commit on top of it
    }
    git_signature_free(sig);
    hs_free(blobs);
    return st;
}

// ---- reading ----

hs_status hs_gitstore_read(hs_gitstore *s, void **data, size_t *n, const char *rev, const char *path) {
    *data = NULL;
    *n = 0;
    HS_TRY(check_tree_path(path));
    git_tree *tree = NULL;
    HS_TRY(lookup_tree(&tree, s, rev));
    git_tree_entry *e = NULL;
    int rc = git_tree_entry_bypath(&e, tree, path);
    git_tree_free(tree);
    if (rc == GIT_ENOTFOUND)
        return HS_FAIL(HS_ERR_IO, "no file '%s' in %s", path, rev);
    if (rc < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot look up '%s' in %s: %s", path, rev, gmsg());
    if (git_tree_entry_type(e) != GIT_OBJECT_BLOB) {
        git_tree_entry_free(e);
        return HS_FAIL(HS_ERR_IO, "'%s' in %s is a folder, not a file", path, rev);
    }
    git_blob *blob = NULL;
    rc = git_blob_lookup(&blob, s->repo, git_tree_entry_id(e));
    git_tree_entry_free(e);
    if (rc < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot read '%s' in %s: %s", path, rev, gmsg());
    size_t size = (size_t)git_blob_rawsize(blob);
    char *buf = hs_alloc(size + 1);
    if (!buf) {
        git_blob_free(blob);
        return HS_FAIL(HS_ERR_NOMEM, "cannot read '%s' in %s: out of memory for %zu bytes", path, rev, size);
    }
    if (size)
        memcpy(buf, git_blob_rawcontent(blob), size);
    buf[size] = '\0';
    git_blob_free(blob);
    *data = buf;
    *n = size;
    return HS_OK;
}

static int cmp_ref(const void *a, const void *b) {
    return strcmp(((const hs_gitstore_commit *)a)->ref, ((const hs_gitstore_commit *)b)->ref);
}

hs_status hs_gitstore_list(hs_gitstore *s, hs_gitstore_commit **out, size_t *n, const char *prefix) {
    *out = NULL;
    *n = 0;
    if (!prefix || strncmp(prefix, "refs/", 5) != 0 || strpbrk(prefix, "*?[\\"))
        return HS_FAIL(HS_ERR_ARG, "list: prefix '%s' must start with refs/ and hold no glob characters",
                       prefix ? prefix : "(null)");
    // ref names cannot contain glob characters, so prefix + "*" matches exactly the names under
    // it; the iterator only walks the loose-ref folder of that prefix plus packed-refs
    size_t plen = strlen(prefix);
    char *glob = hs_alloc(plen + 2);
    if (!glob)
        return HS_FAIL(HS_ERR_NOMEM, "list: out of memory");
    memcpy(glob, prefix, plen);
    memcpy(glob + plen, "*", 2);
    git_reference_iterator *it = NULL;
    int rc = git_reference_iterator_glob_new(&it, s->repo, glob);
    hs_free(glob);
    if (rc < 0)
        return HS_FAIL(HS_ERR_STATE, "cannot list refs under %s: %s", prefix, gmsg());
    commit_vec vec = {NULL, 0, 0};
    hs_status st = HS_OK;
    git_reference *r = NULL;
    while (st == HS_OK && (rc = git_reference_next(&r, it)) == 0) {
        git_object *obj = NULL;
        if (git_reference_peel(&obj, r, GIT_OBJECT_COMMIT) == 0) {  // skip refs to non-commits
            hs_gitstore_commit *e = vec_push(&vec);
            st = e ? fill_commit(e, git_reference_name(r), (const git_commit *)obj)
                   : HS_FAIL(HS_ERR_NOMEM, "list: out of memory");
            git_object_free(obj);
        }
        git_reference_free(r);
    }
    git_reference_iterator_free(it);
    if (st == HS_OK && rc != GIT_ITEROVER)
        st = HS_FAIL(HS_ERR_STATE, "cannot list refs under %s: %s", prefix, gmsg());
    if (st != HS_OK) {
        hs_gitstore_commits_free(vec.v, vec.n);
        return st;
    }
    if (vec.n > 1)
        qsort(vec.v, vec.n, sizeof *vec.v, cmp_ref);
    *out = vec.v;
    *n = vec.n;
    return HS_OK;
}

hs_status hs_gitstore_log(hs_gitstore *s, hs_gitstore_commit **out, size_t *n, const char *rev, int max) {
    *out = NULL;
    *n = 0;
    git_commit *c = NULL;
    HS_TRY(lookup_commit(&c, s, rev));
    commit_vec vec = {NULL, 0, 0};
    hs_status st = HS_OK;
    while (c && (max <= 0 || vec.n < (size_t)max)) {
        hs_gitstore_commit *e = vec_push(&vec);
        st = e ? fill_commit(e, NULL, c) : HS_FAIL(HS_ERR_NOMEM, "log: out of memory");
        if (st != HS_OK)
            break;
        git_commit *parent = NULL;
        int rc = git_commit_parentcount(c) > 0 ? git_commit_parent(&parent, c, 0) : GIT_ENOTFOUND;
        if (rc < 0 && rc != GIT_ENOTFOUND) {
            // a shallow clone ends here: its history is cut, which is not an error
            if (git_repository_is_shallow(s->repo) != 1)
                st = HS_FAIL(HS_ERR_STATE, "cannot read the parent of %s: %s", e->id, gmsg());
        }
        git_commit_free(c);
        c = rc == 0 ? parent : NULL;
        if (st != HS_OK)
            break;
    }
    git_commit_free(c);
    if (st != HS_OK) {
        hs_gitstore_commits_free(vec.v, vec.n);
        return st;
    }
    *out = vec.v;
    *n = vec.n;
    return HS_OK;
}

hs_status hs_gitstore_resolve(hs_gitstore *s, char id[HS_GITSTORE_ID_SIZE], const char *spec) {
    id[0] = '\0';
    git_commit *c = NULL;
    HS_TRY(lookup_commit(&c, s, spec));
    git_oid_tostr(id, HS_GITSTORE_ID_SIZE, git_commit_id(c));
    git_commit_free(c);
    return HS_OK;
}

hs_status hs_gitstore_is_ancestor(hs_gitstore *s, int *yes, const char *ancestor, const char *descendant) {
    *yes = 0;
    git_commit *a = NULL, *d = NULL;
    HS_TRY(lookup_commit(&a, s, ancestor));
    hs_status st = lookup_commit(&d, s, descendant);
    if (st == HS_OK) {
        if (git_oid_equal(git_commit_id(a), git_commit_id(d))) {
            *yes = 1;
        } else {
            int rc = git_graph_descendant_of(s->repo, git_commit_id(d), git_commit_id(a));
            if (rc < 0)
                st = HS_FAIL(HS_ERR_STATE, "cannot compare %s and %s: %s", ancestor, descendant, gmsg());
            else
                *yes = rc == 1;
        }
    }
    git_commit_free(a);
    git_commit_free(d);
    return st;
}

hs_status hs_gitstore_delete_ref(hs_gitstore *s, const char *ref, const char *expected_old) {
    HS_TRY(check_ref_name(ref));
    git_oid expected;
    int check = expected_old && *expected_old;
    if (check)
        HS_TRY(parse_oid(&expected, expected_old, "expected_old"));
    double t0 = clock_s(CLOCK_MONOTONIC);
    for (int attempt = 0;; attempt++) {
        git_reference *r = NULL;
        int rc = git_reference_lookup(&r, s->repo, ref);
        if (rc == GIT_ENOTFOUND)
            return HS_FAIL(HS_ERR_IO, "ref %s does not exist", ref);
        if (rc < 0)
            return HS_FAIL(HS_ERR_STATE, "cannot read ref %s: %s", ref, gmsg());
        const git_oid *cur = git_reference_target(r);
        if (check && (!cur || !git_oid_equal(cur, &expected))) {
            git_reference_free(r);
            return moved_error(s, ref, expected_old);
        }
        // libgit2 re-checks the old value under the lock: a concurrent move gives GIT_EMODIFIED
        rc = git_reference_delete(r);
        git_reference_free(r);
        if (rc == 0)
            return HS_OK;
        if (rc == GIT_EMODIFIED) {
            if (check)
                return moved_error(s, ref, expected_old);
        } else if (rc == GIT_ELOCKED) {
            if (!break_stale_lock(s, ref)) {
                if (clock_s(CLOCK_MONOTONIC) - t0 > LOCK_WAIT_S)
                    return lock_error(s, ref);
                sleep_ms(attempt < 20 ? 1 + attempt : 20);
            }
        } else {
            return HS_FAIL(HS_ERR_STATE, "cannot delete ref %s: %s", ref, gmsg());
        }
        if (attempt >= 1000 + RACE_RETRIES)
            return moved_error(s, ref, expected_old);
    }
}

hs_status hs_gitstore_artifact_dir(const hs_gitstore *s, char *out, size_t cap) {
    const char *env = getenv("HISTOPS_ARTIFACTS");
    int len = env && *env ? snprintf(out, cap, "%s", env) : snprintf(out, cap, "%s/histops/artifacts", s->gitdir);
    if (len < 0 || (size_t)len >= cap)
        return HS_FAIL(HS_ERR_ARG, "artifact folder path longer than %zu bytes", cap);
    return HS_OK;
}

// ---- artifacts ----

static int is_sha_hex(const char *s) {
    if (!s)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[64] == '\0';
}

hs_status hs_artifact_path(char *out, size_t cap, const char *dir, const char *sha) {
    if (cap)
        out[0] = '\0';
    if (!dir || !*dir)
        return HS_FAIL(HS_ERR_ARG, "artifact folder is empty");
    if (!is_sha_hex(sha))
        return HS_FAIL(HS_ERR_ARG, "'%s' is not a SHA-256 (64 lower-case hex digits)", sha ? sha : "(null)");
    int len = snprintf(out, cap, "%s/sha256/%.2s/%s", dir, sha, sha + 2);
    if (len < 0 || (size_t)len >= cap)
        return HS_FAIL(HS_ERR_ARG, "artifact path longer than %zu bytes", cap);
    return HS_OK;
}

// Finish a put: name the temporary by its hash, or drop it when the content is already there.
static hs_status put_finish(hs_sys_atomic *a, char sha[65], const char *dir, hs_sha256 *ctx, size_t size) {
    uint8_t digest[HS_SHA256_DIGEST_SIZE];
    hs_sha256_final(digest, ctx);
    hs_sha256_hex(sha, digest);
    char path[HS_SYS_PATH_MAX], sub[HS_SYS_PATH_MAX];
    hs_status st = hs_artifact_path(path, sizeof path, dir, sha);
    if (st == HS_OK) {
        snprintf(sub, sizeof sub, "%s/sha256/%.2s", dir, sha);
        st = hs_sys_mkdir_p(sub);
    }
    if (st != HS_OK) {
        hs_sys_atomic_abort(a);
        return st;
    }
    struct stat info;
    if (stat(path, &info) == 0 && S_ISREG(info.st_mode) && (size_t)info.st_size == size) {
        hs_sys_atomic_abort(a);  // identical content is stored once
        return HS_OK;
    }
    // stored files are immutable: read-only, and the destination is only known now
    mode_t mask = umask(0);
    umask(mask);
    fchmod(a->fd, 0444 & ~mask);
    snprintf(a->path, sizeof a->path, "%s", path);
    return hs_sys_atomic_commit(a);
}

hs_status hs_artifact_put(char sha[65], const char *dir, const char *src_path, const void *buf, size_t n) {
    sha[0] = '\0';
    if (!dir || !*dir)
        return HS_FAIL(HS_ERR_ARG, "artifact folder is empty");
    if (!src_path && !buf && n > 0)
        return HS_FAIL(HS_ERR_ARG, "artifact_put: no source file and no buffer");
    char root[HS_SYS_PATH_MAX], incoming[HS_SYS_PATH_MAX];
    if (snprintf(root, sizeof root, "%s/sha256", dir) >= (int)sizeof root ||
        snprintf(incoming, sizeof incoming, "%s/incoming", root) >= (int)sizeof incoming)
        return HS_FAIL(HS_ERR_ARG, "artifact folder path too long: %s", dir);
    int fd = -1;
    if (src_path) {
        fd = open(src_path, O_RDONLY);
        if (fd < 0)
            return HS_FAIL(HS_ERR_IO, "cannot read '%s': %s", src_path, strerror(errno));
    }
    hs_status st = hs_sys_mkdir_p(root);
    // the temporary sits in the store (same file system), so the final rename is atomic
    hs_sys_atomic a;
    if (st == HS_OK)
        st = hs_sys_atomic_open(&a, incoming);
    if (st != HS_OK) {
        if (fd >= 0)
            close(fd);
        return st;
    }
    hs_sha256 ctx;
    hs_sha256_init(&ctx);
    size_t total = 0;
    if (fd < 0) {
        hs_sha256_update(&ctx, buf, n);
        st = hs_sys_atomic_write(&a, buf, n);
        total = n;
    } else {
        size_t chunk = (size_t)1 << 20;
        char *tmp = hs_alloc(chunk);
        if (!tmp)
            st = HS_FAIL(HS_ERR_NOMEM, "artifact_put: out of memory");
        while (st == HS_OK) {
            ssize_t got = read(fd, tmp, chunk);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                st = HS_FAIL(HS_ERR_IO, "cannot read '%s': %s", src_path, strerror(errno));
            if (got <= 0)
                break;
            hs_sha256_update(&ctx, tmp, (size_t)got);
            st = hs_sys_atomic_write(&a, tmp, (size_t)got);
            total += (size_t)got;
        }
        hs_free(tmp);
        close(fd);
    }
    if (st != HS_OK) {
        hs_sys_atomic_abort(&a);
        return st;
    }
    return put_finish(&a, sha, dir, &ctx, total);
}

hs_status hs_artifact_verify(const char *dir, const char *sha) {
    char path[HS_SYS_PATH_MAX];
    HS_TRY(hs_artifact_path(path, sizeof path, dir, sha));
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            return HS_FAIL(HS_ERR_IO, "artifact %s not found in %s", sha, dir);
        return HS_FAIL(HS_ERR_IO, "cannot read artifact %s: %s", path, strerror(errno));
    }
    size_t chunk = (size_t)1 << 20;
    char *tmp = hs_alloc(chunk);
    if (!tmp) {
        close(fd);
        return HS_FAIL(HS_ERR_NOMEM, "artifact_verify: out of memory");
    }
    hs_sha256 ctx;
    hs_sha256_init(&ctx);
    hs_status st = HS_OK;
    for (;;) {
        ssize_t got = read(fd, tmp, chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            st = HS_FAIL(HS_ERR_IO, "cannot read artifact %s: %s", path, strerror(errno));
        if (got <= 0)
            break;
        hs_sha256_update(&ctx, tmp, (size_t)got);
    }
    hs_free(tmp);
    close(fd);
    if (st != HS_OK)
        return st;
    uint8_t digest[HS_SHA256_DIGEST_SIZE];
    char actual[HS_SHA256_HEX_SIZE];
    hs_sha256_final(digest, &ctx);
    hs_sha256_hex(actual, digest);
    if (strcmp(actual, sha) != 0)
        return HS_FAIL(HS_ERR_FORMAT, "artifact %s is corrupt: its content hashes to %s (file %s)", sha, actual, path);
    return HS_OK;
}
