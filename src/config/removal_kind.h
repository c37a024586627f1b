// The six kinds of scheduled LN-removal events, in the order of the reference's remover list
// (spec §3.2). That order is also the tie-break between events of the same step.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace lnfree::config {

enum class RemovalKind {
  kLn2 = 0,    // ln_2 of a block ("LN_MLP^i"): its only path goes fake
  kLn1Qk = 1,  // ln_1 of a block, query/key path ("LN_qk^i")
  kLn1V = 2,   // ln_1 of a block, value path ("LN_v^i")
  kLnf = 3,    // the final ln_f ("LN^f"); a single module, so always one whole-model event
  kEot = 4,    // ln_1: end the EOT special divisor of the V path (a no-op unless ln.eot_special)
  kBos = 5,    // ln_1, ln_2 (+ ln_f at the last layer): end the position-0 divisor (no-op unless ln.bos_special)
};

inline constexpr std::size_t kRemovalKindCount = 6;

inline constexpr std::array<RemovalKind, kRemovalKindCount> kAllRemovalKinds = {
    RemovalKind::kLn2, RemovalKind::kLn1Qk, RemovalKind::kLn1V,
    RemovalKind::kLnf, RemovalKind::kEot,   RemovalKind::kBos};

// Names used in configs ([schedule.<name>]) and in `lnfree schedule` output.
inline constexpr std::array<std::string_view, kRemovalKindCount> kRemovalKindNames = {"ln2", "ln1qk", "ln1v",
                                                                                      "lnf", "eot",   "bos"};

inline std::string_view removal_kind_name(RemovalKind kind) {
  return kRemovalKindNames[static_cast<std::size_t>(kind)];
}

inline std::optional<RemovalKind> parse_removal_kind(std::string_view name) {
  for (std::size_t i = 0; i < kRemovalKindCount; ++i)
    if (kRemovalKindNames[i] == name) return kAllRemovalKinds[i];
  return std::nullopt;
}

// True for the kinds that turn a LayerNorm path fake (ln2, ln1qk, ln1v, lnf); eot and bos only
// end special divisors and are not part of the removal window.
inline bool removes_layer_norm(RemovalKind kind) {
  return kind == RemovalKind::kLn2 || kind == RemovalKind::kLn1Qk || kind == RemovalKind::kLn1V ||
         kind == RemovalKind::kLnf;
}

}  // namespace lnfree::config
