// tests/test_gitstore.c: the git-backed run store in throw-away repositories made with the git
// tool: records written and read back, refs surviving gc/clean and push/fetch, unborn/detached
// HEAD, linked worktrees, no repository, dirty detection, compare-and-swap, concurrent writers
// (fork), a writer killed with SIGKILL, and the content-addressed artifact store.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "gitstore.h"
#include "hs_test.h"

// ---- helpers: a temp folder per test, shell commands, file access ----

typedef struct {
    char dir[256];   // the temp folder
    char repo[300];  // <dir>/repo: a repository with one commit on main (a.txt, sub/b.txt)
} fixture;

static double t_start;  // start of the current test (HS_TEST_TIMES=1 prints durations)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

// stdout of a command (trailing newline removed)
static void capture(char *out, size_t cap, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// One template repository for the whole program, copied per test (cheaper than git init+commit).
static char template_dir[256];

static int setup_template(void **state) {
    (void)state;
    snprintf(template_dir, sizeof template_dir, "/tmp/hs-gitstore-template-XXXXXX");
    if (!mkdtemp(template_dir))
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; git init -q -b main repo; cd repo; printf 'hello\\n' > a.txt; mkdir sub; "
             "printf 'one\\ntwo\\n' > sub/b.txt; git add a.txt sub/b.txt; git commit -q -m first",
             template_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown_template(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", template_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup_repo(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/hs-gitstore-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->repo, sizeof fx->repo, "%s/repo", fx->dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp -a '%s/repo' '%s'", template_dir, fx->dir);
    if (system(cmd) != 0)
        return -1;
    *state = fx;
    t_start = now_s();
    return 0;
}

static int teardown_dir(void **state) {
    fixture *fx = *state;
    if (getenv("HS_TEST_TIMES"))
        fprintf(stderr, "  (%.2f s)\n", now_s() - t_start);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static hs_gitstore *open_store(const char *path) {
    hs_gitstore *s = NULL;
    hs_status st = hs_gitstore_open(&s, path);
    if (st != HS_OK)
        fail_msg("hs_gitstore_open(%s): %s", path, hs_last_error()->msg);
    return s;
}

#define CHECK_OK(expr)                                                              \
    do {                                                                            \
        if ((expr) != HS_OK)                                                        \
            fail_msg("%s failed: %s", #expr, hs_last_error()->msg);                 \
    } while (0)

// Write {name: text} pairs (NULL-terminated list of alternating strings).
static hs_status write_texts(hs_gitstore *s, char id[41], const char *ref, const char *expected, unsigned flags,
                             const char *message, const char *const *pairs) {
    const char *paths[16];
    const void *contents[16];
    size_t sizes[16];
    int n = 0;
    for (; pairs[2 * n]; n++) {
        paths[n] = pairs[2 * n];
        contents[n] = pairs[2 * n + 1];
        sizes[n] = pairs[2 * n + 1] ? strlen(pairs[2 * n + 1]) : 0;
    }
    return hs_gitstore_write(s, id, ref, n, paths, contents, sizes, message, expected, flags);
}

static void expect_file(hs_gitstore *s, const char *rev, const char *path, const char *want) {
    void *data = NULL;
    size_t n = 0;
    if (hs_gitstore_read(s, &data, &n, rev, path) != HS_OK)
        fail_msg("read %s:%s: %s", rev, path, hs_last_error()->msg);
    assert_int_equal(n, strlen(want));
    assert_string_equal((const char *)data, want);
    hs_free(data);
}

// ---- records ----

static void test_gitstore_write_then_read_returns_the_files_and_git_sees_them(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    const char *paths[3] = {"run.json", "logs/train/metrics.csv", "empty"};
    const char bin[5] = {'a', '\0', 'b', '\n', '\xff'};
    const void *contents[3] = {"{\"lr\": 0.1}\n", bin, ""};
    size_t sizes[3] = {12, sizeof bin, 0};
    CHECK_OK(hs_gitstore_write(s, id, "refs/histops/runs/r1", 3, paths, contents, sizes, "run r1 started", NULL, 0));
    assert_int_equal(strlen(id), 40);

    expect_file(s, "refs/histops/runs/r1", "run.json", "{\"lr\": 0.1}\n");
    expect_file(s, id, "empty", "");
    void *data = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_read(s, &data, &n, "refs/histops/runs/r1", "logs/train/metrics.csv"));
    assert_int_equal(n, sizeof bin);
    assert_memory_equal(data, bin, sizeof bin);
    hs_free(data);

    // the git tool agrees: nested tree, the exact files, the message
    char out[4096];
    capture(out, sizeof out, "git -C '%s' ls-tree -r --name-only refs/histops/runs/r1", fx->repo);
    assert_string_equal(out, "empty\nlogs/train/metrics.csv\nrun.json");
    capture(out, sizeof out, "git -C '%s' log -1 --format=%%s refs/histops/runs/r1", fx->repo);
    assert_string_equal(out, "run r1 started");
    capture(out, sizeof out, "git -C '%s' rev-parse refs/histops/runs/r1", fx->repo);
    assert_string_equal(out, id);
    hs_gitstore_free(s);
}

static void test_gitstore_read_of_missing_file_or_ref_is_io_error_naming_it(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    CHECK_OK(write_texts(s, id, "refs/histops/runs/r1", NULL, 0, "m", (const char *[]){"run.json", "{}", NULL}));
    void *data = (void *)1;
    size_t n = 7;
    assert_int_equal(hs_gitstore_read(s, &data, &n, "refs/histops/runs/r1", "nope.json"), HS_ERR_IO);
    assert_null(data);
    assert_int_equal(n, 0);
    assert_non_null(strstr(hs_last_error()->msg, "no file 'nope.json'"));
    assert_int_equal(hs_gitstore_read(s, &data, &n, "refs/histops/runs/none", "run.json"), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "refs/histops/runs/none"));
    hs_gitstore_free(s);
}

static void test_gitstore_each_write_is_a_commit_on_top_of_the_previous_one(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id1[41], id2[41], id3[41];
    const char *ref = "refs/histops/runs/r2";
    CHECK_OK(write_texts(s, id1, ref, NULL, 0, "start", (const char *[]){"run.json", "{\"state\":\"running\"}", NULL}));
    CHECK_OK(write_texts(s, id2, ref, id1, 0, "epoch 1", (const char *[]){"run.json", "{\"epoch\":1}", NULL}));
    CHECK_OK(write_texts(s, id3, ref, "", 0, "done", (const char *[]){"run.json", "{\"state\":\"done\"}", NULL}));
    hs_gitstore_commit *log = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_log(s, &log, &n, ref, 0));
    assert_int_equal(n, 3);
    assert_string_equal(log[0].id, id3);
    assert_string_equal(log[1].id, id2);
    assert_string_equal(log[2].id, id1);
    assert_string_equal(log[0].message, "done");
    assert_string_equal(log[2].message, "start");
    assert_null(log[0].ref);
    assert_true(log[0].time >= log[2].time && log[0].time > 1600000000);
    hs_gitstore_commits_free(log, n);
    CHECK_OK(hs_gitstore_log(s, &log, &n, ref, 2));
    assert_int_equal(n, 2);
    hs_gitstore_commits_free(log, n);
    // older states stay readable through the history
    expect_file(s, id1, "run.json", "{\"state\":\"running\"}");
    char out[256];
    capture(out, sizeof out, "git -C '%s' rev-list --count %s", fx->repo, ref);
    assert_string_equal(out, "3");
    hs_gitstore_free(s);
}

