// Generic HDF5 helpers of the run log (any file, any schema): string types, the file access
// property list of SWMR files, link tests, and root or group attributes written and read with the
// HDF5 C API. Failures become lnfree::Error naming `file` (h5_handle.h).
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "log/h5_handle.h"

namespace lnfree::runlog::h5 {

// Fixed-length (SWMR-safe), UTF-8, null-padded strings of `bytes`; variable-length UTF-8 strings.
Handle fixed_string_type(std::size_t bytes);
Handle variable_string_type();
// File access for SWMR files: the latest format, file locking where the file system has it.
Handle file_access(const std::string& file);
// True when every component of `path` exists below `location`.
bool link_exists(hid_t location, const std::string& path);

// Row `row` of a 1-D int64 dataset (a "step" column).
std::int64_t read_int64_row(hid_t dataset, hsize_t row, const std::string& file);

// Scalar (or 1-D for string lists) attributes, replaced when they exist.
void write_attribute(hid_t object, const std::string& name, const std::string& value,
                     const std::string& file);
void write_attribute(hid_t object, const std::string& name, std::int64_t value, const std::string& file);
void write_attribute(hid_t object, const std::string& name, double value, const std::string& file);
void write_attribute(hid_t object, const std::string& name, const std::vector<std::string>& values,
                     const std::string& file);
// `owner` names the object in messages ("root", "/eval/x").
std::int64_t read_int_attribute(hid_t object, const std::string& owner, const std::string& name,
                                const std::string& file);
std::vector<std::string> read_strings_attribute(hid_t object, const std::string& owner,
                                                const std::string& name, const std::string& file);

}  // namespace lnfree::runlog::h5
