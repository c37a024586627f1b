#include "train/sigma_stats.h"

#include <cstddef>
#include <memory>
#include <vector>

#include "model/layer_norm.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace lnfree::train {

nlohmann::json measure_sigmas(model::Gpt2& model, std::shared_ptr<const data::TokenSplit> split,
                              const SigmaStatsRequest& request) {
  if (request.windows % request.batch != 0)
    fail("stats: --windows {} must be a multiple of --batch {}", request.windows, request.batch);
  data::LoaderConfig config{request.seq_len, request.windows, request.batch, 0, 1, request.seed};
  data::TokenLoader loader(split, config);  // one "step" = the seeded sample of windows
  struct Sums {
    torch::Tensor all, pos0, eot, eot_count;
  };
  auto lns = model->layer_norms();
  std::vector<Sums> sums(lns.size());
  torch::Tensor eot_mask;
  for (std::size_t i = 0; i < lns.size(); ++i) {
    sums[i] = {torch::zeros({}, torch::kDouble), torch::zeros({}, torch::kDouble),
               torch::zeros({}, torch::kDouble), torch::zeros({}, torch::kDouble)};
    lns[i].second->observer = [&, i](const torch::Tensor& x) {
      auto stds = lns[i].second->per_token_statistic(x).to(torch::kDouble).cpu();
      sums[i].all += stds.sum();
      sums[i].pos0 += stds.select(1, 0).sum();
      sums[i].eot += (stds * eot_mask).sum();
      sums[i].eot_count += eot_mask.sum();
    };
  }
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<std::int64_t> buffer(static_cast<std::size_t>(request.batch * (request.seq_len + 1)));
  const auto device = model->wte->weight.device();
  for (std::int64_t b = 0; b < loader.accumulation_steps(); ++b) {
    loader.next_micro_batch(buffer.data());
    auto rows = torch::from_blob(buffer.data(), {request.batch, request.seq_len + 1}, torch::kLong);
    auto inputs = rows.index({torch::indexing::Slice(), torch::indexing::Slice(0, request.seq_len)});
    eot_mask = inputs.eq(model->shape().eot_token).to(torch::kDouble);
    model(inputs.to(device));
  }
  model->train(was_training);
  const double tokens = static_cast<double>(request.windows * request.seq_len);
  nlohmann::json ln = nlohmann::json::object();
  for (std::size_t i = 0; i < lns.size(); ++i) {
    lns[i].second->observer = nullptr;
    const double eot_count = sums[i].eot_count.item<double>();
    ln[lns[i].first] = {{"sigma", sums[i].all.item<double>() / tokens},
                        {"sigma_pos0", sums[i].pos0.item<double>() / static_cast<double>(request.windows)},
                        {"sigma_eot", eot_count > 0 ? nlohmann::json(sums[i].eot.item<double>() / eot_count)
                                                    : nlohmann::json(nullptr)},
                        {"eot_count", static_cast<std::int64_t>(eot_count)}};
  }
  return {{"format", "lnfree-stats"},
          {"version", 1},
          {"data", split->description()},
          {"seed", request.seed},
          {"windows", request.windows},
          {"seq_len", request.seq_len},
          {"tokens", static_cast<std::int64_t>(tokens)},
          {"ln", ln}};
}

void apply_sigma_init(model::Gpt2& model, const std::string& path) {
  nlohmann::json json = read_json_file(path);
  if (json.value("format", "") != "lnfree-stats") fail("{}: field 'format': expected \"lnfree-stats\"", path);
  for (auto& [name, ln] : model->layer_norms()) {
    if (!json["ln"].contains(name))
      fail("{}: field 'ln.{}' missing (stats of a different model shape?)", path, name);
    const auto& entry = json["ln"][name];
    if (!entry.contains("sigma") || !entry["sigma"].is_number() || !(entry["sigma"].get<double>() > 0))
      fail("{}: field 'ln.{}.sigma': expected a positive number", path, name);
    ln->set_sigma(entry["sigma"].get<double>(), entry.value("sigma_pos0", entry["sigma"].get<double>()));
  }
}

}  // namespace lnfree::train