static void test_gitstore_keep_tree_adds_replaces_and_removes_files(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    const char *ref = "refs/histops/runs/k";
    CHECK_OK(write_texts(s, id, ref, NULL, 0, "1", (const char *[]){"x", "1", "d/y", "2", "d/z", "3", NULL}));
    CHECK_OK(write_texts(s, id, ref, "", HS_GITSTORE_KEEP_TREE, "2",
                         (const char *[]){"x", NULL, "d/y", "22", "w/v", "4", NULL}));
    char out[1024];
    capture(out, sizeof out, "git -C '%s' ls-tree -r --name-only %s", fx->repo, ref);
    assert_string_equal(out, "d/y\nd/z\nw/v");
    expect_file(s, ref, "d/y", "22");
    // a file replaces a folder of the previous tree
    CHECK_OK(write_texts(s, id, ref, "", HS_GITSTORE_KEEP_TREE, "3", (const char *[]){"d", "file now", NULL}));
    capture(out, sizeof out, "git -C '%s' ls-tree -r --name-only %s", fx->repo, ref);
    assert_string_equal(out, "d\nw/v");
    // without the flag the tree is exactly the given files
    CHECK_OK(write_texts(s, id, ref, "", 0, "4", (const char *[]){"only", "o", NULL}));
    capture(out, sizeof out, "git -C '%s' ls-tree -r --name-only %s", fx->repo, ref);
    assert_string_equal(out, "only");
    hs_gitstore_free(s);
}

static void test_gitstore_write_leaves_work_tree_index_and_head_untouched(void **state) {
    fixture *fx = *state;
    char index_path[512], before[4096], after[4096], head_before[256], head_after[256];
    snprintf(index_path, sizeof index_path, "%s/.git/index", fx->repo);
    write_text(strcat(strcpy((char[512]){0}, fx->repo), "/a.txt"), "hello, changed\n");  // dirty work tree
    sh("git -C '%s' add a.txt && printf 'x' > '%s/untracked.txt'", fx->repo, fx->repo);
    struct stat st0, st1;
    // GIT_OPTIONAL_LOCKS=0: git status must not refresh (rewrite) the index itself
    capture(before, sizeof before, "cd '%s' && GIT_OPTIONAL_LOCKS=0 git status --porcelain && ls -la --time-style=full-iso . sub && sha256sum .git/index",
            fx->repo);
    capture(head_before, sizeof head_before, "cat '%s/.git/HEAD'; git -C '%s' rev-parse HEAD", fx->repo, fx->repo);
    assert_int_equal(stat(index_path, &st0), 0);

    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    CHECK_OK(write_texts(s, id, "refs/histops/runs/r", NULL, 0, "m", (const char *[]){"a.txt", "not the work tree", NULL}));
    hs_gitstore_head_info h;
    CHECK_OK(hs_gitstore_head(s, &h));
    int dirty = 0;
    CHECK_OK(hs_gitstore_dirty(s, &dirty, NULL, NULL));
    hs_gitstore_free(s);

    assert_int_equal(stat(index_path, &st1), 0);
    capture(after, sizeof after, "cd '%s' && GIT_OPTIONAL_LOCKS=0 git status --porcelain && ls -la --time-style=full-iso . sub && sha256sum .git/index",
            fx->repo);
    capture(head_after, sizeof head_after, "cat '%s/.git/HEAD'; git -C '%s' rev-parse HEAD", fx->repo, fx->repo);
    assert_string_equal(before, after);
    assert_string_equal(head_before, head_after);
    assert_true(st0.st_mtim.tv_sec == st1.st_mtim.tv_sec && st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec);
}

static void test_gitstore_records_survive_gc_prune_and_clean(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id1[41], id2[41];
    CHECK_OK(write_texts(s, id1, "refs/histops/runs/g", NULL, 0, "1", (const char *[]){"run.json", "first", NULL}));
    CHECK_OK(write_texts(s, id2, "refs/histops/runs/g", id1, 0, "2", (const char *[]){"run.json", "second", NULL}));
    hs_gitstore_free(s);
    sh("cd '%s' && printf junk > junk.txt && git gc -q --prune=now && git clean -q -fdx && git fsck --no-dangling --no-progress",
       fx->repo);
    s = open_store(fx->repo);
    expect_file(s, "refs/histops/runs/g", "run.json", "second");
    expect_file(s, id1, "run.json", "first");  // history kept too
    // refs are now packed; writing and listing still work
    char id3[41];
    CHECK_OK(write_texts(s, id3, "refs/histops/runs/g", id2, 0, "3", (const char *[]){"run.json", "third", NULL}));
    hs_gitstore_commit *list = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_list(s, &list, &n, "refs/histops/runs/"));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, id3);
    hs_gitstore_commits_free(list, n);
    hs_gitstore_free(s);
}

static void test_gitstore_records_round_trip_through_push_and_fetch(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char a[41], b[41], b2[41];
    CHECK_OK(write_texts(s, a, "refs/histops/runs/a", NULL, 0, "a", (const char *[]){"run.json", "{\"a\":1}", NULL}));
    CHECK_OK(write_texts(s, b, "refs/histops/runs/b", NULL, 0, "b", (const char *[]){"run.json", "{\"b\":1}", "w/x", "y", NULL}));
    CHECK_OK(write_texts(s, b2, "refs/histops/runs/b", b, 0, "b2", (const char *[]){"run.json", "{\"b\":2}", NULL}));
    hs_gitstore_free(s);
    sh("cd '%s' && git init -q --bare -b main bare.git && git -C repo push -q ../bare.git main 'refs/histops/*:refs/histops/*' && "
       "git clone -q bare.git clone && git -C clone fetch -q origin 'refs/histops/*:refs/histops/*'",
       fx->dir);
    char clone[400];
    snprintf(clone, sizeof clone, "%s/clone", fx->dir);
    s = open_store(clone);
    hs_gitstore_commit *list = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_list(s, &list, &n, "refs/histops/runs/"));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].ref, "refs/histops/runs/a");
    assert_string_equal(list[0].id, a);
    assert_string_equal(list[1].ref, "refs/histops/runs/b");
    assert_string_equal(list[1].id, b2);
    assert_string_equal(list[1].message, "b2");
    hs_gitstore_commits_free(list, n);
    expect_file(s, "refs/histops/runs/b", "run.json", "{\"b\":2}");
    expect_file(s, b, "w/x", "y");
    CHECK_OK(hs_gitstore_log(s, &list, &n, "refs/histops/runs/b", 0));
    assert_int_equal(n, 2);
    hs_gitstore_commits_free(list, n);
    hs_gitstore_free(s);
}

