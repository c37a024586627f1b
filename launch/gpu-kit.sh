#!/usr/bin/env bash
# Builds the GPU kit: everything lnfree needs to build and run on the GPU machine that the
# distribution does not give it there. That machine has CUDA, nvcc, CMake, ninja and PyTorch's pip
# wheels (LibTorch, NCCL and cuDNN inside them) but no apt and no network, so the kit carries the
# Debian packages of every other dependency, unpacked into a relocatable prefix, plus the Brown token
# shards and the BPE files. Runs here, on CPU:
#   launch/gpu-kit.sh          download, unpack, prune, pack .gpu-kit/kit.tar.xz, then prove it
#   LNFREE_KIT_SKIP_PROOF=1 …  pack only
# The proof configures and builds lnfree (build-kit/) in a mount namespace in which every file of the
# system's -dev packages of those dependencies is hidden, checks that CMakeCache.txt and the compile
# commands name only the kit, and runs the kit-built binary: --version, and a 2-rank training through
# the kit's own mpirun with the system's Open MPI hidden too. launch/gpu-check.sh unpacks the kit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KIT_DIR=$ROOT/.gpu-kit          # git-ignored
STAGE=$KIT_DIR/stage            # the unpacked prefix: $STAGE/usr/...
ARCH=x86_64-linux-gnu
MAX_MB=24  # the device tool carries 64 MiB in all; ICU's data library alone is 7.1 MiB of the 21.4 packed

# The -dev packages lnfree builds against (headers, CMake/pkg-config files, link symlinks). Their
# runtime libraries, and the libraries those need, are found below by walking the ELF dependencies.
DEV_PACKAGES=(libhdf5-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev
              libicu-dev libgtest-dev libgmock-dev libopenmpi-dev libzstd-dev liblzma-dev zlib1g-dev)
# Open MPI's launcher and daemon (a singleton or mpirun start needs orted) and its help texts.
EXTRA_PACKAGES=(openmpi-bin openmpi-common)
# Every Linux the kit can run on has these; bringing another glibc or libstdc++ would break it.
BASE_PACKAGES="libc6 libgcc-s1 libstdc++6 gcc-12-base"

log() { echo "[gpu-kit] $*"; }
die() { echo "[gpu-kit] error: $*" >&2; exit 1; }

for tool in apt-get dpkg-deb dpkg-query ldd xz tar; do
  command -v "$tool" >/dev/null || die "needs '$tool' (a Debian 12 machine after launch/setup.sh)"
done
for p in "${DEV_PACKAGES[@]}" "${EXTRA_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    die "package $p is not installed here; run launch/setup.sh first (the kit takes the installed versions)"
done
[ -f data/tokens/brown/manifest.json ] || die "data/tokens/brown is missing; run launch/setup.sh first"

# --- 1. The package set: dev packages + the packages of every shared library they pull in -------
owner_of() {  # package owning a file, or nothing (a file no package owns)
  local path=$1 real
  real=$(readlink -f "$path")
  # dpkg's database may name a file by its pre-merged-/usr path (/lib/...) or the merged one.
  { dpkg -S "$path" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "${real/#\/lib\//\/usr\/lib\/}" 2>/dev/null ||
      dpkg -S "${real/#\/usr\/lib\//\/lib\/}" 2>/dev/null || true; } | head -1 | cut -d: -f1
}
declare -A PACKAGES=()
for p in "${DEV_PACKAGES[@]}" "${EXTRA_PACKAGES[@]}"; do PACKAGES[$p]=1; done
elf_files=()
while IFS= read -r f; do
  [ -f "$f" ] && file_is_elf=$(head -c4 "$f" | tr -d '\0' | grep -c ELF || true) && [ "$file_is_elf" = 1 ] &&
    elf_files+=("$(readlink -f "$f")")
