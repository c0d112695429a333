// core/gitstore.h: the git-backed run store. Records (small files: JSON documents, logs) are
// committed with libgit2 under refs in the user's own repository (refs/histops/...), never
// touching the work tree, the index or HEAD; large artifacts go to a content-addressed folder
// beside it. Not a git porcelain: no checkout, merge, push or fetch (use the git tool for those).
//
// Layout and sharing:
//   - a record is a ref (e.g. refs/histops/runs/<id>) whose commit history is the record's
//     history; each update is a new commit whose parent is the ref's previous commit, and the
//     ref moves by compare-and-swap. Refs only ever move to complete commits, so a process killed
//     at any point leaves the previous or the new record, never a corrupt one.
//   - share records with `git push origin 'refs/histops/*:refs/histops/*'` and
//     `git fetch origin 'refs/histops/*:refs/histops/*'`; `git gc` keeps them (they are refs) and
//     `git clean` cannot reach them (they live in the object database).
//   - artifacts live in <dir>/sha256/<2 hex>/<62 hex>; the default <dir> is
//     <common git dir>/histops/artifacts, or $HISTOPS_ARTIFACTS when set (point it at a shared
//     folder, or copy the folder with rsync/rclone: files are immutable and named by content,
//     so copies never conflict).
//
// Objects and refs are fsynced before a ref moves (set HISTOPS_GIT_FSYNC=0 to skip that, at the
// price of durability across a power cut; a killed process is safe either way).
// A store is not thread-safe: use one per thread. Separate processes may write concurrently.
// Error codes: HS_ERR_IO means "not found" (no such ref, commit, file in a record, artifact) or an
// I/O failure; HS_ERR_STATE a repository problem (not a repository, a ref moved concurrently,
// a stale lock); HS_ERR_ARG a malformed argument (invalid ref name, bad hex, bad path).
#ifndef HS_GITSTORE_H
#define HS_GITSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define HS_GITSTORE_ID_SIZE 41      // 40 hex digits of a commit id + NUL
#define HS_GITSTORE_NAME_MAX 1024   // longest branch name reported by hs_gitstore_head
#define HS_GITSTORE_REF_PREFIX "refs/histops/"  // the only namespace write/delete may move

typedef struct hs_gitstore hs_gitstore;

// What HEAD is. In a linked worktree this is the worktree's own HEAD.
typedef struct {
    char commit[HS_GITSTORE_ID_SIZE];   // hex id, "" when unborn (no commits yet)
    char branch[HS_GITSTORE_NAME_MAX];  // short branch name ("main"), also when unborn; "" when detached
    int unborn;                         // HEAD names a branch that has no commit yet
    int detached;                       // HEAD points at a commit directly
    int bare;                           // repository without a work tree
} hs_gitstore_head_info;

// One commit: an entry of hs_gitstore_list (ref set) or hs_gitstore_log (ref NULL).
typedef struct {
    char *ref;                          // full ref name (list) or NULL (log)
    char id[HS_GITSTORE_ID_SIZE];       // commit id in hex
    int64_t time;                       // committer time, seconds since the Unix epoch
    int tz_offset;                      // committer time zone, minutes east of UTC
    char *author;                       // author name
    char *email;                        // author e-mail
    char *message;                      // full commit message
} hs_gitstore_commit;

// Discover the repository containing path (a folder in the work tree, a subfolder, a linked
// worktree, a .git folder or a bare repository). $GIT_CEILING_DIRECTORIES is honoured.
// Free with hs_gitstore_free. HS_ERR_STATE "not inside a git repository: <path> ..." when there
// is none, HS_ERR_IO when path does not exist, HS_ERR_NOMEM.
hs_status hs_gitstore_open(hs_gitstore **out, const char *path);
void hs_gitstore_free(hs_gitstore *s);   // NULL is a no-op

// Work tree folder without trailing '/' ("" for a bare repository), and the common git folder
// (shared by all linked worktrees). Borrowed: valid until hs_gitstore_free.
const char *hs_gitstore_workdir(const hs_gitstore *s);
const char *hs_gitstore_gitdir(const hs_gitstore *s);

// Fill *out from HEAD. HS_ERR_STATE when HEAD cannot be read.
hs_status hs_gitstore_head(hs_gitstore *s, hs_gitstore_head_info *out);

// *dirty = whether tracked files differ from HEAD in the index or the work tree (untracked files
// are ignored); when patch is not NULL, *patch = the unified diff (`git diff HEAD`), NUL-terminated,
// hs_alloc'd (caller hs_frees), *n its length (n may be NULL). With no commits yet, every tracked
// file counts as added. HS_ERR_STATE for a bare repository.
hs_status hs_gitstore_dirty(hs_gitstore *s, int *dirty, char **patch, size_t *n);

// Unified diff from commit-ish a to commit-ish b (like `git diff a b`); *patch as above.
// HS_ERR_IO when a or b names no commit.
hs_status hs_gitstore_diff_commits(hs_gitstore *s, char **patch, size_t *n, const char *a, const char *b);

// write flags
#define HS_GITSTORE_KEEP_TREE 1u   // start from the parent commit's files instead of an empty tree