// ---- repository states ----

static void test_gitstore_unborn_head_reports_unborn_and_still_records(void **state) {
    fixture *fx = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/fresh", fx->dir);
    sh("git init -q -b trunk '%s' && mkdir '%s/deep' && printf 'x\\n' > '%s/t.txt' && git -C '%s' add t.txt", path,
       path, path, path);
    char deep[420];
    snprintf(deep, sizeof deep, "%s/deep", path);
    hs_gitstore *s = open_store(deep);  // from a subfolder
    hs_gitstore_head_info h;
    CHECK_OK(hs_gitstore_head(s, &h));
    assert_true(h.unborn);
    assert_false(h.detached);
    assert_string_equal(h.commit, "");
    assert_string_equal(h.branch, "trunk");
    char id[41];
    assert_int_equal(hs_gitstore_resolve(s, id, "HEAD"), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "no commits yet"));
    // dirty works: the staged file counts as added
    int dirty = 0;
    char *patch = NULL;
    CHECK_OK(hs_gitstore_dirty(s, &dirty, &patch, NULL));
    assert_true(dirty);
    assert_non_null(strstr(patch, "+x"));
    hs_free(patch);
    // run refs do not need HEAD
    CHECK_OK(write_texts(s, id, "refs/histops/runs/u", NULL, 0, "m", (const char *[]){"run.json", "{}", NULL}));
    expect_file(s, "refs/histops/runs/u", "run.json", "{}");
    CHECK_OK(hs_gitstore_head(s, &h));
    assert_true(h.unborn);  // and HEAD is still unborn
    hs_gitstore_free(s);
}

static void test_gitstore_detached_head_reports_commit_without_branch(void **state) {
    fixture *fx = *state;
    char want[64];
    capture(want, sizeof want, "cd '%s' && git checkout -q --detach && git rev-parse HEAD", fx->repo);
    hs_gitstore *s = open_store(fx->repo);
    hs_gitstore_head_info h;
    CHECK_OK(hs_gitstore_head(s, &h));
    assert_true(h.detached);
    assert_false(h.unborn);
    assert_string_equal(h.branch, "");
    assert_string_equal(h.commit, want);
    char id[41];
    CHECK_OK(hs_gitstore_resolve(s, id, "HEAD"));
    assert_string_equal(id, want);
    hs_gitstore_free(s);
}

static void test_gitstore_linked_worktree_shares_runs_and_artifacts(void **state) {
    fixture *fx = *state;
    sh("git -C '%s' worktree add -q -b side ../wt", fx->repo);
    char wt[400];
    snprintf(wt, sizeof wt, "%s/wt", fx->dir);
    hs_gitstore *main_s = open_store(fx->repo), *wt_s = open_store(wt);
    assert_string_equal(hs_gitstore_gitdir(main_s), hs_gitstore_gitdir(wt_s));
    assert_string_equal(hs_gitstore_workdir(wt_s), wt);
    hs_gitstore_head_info h;
    CHECK_OK(hs_gitstore_head(wt_s, &h));
    assert_string_equal(h.branch, "side");  // the worktree's own HEAD
    CHECK_OK(hs_gitstore_head(main_s, &h));
    assert_string_equal(h.branch, "main");
    char id[41];
    CHECK_OK(write_texts(wt_s, id, "refs/histops/runs/from-wt", NULL, 0, "m", (const char *[]){"run.json", "wt", NULL}));
    expect_file(main_s, "refs/histops/runs/from-wt", "run.json", "wt");
    CHECK_OK(write_texts(main_s, id, "refs/histops/runs/from-main", NULL, 0, "m", (const char *[]){"run.json", "main", NULL}));
    hs_gitstore_commit *list = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_list(wt_s, &list, &n, "refs/histops/runs/"));
    assert_int_equal(n, 2);
    hs_gitstore_commits_free(list, n);
    char d1[4096], d2[4096];
    unsetenv("HISTOPS_ARTIFACTS");
    CHECK_OK(hs_gitstore_artifact_dir(main_s, d1, sizeof d1));
    CHECK_OK(hs_gitstore_artifact_dir(wt_s, d2, sizeof d2));
    assert_string_equal(d1, d2);
    assert_non_null(strstr(d1, "/repo/.git/histops/artifacts"));
    hs_gitstore_free(main_s);
    hs_gitstore_free(wt_s);
}

static void test_gitstore_open_outside_a_repository_fails_with_clear_message(void **state) {
    fixture *fx = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/plain", fx->dir);
    assert_int_equal(mkdir(path, 0777), 0);
    // keep discovery from walking above the temp folder (in case /tmp lives inside a repository)
    setenv("GIT_CEILING_DIRECTORIES", fx->dir, 1);
    hs_gitstore *s = (hs_gitstore *)&s;
    assert_int_equal(hs_gitstore_open(&s, path), HS_ERR_STATE);
    unsetenv("GIT_CEILING_DIRECTORIES");
    assert_null(s);
    assert_non_null(strstr(hs_last_error()->msg, "not inside a git repository"));
    assert_non_null(strstr(hs_last_error()->msg, path));
    assert_non_null(strstr(hs_last_error()->msg, "git init"));
    snprintf(path, sizeof path, "%s/does-not-exist", fx->dir);
    assert_int_equal(hs_gitstore_open(&s, path), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "does-not-exist"));
    hs_gitstore_free(NULL);
}

