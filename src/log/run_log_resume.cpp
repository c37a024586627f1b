#include "log/run_log_resume.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <utility>

#include "log/h5_handle.h"
#include "log/h5_util.h"
#include "util/error.h"

namespace lnfree::runlog::detail {
namespace {

using h5::check;
using h5::checked;
using h5::Handle;
using namespace h5;  // h5_util: file access, links, attributes

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string text = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// Reads every column of `def` from an existing run log and keeps the rows before `resume_step`.
TableRows read_kept_rows(hid_t h5file, const TableDef& def, std::int64_t resume_step,
                         const std::string& file) {
  TableRows kept;
  hsize_t complete_rows = std::numeric_limits<hsize_t>::max();
  for (const ColumnDef& column : def.columns) {
    const std::string name = def.group + "/" + column.name;
    if (!link_exists(h5file, name)) fail("{}: dataset '{}' is missing", file, name);
    Handle dataset =
        checked(H5Dopen2(h5file, name.c_str(), H5P_DEFAULT), H5Dclose, file, "cannot open dataset");
    Handle space = checked(H5Dget_space(dataset.get()), H5Sclose, file, "H5Dget_space");
    std::vector<hsize_t> dims(1 + column.row_shape.size());
    if (H5Sget_simple_extent_ndims(space.get()) != static_cast<int>(dims.size())) {
      fail("{}: dataset '{}': expected {} dimensions", file, name, dims.size());
    }
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    if (!std::equal(column.row_shape.begin(), column.row_shape.end(), dims.begin() + 1)) {
      fail("{}: dataset '{}': expected rows of shape {}, got {}", file, name, shape_text(column.row_shape),
           shape_text(std::vector<hsize_t>(dims.begin() + 1, dims.end())));
    }
    std::vector<unsigned char> bytes(dims[0] * row_bytes(column));
    Handle type = memory_type(column.element);
    if (dims[0] > 0) {
      check(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), file,
            "cannot read dataset");
    }
    // A writer that died inside an append can leave one column a row longer than the others.
    complete_rows = std::min(complete_rows, dims[0]);
    kept.columns.push_back(std::move(bytes));
  }
  const auto* steps = reinterpret_cast<const std::int64_t*>(kept.columns[0].data());
  while (kept.rows < complete_rows && steps[kept.rows] != kUnwrittenStep && steps[kept.rows] < resume_step)
    ++kept.rows;
  for (std::size_t c = 0; c < def.columns.size(); ++c)
    kept.columns[c].resize(kept.rows * row_bytes(def.columns[c]));
  return kept;
}

herr_t collect_link_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

}  // namespace

std::vector<TableRows> read_resume_rows(const RunLogSpec& spec, const std::vector<TableDef>& defs,
                                        std::int64_t resume_step) {
  const std::string& file = spec.path;
  Handle fapl = file_access(file);
  // SWMR-read also opens the file of a writer that crashed (its superblock still says "open for
  // writing", which makes a plain open fail); the data up to the last flush is intact.
  hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get());
  if (id < 0)
    fail("{}: cannot resume the run log: not a readable HDF5 file: {}", file, h5::take_error_message());
  Handle h5file(id, H5Fclose);
  const hid_t root = h5file.get();
  std::int64_t version = read_int_attribute(root, "/", "schema_version", file);
  if (version != kSchemaVersion) {
    fail("{}: root attribute 'schema_version': expected {}, got {}", file, kSchemaVersion, version);
  }
  for (const char* name : kModelInts) {
    std::int64_t in_file = read_int_attribute(root, "/", name, file);
    std::int64_t in_spec = spec.int_attributes.at(name);
    if (in_file != in_spec) {
      fail("{}: root attribute '{}': the log has {}, the resumed run has {}", file, name, in_file, in_spec);
    }
  }
  if (!link_exists(root, "/ln") || !link_exists(root, "/eval"))
    fail("{}: group '/ln' or '/eval' is missing", file);
  {
    Handle ln = checked(H5Gopen2(root, "/ln", H5P_DEFAULT), H5Gclose, file, "cannot open group");
    std::vector<std::string> names = read_strings_attribute(ln.get(), "/ln", "names", file);
    if (names != spec.ln_names) {
      fail("{}: /ln attribute 'names': the log has {} LNs ({}...), the resumed run has {} ({}...)", file,
           names.size(), names.empty() ? "" : names.front(), spec.ln_names.size(), spec.ln_names.front());
    }
  }
  std::vector<std::string> sets_in_file;
  {
    Handle eval = checked(H5Gopen2(root, "/eval", H5P_DEFAULT), H5Gclose, file, "cannot open group");
    check(H5Literate(eval.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_link_name, &sets_in_file), file,
          "cannot list /eval");
  }
  for (const auto& set : sets_in_file) {
    if (std::find(spec.eval_sets.begin(), spec.eval_sets.end(), set) == spec.eval_sets.end()) {
      fail("{}: eval set '{}' is in the log but not in the resumed run's eval sets", file, set);
    }
  }
  std::vector<TableRows> kept;
  for (const auto& def : defs) {
    // A new eval set, or /rollbacks in a log written before it existed, starts empty.
    const bool new_group =
        (def.group.rfind("/eval/", 0) == 0 || def.group == "/rollbacks") && !link_exists(root, def.group);
    if (new_group) {
      kept.push_back(TableRows{0, std::vector<std::vector<unsigned char>>(def.columns.size())});
    } else {
      kept.push_back(read_kept_rows(root, def, resume_step, file));
    }
  }
  check(h5file.close(), file, "cannot close file");
  return kept;
}

}  // namespace lnfree::runlog::detail
