// The version and git commit this binary was built from, recorded in logs, checkpoints, shard
// manifests and `--version`. One translation unit holds them so that a new commit recompiles
// that file alone (a compile definition on every file would miss ccache for the whole build).
#pragma once

#include <string>

namespace lnfree {

// The project version from CMakeLists.txt, e.g. "0.1.0".
const std::string& build_version();
// The short commit hash at configure time, or "unknown" outside a git checkout.
const std::string& build_git_commit();

}  // namespace lnfree