static void test_gitstore_dirty_reports_modified_tracked_file_with_diff_and_ignores_untracked(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    int dirty = 1;
    char *patch = NULL;
    size_t n = 99;
    write_text(strcat(strcpy((char[512]){0}, fx->repo), "/new-untracked.txt"), "u\n");
    CHECK_OK(hs_gitstore_dirty(s, &dirty, &patch, &n));
    assert_false(dirty);
    assert_int_equal(n, 0);
    assert_string_equal(patch, "");
    hs_free(patch);
    write_text(strcat(strcpy((char[512]){0}, fx->repo), "/sub/b.txt"), "one\nTWO\n");
    CHECK_OK(hs_gitstore_dirty(s, &dirty, &patch, &n));
    assert_true(dirty);
    assert_int_equal(n, strlen(patch));
    assert_non_null(strstr(patch, "--- a/sub/b.txt"));
    assert_non_null(strstr(patch, "-two"));
    assert_non_null(strstr(patch, "+TWO"));
    assert_null(strstr(patch, "new-untracked"));
    // the same text as `git diff HEAD`
    char want[4096];
    capture(want, sizeof want, "git -C '%s' diff HEAD", fx->repo);
    assert_non_null(strstr(patch, strstr(want, "@@")));
    hs_free(patch);
    // a staged change with the work tree restored to HEAD's content is clean again
    sh("cd '%s' && git add sub/b.txt && printf 'one\\ntwo\\n' > sub/b.txt && git add sub/b.txt", fx->repo);
    CHECK_OK(hs_gitstore_dirty(s, &dirty, NULL, NULL));
    assert_false(dirty);
    // staged but not in the work tree: still dirty
    sh("cd '%s' && printf 'staged\\n' > a.txt && git add a.txt && printf 'hello\\n' > a.txt", fx->repo);
    CHECK_OK(hs_gitstore_dirty(s, &dirty, NULL, NULL));
    assert_true(dirty);
    hs_gitstore_free(s);
}

static void test_gitstore_diff_resolve_ancestry_and_branch_history(void **state) {
    fixture *fx = *state;
    char c1[64], c2[64], c3[64];
    capture(c1, sizeof c1, "git -C '%s' rev-parse HEAD", fx->repo);
    capture(c2, sizeof c2, "cd '%s' && printf 'hello\\nworld\\n' > a.txt && git commit -q -am second && git rev-parse HEAD",
            fx->repo);
    capture(c3, sizeof c3, "cd '%s' && git checkout -q -b other && git rm -q sub/b.txt && git commit -q -m third && "
            "git rev-parse HEAD && git checkout -q main", fx->repo);
    hs_gitstore *s = open_store(fx->repo);
    char *patch = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_diff_commits(s, &patch, &n, c1, "main"));
    assert_non_null(strstr(patch, "+world"));
    hs_free(patch);
    CHECK_OK(hs_gitstore_diff_commits(s, &patch, &n, "main", "other"));
    assert_non_null(strstr(patch, "deleted file"));
    hs_free(patch);
    assert_int_equal(hs_gitstore_diff_commits(s, &patch, &n, "main", "no-such-branch"), HS_ERR_IO);
    assert_null(patch);

    char id[41];
    CHECK_OK(hs_gitstore_resolve(s, id, "main~1"));
    assert_string_equal(id, c1);
    CHECK_OK(hs_gitstore_resolve(s, id, "other"));
    assert_string_equal(id, c3);
    char short_id[8];
    snprintf(short_id, sizeof short_id, "%.7s", c2);
    CHECK_OK(hs_gitstore_resolve(s, id, short_id));
    assert_string_equal(id, c2);
    assert_int_equal(hs_gitstore_resolve(s, id, "nope"), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "'nope'"));

    int yes = 0;
    CHECK_OK(hs_gitstore_is_ancestor(s, &yes, c1, "other"));
    assert_true(yes);
    CHECK_OK(hs_gitstore_is_ancestor(s, &yes, "other", "main"));
    assert_false(yes);
    CHECK_OK(hs_gitstore_is_ancestor(s, &yes, "main", "main"));
    assert_true(yes);

    hs_gitstore_commit *h = NULL;
    CHECK_OK(hs_gitstore_log(s, &h, &n, "other", 0));
    assert_int_equal(n, 3);
    assert_string_equal(h[0].id, c3);
    assert_string_equal(h[1].id, c2);
    assert_string_equal(h[2].id, c1);
    assert_string_equal(h[0].message, "third\n");
    hs_gitstore_commits_free(h, n);
    hs_gitstore_free(s);
}

// ---- compare-and-swap ----

static void test_gitstore_write_with_stale_expected_fails_and_leaves_ref_unchanged(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    const char *ref = "refs/histops/models/m/aliases/prod";
    char v1[41], v2[41], v3[41];
    CHECK_OK(write_texts(s, v1, ref, NULL, 0, "promote v1", (const char *[]){"alias.json", "v1", NULL}));
    CHECK_OK(write_texts(s, v2, ref, v1, 0, "promote v2", (const char *[]){"alias.json", "v2", NULL}));
    // a second promoter still believes the alias is at v1
    assert_int_equal(write_texts(s, v3, ref, v1, 0, "promote v3", (const char *[]){"alias.json", "v3", NULL}),
                     HS_ERR_STATE);
    assert_string_equal(v3, "");
    char want[256];
    snprintf(want, sizeof want, "ref %s moved concurrently (expected %s, found %s)", ref, v1, v2);
    assert_string_equal(hs_last_error()->msg, want);
    // "must not exist" on an existing ref fails the same way
    assert_int_equal(write_texts(s, v3, ref, NULL, 0, "create", (const char *[]){"alias.json", "v3", NULL}),
                     HS_ERR_STATE);
    assert_non_null(strstr(hs_last_error()->msg, "moved concurrently (expected no ref"));
    char id[41];
    CHECK_OK(hs_gitstore_resolve(s, id, ref));
    assert_string_equal(id, v2);
    expect_file(s, ref, "alias.json", "v2");
    // expected_old for a ref that does not exist
    assert_int_equal(write_texts(s, v3, "refs/histops/x", v1, 0, "m", (const char *[]){"f", "1", NULL}), HS_ERR_STATE);
    assert_non_null(strstr(hs_last_error()->msg, "found no ref"));
    hs_gitstore_free(s);
}

static void test_gitstore_rejects_refs_outside_namespace_bad_paths_and_bad_ids(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    const char *files[] = {"f", "1", NULL};
    assert_int_equal(write_texts(s, id, "refs/heads/main", "", 0, "m", files), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "outside refs/histops/"));
    assert_int_equal(write_texts(s, id, "HEAD", "", 0, "m", files), HS_ERR_ARG);
    assert_int_equal(write_texts(s, id, "refs/histops/bad..name", "", 0, "m", files), HS_ERR_ARG);
    assert_int_equal(write_texts(s, id, "refs/histops/", "", 0, "m", files), HS_ERR_ARG);
    const char *bad_paths[] = {"", "/abs", "a//b", "a/", "../up", "a/./b", ".git/config", "x/.GIT"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof *bad_paths; i++) {
        assert_int_equal(write_texts(s, id, "refs/histops/runs/p", "", 0, "m", (const char *[]){bad_paths[i], "1", NULL}),
                         HS_ERR_ARG);
        assert_non_null(strstr(hs_last_error()->msg, "invalid file path"));
    }
    assert_int_equal(write_texts(s, id, "refs/histops/runs/p", "abc", 0, "m", files), HS_ERR_ARG);
    assert_int_equal(write_texts(s, id, "refs/histops/runs/p", "", 0, "m", (const char *[]){"f", NULL, NULL}), HS_ERR_ARG);
    assert_int_equal(hs_gitstore_delete_ref(s, "refs/heads/main", ""), HS_ERR_ARG);
    // nothing was created, main is where it was
    hs_gitstore_commit *list = NULL;
    size_t n = 9;
    CHECK_OK(hs_gitstore_list(s, &list, &n, "refs/histops/"));
    assert_int_equal(n, 0);
    hs_gitstore_commits_free(list, n);
    hs_gitstore_free(s);
}

