// What marks a folder as a folded export (export.h, docs/export.md): config.json with model_type
// "lnfree-folded-gpt2" and its format version. Torch-free, so that `--model` resolution
// (model_source.h) tells a folded export from a Hugging Face folder without LibTorch.
#pragma once

#include <string>

namespace lnfree::io {

inline constexpr const char* kFoldedModelType = "lnfree-folded-gpt2";
inline constexpr int kFoldedFormatVersion = 1;

// True when `dir`/config.json exists and names kFoldedModelType (whatever its version: load_folded
// refuses another version, naming it).
bool is_folded_folder(const std::string& dir);

}  // namespace lnfree::io
