#include "model/gpt2_shape.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

#include "util/error.h"
#include "util/files.h"

namespace lm = lnfree::model;

TEST(Gpt2Shape, NamedConfigsGiveThePublishedParameterCounts) {
  // Published totals (HF model cards): 124,439,808 / 354,823,168 / 774,030,080 / 1,557,611,200.
  const std::pair<const char*, int64_t> cases[] = {
      {"gpt2", 124439808}, {"gpt2-medium", 354823168}, {"gpt2-large", 774030080}, {"gpt2-xl", 1557611200}};
  for (const auto& [name, total] : cases) {
    auto shape = lm::shape_from_toml_file(lm::named_shape_path(name));
    EXPECT_EQ(lm::count_parameters(shape).total, total) << name;
  }
}

TEST(Gpt2Shape, TomlErrorsNameTheFileAndField) {
  auto path = (std::filesystem::temp_directory_path() / "lnfree_bad_shape.toml").string();
  lnfree::write_file_atomically(
      path, "[model]\nn_layer = 2\nn_embd = 30\nn_head = 4\nn_positions = 8\nvocab_size = 5\n");
  try {
    lm::shape_from_toml_file(path);
    FAIL() << "expected an error";
  } catch (const lnfree::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("n_head"), std::string::npos);
  }
  lnfree::write_file_atomically(path, "[model]\nn_layers = 2\n");
  EXPECT_THROW(lm::shape_from_toml_file(path), lnfree::Error);
  std::filesystem::remove(path);
}

TEST(Gpt2Shape, UnknownNameIsAClearError) { EXPECT_THROW(lm::named_shape_path("gpt5"), lnfree::Error); }