static void test_gitstore_delete_ref_checks_expected_value(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char v1[41], v2[41];
    const char *ref = "refs/histops/runs/d";
    CHECK_OK(write_texts(s, v1, ref, NULL, 0, "1", (const char *[]){"f", "1", NULL}));
    CHECK_OK(write_texts(s, v2, ref, v1, 0, "2", (const char *[]){"f", "2", NULL}));
    assert_int_equal(hs_gitstore_delete_ref(s, ref, v1), HS_ERR_STATE);
    assert_non_null(strstr(hs_last_error()->msg, "moved concurrently"));
    CHECK_OK(hs_gitstore_delete_ref(s, ref, v2));
    char id[41];
    assert_int_equal(hs_gitstore_resolve(s, id, ref), HS_ERR_IO);
    assert_int_equal(hs_gitstore_delete_ref(s, ref, NULL), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "does not exist"));
    // a packed ref deletes too
    CHECK_OK(write_texts(s, v1, ref, NULL, 0, "1", (const char *[]){"f", "1", NULL}));
    sh("git -C '%s' pack-refs --all", fx->repo);
    CHECK_OK(hs_gitstore_delete_ref(s, ref, ""));
    char out[64];
    capture(out, sizeof out, "git -C '%s' for-each-ref refs/histops | wc -l", fx->repo);
    assert_string_equal(out, "0");
    hs_gitstore_free(s);
}

// ---- several processes ----

// Child side: plain checks and _exit (cmocka's asserts belong to the parent).
static int child_write_many(const char *repo, const char *ref, int count, const char *expected_mode) {
    hs_gitstore *s = NULL;
    if (hs_gitstore_open(&s, repo) != HS_OK)
        return 10;
    char id[41], prev[41] = "";
    for (int i = 0; i < count; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"pid\": %d, \"i\": %d}", (int)getpid(), i);
        const char *expected = strcmp(expected_mode, "chain") == 0 ? (i == 0 ? NULL : prev) : "";
        if (write_texts(s, id, ref, expected, 0, "rec", (const char *[]){"run.json", body, NULL}) != HS_OK) {
            fprintf(stderr, "child %d: %s\n", (int)getpid(), hs_last_error()->msg);
            hs_gitstore_free(s);
            return 11;
        }
        memcpy(prev, id, sizeof prev);
    }
    hs_gitstore_free(s);
    return 0;
}

static int wait_child(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void test_gitstore_two_processes_writing_different_refs_all_succeed(void **state) {
    fixture *fx = *state;
    unsetenv("HISTOPS_GIT_FSYNC");  // this one runs with the default: fsync on
    double t0 = now_s();
    pid_t p[2];
    for (int k = 0; k < 2; k++) {
        p[k] = fork();
        assert_true(p[k] >= 0);
        if (p[k] == 0)
            _exit(child_write_many(fx->repo, k == 0 ? "refs/histops/runs/p0" : "refs/histops/runs/p1", 20, "chain"));
    }
    assert_int_equal(wait_child(p[0]), 0);
    assert_int_equal(wait_child(p[1]), 0);
    double dt = now_s() - t0;
    print_message("2 processes x 20 records with fsync: %.3f s (%.1f ms per record)\n", dt, 1e3 * dt / 40);
    setenv("HISTOPS_GIT_FSYNC", "0", 1);
    hs_gitstore *s = open_store(fx->repo);
    for (int k = 0; k < 2; k++) {
        hs_gitstore_commit *log = NULL;
        size_t n = 0;
        CHECK_OK(hs_gitstore_log(s, &log, &n, k == 0 ? "refs/histops/runs/p0" : "refs/histops/runs/p1", 0));
        assert_int_equal(n, 20);
        hs_gitstore_commits_free(log, n);
    }
    hs_gitstore_free(s);
    sh("git -C '%s' fsck --no-dangling --no-progress", fx->repo);
}

static void test_gitstore_two_processes_appending_to_one_ref_both_land(void **state) {
    fixture *fx = *state;
    pid_t p[2];
    for (int k = 0; k < 2; k++) {
        p[k] = fork();
        assert_true(p[k] >= 0);
        if (p[k] == 0)
            _exit(child_write_many(fx->repo, "refs/histops/runs/shared", 15, "any"));
    }
    assert_int_equal(wait_child(p[0]), 0);
    assert_int_equal(wait_child(p[1]), 0);
    hs_gitstore *s = open_store(fx->repo);
    hs_gitstore_commit *log = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_log(s, &log, &n, "refs/histops/runs/shared", 0));
    assert_int_equal(n, 30);  // no update lost: each one is a commit on top of the previous
    hs_gitstore_commits_free(log, n);
    hs_gitstore_free(s);
}

// Two processes released together write ref with expected_old (NULL: create); *r0, *r1 get their
// exit codes: 0 won, 1 lost with "moved concurrently", other = unexpected error.
static void race_once(const char *repo, const char *ref, const char *expected, int round, int *r0, int *r1) {
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t p[2];
    for (int k = 0; k < 2; k++) {
        p[k] = fork();
        assert_true(p[k] >= 0);
        if (p[k] == 0) {
            close(go[1]);
            hs_gitstore *cs = NULL;
            if (hs_gitstore_open(&cs, repo) != HS_OK)
                _exit(10);
            char c;
            if (read(go[0], &c, 1) != 1)  // start together
                _exit(12);
            char id[41], body[32];
            snprintf(body, sizeof body, "round %d by %d", round, k);
            hs_status st = write_texts(cs, id, ref, expected, 0, body, (const char *[]){"alias.json", body, NULL});
            int code = st == HS_OK ? 0 : strstr(hs_last_error()->msg, "moved concurrently") ? 1 : 2;
            if (code == 2)
                fprintf(stderr, "%s\n", hs_last_error()->msg);
            hs_gitstore_free(cs);
            _exit(code);
        }
    }
    close(go[0]);
    usleep(20000);  // both children are open and waiting
    assert_int_equal(write(go[1], "gg", 2), 2);
    close(go[1]);
    *r0 = wait_child(p[0]);
    *r1 = wait_child(p[1]);
}