// Commit n files (paths[i] may contain '/': nested folders; contents[i] of sizes[i] bytes) as the
// new state of ref and move ref to it by compare-and-swap. The commit's parent is the ref's current
// commit (none for a new ref); author and committer are user.name/user.email from the repository
// configuration, else "histops <histops@localhost>"; the time is now.
// With HS_GITSTORE_KEEP_TREE the parent's files are kept and the given ones replace or add to
// them; contents[i] == NULL then removes paths[i]. Without it the tree is exactly the given files.
// expected_old: NULL = the ref must not exist yet; "" = whatever it is (concurrent writers then
// both land, one after the other); 40 hex digits = the ref must point there.
// new_id: the new commit id (hex). Never touches the work tree, the index or HEAD.
// HS_ERR_ARG: ref outside HS_GITSTORE_REF_PREFIX or invalid, path invalid ("", "/a", "a//b",
// "..", ".git"), expected_old not hex. HS_ERR_STATE "ref X moved concurrently (expected A,
// found B)" when the ref is not as expected (the ref is left unchanged). A ref lock file left by a
// process killed mid-update is removed once it is 2 s old (breakers serialise on an flock of
// <common git dir>/histops/lock); a lock held by something else for 5 s gives HS_ERR_STATE
// naming the lock file.
hs_status hs_gitstore_write(hs_gitstore *s, char new_id[HS_GITSTORE_ID_SIZE], const char *ref, int n,
                            const char *const *paths, const void *const *contents, const size_t *sizes,
                            const char *message, const char *expected_old, unsigned flags);

// The file at path in the tree of rev (a ref, branch, hex id or any commit-ish): *data hs_alloc'd
// with a terminating NUL not counted in *n; caller hs_frees. HS_ERR_IO when rev names no commit
// or path is absent (or a folder).
hs_status hs_gitstore_read(hs_gitstore *s, void **data, size_t *n, const char *rev, const char *path);

// All refs whose name starts with prefix (e.g. "refs/histops/runs/"), sorted by name, with their
// commit id, time, author and message (commit objects are read, trees are not). *out is hs_alloc'd:
// free with hs_gitstore_commits_free(*out, *n). Refs that do not point at a commit are skipped.
hs_status hs_gitstore_list(hs_gitstore *s, hs_gitstore_commit **out, size_t *n, const char *prefix);

// First-parent history of rev, newest first, at most max commits (max <= 0: all): the history of a
// record or an alias ref, or of a branch. Free as above. HS_ERR_IO when rev names no commit.
hs_status hs_gitstore_log(hs_gitstore *s, hs_gitstore_commit **out, size_t *n, const char *rev, int max);
void hs_gitstore_commits_free(hs_gitstore_commit *c, size_t n);   // NULL is a no-op

// Commit id of a commit-ish ("HEAD", "main", "refs/histops/runs/x", "HEAD~2", a short id).
// HS_ERR_IO when it names no commit (the message says when the repository has no commits yet).
hs_status hs_gitstore_resolve(hs_gitstore *s, char id[HS_GITSTORE_ID_SIZE], const char *spec);

// *yes = ancestor is descendant or one of its ancestors (`git merge-base --is-ancestor`).
hs_status hs_gitstore_is_ancestor(hs_gitstore *s, int *yes, const char *ancestor, const char *descendant);

// Delete ref (under HS_GITSTORE_REF_PREFIX). expected_old: NULL or "" = whatever it points at,
// hex = only if it still points there (else HS_ERR_STATE "... moved concurrently ..."). HS_ERR_IO
// when the ref does not exist. The commits stay until git gc finds them unreachable.
hs_status hs_gitstore_delete_ref(hs_gitstore *s, const char *ref, const char *expected_old);

// The artifact folder of this repository: $HISTOPS_ARTIFACTS when set and not empty, else
// <common git dir>/histops/artifacts (not created here). HS_ERR_ARG when cap is too small.
hs_status hs_gitstore_artifact_dir(const hs_gitstore *s, char *out, size_t cap);

// ---- content-addressed artifact store (no repository needed) ----

// Store content in <dir>/sha256/<sha[0:2]>/<sha[2:64]> and return its SHA-256 in sha (hex).
// Content is src_path's file when src_path is not NULL (streamed, any size), else buf[0..n).
// The file is written to a temporary, fsynced, made read-only and renamed into place, so a reader
// sees a complete file or none; content already present (same name and size) is not rewritten.
// HS_ERR_IO when src_path cannot be read or dir cannot be written.
hs_status hs_artifact_put(char sha[65], const char *dir, const char *src_path, const void *buf, size_t n);

// Path of artifact sha in dir (whether or not it exists). HS_ERR_ARG when sha is not 64 lower-case
// hex digits or out (cap bytes) is too small.
hs_status hs_artifact_path(char *out, size_t cap, const char *dir, const char *sha);

// Re-hash the stored artifact. HS_ERR_IO when it is missing, HS_ERR_FORMAT when its content does
// not hash to sha (the message gives the actual hash).
hs_status hs_artifact_verify(const char *dir, const char *sha);

#endif
