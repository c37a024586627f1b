#include "util/paths.h"

#include <cstdlib>

namespace lnfree {
namespace {
std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return (value != nullptr && *value != '\0') ? std::string(value) : fallback;
}
}  // namespace

std::string default_data_dir() { return env_or("LNFREE_DATA_DIR", std::string(LNFREE_SOURCE_DIR) + "/data"); }
std::string default_config_dir() {
  return env_or("LNFREE_CONFIG_DIR", std::string(LNFREE_SOURCE_DIR) + "/configs");
}
std::string default_source_dir() { return env_or("LNFREE_SOURCE_DIR", LNFREE_SOURCE_DIR); }
std::string default_bpe_dir() { return default_data_dir() + "/bpe"; }

}  // namespace lnfree