static void test_gitstore_two_processes_racing_a_cas_exactly_one_wins(void **state) {
    fixture *fx = *state;
    const char *ref = "refs/histops/models/m/aliases/prod";
    hs_gitstore *s = open_store(fx->repo);
    char base[41];
    CHECK_OK(write_texts(s, base, ref, NULL, 0, "v0", (const char *[]){"alias.json", "v0", NULL}));
    hs_gitstore_free(s);
    for (int round = 0; round < 8; round++) {
        int r0, r1;
        race_once(fx->repo, ref, base, round, &r0, &r1);
        assert_true((r0 == 0 && r1 == 1) || (r0 == 1 && r1 == 0));
        s = open_store(fx->repo);
        hs_gitstore_commit *log = NULL;
        size_t n = 0;
        CHECK_OK(hs_gitstore_log(s, &log, &n, ref, 0));
        assert_int_equal(n, (size_t)round + 2);  // exactly one move per round, parent = previous
        char want[32];
        snprintf(want, sizeof want, "round %d by %d", round, r0 == 0 ? 0 : 1);
        expect_file(s, ref, "alias.json", want);
        memcpy(base, log[0].id, sizeof base);
        hs_gitstore_commits_free(log, n);
        hs_gitstore_free(s);
    }
}

// Regression: git_reference_create(force=0) checks existence before taking the ref's lock, so two
// creators could both "win" (the second silently replacing the first). Creation now compares
// against the zero id under the lock. The window is microseconds wide: with the old code these 16
// rounds failed about one run in five.
static void test_gitstore_two_processes_racing_to_create_a_ref_exactly_one_wins(void **state) {
    fixture *fx = *state;
    for (int round = 0; round < 16; round++) {
        char ref[64];
        snprintf(ref, sizeof ref, "refs/histops/models/m/versions/%d", round + 1);
        int r0, r1;
        race_once(fx->repo, ref, NULL, round, &r0, &r1);
        assert_true((r0 == 0 && r1 == 1) || (r0 == 1 && r1 == 0));
        hs_gitstore *s = open_store(fx->repo);
        hs_gitstore_commit *log = NULL;
        size_t n = 0;
        CHECK_OK(hs_gitstore_log(s, &log, &n, ref, 0));
        assert_int_equal(n, 1);
        char want[32];
        snprintf(want, sizeof want, "round %d by %d", round, r0 == 0 ? 0 : 1);
        expect_file(s, ref, "alias.json", want);
        hs_gitstore_commits_free(log, n);
        hs_gitstore_free(s);
    }
}

static void test_gitstore_writer_killed_with_sigkill_leaves_a_complete_record(void **state) {
    fixture *fx = *state;
    const char *ref = "refs/histops/runs/killed";
    for (int round = 0; round < 4; round++) {
        pid_t p = fork();
        assert_true(p >= 0);
        if (p == 0) {
            hs_gitstore *cs = NULL;
            if (hs_gitstore_open(&cs, fx->repo) != HS_OK)
                _exit(10);
            static char big[64 * 1024];
            for (int i = 0;; i++) {
                // a record whose two files must agree: a torn record would show a mismatch
                memset(big, 'a' + i % 26, sizeof big - 1);
                char meta[64];
                snprintf(meta, sizeof meta, "%d %c", i, 'a' + i % 26);
                char id[41];
                if (write_texts(cs, id, ref, "", 0, "tick", (const char *[]){"meta", meta, "weights/big", big, NULL}) !=
                    HS_OK)
                    _exit(11);
            }
        }
        usleep(30000 + 25000 * (useconds_t)round);
        kill(p, SIGKILL);
        assert_int_equal(wait_child(p), 100 + SIGKILL);
        hs_gitstore *s = open_store(fx->repo);
        char id[41];
        if (hs_gitstore_resolve(s, id, ref) == HS_OK) {
            void *meta = NULL, *big = NULL;
            size_t nm = 0, nb = 0;
            CHECK_OK(hs_gitstore_read(s, &meta, &nm, ref, "meta"));
            CHECK_OK(hs_gitstore_read(s, &big, &nb, ref, "weights/big"));
            char c = 0;
            int i = -1;
            assert_int_equal(sscanf(meta, "%d %c", &i, &c), 2);
            assert_int_equal(nb, 64 * 1024 - 1);
            assert_int_equal(((char *)big)[0], c);
            assert_int_equal(((char *)big)[nb - 1], c);
            hs_free(meta);
            hs_free(big);
        }
        // the record can be updated again (e.g. marked as killed), even when the kill left the
        // ref's lock file behind; then it is deleted so that the next round starts afresh
        char lock[512];
        snprintf(lock, sizeof lock, "%s/.git/%s.lock", fx->repo, ref);
        if (access(lock, F_OK) == 0)
            print_message("round %d: the kill left %s\n", round, lock);
        CHECK_OK(write_texts(s, id, ref, "", 0, "killed", (const char *[]){"meta", "0 z", NULL}));
        CHECK_OK(hs_gitstore_delete_ref(s, ref, id));
        hs_gitstore_free(s);
    }
    sh("git -C '%s' fsck --no-dangling --no-progress 2>/dev/null", fx->repo);
}

static void test_gitstore_lock_left_by_a_killed_writer_is_broken_once_stale(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id[41], id2[41];
    const char *ref = "refs/histops/runs/l";
    CHECK_OK(write_texts(s, id, ref, NULL, 0, "1", (const char *[]){"f", "1", NULL}));
    // what a writer killed mid-update leaves: an old lock goes at once
    sh("touch -d '1 minute ago' '%s/.git/%s.lock'", fx->repo, ref);
    double t0 = now_s();
    CHECK_OK(write_texts(s, id2, ref, id, 0, "2", (const char *[]){"f", "2", NULL}));
    assert_true(now_s() - t0 < 1.0);
    // a fresh one is waited for (it could belong to a live writer) and broken once 2 s old
    sh("touch '%s/.git/%s.lock'", fx->repo, ref);
    t0 = now_s();
    CHECK_OK(write_texts(s, id, ref, id2, 0, "3", (const char *[]){"f", "3", NULL}));
    double dt = now_s() - t0;
    assert_true(dt > 1.5 && dt < 5.0);
    expect_file(s, ref, "f", "3");
    hs_gitstore_commit *log = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_log(s, &log, &n, ref, 0));
    assert_int_equal(n, 3);
    hs_gitstore_commits_free(log, n);
    // delete breaks a stale lock too
    sh("touch -d '1 minute ago' '%s/.git/%s.lock'", fx->repo, ref);
    CHECK_OK(hs_gitstore_delete_ref(s, ref, id));
    hs_gitstore_free(s);
}

// ---- listing ----

