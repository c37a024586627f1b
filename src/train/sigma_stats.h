// `lnfree stats`: the std of every LayerNorm's input measured on a seeded data sample, written as
// JSON and used to initialise the fixed sigmas ([ln] sigma_init). It replaces the reference's
// single-sample, unseeded std dictionaries (spec §1.8, §9.15) with the statistic FakeLN uses:
// the mean over tokens of the per-token std sqrt(biased var + 1e-5).
//
// JSON: {"format": "lnfree-stats", "version": 1, "model", "data", "seed", "windows", "seq_len",
//        "tokens", "ln": {"h.0.ln_1": {"sigma", "sigma_pos0", "sigma_eot" (null if no EOT),
//        "eot_count"}, ...}}
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "data/token_loader.h"
#include "model/gpt2.h"

namespace lnfree::train {

struct SigmaStatsRequest {
  std::int64_t windows = 64;  // sequences sampled
  std::int64_t seq_len = 1024;
  std::int64_t batch = 8;
  std::uint64_t seed = 0;
};

nlohmann::json measure_sigmas(model::Gpt2& model, std::shared_ptr<const data::TokenSplit> split,
                              const SigmaStatsRequest& request);

// Sets every LN's running and frozen sigma from a stats JSON file; errors name the file and LN.
void apply_sigma_init(model::Gpt2& model, const std::string& path);

}  // namespace lnfree::train
