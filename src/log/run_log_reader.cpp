// Reading a run log's status back (run_log.h: read_logged_status), for `lnfree status` and the
// run folder (run_folder.h). A reader in SWMR mode sees what a live writer has flushed.
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "log/h5_handle.h"
#include "log/h5_util.h"
#include "log/run_log.h"
#include "util/error.h"

namespace lnfree::runlog {
namespace {

using h5::check;
using h5::checked;
using h5::Handle;

std::string read_fixed_string(hid_t file, const char* name, const std::string& path) {
  Handle dataset = checked(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose, path, "cannot open dataset");
  Handle type = checked(H5Dget_type(dataset.get()), H5Tclose, path, "H5Dget_type");
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0)
    fail("{}: dataset '{}': expected a fixed-length string (docs/run-log.md)", path, name);
  std::vector<char> buffer(H5Tget_size(type.get()) + 1, '\0');
  check(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), path,
        "cannot read dataset");
  return std::string(buffer.data());
}

}  // namespace

std::optional<RunStatus> status_from_name(const std::string& name) {
  for (RunStatus s : kAllRunStatuses)
    if (name == status_name(s)) return s;
  return std::nullopt;
}

LoggedStatus read_logged_status(const std::string& path) {
  h5::QuietErrors quiet;
  Handle fapl = h5::file_access(path);
  Handle file = checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose, path,
                        "cannot open the run log");
  LoggedStatus logged;
  const std::string status = read_fixed_string(file.get(), "/status", path);
  const auto parsed = status_from_name(status);
  if (!parsed)
    fail("{}: dataset '/status': expected running, complete, diverged, failed or preempted, got '{}'", path,
         status);
  logged.status = *parsed;
  logged.message = read_fixed_string(file.get(), "/status_message", path);
  Handle steps =
      checked(H5Dopen2(file.get(), "/train/step", H5P_DEFAULT), H5Dclose, path, "cannot open dataset");
  Handle space = checked(H5Dget_space(steps.get()), H5Sclose, path, "H5Dget_space");
  hsize_t rows = 0;
  if (H5Sget_simple_extent_ndims(space.get()) != 1)
    fail("{}: dataset '/train/step': expected one dimension", path);
  H5Sget_simple_extent_dims(space.get(), &rows, nullptr);
  logged.train_rows = static_cast<std::int64_t>(rows);
  if (rows > 0) logged.last_train_step = h5::read_int64_row(steps.get(), rows - 1, path);
  return logged;
}

}  // namespace lnfree::runlog
