// How the run config writes TOML values (the canonical TOML, --set values built by the study):
// shared by the writer, the validator's messages and the study plan.
#pragma once

#include <string>

namespace lnfree::config {

// The shortest text that reads back to the same double, as a TOML float ("1e-05", "2.0", "inf").
std::string float_text(double v);
// `s` as a TOML basic string: in double quotes, with quotes, backslashes and control characters
// escaped.
std::string toml_string(const std::string& s);

}  // namespace lnfree::config
