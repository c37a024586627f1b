#include "util/build_info.h"

namespace lnfree {

const std::string& build_version() {
  static const std::string version = LNFREE_VERSION;
  return version;
}

const std::string& build_git_commit() {
  static const std::string commit = LNFREE_GIT_COMMIT;
  return commit;
}

}  // namespace lnfree
