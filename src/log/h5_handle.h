// Small RAII wrappers over HDF5 C identifiers, and the conversion of HDF5 failures into
// lnfree::Error. HDF5 reports failures on a global error stack (printed to stderr by default); the
// run log silences that printing while it works and puts the innermost HDF5 message into the
// exception instead, next to the file name.
#pragma once

#include <hdf5.h>

#include <string>

namespace lnfree::runlog::h5 {

// Owns one identifier (file, group, dataset, dataspace, datatype, attribute, property list) and
// closes it with the matching H5*close function.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept;
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now, ignoring failure (destructor path).
  void reset();
  // Closes now and returns the closer's status, for closes whose failure matters (files).
  herr_t close();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// While alive, HDF5 prints nothing to stderr; the previous setting is restored afterwards.
class QuietErrors {
 public:
  QuietErrors();
  ~QuietErrors();
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t previous_function_ = nullptr;
  void* previous_data_ = nullptr;
};

// The innermost message on HDF5's error stack (e.g. "unable to open file: ... No such file or
// directory"), or "unknown HDF5 error"; clears the stack.
std::string take_error_message();

// Throw lnfree::Error "<file>: <what>: <HDF5 message>" when `status` / `id` is negative.
void check(herr_t status, const std::string& file, const char* what);
Handle checked(hid_t id, Handle::Closer closer, const std::string& file, const char* what);

}  // namespace lnfree::runlog::h5