static void test_gitstore_list_of_thousands_of_refs_is_fast_and_sorted(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    CHECK_OK(write_texts(s, id, "refs/histops/runs/seed", NULL, 0, "seed", (const char *[]){"run.json", "{}", NULL}));
    CHECK_OK(write_texts(s, id, "refs/histops/models/m/versions/1", NULL, 0, "v", (const char *[]){"m.json", "{}", NULL}));
    char cmds[512];
    snprintf(cmds, sizeof cmds, "%s/refs.txt", fx->dir);
    FILE *f = fopen(cmds, "w");
    assert_non_null(f);
    const int nrefs = 2000;
    for (int i = 0; i < nrefs; i++)
        fprintf(f, "create refs/histops/runs/r%05d %s\n", (i * 7919) % nrefs, id);
    fclose(f);
    sh("git -C '%s' update-ref --stdin < '%s'", fx->repo, cmds);
    for (int packed = 0; packed < 2; packed++) {
        if (packed)
            sh("git -C '%s' pack-refs --all", fx->repo);
        hs_gitstore_commit *list = NULL;
        size_t n = 0;
        double t0 = now_s();
        CHECK_OK(hs_gitstore_list(s, &list, &n, "refs/histops/runs/"));
        double dt = now_s() - t0;
        print_message("list of %zu refs (%s): %.1f ms\n", n, packed ? "packed" : "loose", 1e3 * dt);
        assert_int_equal(n, (size_t)nrefs + 1);
        assert_string_equal(list[0].ref, "refs/histops/runs/r00000");
        assert_string_equal(list[nrefs - 1].ref, "refs/histops/runs/r01999");
        assert_string_equal(list[nrefs].ref, "refs/histops/runs/seed");
        for (size_t i = 1; i < n; i++)
            assert_true(strcmp(list[i - 1].ref, list[i].ref) < 0);
        assert_true(dt < 2.0);
        hs_gitstore_commits_free(list, n);
        CHECK_OK(hs_gitstore_list(s, &list, &n, "refs/histops/models/"));
        assert_int_equal(n, 1);
        hs_gitstore_commits_free(list, n);
    }
    hs_gitstore_commit *list = NULL;
    size_t n = 0;
    assert_int_equal(hs_gitstore_list(s, &list, &n, "refs/histops/*"), HS_ERR_ARG);
    hs_gitstore_free(s);
}

static void test_gitstore_list_and_log_survive_every_failed_allocation(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    for (int i = 0; i < 20; i++) {
        char ref[64];
        snprintf(ref, sizeof ref, "refs/histops/runs/a%02d", i);
        CHECK_OK(write_texts(s, id, ref, NULL, 0, "m", (const char *[]){"f", "1", NULL}));
        CHECK_OK(write_texts(s, id, "refs/histops/runs/a00", "", 0, "m", (const char *[]){"f", "2", NULL}));
    }
    for (uint64_t k = 1;; k++) {
        hs_gitstore_commit *list = NULL;
        size_t n = 0;
        hs_alloc_fail_after(k);
        hs_status st = hs_gitstore_list(s, &list, &n, "refs/histops/");
        hs_alloc_fail_after(0);
        if (st == HS_OK) {
            assert_int_equal(n, 20);
            hs_gitstore_commits_free(list, n);
            break;
        }
        assert_int_equal(st, HS_ERR_NOMEM);
        assert_null(list);
    }
    for (uint64_t k = 1;; k++) {
        hs_gitstore_commit *log = NULL;
        size_t n = 0;
        hs_alloc_fail_after(k);
        hs_status st = hs_gitstore_log(s, &log, &n, "refs/histops/runs/a00", 0);
        hs_alloc_fail_after(0);
        if (st == HS_OK) {
            assert_int_equal(n, 21);
            hs_gitstore_commits_free(log, n);
            break;
        }
        assert_int_equal(st, HS_ERR_NOMEM);
    }
    hs_gitstore_free(s);
}

static void test_gitstore_commits_carry_configured_identity_or_fallback(void **state) {
    fixture *fx = *state;
    sh("git -C '%s' config user.name 'Ada Lovelace' && git -C '%s' config user.email ada@example.org", fx->repo, fx->repo);
    hs_gitstore *s = open_store(fx->repo);
    char id[41];
    CHECK_OK(write_texts(s, id, "refs/histops/runs/who", NULL, 0, "why: promote", (const char *[]){"f", "1", NULL}));
    hs_gitstore_commit *log = NULL;
    size_t n = 0;
    CHECK_OK(hs_gitstore_log(s, &log, &n, "refs/histops/runs/who", 1));
    assert_string_equal(log[0].author, "Ada Lovelace");
    assert_string_equal(log[0].email, "ada@example.org");
    assert_string_equal(log[0].message, "why: promote");
    assert_true(llabs(log[0].time - (int64_t)time(NULL)) < 60);
    hs_gitstore_commits_free(log, n);
    hs_gitstore_free(s);

    // no identity anywhere (a bare CI machine): libgit2 re-reads HOME when it is initialised
    // again, which happens here because no store is open
    sh("git -C '%s' config --unset user.name && git -C '%s' config --unset user.email", fx->repo, fx->repo);
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *xdg = getenv("XDG_CONFIG_HOME") ? strdup(getenv("XDG_CONFIG_HOME")) : NULL;
    setenv("HOME", fx->dir, 1);
    setenv("XDG_CONFIG_HOME", fx->dir, 1);
    s = open_store(fx->repo);
    hs_status st = write_texts(s, id, "refs/histops/runs/who2", NULL, 0, "m", (const char *[]){"f", "1", NULL});
    if (st == HS_OK)
        st = hs_gitstore_log(s, &log, &n, "refs/histops/runs/who2", 1);
    hs_gitstore_free(s);
    if (home)
        setenv("HOME", home, 1);
    else
        unsetenv("HOME");
    if (xdg)
        setenv("XDG_CONFIG_HOME", xdg, 1);
    else
        unsetenv("XDG_CONFIG_HOME");
    free(home);
    free(xdg);
    CHECK_OK(st);
    // /etc/gitconfig could still name someone; without it the fallback identity is used
    if (access("/etc/gitconfig", F_OK) != 0) {
        assert_string_equal(log[0].author, "histops");
        assert_string_equal(log[0].email, "histops@localhost");
    }
    hs_gitstore_commits_free(log, n);
}

// ---- artifacts ----

