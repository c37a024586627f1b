#!/usr/bin/env bash
# Proves, on this CPU machine, that the GPU kit (.gpu-kit/stage, made by launch/gpu-kit.sh) is all
# lnfree needs besides LibTorch, a compiler and CMake. In a private mount namespace it hides the
# system's copies of the kit's dependencies, then configures and builds lnfree against the kit
# alone (build-kit/) and runs what it built:
#   1. every regular file of the -dev packages (headers, CMake package files, pkg-config files,
#      static libraries) is covered by /dev/null, and the system's Open MPI (launcher, daemon,
#      components, help texts) by empty folders: a compile or a find_package that reached them
#      would fail;
#   2. CMakeCache.txt, the compile commands and the link lines must name the kit for every one of
#      those dependencies, never /usr;
#   3. the binary, run with the kit's env.sh, loads those libraries from the kit (ldd), prints
#      --version, and trains the smoke model on 2 ranks through the kit's own mpirun on the kit's
#      Brown shards.
# Prints "gpu-kit proof: ok" at the end, or names what failed. Runs as root (unshare, mount).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAGE=$ROOT/.gpu-kit/stage
BUILD=${LNFREE_KIT_BUILD_DIR:-$ROOT/build-kit}
ARCH=x86_64-linux-gnu

log() { echo "[gpu-kit proof] $*"; }
die() { echo "[gpu-kit proof] FAILED: $*" >&2; exit 1; }

[ -f "$STAGE/kit.cmake" ] || die "no kit at $STAGE; run launch/gpu-kit.sh first"
if [ "${LNFREE_KIT_IN_NAMESPACE:-0}" != 1 ]; then
  [ "$(id -u)" = 0 ] || die "needs root (a private mount namespace hides the system's packages)"
  exec unshare --mount --propagation private env LNFREE_KIT_IN_NAMESPACE=1 bash "$0" "$@"
fi

# --- 1. Hide the system's copies ------------------------------------------------------------------
DEV_PACKAGES=(libhdf5-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev
              libicu-dev libgtest-dev libgmock-dev libopenmpi-dev libzstd-dev liblzma-dev zlib1g-dev)
hidden=0
while IFS= read -r path; do
  [ -f "$path" ] && [ ! -L "$path" ] || continue
  case $path in /usr/share/doc/*|/usr/share/man/*) continue ;; esac
  mount --bind /dev/null "$path" && hidden=$((hidden + 1))
done < <(dpkg -L "${DEV_PACKAGES[@]}" | sort -u)
for dir in /usr/lib/$ARCH/openmpi /usr/share/openmpi /etc/openmpi /usr/lib/$ARCH/pmix2 /usr/lib/$ARCH/cmake/hdf5; do
  [ -d "$dir" ] && mount -t tmpfs -o ro,size=4k none "$dir" && hidden=$((hidden + 1))
done
for bin in /usr/bin/orted /usr/bin/orterun /usr/bin/mpirun.openmpi /usr/bin/opal_wrapper; do
  [ -f "$(readlink -f "$bin")" ] && mount --bind /dev/null "$(readlink -f "$bin")"
done
log "hid $hidden files and folders of the system's ${#DEV_PACKAGES[@]} -dev packages and Open MPI"
[ ! -s /usr/include/hdf5/serial/hdf5.h ] || die "the system's hdf5.h is still visible"

# --- 2. Configure and build against the kit ---------------------------------------------------------
export CCACHE_BASEDIR=$ROOT CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
rm -rf "$BUILD"
start=$(date +%s)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -C "$STAGE/kit.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DLNFREE_BUILD_TESTS=ON -DLNFREE_WITH_MPI=ON -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > "$BUILD.configure.log" 2>&1 ||
  { tail -40 "$BUILD.configure.log"; die "configure against the kit failed (log: $BUILD.configure.log)"; }
log "configured in $(($(date +%s) - start)) s"
cmake --build "$BUILD" --target lnfree -j"$(nproc)" > "$BUILD.build.log" 2>&1 ||
  { grep -m20 -E "error|Error" "$BUILD.build.log"; die "build against the kit failed (log: $BUILD.build.log)"; }
log "built lnfree in $(($(date +%s) - start)) s"

# Every dependency the kit carries must come from the kit in the cache, the compiles and the links.
problems=$(grep -E '^(HDF5|spdlog|fmt|nlohmann_json|tomlplusplus|CLI11|ICU|GTest|MPI|ZLIB|LIBLZMA|ZSTD)[A-Za-z0-9_]*(:[A-Z]+)?=/usr' \
             "$BUILD/CMakeCache.txt" | grep -vE "^MPIEXEC|_EXECUTABLE:" || true)  # tools (mpiexec, ICU's) are not linked
[ -z "$problems" ] || die "CMakeCache.txt names system copies:"$'\n'"$problems"
grep -q "$STAGE/usr/include/hdf5/serial" "$BUILD/compile_commands.json" || die "compiles do not use the kit's HDF5"
# LibTorch and CUDA are the machine's (Debian's LibTorch here, the pip wheel's there), not the kit's.
sys_includes=$(grep -oE -- '-(I|isystem ?)/usr/[^ "]*' "$BUILD/compile_commands.json" | grep -vE '/usr/include/torch/|/usr/local/cuda' |
                 sort -u || true)
[ -z "$sys_includes" ] || die "compiles search system include folders: $sys_includes"
links=$(find "$BUILD" \( -name build.ninja -o -name link.txt \) -exec cat {} + | grep -E 'lnfree' || true)
# A path that starts at /usr (after a space, -L, -Wl,-rpath, or ':'), not the kit's .../stage/usr/lib/...
sys_libs=$(grep -oE "(^|[ :,=L])/usr/lib/$ARCH/[^ :]*(hdf5|spdlog|fmt|icu|gtest|gmock|mpi|libz|lzma)[^ :]*" <<<"$links" |
             sed -E 's/^[ :,=L]//' | sort -u || true)
[ -z "$sys_libs" ] || die "links name system libraries: $sys_libs"
log "CMakeCache.txt, the compile commands and the link lines name only the kit"

# --- 3. Run what was built, with the kit's environment ---------------------------------------------
# shellcheck source=/dev/null
source "$STAGE/env.sh"
for lib in libhdf5_serial libspdlog libfmt libicuuc libmpi; do
  where=$(ldd "$BUILD/lnfree" | awk -v l="$lib" 'index($1, l) == 1 {print $3}')
  case $where in
    "$STAGE"/*) ;;
    "") ;;  # not linked directly (fmt may be header-only through spdlog)
    *) die "$lib loads from $where, not from the kit" ;;
  esac
done
"$BUILD/lnfree" --version
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT
start=$(date +%s)
mpirun --allow-run-as-root --oversubscribe -np 2 --mca btl self,vader \
  "$BUILD/lnfree" train --config "$ROOT/configs/smoke.toml" --out "$RUN/smoke" \
  --set run.threads=1 --set "data.train=$STAGE/data/tokens/brown/manifest.json" \
  --set "eval.sets=$STAGE/data/tokens/brown/manifest.json:val" > "$RUN/train.log" 2>&1 || { tail -30 "$RUN/train.log"; die "2-rank training with the kit's mpirun failed"; }
grep -E "world|rank" "$RUN/train.log" | head -3 || true
[ -f "$RUN/smoke/run.h5" ] || die "the 2-rank training wrote no run.h5"
log "2-rank smoke training through the kit's mpirun: $(($(date +%s) - start)) s"
echo "gpu-kit proof: ok"
