#include "io/checkpoint_model.h"

#include <fmt/format.h>

#include <filesystem>

#include "io/hf_gpt2.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace lnfree::io {

nlohmann::json ln_state_to_json(model::Gpt2& model) {
  nlohmann::json out = nlohmann::json::object();
  for (auto& [name, ln] : model->layer_norms()) {
    auto f = ln->flags();
    nlohmann::json entry = {{"fake_main", f.fake_main},
                            {"fake_value", f.fake_value},
                            {"eot_special", f.eot_special},
                            {"bos_special", f.bos_special},
                            {"sigma_initialised", f.sigma_initialised}};
    for (const auto& buffer : ln->named_buffers(/*recurse=*/false))
      entry[buffer.key()] = buffer.value().item<float>();  // float -> double is exact
    out[name] = entry;
  }
  return out;
}

void restore_ln_state(const nlohmann::json& state, model::Gpt2& model, const std::string& origin) {
  torch::NoGradGuard no_grad;
  for (auto& [name, ln] : model->layer_norms()) {
    if (!state.contains(name)) fail("{}: field 'ln.{}' missing", origin, name);
    const auto& entry = state.at(name);
    auto flag = [&](const char* key) {
      if (!entry.contains(key) || !entry.at(key).is_boolean())
        fail("{}: field 'ln.{}.{}': expected true or false", origin, name, key);
      return entry.at(key).get<bool>();
    };
    ln->set_flags({flag("fake_main"), flag("fake_value"), flag("eot_special"), flag("bos_special"),
                   flag("sigma_initialised")});
    for (auto& buffer : ln->named_buffers(false)) {
      std::string key = buffer.key();
      // Checkpoints written before the V path had its own position-0 divisor shared one.
      if (key == "sigma_value_pos0" && !entry.contains(key)) key = "sigma_pos0";
      if (!entry.contains(key) || !entry.at(key).is_number())
        fail("{}: field 'ln.{}.{}': expected a number", origin, name, key);
      buffer.value().fill_(entry.at(key).get<double>());
    }
  }
}

model::Gpt2 load_checkpoint_model(const std::string& folder, const model::Gpt2Shape* shape) {
  const auto state = read_checkpoint_state(folder);
  const std::string origin = (fs::path(folder) / "state.json").string();
  model::Gpt2 model(shape ? *shape : checkpoint_shape(state, origin));
  load_weights_into(model, (fs::path(folder) / "model.safetensors").string());
  if (!state.contains("ln")) fail("{}: field 'ln' missing", origin);
  restore_ln_state(state.at("ln"), model, origin);
  return model;
}

}  // namespace lnfree::io
