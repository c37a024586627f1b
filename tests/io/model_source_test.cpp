// `--model` resolution without LibTorch (io/model_source.h): each accepted form gives its kind, the
// shape and the file it came from, and the weights file; the newest complete checkpoint of a run
// folder is chosen, and an interrupted one is refused. Folders are written by hand here (no model
// is built), so the expected shapes are the ones written.
#include "io/model_source.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/checkpoint_state.h"
#include "io/folded_format.h"
#include "io/io_test_support.h"
#include "log/run_folder.h"
#include "model/gpt2_shape.h"
#include "util/error.h"

namespace fs = std::filesystem;
namespace li = lnfree::io;
namespace lm = lnfree::model;
using lnfree::io::testing::TempDir;

namespace {

lm::Gpt2Shape shape_with_layers(std::int64_t n_layer) {
  auto shape = lm::shape_from_toml_file("configs/models/tiny-2x64.toml");
  shape.n_layer = n_layer;
  return shape;
}

void write_json(const fs::path& path, const nlohmann::json& json) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << json.dump(2);
}

// A checkpoint folder as train/checkpoint.cpp leaves it (state.json, model.safetensors, and DONE
// when complete); the weights file is never opened by resolution.
fs::path write_checkpoint(const fs::path& run, std::int64_t step, std::int64_t n_layer, bool done) {
  const fs::path folder = lnfree::run_folder::checkpoint_path(run.string(), step);
  write_json(folder / "state.json", {{"format", "lnfree-checkpoint"},
                                     {"format_version", li::kCheckpointFormatVersion},
                                     {"model", lm::shape_to_hf_json(shape_with_layers(n_layer))}});
  std::ofstream(folder / "model.safetensors") << "";
  if (done) std::ofstream(lnfree::run_folder::done_path(folder.string())) << "";
  return folder;
}

}  // namespace

TEST(ModelSource, NameIsAShapeFileWithoutWeights) {
  const auto source = li::resolve_model_source("tiny-2x64");
  EXPECT_EQ(source.kind, li::ModelKind::kShape);
  EXPECT_FALSE(source.weights.has_value());
  EXPECT_EQ(fs::path(source.shape_origin).filename(), "tiny-2x64.toml");
  EXPECT_EQ(source.shape.n_layer, 2);
  EXPECT_EQ(source.shape.n_embd, 64);
}

TEST(ModelSource, HuggingFaceFolderAndItsFiles) {
  TempDir dir;
  write_json(dir.path() / "hf" / "config.json", lm::shape_to_hf_json(shape_with_layers(3)));
  const auto without_weights = li::resolve_model_source(dir.file("hf"));
  EXPECT_EQ(without_weights.kind, li::ModelKind::kHfFolder);
  EXPECT_FALSE(without_weights.weights.has_value());
  EXPECT_EQ(without_weights.shape.n_layer, 3);
  std::ofstream(dir.path() / "hf" / "model.safetensors") << "";
  EXPECT_EQ(li::resolve_model_source(dir.file("hf")).weights,
            (dir.path() / "hf" / "model.safetensors").string());
  const auto from_config = li::resolve_model_source(dir.file("hf/config.json"));
  EXPECT_EQ(from_config.shape_origin, dir.file("hf/config.json"));
  EXPECT_EQ(from_config.shape.n_layer, 3);
}

TEST(ModelSource, FoldedExportIsToldFromAHuggingFaceFolder) {
  TempDir dir;
  auto config = lm::shape_to_hf_json(shape_with_layers(4));
  config["model_type"] = li::kFoldedModelType;
  write_json(dir.path() / "folded" / "config.json", config);
  ASSERT_TRUE(li::is_folded_folder(dir.file("folded")));
  const auto source = li::resolve_model_source(dir.file("folded"));
  EXPECT_EQ(source.kind, li::ModelKind::kFolded);
  EXPECT_EQ(source.folder, dir.file("folded"));
  EXPECT_EQ(source.shape.n_layer, 4);
  EXPECT_EQ(source.weights, (dir.path() / "folded" / "model.safetensors").string());
}

TEST(ModelSource, RunFolderGivesItsNewestCompleteCheckpoint) {
  TempDir dir;
  const fs::path run = dir.path() / "run";
  write_json(lnfree::run_folder::config_path(run.string()), nlohmann::json::object());  // holds_run
  write_checkpoint(run, 2, 1, /*done=*/true);
  const fs::path newest = write_checkpoint(run, 4, 5, /*done=*/true);
  write_checkpoint(run, 6, 7, /*done=*/false);  // interrupted write: skipped
  const auto source = li::resolve_model_source(run.string());
  EXPECT_EQ(source.kind, li::ModelKind::kCheckpoint);
  EXPECT_EQ(source.folder, newest.string());
  EXPECT_EQ(source.shape.n_layer, 5);
  EXPECT_EQ(source.weights, (newest / "model.safetensors").string());
}

TEST(ModelSource, RefusesAnInterruptedCheckpointAndARunWithoutOne) {
  TempDir dir;
  const fs::path run = dir.path() / "run";
  const fs::path partial = write_checkpoint(run, 6, 7, /*done=*/false);
  try {
    li::resolve_model_source(partial.string());
    FAIL() << "an interrupted checkpoint was accepted";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("incomplete checkpoint"), std::string::npos) << e.what();
  }
  write_json(lnfree::run_folder::config_path(run.string()), nlohmann::json::object());
  try {
    li::resolve_model_source(run.string());
    FAIL() << "a run folder without a complete checkpoint was accepted";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find("without a complete checkpoint"), std::string::npos) << e.what();
  }
  EXPECT_THROW(li::resolve_model_source(dir.file("no/such/folder")), lnfree::Error);
}
