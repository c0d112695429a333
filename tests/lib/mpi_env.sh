# tests/lib/mpi_env.sh: the preamble shared by the 2-rank MPI tests (tests/mpi_*.sh); sourced, not
# run, and deliberately outside the tests/mpi_*.sh glob that scripts/test runs. Usage, after
# `set -euo pipefail`:   source "$(dirname "$0")/lib/mpi_env.sh" TAG "${1:-}"
# Sets src (source tree), build (BUILD_DIR or $src/build), hs (the histops binary), tmp (a fresh
# /tmp/hs-TAG-XXXXXX, removed on exit), MPIRUN (2 ranks, oversubscribed), fail MSG, mpi_repo DIR
# (a throw-away git repository with one empty commit, entered with cd); exports the OpenMPI
# settings for root and containers and HISTOPS_CACHE. Exits 0 with SKIP only when mpirun is absent,
# and fails when histops was built without MPI although mpirun is installed.
mpi_tag="$1"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(cd "${2:-$src/build}" && pwd)"
hs="$build/histops"
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin and libopenmpi-dev, then rerun scripts/setup)"
  exit 0
fi
[ -x "$hs" ] || { echo "FAIL: $hs not built"; exit 1; }
tmp="$(mktemp -d "/tmp/hs-$mpi_tag-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo 'io.write(tostring(require("hs.mpi").available()))' > "$tmp/avail.lua"
if [ "$("$hs" "$tmp/avail.lua")" != "true" ]; then
  echo "FAIL: histops was built without MPI although mpirun is installed (install libopenmpi-dev, rerun cmake)"
  exit 1
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# containers often forbid the cross-memory-attach (ptrace) copies of the shared-memory transport:
# plain copies through shared buffers work everywhere and cost nothing at these sizes
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export HISTOPS_MPI_EXIT_TIMEOUT=20 HISTOPS_CACHE="$tmp/cache"
MPIRUN=(mpirun -np 2 --oversubscribe)
fail() { echo "FAIL: $*"; exit 1; }
mpi_repo() {
  mkdir -p "$1" && cd "$1"
  git init -q . && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m init
}
