#include "log/h5_util.h"

#include <algorithm>
#include <cstddef>

#include "util/error.h"

namespace lnfree::runlog::h5 {
namespace {

Handle create_attribute(hid_t object, const std::string& name, hid_t type, hid_t space,
                        const std::string& file) {
  if (H5Aexists(object, name.c_str()) > 0) check(H5Adelete(object, name.c_str()), file, "H5Adelete");
  return checked(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, file,
                 "cannot create attribute");
}

}  // namespace

// Fixed-length (SWMR-safe: no global heap), UTF-8, null-padded: h5py reads these as bytes
// that .asstr() decodes.
Handle fixed_string_type(std::size_t bytes) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, bytes);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return Handle(type, H5Tclose);
}

Handle variable_string_type() {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return Handle(type, H5Tclose);
}

Handle file_access(const std::string& file) {
  Handle fapl = checked(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, file, "H5Pcreate");
  // SWMR needs the latest file format.
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), file, "H5Pset_libver_bounds");
  // Lock where the file system can (protects against two writers), carry on where it cannot
  // (some cluster file systems have no flock).
  check(H5Pset_file_locking(fapl.get(), true, true), file, "H5Pset_file_locking");
  return fapl;
}

bool link_exists(hid_t location, const std::string& path) {
  // H5Lexists requires every parent to exist: test the components one by one.
  std::size_t position = 0;
  while (position != std::string::npos) {
    position = path.find('/', position + 1);
    std::string prefix = path.substr(0, position);
    if (H5Lexists(location, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

std::int64_t read_int64_row(hid_t dataset, hsize_t row, const std::string& file) {
  Handle space = checked(H5Dget_space(dataset), H5Sclose, file, "H5Dget_space");
  hsize_t count = 1;
  check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &row, nullptr, &count, nullptr), file,
        "H5Sselect_hyperslab");
  Handle memory = checked(H5Screate_simple(1, &count, nullptr), H5Sclose, file, "H5Screate_simple");
  std::int64_t value = 0;
  check(H5Dread(dataset, H5T_NATIVE_INT64, memory.get(), space.get(), H5P_DEFAULT, &value), file,
        "cannot read dataset");
  return value;
}

// --- attributes -------------------------------------------------------------------------------

void write_attribute(hid_t object, const std::string& name, const std::string& value,
                     const std::string& file) {
  Handle type = variable_string_type();
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute = create_attribute(object, name, type.get(), space.get(), file);
  const char* text = value.c_str();
  check(H5Awrite(attribute.get(), type.get(), &text), file, "cannot write attribute");
}

void write_attribute(hid_t object, const std::string& name, std::int64_t value, const std::string& file) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute = create_attribute(object, name, H5T_STD_I64LE, space.get(), file);
  check(H5Awrite(attribute.get(), H5T_NATIVE_INT64, &value), file, "cannot write attribute");
}

void write_attribute(hid_t object, const std::string& name, double value, const std::string& file) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute = create_attribute(object, name, H5T_IEEE_F64LE, space.get(), file);
  check(H5Awrite(attribute.get(), H5T_NATIVE_DOUBLE, &value), file, "cannot write attribute");
}

void write_attribute(hid_t object, const std::string& name, const std::vector<std::string>& values,
                     const std::string& file) {
  Handle type = variable_string_type();
  hsize_t count = values.size();
  Handle space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  Handle attribute = create_attribute(object, name, type.get(), space.get(), file);
  std::vector<const char*> texts;
  for (const auto& value : values) texts.push_back(value.c_str());
  check(H5Awrite(attribute.get(), type.get(), texts.data()), file, "cannot write attribute");
}

std::int64_t read_int_attribute(hid_t object, const std::string& owner, const std::string& name,
                                const std::string& file) {
  if (H5Aexists(object, name.c_str()) <= 0) fail("{}: {}: attribute '{}' is missing", file, owner, name);
  Handle attribute = checked(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose, file, "H5Aopen");
  Handle type = checked(H5Aget_type(attribute.get()), H5Tclose, file, "H5Aget_type");
  Handle space = checked(H5Aget_space(attribute.get()), H5Sclose, file, "H5Aget_space");
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Sget_simple_extent_npoints(space.get()) != 1) {
    fail("{}: {}: attribute '{}': expected one integer", file, owner, name);
  }
  std::int64_t value = 0;
  check(H5Aread(attribute.get(), H5T_NATIVE_INT64, &value), file, "cannot read attribute");
  return value;
}

std::vector<std::string> read_strings_attribute(hid_t object, const std::string& owner,
                                                const std::string& name, const std::string& file) {
  if (H5Aexists(object, name.c_str()) <= 0) fail("{}: {}: attribute '{}' is missing", file, owner, name);
  Handle attribute = checked(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose, file, "H5Aopen");
  Handle file_type_handle = checked(H5Aget_type(attribute.get()), H5Tclose, file, "H5Aget_type");
  Handle space = checked(H5Aget_space(attribute.get()), H5Sclose, file, "H5Aget_space");
  if (H5Tget_class(file_type_handle.get()) != H5T_STRING || H5Tis_variable_str(file_type_handle.get()) <= 0) {
    fail("{}: {}: attribute '{}': expected variable-length strings", file, owner, name);
  }
  hssize_t count = H5Sget_simple_extent_npoints(space.get());
  std::vector<char*> texts(static_cast<std::size_t>(std::max<hssize_t>(count, 0)), nullptr);
  Handle type = variable_string_type();
  check(H5Aread(attribute.get(), type.get(), texts.data()), file, "cannot read attribute");
  std::vector<std::string> values;
  for (char* text : texts) values.emplace_back(text != nullptr ? text : "");
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, texts.data());
  return values;
}

}  // namespace lnfree::runlog::h5