done < <(dpkg -L "${DEV_PACKAGES[@]}" "${EXTRA_PACKAGES[@]}" libopenmpi3 | grep -E '\.so$|/bin/(orted|orterun|mpirun)$' | sort -u)
# Open MPI's components are loaded at run time: walk them too (those that need libraries the kit
# leaves out, e.g. InfiniBand, are removed in the pruning step).
while IFS= read -r f; do elf_files+=("$f"); done < <(dpkg -L libopenmpi3 | grep -E '/openmpi3/mca_.*\.so$')
# dpkg -S takes about half a second: ask once per library, not once per library per ELF file.
declare -A SEEN_LIBS=()
for f in "${elf_files[@]}"; do
  # The library a -dev symlink points at (libspdlog.so -> libspdlog.so.1.10.0) is the runtime
  # package's, which nothing else may pull in.
  if [ -z "${SEEN_LIBS[$f]:-}" ]; then
    SEEN_LIBS[$f]=1
    p=$(owner_of "$f")
    [ -n "$p" ] && PACKAGES[$p]=1
  fi
  while read -r lib; do
    [ -z "${SEEN_LIBS[$lib]:-}" ] || continue
    SEEN_LIBS[$lib]=1
    p=$(owner_of "$lib")
    [ -n "$p" ] && PACKAGES[$p]=1
  done < <(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}')
done
# Open MPI components for fabrics that a one-node GPU check never uses: left out (about 10 MB).
OPTIONAL="libfabric1 libucx0 libpsm2-2 libpsm-infinipath1 libibverbs1 librdmacm1 libxnvctrl0 ibverbs-providers
          libnl-3-200 libnl-route-3-200 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 libmunge2
          libgfortran5 libquadmath0 libcuda1 libnvidia-ml1 ocl-icd-libopencl1"
for p in $BASE_PACKAGES $OPTIONAL; do unset "PACKAGES[$p]"; done
mapfile -t SELECTED < <(printf '%s\n' "${!PACKAGES[@]}" | sort)
log "${#SELECTED[@]} packages: ${SELECTED[*]}"

# --- 2. Download the installed versions and unpack them --------------------------------------------
mkdir -p "$KIT_DIR/debs"
deb_of() { ls "$KIT_DIR/debs/${1}"_*_"$(dpkg-query -W -f='${Architecture}' "$1")".deb 2>/dev/null | head -1; }
missing=()
for p in "${SELECTED[@]}"; do
  dpkg-query -W -f='${Version}' "$p" >/dev/null 2>&1 || die "package $p (a dependency) is not installed"
  [ -n "$(deb_of "$p")" ] || missing+=("$p")
