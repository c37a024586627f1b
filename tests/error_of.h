// The message of the lnfree::Error that a callable throws: for tests that check what an error says
// (the file, the field, what was expected).
#pragma once

#include <string>

#include "util/error.h"

namespace lnfree::test_support {

// The message of the lnfree::Error that `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const lnfree::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace lnfree::test_support
