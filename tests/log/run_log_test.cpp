#include "log/run_log.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <ratio>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "util/build_info.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;
using lnfree::runlog::EvalRow;
using lnfree::runlog::EventRow;
using lnfree::runlog::LnPathState;
using lnfree::runlog::RunLog;
using lnfree::runlog::RunLogSpec;
using lnfree::runlog::RunStatus;
using lnfree::runlog::TrainRow;

namespace {

// A fresh, empty directory per test.
fs::path test_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("lnfree_run_log_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::string> ln_names(int n_layer) {
  std::vector<std::string> names;
  for (int i = 0; i < n_layer; ++i) {
    names.push_back("h." + std::to_string(i) + ".ln_1");
    names.push_back("h." + std::to_string(i) + ".ln_2");
  }
  names.push_back("ln_f");
  return names;
}

RunLogSpec make_spec(const std::string& path, std::vector<std::string> eval_sets = {"brown_val", "nlp_val"}) {
  RunLogSpec spec;
  spec.path = path;
  spec.string_attributes = {{"config", "[model]\nn_layer = 2\nn_embd = 8\n"}, {"mode", "remove-ln"}};
  spec.int_attributes = {
      {"n_layer", 2}, {"n_embd", 8}, {"n_head", 2}, {"params_total", 1234}, {"params_non_embedding", 567},
      {"seed", 1234}};
  spec.float_attributes = {{"lr_peak", 6e-4}};
  spec.eval_sets = std::move(eval_sets);
  spec.ln_names = ln_names(2);
  return spec;
}

// The rows of a synthetic run, a pure function of the step, so that two runs can be compared.
TrainRow train_row(std::int64_t step) {
  TrainRow row;
  row.step = step;
  row.tokens = 4096 * (step + 1);
  row.loss = 3.5 - 0.125 * static_cast<double>(step);
  row.ce_loss = 3.0 - 0.125 * static_cast<double>(step);
  row.aux_loss = 0.5;
  row.lr = 6e-4 * static_cast<double>(step + 1) / 5;
  row.grad_norm = 1.0 + 0.0625 * static_cast<double>(step);
  row.tokens_per_s = 1000.0 + static_cast<double>(step);
  return row;
}

std::vector<double> sigmas(std::int64_t step, std::size_t n_ln) {
  std::vector<double> values;
  for (std::size_t j = 0; j < n_ln; ++j) values.push_back(1.0 + static_cast<double>(j) + 0.25 * step);
  return values;
}

std::vector<LnPathState> fake_states(std::int64_t step, std::size_t n_ln) {
  std::vector<LnPathState> states;
  for (std::size_t j = 0; j < n_ln; ++j) {
    states.push_back({static_cast<std::int64_t>(j) < step, static_cast<std::int64_t>(j) < step - 1});
  }
  return states;
}

// Everything a training step logs at `step`.
void log_step(RunLog& log, std::int64_t step) {
  log.append_train(train_row(step));
  if (step % 2 == 0) log.append_eval("brown_val", {step, 4096 * (step + 1), 4.0 - 0.25 * step});
  if (step % 3 == 0) log.append_eval("nlp_val", {step, 4096 * (step + 1), 5.0 - 0.25 * step});
  if (step == 1) log.append_event({step, 4096 * (step + 1), "ln2", 0});
  if (step == 2) {
    log.append_event({step, 4096 * (step + 1), "ln1qk", 1});
    log.append_event({step, 4096 * (step + 1), "ln1v", 1});
  }
  if (step == 6) log.append_event({step, 4096 * (step + 1), "lnf", -1});
  log.append_ln(step, sigmas(step, 5), fake_states(step, 5));
}

// --- reading back through the C API ------------------------------------------------------------

struct File {
  hid_t id;
  explicit File(const std::string& path) {
    H5E_BEGIN_TRY { id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
  }
  ~File() {
    if (id >= 0) H5Fclose(id);
  }
};

struct Dataset {
  std::vector<hsize_t> dims;
  std::vector<unsigned char> bytes;  // in the file type's native memory layout
  std::string type;                  // "int", "float" or "string"
};

Dataset read_dataset(hid_t file, const std::string& name) {
  Dataset result;
  hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (dataset < 0) throw std::runtime_error("cannot open " + name);
  hid_t space = H5Dget_space(dataset);
  int rank = H5Sget_simple_extent_ndims(space);
  result.dims.resize(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space, result.dims.data(), nullptr);
  hid_t file_type = H5Dget_type(dataset);
  hid_t memory_type = H5Tget_native_type(file_type, H5T_DIR_ASCEND);
  H5T_class_t type_class = H5Tget_class(file_type);
  result.type = type_class == H5T_INTEGER ? "int" : type_class == H5T_FLOAT ? "float" : "string";
  hssize_t points = H5Sget_simple_extent_npoints(space);
  result.bytes.resize(static_cast<std::size_t>(points) * H5Tget_size(memory_type));
  if (points > 0) H5Dread(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, result.bytes.data());
  H5Tclose(memory_type);
  H5Tclose(file_type);
  H5Sclose(space);
  H5Dclose(dataset);
  return result;
}

template <typename T>
std::vector<T> values(const Dataset& dataset) {
  std::vector<T> out(dataset.bytes.size() / sizeof(T));
  // An empty dataset has null data() on both sides: no memcpy then (UB even for 0 bytes; UBSan).
  if (!out.empty()) std::memcpy(out.data(), dataset.bytes.data(), dataset.bytes.size());
  return out;
}

std::vector<std::int64_t> read_ints(hid_t file, const std::string& name) {
  return values<std::int64_t>(read_dataset(file, name));
}
std::vector<double> read_doubles(hid_t file, const std::string& name) {
  return values<double>(read_dataset(file, name));
}

// Fixed-length strings, trailing NULs removed.
std::vector<std::string> read_strings(hid_t file, const std::string& name) {
  hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  hid_t type = H5Dget_type(dataset);
  std::size_t width = H5Tget_size(type);
  Dataset raw = read_dataset(file, name);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < raw.bytes.size(); i += width) {
    std::string text(reinterpret_cast<const char*>(raw.bytes.data()) + i, width);
    out.push_back(text.substr(0, text.find('\0')));
  }
  H5Tclose(type);
  H5Dclose(dataset);
  return out;
}

std::string read_string_attribute(hid_t object, const char* name) {
  hid_t attribute = H5Aopen(object, name, H5P_DEFAULT);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  char* text = nullptr;
  H5Aread(attribute, type, &text);
  std::string value = text != nullptr ? text : "<null>";
  H5free_memory(text);
  H5Tclose(type);
  H5Aclose(attribute);
  return value;
}

std::vector<std::string> read_strings_attribute(hid_t object, const char* name) {
  hid_t attribute = H5Aopen(object, name, H5P_DEFAULT);
  hid_t space = H5Aget_space(attribute);
  std::vector<char*> texts(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  H5Aread(attribute, type, texts.data());
  std::vector<std::string> out(texts.begin(), texts.end());
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, texts.data());
  H5Tclose(type);
  H5Sclose(space);
  H5Aclose(attribute);
  return out;
}

template <typename T>
T read_attribute(hid_t object, const char* name, hid_t memory_type) {
  T value{};
  hid_t attribute = H5Aopen(object, name, H5P_DEFAULT);
  H5Aread(attribute, memory_type, &value);
  H5Aclose(attribute);
  return value;
}

herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t*, void* out) {
  hid_t object = H5Oopen(group, name, H5P_DEFAULT);
  if (H5Iget_type(object) == H5I_DATASET) {
    (*static_cast<std::map<std::string, Dataset>*>(out))[name] = read_dataset(group, name);
  }
  H5Oclose(object);
  return 0;
}