done
if ((${#missing[@]})); then
  log "downloading ${#missing[@]} packages"
  for p in "${missing[@]}"; do
    # The installed version first; a mirror that has moved on to a point release or security update
    # no longer has it, and then the current version of the same package (same ABI in a stable
    # release) is what the kit takes.
    v=$(dpkg-query -W -f='${Version}' "$p")
    (cd "$KIT_DIR/debs" && { apt-get download -qq -o APT::Sandbox::User=root "$p=$v" 2>/dev/null ||
                                  apt-get download -qq -o APT::Sandbox::User=root "$p"; }) ||
      die "apt-get download $p failed (run 'apt-get update' and retry)"
  done
fi
rm -rf "$STAGE" && mkdir -p "$STAGE"
for p in "${SELECTED[@]}"; do dpkg-deb -x "$(deb_of "$p")" "$STAGE"; done
# Debian 12 has merged /usr: a library in /lib belongs in /usr/lib.
if [ -d "$STAGE/lib" ]; then cp -a "$STAGE/lib/." "$STAGE/usr/lib/" && rm -rf "$STAGE/lib"; fi

# --- 3. Prune what a build and a run never read -----------------------------------------------------
U=$STAGE/usr
rm -rf "$U/share/doc" "$U/share/man" "$U/share/info" "$U/share/lintian" "$U/share/locale" "$U/share/bug" \
       "$U/share/doc-base" "$U/share/bash-completion" "$U/share/gdb" "$U/share/vim" "$STAGE/etc/alternatives"
find "$U/lib" -name '*.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' -delete
find "$U" \( -name '*fortran*' -o -name '*mpifh*' -o -name '*usempi*' -o -name '*_cpp.so*' -o -name '*hl_cpp*' \
             -o -name 'libicutest*' -o -name 'libicutu*' -o -name 'libicuio*' \) -prune -exec rm -rf {} +
find "$U/bin" -mindepth 1 ! \( -name orted -o -name orterun -o -name mpirun -o -name mpiexec -o -name 'mpiexec.openmpi' \
                            -o -name 'mpirun.openmpi' -o -name opal_wrapper -o -name ompi_info \) -delete 2>/dev/null || true
find "$U/include" -name '*.mod' -delete 2>/dev/null || true
# Absolute symlinks point at this machine's / (or at /etc/alternatives): make them relative.
while IFS= read -r link; do
  target=$(readlink "$link")
  case $target in
    /etc/alternatives/*) # the alternatives of Open MPI and HDF5: resolve them as this machine does
      target=$(readlink -f "$target") ;;
  esac
  case $target in /lib/*) target=/usr$target ;; esac  # merged /usr: /lib moved to /usr/lib above
  case $target in /*)
    if [ -e "$STAGE$target" ] || [ -L "$STAGE$target" ]; then
      ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$STAGE$target")" "$link"
    else
      rm -f "$link"   # points at something the kit does not carry
    fi ;;
  esac
done < <(find "$STAGE" -type l)
find "$STAGE" -xtype l -delete
# Open MPI components whose libraries the kit leaves out would print a warning at every start.
LIBPATH="$U/lib/$ARCH:$U/lib/$ARCH/openmpi/lib"
for so in "$U/lib/$ARCH/openmpi/lib/openmpi3"/mca_*.so; do
  if LD_LIBRARY_PATH=$LIBPATH ldd "$so" 2>/dev/null | grep -q "not found"; then rm -f "$so" "${so%.so}.la"; fi
done
# Open MPI: lnfree includes mpi.h alone (C, OMPI_SKIP_MPICXX) and never uses OpenSHMEM or Fortran.
OMPI_INC=$U/lib/$ARCH/openmpi/include
find "$OMPI_INC/openmpi" -mindepth 1 -maxdepth 1 ! -name ompi -exec rm -rf {} +
find "$OMPI_INC/openmpi/ompi" -mindepth 1 -maxdepth 1 ! -name mpi -exec rm -rf {} +
rm -rf "$OMPI_INC"/mpif*.h "$OMPI_INC"/*shmem* "$OMPI_INC/openshmem" "$OMPI_INC/mpp"
rm -f "$U/lib/$ARCH/openmpi/lib"/liboshmem* "$U/lib/$ARCH"/liboshmem*
rm -f "$U/lib/$ARCH/openmpi/lib/openmpi3"/mca_{atomic,memheap,scoll,spml,sshmem}_*
mkdir -p "$U/bin"
[ -e "$U/bin/mpirun" ] || ln -sfn orterun "$U/bin/mpirun"

# The Brown shards and the BPE files: a training and an evaluation on real text.
mkdir -p "$STAGE/data/tokens" "$STAGE/data/bpe"
cp -a data/tokens/brown "$STAGE/data/tokens/"
cp -L data/bpe/encoder.json data/bpe/vocab.bpe "$STAGE/data/bpe/"

# The initial-cache script a configure passes with -C: every dependency from the kit, wherever it
# was unpacked (paths are computed from this file's location).
cat > "$STAGE/kit.cmake" <<'EOF'
# cmake -C <kit>/kit.cmake …: find lnfree's non-torch dependencies in this kit (launch/gpu-kit.sh).
get_filename_component(_kit "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
set(_usr "${_kit}/usr")
set(_lib "${_usr}/lib/x86_64-linux-gnu")
set(CMAKE_PREFIX_PATH "${_usr};${_lib}/cmake;${_usr}/share/cmake;${CMAKE_PREFIX_PATH}" CACHE STRING "kit first")
set(HDF5_ROOT "${_usr}" CACHE PATH "")
set(HDF5_C_INCLUDE_DIR "${_usr}/include/hdf5/serial" CACHE PATH "")
set(HDF5_C_LIBRARY_hdf5 "${_lib}/hdf5/serial/libhdf5.so" CACHE FILEPATH "")
# FindHDF5 without h5cc searches HDF5_<name>_LIBRARY_RELEASE, with h5cc HDF5_C_LIBRARY_<name>.
set(HDF5_hdf5_LIBRARY_RELEASE "${_lib}/hdf5/serial/libhdf5.so" CACHE FILEPATH "")
set(HDF5_NO_FIND_PACKAGE_CONFIG_FILE ON CACHE BOOL "")
set(HDF5_C_COMPILER_EXECUTABLE "HDF5_C_COMPILER_EXECUTABLE-NOTFOUND" CACHE FILEPATH "no h5cc: the kit's paths")
set(ICU_ROOT "${_usr}" CACHE PATH "")
set(ZLIB_ROOT "${_usr}" CACHE PATH "")
set(ZLIB_INCLUDE_DIR "${_usr}/include" CACHE PATH "")
set(ZLIB_LIBRARY "${_lib}/libz.so" CACHE FILEPATH "")
set(LIBLZMA_INCLUDE_DIR "${_usr}/include" CACHE PATH "")
set(LIBLZMA_LIBRARY "${_lib}/liblzma.so" CACHE FILEPATH "")
# libzstd by path: lnfree finds it with find_path/find_library, no pkg-config program needed.
set(ZSTD_INCLUDE_DIR "${_usr}/include" CACHE PATH "")
set(ZSTD_LIBRARY "${_lib}/libzstd.so" CACHE FILEPATH "")
# Open MPI without its compiler wrapper (its paths are this machine's /usr).
set(MPI_C_COMPILER "MPI_C_COMPILER-NOTFOUND" CACHE FILEPATH "")
set(MPI_SKIP_COMPILER_WRAPPER ON CACHE BOOL "")
set(MPI_C_HEADER_DIR "${_lib}/openmpi/include" CACHE PATH "")
set(MPI_C_LIB_NAMES "mpi" CACHE STRING "")
set(MPI_mpi_LIBRARY "${_lib}/openmpi/lib/libmpi.so" CACHE FILEPATH "")
# Runtime: libraries the kit's libraries need (curl for HDF5, ...) are not on any RUNPATH; the
# environment script sets LD_LIBRARY_PATH for them.
EOF
# The environment a run needs: source <kit>/env.sh
cat > "$STAGE/env.sh" <<'EOF'
# source <kit>/env.sh: run kit-built binaries (libraries, Open MPI relocated to the kit).
_kit=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LD_LIBRARY_PATH="$_kit/usr/lib/x86_64-linux-gnu:$_kit/usr/lib/x86_64-linux-gnu/openmpi/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$_kit/usr/bin:$PATH"
export OPAL_PREFIX="$_kit/usr"
export OPAL_LIBDIR="$_kit/usr/lib/x86_64-linux-gnu/openmpi/lib"
export OPAL_PKGDATADIR="$_kit/usr/share/openmpi"
export OPAL_SYSCONFDIR="$_kit/etc/openmpi"
export OMPI_MCA_plm_rsh_agent=""          # one node: never ssh
export LNFREE_DATA_DIR="$_kit/data"
EOF

# --- 4. Pack -------------------------------------------------------------------------------------
log "packing $(du -sm "$STAGE" | cut -f1) MB unpacked"
tar -C "$STAGE" -cf - . | xz -9 -T2 > "$KIT_DIR/kit.tar.xz.tmp"
mv "$KIT_DIR/kit.tar.xz.tmp" "$KIT_DIR/kit.tar.xz"
size_mb=$(( $(stat -c %s "$KIT_DIR/kit.tar.xz") / 1048576 ))
log "wrote .gpu-kit/kit.tar.xz: ${size_mb} MB"
((size_mb <= MAX_MB)) || die "the kit is ${size_mb} MB, over its ${MAX_MB} MB budget: prune more"

[ "${LNFREE_KIT_SKIP_PROOF:-0}" = 1 ] && exit 0
exec bash "$ROOT/launch/gpu-kit-proof.sh"
