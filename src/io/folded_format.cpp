#include "io/folded_format.h"

#include <filesystem>

#include "util/json_file.h"

namespace fs = std::filesystem;

namespace lnfree::io {

bool is_folded_folder(const std::string& dir) {
  const fs::path config = fs::path(dir) / "config.json";
  if (!fs::is_regular_file(config)) return false;
  auto json = read_json_file(config.string());
  return json.is_object() && json.value("model_type", "") == kFoldedModelType;
}

}  // namespace lnfree::io