// Every dataset of a file, by path.
std::map<std::string, Dataset> all_datasets(const std::string& path) {
  File file(path);
  std::map<std::string, Dataset> datasets;
  H5Lvisit(file.id, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &datasets);
  return datasets;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const lnfree::Error& error) {
    return error.what();
  }
  return "<no error>";
}

}  // namespace

TEST(RunLog, WritesRowsThatReadBackWithTheCApi) {
  auto dir = test_dir("write");
  auto path = (dir / "run.h5").string();
  {
    RunLog log(make_spec(path));
    for (std::int64_t step = 0; step < 7; ++step) log_step(log, step);
    log.finish(RunStatus::kComplete, "finished 7 steps");
  }
  File file(path);
  ASSERT_GE(file.id, 0);
  EXPECT_EQ(read_attribute<std::int64_t>(file.id, "schema_version", H5T_NATIVE_INT64), 1);
  EXPECT_EQ(read_attribute<std::int64_t>(file.id, "n_layer", H5T_NATIVE_INT64), 2);
  EXPECT_EQ(read_attribute<std::int64_t>(file.id, "params_non_embedding", H5T_NATIVE_INT64), 567);
  EXPECT_EQ(read_attribute<double>(file.id, "lr_peak", H5T_NATIVE_DOUBLE), 6e-4);
  EXPECT_EQ(read_string_attribute(file.id, "config"), "[model]\nn_layer = 2\nn_embd = 8\n");
  EXPECT_EQ(read_string_attribute(file.id, "mode"), "remove-ln");
  EXPECT_EQ(read_string_attribute(file.id, "lnfree_version"), lnfree::build_version());
  EXPECT_EQ(read_string_attribute(file.id, "git_commit"), lnfree::build_git_commit());

  EXPECT_EQ(read_ints(file.id, "/train/step"), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6}));
  auto tokens = read_ints(file.id, "/train/tokens");
  auto loss = read_doubles(file.id, "/train/loss");
  auto lr = read_doubles(file.id, "/train/lr");
  auto rate = read_doubles(file.id, "/train/tokens_per_s");
  ASSERT_EQ(loss.size(), 7u);
  for (std::int64_t step = 0; step < 7; ++step) {
    TrainRow expected = train_row(step);
    EXPECT_EQ(tokens[step], expected.tokens);
    EXPECT_EQ(loss[step], expected.loss);
    EXPECT_EQ(lr[step], expected.lr);
    EXPECT_EQ(rate[step], expected.tokens_per_s);
  }
  EXPECT_EQ(read_ints(file.id, "/eval/brown_val/step"), (std::vector<std::int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(read_doubles(file.id, "/eval/nlp_val/loss"), (std::vector<double>{5.0, 4.25, 3.5}));
  EXPECT_EQ(read_strings(file.id, "/events/kind"), (std::vector<std::string>{"ln2", "ln1qk", "ln1v", "lnf"}));
  EXPECT_EQ(read_ints(file.id, "/events/layer"), (std::vector<std::int64_t>{0, 1, 1, -1}));

  Dataset sigma = read_dataset(file.id, "/ln/sigma");
  EXPECT_EQ(sigma.dims, (std::vector<hsize_t>{7, 5}));
  auto sigma_values = values<double>(sigma);
  EXPECT_EQ(sigma_values[3 * 5 + 4], 1.0 + 4 + 0.25 * 3);
  Dataset fake = read_dataset(file.id, "/ln/fake");
  EXPECT_EQ(fake.dims, (std::vector<hsize_t>{7, 5, 2}));
  // Step 3: LNs 0..2 have a fake main path, LNs 0..1 a fake V path.
  std::vector<unsigned char> step3(fake.bytes.begin() + 30, fake.bytes.begin() + 40);
  EXPECT_EQ(step3, (std::vector<unsigned char>{1, 1, 1, 1, 1, 0, 0, 0, 0, 0}));
  hid_t ln = H5Gopen2(file.id, "/ln", H5P_DEFAULT);
  EXPECT_EQ(read_strings_attribute(ln, "names"), ln_names(2));
  H5Gclose(ln);

  EXPECT_EQ(read_strings(file.id, "/status"), std::vector<std::string>{"complete"});
  EXPECT_EQ(read_strings(file.id, "/status_message"), std::vector<std::string>{"finished 7 steps"});
  fs::remove_all(dir);
}

TEST(RunLog, FinishRewritesStatusUnderSwmrAndCutsLongMessagesAtCharacters) {
  auto dir = test_dir("status");
  auto path = (dir / "run.h5").string();
  // 'a' then 1000 two-byte characters: byte 1024 falls inside a character.
  std::string message = "a";
  for (int i = 0; i < 1000; ++i) message += "\xc3\xa9";
  {
    RunLog log(make_spec(path));
    log_step(log, 0);
    log.finish(RunStatus::kDiverged, message);
    EXPECT_NE(error_of([&] { log.append_train(train_row(1)); }).find("already finished"), std::string::npos);
  }
  File file(path);
  ASSERT_GE(file.id, 0);
  EXPECT_EQ(read_strings(file.id, "/status"), std::vector<std::string>{"diverged"});
  std::string stored = read_strings(file.id, "/status_message").at(0);
  EXPECT_EQ(stored.size(), 1023u);
  EXPECT_EQ(stored, message.substr(0, 1023));
  fs::remove_all(dir);
}

TEST(RunLog, ResumedLogEqualsAnUninterruptedLog) {
  auto dir = test_dir("resume");
  auto straight = (dir / "straight.h5").string();
  auto resumed = (dir / "resumed.h5").string();
  {
    RunLog log(make_spec(straight));
    for (std::int64_t step = 0; step < 10; ++step) log_step(log, step);
    log.finish(RunStatus::kComplete, "done");
  }
  {
    // Interrupted after step 7; the last checkpoint was taken before step 5.
    RunLog log(make_spec(resumed));
    for (std::int64_t step = 0; step < 8; ++step) log_step(log, step);
  }
  {
    RunLog log = RunLog::open_for_resume(make_spec(resumed), 5);
    // Rows from step 5 on are gone: step 4 again would be out of order only if they were kept.
    EXPECT_NE(error_of([&] { log.append_train(train_row(3)); }).find("must not decrease"), std::string::npos);
    for (std::int64_t step = 5; step < 10; ++step) log_step(log, step);
    log.finish(RunStatus::kComplete, "done");
  }
  auto a = all_datasets(straight);
  auto b = all_datasets(resumed);
  ASSERT_EQ(a.size(), b.size());
  std::size_t compared_bytes = 0;
  for (const auto& [name, dataset] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_EQ(dataset.dims, b[name].dims) << name;
    EXPECT_EQ(dataset.bytes, b[name].bytes) << name;
    compared_bytes += dataset.bytes.size();
  }
  std::printf("resumed vs uninterrupted log: %zu datasets, %zu bytes compared\n", a.size(), compared_bytes);
  EXPECT_EQ(values<std::int64_t>(b["train/step"]).size(), 10u);
  fs::remove_all(dir);
}

TEST(RunLog, ResumesTheLogOfAWriterThatCrashed) {
  auto dir = test_dir("crash");
  auto path = (dir / "run.h5").string();
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Die like a killed trainer: no destructor, no HDF5 close.
    try {
      auto* log = new RunLog(make_spec(path));
      for (std::int64_t step = 0; step < 6; ++step) log_step(*log, step);
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  {
    File plain(path);  // the superblock still says "open for writing"
    std::printf("plain read-only open of the crashed writer's file: %s\n",
                plain.id >= 0 ? "works" : "refused");
  }
  {
    RunLog log = RunLog::open_for_resume(make_spec(path), 4);
    log_step(log, 4);
    log.finish(RunStatus::kComplete, "resumed after a crash");
  }
  File file(path);
  ASSERT_GE(file.id, 0);
  EXPECT_EQ(read_ints(file.id, "/train/step"), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(read_ints(file.id, "/ln/step"), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(read_strings(file.id, "/events/kind"), (std::vector<std::string>{"ln2", "ln1qk", "ln1v"}));
  EXPECT_EQ(read_doubles(file.id, "/train/grad_norm").at(3), train_row(3).grad_norm);
  fs::remove_all(dir);
}

TEST(RunLog, ResumeKeepsNewEvalSetsEmptyAndRejectsADifferentModel) {
  auto dir = test_dir("resume_spec");
  auto path = (dir / "run.h5").string();
  {
    RunLog log(make_spec(path, {"brown_val"}));
    for (std::int64_t step = 0; step < 4; ++step) log.append_eval("brown_val", {step, step, 1.0});
  }
  auto before = lnfree::read_file(path);
  auto other_model = make_spec(path, {"brown_val"});
  other_model.int_attributes["n_embd"] = 16;
  auto message = error_of([&] { RunLog::open_for_resume(other_model, 2); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("n_embd"), std::string::npos) << message;
  auto other_lns = make_spec(path, {"brown_val"});
  other_lns.ln_names.back() = "final_norm";
  message = error_of([&] { RunLog::open_for_resume(other_lns, 2); });
  EXPECT_NE(message.find("names"), std::string::npos) << message;
  message = error_of([&] { RunLog::open_for_resume(make_spec(path, {"nlp_val"}), 2); });
  EXPECT_NE(message.find("brown_val"), std::string::npos) << message;
  EXPECT_EQ(lnfree::read_file(path), before) << "a refused resume changed the file";
  {
    RunLog log = RunLog::open_for_resume(make_spec(path, {"brown_val", "nlp_val"}), 2);
    log.append_eval("nlp_val", {2, 2, 3.0});
  }
  File file(path);
  EXPECT_EQ(read_ints(file.id, "/eval/brown_val/step"), (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(read_doubles(file.id, "/eval/nlp_val/loss"), std::vector<double>{3.0});
  fs::remove_all(dir);
}

TEST(RunLog, RollbackRowsFollowResumesAndOlderLogsWithoutThemResume) {
  auto dir = test_dir("rollbacks");
  auto path = (dir / "run.h5").string();
  {
    RunLog log(make_spec(path));
    for (std::int64_t step = 0; step < 6; ++step) log_step(log, step);
    // Back to the checkpoint after step 2, twice (no older one kept).
    log.append_rollback({2, 8192, 4, 0.5, 1});
    log.append_rollback({2, 8192, 3, 0.25, 2});
    EXPECT_NE(error_of([&] {
                log.append_rollback({1, 0, 1, 0.1});
              }).find("steps must not decrease"),
              std::string::npos);
  }
  {
    File file(path);
    EXPECT_EQ(read_ints(file.id, "/rollbacks/step"), (std::vector<std::int64_t>{2, 2}));
    EXPECT_EQ(read_ints(file.id, "/rollbacks/diverged_step"), (std::vector<std::int64_t>{4, 3}));
    EXPECT_EQ(read_doubles(file.id, "/rollbacks/lr_scale"), (std::vector<double>{0.5, 0.25}));
    EXPECT_EQ(read_ints(file.id, "/rollbacks/rollbacks"), (std::vector<std::int64_t>{1, 2}));
  }
  // Resumed from the checkpoint the rollbacks returned to (step 3): kept. From an older one (a
  // rollback further back): dropped with the rest of that history.
  { RunLog::open_for_resume(make_spec(path), 3); }
  EXPECT_EQ(read_ints(File(path).id, "/rollbacks/step").size(), 2u);
  { RunLog::open_for_resume(make_spec(path), 2); }
  EXPECT_EQ(read_ints(File(path).id, "/rollbacks/step").size(), 0u);
  // A log written before /rollbacks existed resumes with the group empty.
  {
    hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(id, 0);
    ASSERT_GE(H5Ldelete(id, "/rollbacks", H5P_DEFAULT), 0);
    H5Fclose(id);
  }
  {
    RunLog log = RunLog::open_for_resume(make_spec(path), 2);
    log.append_rollback({1, 8192, 5, 0.5, 1});
  }
  EXPECT_EQ(read_ints(File(path).id, "/rollbacks/diverged_step"), std::vector<std::int64_t>{5});
  fs::remove_all(dir);
}

TEST(RunLog, ErrorsNameTheFileAndLeaveExistingFilesAlone) {
  auto dir = test_dir("errors");
  auto missing_dir = (dir / "no_such_dir" / "run.h5").string();
  auto message = error_of([&] { RunLog log(make_spec(missing_dir)); });
  EXPECT_NE(message.find(missing_dir), std::string::npos) << message;
  std::printf("missing directory: %s\n", message.c_str());

  auto existing = (dir / "run.h5").string();
  lnfree::write_file_atomically(existing, "precious");
  message = error_of([&] { RunLog log(make_spec(existing)); });
  EXPECT_NE(message.find("already exists"), std::string::npos) << message;
  EXPECT_EQ(lnfree::read_file(existing), "precious");

  message = error_of([&] { RunLog::open_for_resume(make_spec(existing), 3); });
  EXPECT_NE(message.find(existing), std::string::npos) << message;
  EXPECT_NE(message.find("not a readable HDF5 file"), std::string::npos) << message;
  EXPECT_EQ(lnfree::read_file(existing), "precious");
  std::printf("corrupt file: %s\n", message.c_str());

  auto absent = (dir / "absent.h5").string();
  message = error_of([&] { RunLog::open_for_resume(make_spec(absent), 3); });
  EXPECT_NE(message.find(absent), std::string::npos) << message;
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;

  auto spec = make_spec((dir / "spec.h5").string());
  spec.int_attributes.erase("n_head");
  EXPECT_NE(error_of([&] { RunLog log(spec); }).find("'n_head' is required"), std::string::npos);
  spec = make_spec((dir / "spec.h5").string());
  spec.string_attributes["git_commit"] = "abc";
  EXPECT_NE(error_of([&] { RunLog log(spec); }).find("reserved"), std::string::npos);
  spec = make_spec((dir / "spec.h5").string(), {"bad/name"});
  EXPECT_NE(error_of([&] { RunLog log(spec); }).find("bad/name"), std::string::npos);
  // Only temporary-free leftovers: the directory holds exactly the precious file.
  int entries = 0;
  for ([[maybe_unused]] auto& entry : fs::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 1);
  fs::remove_all(dir);
}

TEST(RunLog, RejectsMalformedRows) {
  auto dir = test_dir("rows");
  auto path = (dir / "run.h5").string();
  RunLog log(make_spec(path));
  EXPECT_NE(error_of([&] { log.append_event({0, 0, "ln3", 0}); }).find("'ln3'"), std::string::npos);
  EXPECT_NE(error_of([&] { log.append_event({0, 0, "ln2", 2}); }).find("layer 2"), std::string::npos);
  EXPECT_NE(error_of([&] {
              log.append_eval("test_val", {0, 0, 1.0});
            }).find("'test_val'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { log.append_ln(0, sigmas(0, 4), fake_states(0, 5)); }).find("expected 5 sigmas"),
            std::string::npos);
  log.append_train(train_row(5));
  EXPECT_NE(error_of([&] { log.append_train(train_row(4)); }).find("step 4 follows step 5"),
            std::string::npos);
  EXPECT_NE(error_of([&] { log.finish(RunStatus::kRunning, ""); }).find("cannot be 'running'"),
            std::string::npos);
  log.finish(RunStatus::kFailed, "test");
  File file(path);
  EXPECT_EQ(read_ints(file.id, "/train/step"), std::vector<std::int64_t>{5});
  EXPECT_EQ(read_ints(file.id, "/events/step").size(), 0u);
  fs::remove_all(dir);
}

TEST(RunLog, AThousandAppendsTakeMilliseconds) {
  auto dir = test_dir("timing");
  auto path = (dir / "run.h5").string();
  auto spec = make_spec(path);
  spec.int_attributes["n_layer"] = 12;
  spec.ln_names = ln_names(12);  // GPT-2 small: 25 LNs
  const std::size_t n_ln = spec.ln_names.size();
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  double train_ms = 0, eval_ms = 0, event_ms = 0, ln_ms = 0;
  {
    RunLog log(spec);
    auto start = Clock::now();
    for (std::int64_t step = 0; step < 1000; ++step) log.append_train(train_row(step));
    train_ms = ms_since(start);
    start = Clock::now();
    for (std::int64_t step = 0; step < 1000; ++step) log.append_eval("brown_val", {step, step, 1.0});
    eval_ms = ms_since(start);
    start = Clock::now();
    for (std::int64_t step = 0; step < 1000; ++step) log.append_event({step, step, "ln2", step % 12});
    event_ms = ms_since(start);
    start = Clock::now();
    for (std::int64_t step = 0; step < 1000; ++step)
      log.append_ln(step, sigmas(step, n_ln), fake_states(step, n_ln));
    ln_ms = ms_since(start);
    log.finish(RunStatus::kComplete, "");
  }
  std::printf(
      "1000 appends (each flushed): train (8 datasets) %.1f ms, eval (3) %.1f ms, events (4) %.1f ms, "
      "ln (3, 25 LNs) %.1f ms\n",
      train_ms, eval_ms, event_ms, ln_ms);
  File file(path);
  EXPECT_EQ(read_ints(file.id, "/train/step").size(), 1000u);
  EXPECT_EQ(read_ints(file.id, "/ln/step").size(), 1000u);
  EXPECT_EQ(read_dataset(file.id, "/ln/sigma").dims, (std::vector<hsize_t>{1000, n_ln}));
  // Milliseconds per thousand on an idle machine; a generous bound so a busy machine passes too.
  EXPECT_LT(train_ms + eval_ms + event_ms + ln_ms, 2000.0);
  fs::remove_all(dir);
}

// Writes the file that tests/log/test_run_log_h5py.py reads with h5py. Runs only when that test
// names the output (LNFREE_RUNLOG_FIXTURE). With LNFREE_RUNLOG_HANDSHAKE (a directory) it pauses
// with the writer open after steps 0..2 and after steps 3..4, creating written_1 / written_2 and
// waiting for the reader's read_1 / read_2, so that the reader checks SWMR reads of a live file.
TEST(RunLogH5pyFixture, WritesTheFileThatH5pyReads) {
  const char* output = std::getenv("LNFREE_RUNLOG_FIXTURE");
  if (output == nullptr) GTEST_SKIP() << "run by tests/log/test_run_log_h5py.py";
  const char* handshake = std::getenv("LNFREE_RUNLOG_HANDSHAKE");
  auto pause = [&](const char* written, const char* read) {
    if (handshake == nullptr) return true;
    lnfree::write_file_atomically((fs::path(handshake) / written).string(), "");
    for (int i = 0; i < 6000; ++i) {
      if (fs::exists(fs::path(handshake) / read)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  auto spec = make_spec(output, {"brown_val", "nlp_val", "spare_val"});
  spec.string_attributes["dataset"] = "brown";
  RunLog log(spec);
  for (std::int64_t step = 0; step < 3; ++step) log_step(log, step);
  ASSERT_TRUE(pause("written_1", "read_1")) << "the reader did not answer within 60 s";
  for (std::int64_t step = 3; step < 5; ++step) log_step(log, step);
  log.append_event({4, 4096 * 5, "eot", -1});
  log.append_event({4, 4096 * 5, "bos", -1});
  ASSERT_TRUE(pause("written_2", "read_2")) << "the reader did not answer within 60 s";
  log.finish(RunStatus::kComplete, "finished 5 steps");
}