static void test_artifact_put_is_idempotent_content_addressed_and_verifies(void **state) {
    fixture *fx = *state;
    char dir[400], sha[65], sha2[65], sha3[65], path[4096];
    snprintf(dir, sizeof dir, "%s/artifacts", fx->dir);
    const char *content = "weights: 0.25 0.5\n";
    CHECK_OK(hs_artifact_put(sha, dir, NULL, content, strlen(content)));
    char want[128];
    capture(want, sizeof want, "printf 'weights: 0.25 0.5\\n' | sha256sum | cut -d' ' -f1");
    assert_string_equal(sha, want);
    CHECK_OK(hs_artifact_path(path, sizeof path, dir, sha));
    char expect_path[4096];
    snprintf(expect_path, sizeof expect_path, "%s/sha256/%.2s/%s", dir, sha, sha + 2);
    assert_string_equal(path, expect_path);
    struct stat st0, st1;
    assert_int_equal(stat(path, &st0), 0);
    assert_int_equal(st0.st_mode & 0222, 0);  // read-only
    // identical content again, and from a file: same name, not rewritten
    char src[512];
    snprintf(src, sizeof src, "%s/w.bin", fx->dir);
    write_text(src, content);
    CHECK_OK(hs_artifact_put(sha2, dir, NULL, content, strlen(content)));
    CHECK_OK(hs_artifact_put(sha3, dir, src, NULL, 0));
    assert_string_equal(sha2, sha);
    assert_string_equal(sha3, sha);
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(st0.st_ino, st1.st_ino);
    char out[256];
    capture(out, sizeof out, "find '%s' -type f | wc -l", dir);
    assert_string_equal(out, "1");  // no temporaries left behind
    CHECK_OK(hs_artifact_verify(dir, sha));
    // empty content is an artifact too
    CHECK_OK(hs_artifact_put(sha2, dir, NULL, NULL, 0));
    assert_string_equal(sha2, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_OK(hs_artifact_verify(dir, sha2));

    // corruption is detected and named
    sh("chmod u+w '%s' && printf 'weights: 0.25 0.6\\n' > '%s'", path, path);
    assert_int_equal(hs_artifact_verify(dir, sha), HS_ERR_FORMAT);
    assert_non_null(strstr(hs_last_error()->msg, "corrupt"));
    // a missing one and a malformed name
    char missing[65];
    memset(missing, 'a', 64);
    missing[64] = '\0';
    assert_int_equal(hs_artifact_verify(dir, missing), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "not found"));
    assert_int_equal(hs_artifact_verify(dir, "ABC"), HS_ERR_ARG);
    assert_int_equal(hs_artifact_path(path, sizeof path, dir, "xyz"), HS_ERR_ARG);
    assert_int_equal(hs_artifact_put(sha, dir, "/nonexistent/file", NULL, 0), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "/nonexistent/file"));
}

static void test_artifact_put_streams_a_large_file(void **state) {
    fixture *fx = *state;
    char dir[400], src[400], sha[65], want[128];
    snprintf(dir, sizeof dir, "%s/artifacts", fx->dir);
    snprintf(src, sizeof src, "%s/big.bin", fx->dir);
    sh("head -c 5000000 /dev/urandom > '%s'", src);
    CHECK_OK(hs_artifact_put(sha, dir, src, NULL, 0));
    capture(want, sizeof want, "sha256sum '%s' | cut -d' ' -f1", src);
    assert_string_equal(sha, want);
    CHECK_OK(hs_artifact_verify(dir, sha));
    char path[4096];
    CHECK_OK(hs_artifact_path(path, sizeof path, dir, sha));
    sh("cmp -s '%s' '%s'", src, path);
}

static void test_gitstore_artifact_dir_honours_environment(void **state) {
    fixture *fx = *state;
    hs_gitstore *s = open_store(fx->repo);
    char d[4096];
    setenv("HISTOPS_ARTIFACTS", "/shared/store", 1);
    CHECK_OK(hs_gitstore_artifact_dir(s, d, sizeof d));
    assert_string_equal(d, "/shared/store");
    unsetenv("HISTOPS_ARTIFACTS");
    CHECK_OK(hs_gitstore_artifact_dir(s, d, sizeof d));
    char want[4200], real[4096];
    assert_non_null(realpath(fx->repo, real));
    snprintf(want, sizeof want, "%s/.git/histops/artifacts", real);
    assert_string_equal(d, want);
    char small[8];
    assert_int_equal(hs_gitstore_artifact_dir(s, small, sizeof small), HS_ERR_ARG);
    hs_gitstore_free(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_repo, teardown_dir)

int main(void) {
    // the test repositories' own commits need an identity whatever the machine's configuration
    setenv("GIT_AUTHOR_NAME", "test", 1);
    setenv("GIT_AUTHOR_EMAIL", "test@example.org", 1);
    setenv("GIT_COMMITTER_NAME", "test", 1);
    setenv("GIT_COMMITTER_EMAIL", "test@example.org", 1);
    unsetenv("HISTOPS_ARTIFACTS");
    // fsync costs ~10-40 ms per record on a busy disk; correctness does not depend on it, so
    // all tests but one run without it
    setenv("HISTOPS_GIT_FSYNC", "0", 1);
    const struct CMUnitTest tests[] = {
        T(test_gitstore_write_then_read_returns_the_files_and_git_sees_them),
        T(test_gitstore_read_of_missing_file_or_ref_is_io_error_naming_it),
        T(test_gitstore_each_write_is_a_commit_on_top_of_the_previous_one),
        T(test_gitstore_keep_tree_adds_replaces_and_removes_files),
        T(test_gitstore_write_leaves_work_tree_index_and_head_untouched),
        T(test_gitstore_records_survive_gc_prune_and_clean),
        T(test_gitstore_records_round_trip_through_push_and_fetch),
        T(test_gitstore_unborn_head_reports_unborn_and_still_records),
        T(test_gitstore_detached_head_reports_commit_without_branch),
        T(test_gitstore_linked_worktree_shares_runs_and_artifacts),
        T(test_gitstore_open_outside_a_repository_fails_with_clear_message),
        T(test_gitstore_dirty_reports_modified_tracked_file_with_diff_and_ignores_untracked),
        T(test_gitstore_diff_resolve_ancestry_and_branch_history),
        T(test_gitstore_write_with_stale_expected_fails_and_leaves_ref_unchanged),
        T(test_gitstore_rejects_refs_outside_namespace_bad_paths_and_bad_ids),
        T(test_gitstore_delete_ref_checks_expected_value),
        T(test_gitstore_two_processes_writing_different_refs_all_succeed),
        T(test_gitstore_two_processes_appending_to_one_ref_both_land),
        T(test_gitstore_two_processes_racing_a_cas_exactly_one_wins),
        T(test_gitstore_two_processes_racing_to_create_a_ref_exactly_one_wins),
        T(test_gitstore_writer_killed_with_sigkill_leaves_a_complete_record),
        T(test_gitstore_lock_left_by_a_killed_writer_is_broken_once_stale),
        T(test_gitstore_list_of_thousands_of_refs_is_fast_and_sorted),
        T(test_gitstore_list_and_log_survive_every_failed_allocation),
        T(test_gitstore_commits_carry_configured_identity_or_fallback),
        T(test_artifact_put_is_idempotent_content_addressed_and_verifies),
        T(test_artifact_put_streams_a_large_file),
        T(test_gitstore_artifact_dir_honours_environment),
    };
    if (getenv("HS_TEST_FILTER"))  // e.g. HS_TEST_FILTER='*racing*'
        cmocka_set_test_filter(getenv("HS_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup_template, teardown_template);
}
