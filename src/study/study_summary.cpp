#include "study/study_summary.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <utility>
#include <vector>

#include "config/train_config.h"
#include "data/token_loader.h"
#include "data/vocab_remap.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace lnfree::study {
namespace {

double read_loss(const std::string& path) {
  auto json = read_json_file(path);
  return json.at("loss").begin().value().get<double>();
}

}  // namespace

std::string study_json_path(const std::string& study_dir) {
  return (fs::path(study_dir) / "study.json").string();
}

// Cross-entropy of the first eval set under the training split's unigram distribution (add-one
// smoothing): the loss a model that ignores context would reach.
double unigram_eval_loss(const StudyConfig& c, const StudyPlan& plan) {
  auto remap = data::VocabRemap::load_optional(plan.vocab_path);
  const std::string tokenizer_hash = data::expected_tokenizer_hash(remap.get());
  auto train = data::TokenSplit::from_manifest(c.train, "train", tokenizer_hash, remap);
  auto set = config::parse_eval_set(c.eval_sets.front(), c.origin);
  auto eval = data::TokenSplit::from_manifest(set.manifest, set.split, tokenizer_hash, remap);
  const std::size_t vocab = remap ? static_cast<std::size_t>(remap->vocab_size()) : 50257;
  auto counts = [&](const data::TokenSplit& split) {
    std::vector<double> n(vocab, 0.0);
    std::vector<std::int64_t> buffer(1 << 20);
    for (std::uint64_t begin = 0; begin < split.size(); begin += buffer.size()) {
      const std::uint64_t k = std::min<std::uint64_t>(buffer.size(), split.size() - begin);
      split.copy(begin, k, buffer.data());
      for (std::uint64_t i = 0; i < k; ++i) n[static_cast<std::size_t>(buffer[i])] += 1;
    }
    return n;
  };
  auto p = counts(*train), q = counts(*eval);
  double total = static_cast<double>(train->size() + vocab), ce = 0, n = 0;
  for (std::size_t i = 0; i < vocab; ++i) {
    ce -= q[i] * std::log((p[i] + 1) / total);
    n += q[i];
  }
  return ce / n;
}

void write_study_json(const StudyConfig& c, const StudyPlan& plan) {
  nlohmann::json sizes = nlohmann::json::array();
  for (const auto& s : plan.sizes) {
    nlohmann::json entry = {{"name", s.name},
                            {"n_layer", s.n_layer},
                            {"n_params_nonembed", s.params_non_embedding},
                            {"n_params_total", s.params_total}};
    // Per replicate, and their mean at the size's level (where every replicate has the value).
    nlohmann::json replicates = nlohmann::json::array();
    std::map<std::string, std::pair<double, std::size_t>> sums;
    for (const auto& r : s.replicates) {
      nlohmann::json rep = {{"seed", r.seed}, {"dir", r.dir}};
      for (const auto& [key, path] : {std::pair{"original_eval_loss", r.original_eval},
                                      std::pair{"zero_shot_eval_loss", r.zero_shot_eval}}) {
        if (!fs::exists(path)) continue;
        rep[key] = read_loss(path);
        sums[key].first += rep[key].get<double>();
        sums[key].second += 1;
      }
      replicates.push_back(rep);
    }
    for (const auto& [key, sum] : sums)
      if (sum.second == s.replicates.size()) entry[key] = sum.first / static_cast<double>(sum.second);
    entry["replicates"] = replicates;
    sizes.push_back(entry);
  }
  // The fixed budget for the "final gap": the shortest control's full fine-tuning.
  std::int64_t budget = 0;
  for (const auto& s : plan.sizes)
    budget = budget == 0 ? s.control_tokens : std::min(budget, s.control_tokens);
  nlohmann::json json = {{"name", c.name},          {"delta", c.delta},    {"eval_set", plan.eval_set_name},
                         {"budget_tokens", budget}, {"seeds", plan.seeds}, {"sizes", sizes}};
  if (!plan.vocab_path.empty()) {
    auto vocab = read_json_file(plan.vocab_path);
    json["vocab"] = {
        {"top", vocab["top"]}, {"vocab_size", vocab["vocab_size"]}, {"unk_share", vocab["unk_share"]}};
  }
  json["unigram_eval_loss"] = unigram_eval_loss(c, plan);
  write_file_atomically(study_json_path(plan.out_dir), json.dump(1) + "\n");
}

}  // namespace lnfree::study
