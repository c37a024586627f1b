#include "train/checkpoint.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "io/checkpoint_model.h"
#include "io/hf_gpt2.h"
#include "io/safetensors.h"
#include "log/run_folder.h"
#include "util/debug_kill.h"
#include "util/error.h"
#include "util/files.h"
#include "util/json_file.h"

namespace fs = std::filesystem;

namespace lnfree::train {
namespace {

void write_f32_tensors(const std::string& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& named,
                       const std::string& format) {
  std::vector<torch::Tensor> keep_alive;
  std::vector<io::TensorToWrite> tensors;
  for (const auto& [name, tensor] : named) {
    auto t = tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
    keep_alive.push_back(t);
    tensors.push_back(
        {name,
         io::Dtype::kF32,
         t.sizes().vec(),
         {static_cast<const std::uint8_t*>(t.data_ptr()), static_cast<std::size_t>(t.nbytes())}});
  }
  io::write_safetensors(path, tensors, {{"format", format}});
}

void read_f32_into(const io::SafetensorsReader& reader, const std::string& name, torch::Tensor& target) {
  if (!reader.contains(name)) fail("{}: missing tensor '{}'", reader.path(), name);
  if (reader.shape(name) != target.sizes().vec())
    fail("{}: tensor '{}': expected shape {}, got {}", reader.path(), name,
         io::format_shape(target.sizes().vec()), io::format_shape(reader.shape(name)));
  auto values = reader.read_as_f32(name);
  torch::NoGradGuard no_grad;
  target.copy_(torch::from_blob(values.data(), target.sizes(), torch::kFloat));
}

std::vector<std::uint8_t> rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  auto state = generator.get_state();
  auto* data = state.data_ptr<std::uint8_t>();
  return {data, data + state.numel()};
}

void set_rng_state(std::vector<std::uint8_t> bytes) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  auto state =
      torch::from_blob(bytes.data(), {static_cast<std::int64_t>(bytes.size())}, torch::kUInt8).clone();
  generator.set_state(state);
}

}  // namespace

void save_checkpoint(const std::string& run_dir, model::Gpt2& model, const AdamW& optimizer,
                     const CheckpointState& state, std::int64_t keep) {
  const fs::path final_dir = run_folder::checkpoint_path(run_dir, state.step);
  const fs::path tmp = run_folder::partial_checkpoint_path(run_dir, state.step, ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    // Weights under HF GPT-2 names (the loader reads them back); no config.json, because a model
    // with fake LayerNorms is not a plain GPT-2 (`lnfree export` makes one).
    std::vector<std::pair<std::string, torch::Tensor>> weights;
    for (const auto& p : model->named_parameters()) weights.emplace_back("transformer." + p.key(), p.value());
    write_f32_tensors((tmp / "model.safetensors").string(), weights, "pt");
    debug_kill_point("checkpoint-write", state.step);  // tests/faults: a checkpoint half written
    std::vector<std::pair<std::string, torch::Tensor>> moments;
    for (const auto& p : optimizer.params()) {
      moments.emplace_back("exp_avg." + p.name, p.exp_avg);
      moments.emplace_back("exp_avg_sq." + p.name, p.exp_avg_sq);
    }
    write_f32_tensors((tmp / "optimizer.safetensors").string(), moments, "lnfree-optimizer");
    nlohmann::json json = {{"format", "lnfree-checkpoint"},
                           {"format_version", kCheckpointFormatVersion},
                           {"step", state.step},
                           {"tokens", state.tokens},
                           {"optimizer_steps", optimizer.steps_taken()},
                           {"config_hash", state.config_hash},
                           {"model", model::shape_to_hf_json(model->shape())},
                           {"loader", state.loader},
                           {"ln", io::ln_state_to_json(model)},
                           {"rng_cpu", rng_state()},
                           {"lr_scale", state.lr_scale},
                           {"rollbacks", state.rollbacks}};
    if (state.aux_target) json["aux_target"] = *state.aux_target;
    write_file_atomically((tmp / "state.json").string(), json.dump(1));
    write_file_atomically(run_folder::done_path(tmp.string()), "complete\n");
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  auto all = run_folder::complete_checkpoints(run_dir);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < all.size(); ++i) fs::remove_all(all[i].second);
}

int remove_stale_partial_checkpoints(const std::string& run_dir) {
  int removed = 0;
  for (const auto& [path, pid] : run_folder::partial_checkpoints(run_dir))
    if (pid != ::getpid()) fs::remove_all(path), ++removed;
  return removed;
}

std::int64_t rollback_target(const std::string& run_dir) {
  const auto all = run_folder::complete_checkpoints(run_dir);
  if (all.empty()) fail("{}: no complete checkpoint to roll back to", run_dir);
  const auto& newest = all.back().second;
  const bool returned_before = io::read_checkpoint_state(newest).value("rollback_target", false);
  return returned_before && all.size() > 1 ? all[all.size() - 2].first : all.back().first;
}

void mark_rollback_target(const std::string& run_dir, const std::string& folder, double lr_scale,
                          std::int64_t rollbacks) {
  auto json = io::read_checkpoint_state(folder);
  json["lr_scale"] = lr_scale;
  json["rollbacks"] = rollbacks;
  json["rollback_target"] = true;
  write_file_atomically((fs::path(folder) / "state.json").string(), json.dump(1));
  const auto step = json.at("step").get<std::int64_t>();
  for (const auto& [other_step, path] : run_folder::complete_checkpoints(run_dir))
    if (other_step > step) fs::remove_all(path);
}

CheckpointState load_checkpoint(const std::string& folder, model::Gpt2& model, AdamW& optimizer) {
  const std::string state_path = (fs::path(folder) / "state.json").string();
  nlohmann::json json = io::read_checkpoint_state(folder);
  io::load_weights_into(model, (fs::path(folder) / "model.safetensors").string());
  io::restore_ln_state(json.at("ln"), model, state_path);
  io::SafetensorsReader moments((fs::path(folder) / "optimizer.safetensors").string());
  for (auto& p : optimizer.params()) {
    read_f32_into(moments, "exp_avg." + p.name, p.exp_avg);
    read_f32_into(moments, "exp_avg_sq." + p.name, p.exp_avg_sq);
  }
  optimizer.set_steps_taken(json.at("optimizer_steps").get<std::int64_t>());
  set_rng_state(json.at("rng_cpu").get<std::vector<std::uint8_t>>());
  CheckpointState state;
  state.step = json.at("step").get<std::int64_t>();
  state.tokens = json.at("tokens").get<std::int64_t>();
  state.config_hash = json.at("config_hash").get<std::string>();
  state.loader = json.at("loader");
  state.lr_scale = json.value("lr_scale", 1.0);
  state.rollbacks = json.value("rollbacks", std::int64_t{0});
  if (json.contains("aux_target")) {
    if (!json.at("aux_target").is_number())
      fail("{}: field 'aux_target': expected a number", (fs::path(folder) / "state.json").string());
    state.aux_target = json.at("aux_target").get<double>();
  }
  return state;
}

}  // namespace lnfree::train
