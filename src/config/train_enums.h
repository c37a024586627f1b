// The run config's fields that take one of a few names (run.mode, run.device, run.precision, run.norm,
// ln.qk_sigma, optim.decay, optim.on_divergence). Each enum's values index its one table of
// names (config/enum_names.h): the spelling in config files, run.h5 attributes and log lines.
#pragma once

#include <array>
#include <string_view>

#include "config/enum_names.h"

namespace lnfree::config {

enum class RunMode { kPretrain, kFinetune, kRemoveLn };
inline constexpr std::array<std::string_view, 3> kRunModeNames = {"pretrain", "finetune", "remove-ln"};
constexpr const auto& names_of(RunMode) { return kRunModeNames; }

enum class Device { kCpu, kCuda };
inline constexpr std::array<std::string_view, 2> kDeviceNames = {"cpu", "cuda"};
constexpr const auto& names_of(Device) { return kDeviceNames; }

enum class Precision { kFp32, kTf32, kBf16 };
inline constexpr std::array<std::string_view, 3> kPrecisionNames = {"fp32", "tf32", "bf16"};
constexpr const auto& names_of(Precision) { return kPrecisionNames; }

// ln_1's Q/K σ: shared with the V path, or frozen at its own removal.
enum class QkSigma { kShared, kSeparate };
inline constexpr std::array<std::string_view, 2> kQkSigmaNames = {"shared", "separate"};
constexpr const auto& names_of(QkSigma) { return kQkSigmaNames; }

// Which parameters get weight decay.
enum class DecayRule { kMatrices, kPaper };
inline constexpr std::array<std::string_view, 2> kDecayRuleNames = {"matrices", "paper"};
constexpr const auto& names_of(DecayRule) { return kDecayRuleNames; }

// run.norm: the normaliser a run trains with (docs/normalization.md).
enum class RunNorm { kKeep, kLayerNorm, kRmsNorm };
inline constexpr std::array<std::string_view, 3> kRunNormNames = {"keep", "layernorm", "rmsnorm"};
constexpr const auto& names_of(RunNorm) { return kRunNormNames; }

// What a non-finite loss or gradient norm does.
enum class OnDivergence { kStop, kRollback };
inline constexpr std::array<std::string_view, 2> kOnDivergenceNames = {"stop", "rollback"};
constexpr const auto& names_of(OnDivergence) { return kOnDivergenceNames; }

}  // namespace lnfree::config
