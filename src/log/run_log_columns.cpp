#include "log/run_log_columns.h"

#include <algorithm>
#include <cstring>

#include "log/h5_util.h"

namespace lnfree::runlog::detail {
namespace {

using h5::check;
using h5::checked;
using h5::Handle;

std::size_t element_size(Element element) {
  switch (element) {
    case Element::kInt64:
    case Element::kFloat64:
      return 8;
    case Element::kInt8:
      return 1;
    case Element::kString:
      return kKindBytes;
  }
  return 0;
}

}  // namespace

Handle memory_type(Element element) {
  switch (element) {
    case Element::kInt64:
      return Handle(H5Tcopy(H5T_NATIVE_INT64), H5Tclose);
    case Element::kFloat64:
      return Handle(H5Tcopy(H5T_NATIVE_DOUBLE), H5Tclose);
    case Element::kInt8:
      return Handle(H5Tcopy(H5T_NATIVE_INT8), H5Tclose);
    case Element::kString:
      return h5::fixed_string_type(kKindBytes);
  }
  return Handle();
}

std::size_t row_bytes(const ColumnDef& def) {
  std::size_t bytes = element_size(def.element);
  for (hsize_t d : def.row_shape) bytes *= d;
  return bytes;
}

void write_fixed_string(hid_t dataset, std::size_t bytes, const std::string& value, const std::string& file) {
  std::vector<char> buffer(bytes, '\0');
  std::size_t n = std::min(bytes, value.size());
  // Never cut a UTF-8 sequence: back up to the start of the character that does not fit.
  while (n > 0 && n < value.size() && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;
  std::memcpy(buffer.data(), value.data(), n);
  Handle type = h5::fixed_string_type(bytes);
  check(H5Dwrite(dataset, type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), file,
        "cannot write status");
}

void Column::append(const void* data, hsize_t n, const std::string& file) {
  if (n == 0) return;
  std::vector<hsize_t> dims{rows_ + n};
  dims.insert(dims.end(), row_shape_.begin(), row_shape_.end());
  check(H5Dset_extent(dataset_.get(), dims.data()), file, "cannot extend dataset");
  Handle file_space = checked(H5Dget_space(dataset_.get()), H5Sclose, file, "H5Dget_space");
  std::vector<hsize_t> start(dims.size(), 0);
  start[0] = rows_;
  std::vector<hsize_t> count = dims;
  count[0] = n;
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
        file, "H5Sselect_hyperslab");
  Handle memory_space = checked(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                                H5Sclose, file, "H5Screate_simple");
  check(H5Dwrite(dataset_.get(), type_.get(), memory_space.get(), file_space.get(), H5P_DEFAULT, data), file,
        "cannot write rows");
  rows_ += n;
}

void Column::flush(const std::string& file) { check(H5Dflush(dataset_.get()), file, "H5Dflush"); }

}  // namespace lnfree::runlog::detail
