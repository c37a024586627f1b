#include "log/run_log_create.h"

#include <algorithm>
#include <cstddef>
#include <set>

#include "log/h5_handle.h"
#include "log/h5_util.h"
#include "util/build_info.h"
#include "util/error.h"

namespace lnfree::runlog::detail {
namespace {

using h5::check;
using h5::checked;
using h5::Handle;
using namespace h5;  // h5_util: types, file access, attributes

// ~1024 rows per chunk (appends touch one cached chunk; 1000 appends take milliseconds), fewer
// rows when a row is wide so that one chunk stays near 64 KiB.
constexpr hsize_t kMaxChunkRows = 1024;
constexpr hsize_t kTargetChunkBytes = 64 * 1024;

bool valid_set_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// Explicit little-endian file types, so the file is the same on any writer.
hid_t file_type(Element element, const Handle& string_type) {
  switch (element) {
    case Element::kInt64:
      return H5T_STD_I64LE;
    case Element::kFloat64:
      return H5T_IEEE_F64LE;
    case Element::kInt8:
      return H5T_STD_I8LE;
    case Element::kString:
      return string_type.get();
  }
  return H5I_INVALID_HID;
}

void create_status_dataset(hid_t file_id, const char* name, std::size_t bytes, const std::string& value,
                           const std::string& file) {
  Handle type = fixed_string_type(bytes);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, file, "H5Pcreate");
  // Compact: the value lives in the object header, which an SWMR reader's refresh() re-reads.
  check(H5Pset_layout(dcpl.get(), H5D_COMPACT), file, "H5Pset_layout");
  Handle dataset =
      checked(H5Dcreate2(file_id, name, type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
              H5Dclose, file, "cannot create status dataset");
  write_fixed_string(dataset.get(), bytes, value, file);
}

Handle create_column(hid_t group, const ColumnDef& def, const std::string& file) {
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk{0};
  dims.insert(dims.end(), def.row_shape.begin(), def.row_shape.end());
  max_dims.insert(max_dims.end(), def.row_shape.begin(), def.row_shape.end());
  chunk.insert(chunk.end(), def.row_shape.begin(), def.row_shape.end());
  chunk[0] = std::clamp<hsize_t>(kTargetChunkBytes / row_bytes(def), 1, kMaxChunkRows);
  const int rank = static_cast<int>(dims.size());
  Handle space =
      checked(H5Screate_simple(rank, dims.data(), max_dims.data()), H5Sclose, file, "H5Screate_simple");
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, file, "H5Pcreate");
  check(H5Pset_chunk(dcpl.get(), rank, chunk.data()), file, "H5Pset_chunk");
  if (def.name == "step")
    check(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_INT64, &kUnwrittenStep), file, "H5Pset_fill_value");
  Handle string_type = fixed_string_type(kKindBytes);
  return checked(H5Dcreate2(group, def.name.c_str(), file_type(def.element, string_type), space.get(),
                            H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                 H5Dclose, file, "cannot create dataset");
}

}  // namespace

void validate_spec(const RunLogSpec& spec) {
  if (spec.path.empty()) fail("run log: RunLogSpec.path is empty");
  const std::string& path = spec.path;
  for (const char* name : kRequiredStrings) {
    if (!spec.string_attributes.count(name))
      fail("{}: run log spec: string attribute '{}' is required", path, name);
  }
  for (const char* name : kModelInts) {
    if (!spec.int_attributes.count(name))
      fail("{}: run log spec: integer attribute '{}' is required", path, name);
  }
  std::set<std::string> names;
  auto claim = [&](const std::string& name) {
    for (const char* reserved : kReserved) {
      if (name == reserved)
        fail("{}: run log spec: attribute '{}' is reserved (RunLog writes it)", path, name);
    }
    if (name.empty()) fail("{}: run log spec: an attribute name is empty", path);
    if (!names.insert(name).second) fail("{}: run log spec: attribute '{}' is given twice", path, name);
  };
  for (const auto& [name, value] : spec.string_attributes) claim(name);
  for (const auto& [name, value] : spec.int_attributes) claim(name);
  for (const auto& [name, value] : spec.float_attributes) claim(name);
  if (spec.int_attributes.at(attribute::kNLayer) < 0)
    fail("{}: run log spec: n_layer must not be negative", path);

  std::set<std::string> sets;
  for (const auto& set : spec.eval_sets) {
    if (!valid_set_name(set))
      fail("{}: run log spec: eval set name '{}': expected [A-Za-z0-9_.-]+", path, set);
    if (!sets.insert(set).second) fail("{}: run log spec: eval set '{}' is given twice", path, set);
  }
  if (spec.ln_names.empty()) fail("{}: run log spec: ln_names is empty", path);
  std::set<std::string> lns;
  for (const auto& name : spec.ln_names) {
    if (name.empty()) fail("{}: run log spec: an LN name is empty", path);
    if (!lns.insert(name).second) fail("{}: run log spec: LN name '{}' is given twice", path, name);
  }
}

void build_file(const std::string& target, const std::string& file, const RunLogSpec& spec,
                const std::vector<TableDef>& defs, const std::vector<TableRows>* kept) {
  Handle fapl = file_access(file);
  Handle h5file = checked(H5Fcreate(target.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, file,
                          "cannot create file");
  const hid_t root = h5file.get();
  for (const auto& [name, value] : spec.string_attributes) write_attribute(root, name, value, file);
  for (const auto& [name, value] : spec.int_attributes) write_attribute(root, name, value, file);
  for (const auto& [name, value] : spec.float_attributes) write_attribute(root, name, value, file);
  write_attribute(root, "schema_version", kSchemaVersion, file);
  write_attribute(root, "lnfree_version", build_version(), file);
  write_attribute(root, "git_commit", build_git_commit(), file);

  Handle eval = checked(H5Gcreate2(root, "/eval", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, file,
                        "cannot create group");
  Handle lcpl = checked(H5Pcreate(H5P_LINK_CREATE), H5Pclose, file, "H5Pcreate");
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), file, "H5Pset_create_intermediate_group");
  for (std::size_t t = 0; t < defs.size(); ++t) {
    const TableDef& def = defs[t];
    Handle group = checked(H5Gcreate2(root, def.group.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
                           H5Gclose, file, "cannot create group");
    if (def.group == "/ln") write_attribute(group.get(), "names", spec.ln_names, file);
    for (std::size_t c = 0; c < def.columns.size(); ++c) {
      Column column(create_column(group.get(), def.columns[c], file), def.columns[c], 0);
      if (def.group == "/ln" && def.columns[c].name == "fake") {
        write_attribute(column.dataset(), "paths", std::vector<std::string>{"main", "v"}, file);
      }
      if (kept != nullptr) column.append((*kept)[t].columns[c].data(), (*kept)[t].rows, file);
    }
  }
  create_status_dataset(root, "/status", kStatusBytes, status_name(RunStatus::kRunning), file);
  create_status_dataset(root, "/status_message", kMessageBytes, "", file);
  check(h5file.close(), file, "cannot close file");
}

}  // namespace lnfree::runlog::detail
