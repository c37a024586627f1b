// Reads a JSON file; a missing file or invalid JSON is an lnfree::Error naming the file.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace lnfree {

nlohmann::json read_json_file(const std::string& path);

}  // namespace lnfree
