// SHA-256 (FIPS 180-4) of a byte string, for config hashes. Self-contained so that lnfree_core
// needs no crypto library.
#pragma once

#include <string>
#include <string_view>

namespace lnfree::config {

// Lower-case hex digest (64 characters).
std::string sha256_hex(std::string_view bytes);

}  // namespace lnfree::config
