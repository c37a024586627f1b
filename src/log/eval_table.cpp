#include "log/eval_table.h"

#include <filesystem>

#include "log/h5_handle.h"
#include "util/error.h"

namespace lnfree::runlog {
namespace {

using h5::check;
using h5::checked;
using h5::Handle;

constexpr const char* kGroup = "eval_suite";

Handle string_type() {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return Handle(type, H5Tclose);
}

hid_t memory_type(const EvalValue& value, const Handle& strings) {
  if (std::holds_alternative<double>(value)) return H5T_NATIVE_DOUBLE;
  if (std::holds_alternative<std::int64_t>(value)) return H5T_NATIVE_INT64;
  return strings.get();
}

Handle open_or_create_column(hid_t group, const std::string& name, const EvalValue& first, bool create,
                             const Handle& strings, const std::string& path) {
  if (!create) {
    if (H5Lexists(group, name.c_str(), H5P_DEFAULT) <= 0)
      fail("{}: /{} has no column '{}' (its rows were written with other columns; use a new --h5 file)", path,
           kGroup, name);
    return checked(H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose, path, "cannot open column");
  }
  hsize_t dims = 0, max_dims = H5S_UNLIMITED, chunk = 64;
  Handle space = checked(H5Screate_simple(1, &dims, &max_dims), H5Sclose, path, "H5Screate_simple");
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path, "H5Pcreate");
  check(H5Pset_chunk(dcpl.get(), 1, &chunk), path, "H5Pset_chunk");
  return checked(H5Dcreate2(group, name.c_str(), memory_type(first, strings), space.get(), H5P_DEFAULT,
                            dcpl.get(), H5P_DEFAULT),
                 H5Dclose, path, "cannot create column");
}

void append_value(hid_t dataset, const EvalValue& value, const Handle& strings, const std::string& path) {
  Handle space = checked(H5Dget_space(dataset), H5Sclose, path, "H5Dget_space");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  hsize_t grown = n + 1, one = 1;
  check(H5Dset_extent(dataset, &grown), path, "cannot extend column");
  Handle file_space = checked(H5Dget_space(dataset), H5Sclose, path, "H5Dget_space");
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &n, nullptr, &one, nullptr), path,
        "H5Sselect_hyperslab");
  Handle memory = checked(H5Screate_simple(1, &one, nullptr), H5Sclose, path, "H5Screate_simple");
  const char* text = nullptr;
  const void* data = nullptr;
  if (const auto* d = std::get_if<double>(&value))
    data = d;
  else if (const auto* i = std::get_if<std::int64_t>(&value))
    data = i;
  else {
    text = std::get<std::string>(value).c_str();
    data = &text;
  }
  check(H5Dwrite(dataset, memory_type(value, strings), memory.get(), file_space.get(), H5P_DEFAULT, data),
        path, "cannot write column");
}

}  // namespace

void append_eval_rows(const std::string& path, const std::vector<EvalRow>& rows) {
  if (rows.empty()) return;
  h5::QuietErrors quiet;
  const bool exists = std::filesystem::exists(path);
  Handle file = exists ? checked(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path,
                                 "cannot open for appending")
                       : checked(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
                                 path, "cannot create");
  const bool has_group = exists && H5Lexists(file.get(), kGroup, H5P_DEFAULT) > 0;
  Handle group = has_group
                     ? checked(H5Gopen2(file.get(), kGroup, H5P_DEFAULT), H5Gclose, path, "cannot open group")
                     : checked(H5Gcreate2(file.get(), kGroup, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                               H5Gclose, path, "cannot create group");
  Handle strings = string_type();
  for (const auto& row : rows) {
    for (const auto& [name, value] : row) {
      Handle column =
          open_or_create_column(group.get(), name, value, !has_group && &row == &rows.front(), strings, path);
      append_value(column.get(), value, strings, path);
    }
  }
  check(file.close(), path, "cannot close");
}

}  // namespace lnfree::runlog
