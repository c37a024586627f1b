#include "study/study_config.h"

#include <toml++/toml.h>

#include <set>

#include <fmt/format.h>

#include "util/error.h"

namespace lnfree::study {
namespace {

class Table {
 public:
  Table(const toml::table& table, std::string where, std::string origin)
      : table_(table), where_(std::move(where)), origin_(std::move(origin)) {}

  void allow(std::initializer_list<const char*> keys) {
    std::set<std::string> known(keys.begin(), keys.end());
    for (const auto& [key, value] : table_)
      if (!known.count(std::string(key.str()))) fail("{}: [{}] unknown key '{}'", origin_, where_, key.str());
  }
  template <typename T>
  T get(const char* key, T fallback, bool required = false) const {
    auto node = table_[key];
    if (!node) {
      if (required) fail("{}: [{}] missing field '{}'", origin_, where_, key);
      return fallback;
    }
    if constexpr (std::is_same_v<T, double>) {
      if (!node.is_number()) fail("{}: [{}] field '{}': expected a number", origin_, where_, key);
      return node.template value<double>().value();
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      if (!node.is_integer()) fail("{}: [{}] field '{}': expected an integer", origin_, where_, key);
      return node.template value<std::int64_t>().value();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!node.is_boolean()) fail("{}: [{}] field '{}': expected true or false", origin_, where_, key);
      return node.template value<bool>().value();
    } else {
      if (!node.is_string()) fail("{}: [{}] field '{}': expected a string", origin_, where_, key);
      return node.template value<std::string>().value();
    }
  }
  bool table_has(const char* key) const { return static_cast<bool>(table_[key]); }
  std::vector<std::string> strings(const char* key) const {
    std::vector<std::string> out;
    auto node = table_[key];
    if (!node) return out;
    const auto* array = node.as_array();
    if (array == nullptr) fail("{}: [{}] field '{}': expected a list of strings", origin_, where_, key);
    for (const auto& item : *array) {
      if (!item.is_string()) fail("{}: [{}] field '{}': expected a list of strings", origin_, where_, key);
      out.push_back(item.value<std::string>().value());
    }
    return out;
  }

 private:
  const toml::table& table_;
  std::string where_, origin_;
};

const toml::table& section(const toml::table& root, const char* name, const std::string& path) {
  const auto* table = root[name].as_table();
  if (table == nullptr) fail("{}: missing table [{}]", path, name);
  return *table;
}

void apply_override(toml::table& root, const std::string& path, const std::string& assignment) {
  const std::string where = fmt::format("{}: --set '{}'", path, assignment);
  const auto equals = assignment.find('=');
  const auto dot = assignment.find('.');
  if (equals == std::string::npos || dot == std::string::npos || dot > equals || dot == 0 || dot + 1 == equals)
    fail("{}: expected section.key=value (e.g. study.seed=1)", where);
  const std::string section_name = assignment.substr(0, dot), key = assignment.substr(dot + 1, equals - dot - 1);
  const std::string text = assignment.substr(equals + 1);
  static const std::set<std::string> settable = {"study", "data", "runs"};
  if (!settable.count(section_name))
    fail("{}: only [study], [data] and [runs] fields can be set from the command line ([[model]] and "
         "[[speed]] entries are edited in the study file)",
         where);
  if (key.find('.') != std::string::npos) fail("{}: expected section.key=value with a plain key", where);
  toml::table parsed;
  try {
    parsed = toml::parse("value = " + text);
  } catch (const toml::parse_error&) {
    parsed = toml::table{{"value", text}};  // a bare word: a string, as `train --set` takes it
  }
  auto* table = root[section_name].as_table();
  if (table == nullptr) {
    root.insert_or_assign(section_name, toml::table{});
    table = root[section_name].as_table();
  }
  table->insert_or_assign(key, *parsed.get("value"));
}

}  // namespace

std::int64_t replicate_seed(const StudyConfig& config, std::int64_t replicate) { return config.seed + replicate; }
std::int64_t pretrain_run_seed(std::int64_t v) { return 2 * v + 1; }
std::int64_t finetune_run_seed(std::int64_t v) { return 2 * v + 2; }

StudyConfig load_study_config(const std::string& path, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail("{}: invalid TOML at line {}: {}", path, e.source().begin.line, e.description());
  }
  for (const auto& assignment : overrides) apply_override(root, path, assignment);
  for (const auto& [key, value] : root) {
    static const std::set<std::string> known = {"study", "data", "runs", "model", "speed"};
    if (!known.count(std::string(key.str()))) fail("{}: unknown section [{}]", path, key.str());
  }
  StudyConfig c;
  c.origin = path;
  Table study(section(root, "study", path), "study", path);
  study.allow({"name", "delta", "parallel", "threads_per_run", "cache", "analysis", "seed", "seeds"});
  c.name = study.get<std::string>("name", "", true);
  c.delta = study.get<double>("delta", c.delta);
  c.parallel = study.get<std::int64_t>("parallel", c.parallel);
  c.threads_per_run = study.get<std::int64_t>("threads_per_run", c.threads_per_run);
  c.cache = study.get<std::string>("cache", c.cache);
  c.analysis = study.get<bool>("analysis", c.analysis);
  c.seed = study.get<std::int64_t>("seed", c.seed);
  c.seeds = study.get<std::int64_t>("seeds", c.seeds);

  Table data(section(root, "data", path), "data", path);
  data.allow({"train", "eval_sets", "final_eval_sets", "vocab_top", "stats_windows", "base_eval_windows"});
  c.train = data.get<std::string>("train", "", true);
  c.eval_sets = data.strings("eval_sets");
  c.final_eval_sets = data.table_has("final_eval_sets") ? data.strings("final_eval_sets") : c.eval_sets;
  c.vocab_top = data.get<std::int64_t>("vocab_top", c.vocab_top);
  c.stats_windows = data.get<std::int64_t>("stats_windows", c.stats_windows);
  c.base_eval_windows = data.get<std::int64_t>("base_eval_windows", c.base_eval_windows);

  Table runs(section(root, "runs", path), "runs", path);
  runs.allow({"pretrain", "control", "remove_ln", "start"});
  c.pretrain_template = runs.get<std::string>("pretrain", "");
  c.control_template = runs.get<std::string>("control", "", true);
  c.remove_ln_template = runs.get<std::string>("remove_ln", "", true);
  c.start = runs.get<std::int64_t>("start", c.start);

  const auto* models = root["model"].as_array();
  if (models == nullptr || models->empty()) fail("{}: expected at least one [[model]]", path);
  std::set<std::string> names;
  for (std::size_t i = 0; i < models->size(); ++i) {
    const auto* table = (*models)[i].as_table();
    if (table == nullptr) fail("{}: [[model]] #{}: expected a table", path, i + 1);
    Table m(*table, "model #" + std::to_string(i + 1), path);
    m.allow({"name", "init", "pretrain", "overrides", "control", "remove_ln", "start"});
    StudyModel model{m.get<std::string>("name", "", true), m.get<std::string>("init", "", true),
                     m.get<bool>("pretrain", true),        m.strings("overrides"),
                     m.get<std::string>("control", ""),    m.get<std::string>("remove_ln", ""),
                     m.get<std::int64_t>("start", -1)};
    if (!names.insert(model.name).second) fail("{}: [[model]] name '{}' appears twice", path, model.name);
    if (model.pretrain && c.pretrain_template.empty())
      fail("{}: [[model]] '{}' asks for pretraining but [runs] has no 'pretrain' template", path, model.name);
    c.models.push_back(model);
  }
  const auto* speeds = root["speed"].as_array();
  if (speeds == nullptr || speeds->empty()) fail("{}: expected at least one [[speed]]", path);
  std::set<std::string> labels;
  for (std::size_t i = 0; i < speeds->size(); ++i) {
    const auto* table = (*speeds)[i].as_table();
    if (table == nullptr) fail("{}: [[speed]] #{}: expected a table", path, i + 1);
    Table s(*table, "speed #" + std::to_string(i + 1), path);
    s.allow({"label", "gap", "gaps", "template"});
    StudySpeed speed;
    speed.label = s.get<std::string>("label", "", true);
    speed.from_template = s.get<bool>("template", false);
    const bool has_gap = table->contains("gap"), has_gaps = table->contains("gaps");
    if (static_cast<int>(has_gap) + static_cast<int>(has_gaps) + static_cast<int>(speed.from_template) != 1)
      fail("{}: [[speed]] '{}': expected exactly one of 'gap', 'gaps' or 'template = true'", path,
           speed.label);
    if (has_gap) speed.gaps.assign(3, s.get<std::int64_t>("gap", 0));
    if (has_gaps) {
      const auto* array = (*table)["gaps"].as_array();
      if (array == nullptr || array->size() != 3)
        fail("{}: [[speed]] '{}' field 'gaps': expected [g_ln2, g_qk, g_v]", path, speed.label);
      for (const auto& g : *array) {
        if (!g.is_integer()) fail("{}: [[speed]] '{}' field 'gaps': expected integers", path, speed.label);
        speed.gaps.push_back(g.value<std::int64_t>().value());
      }
    }
    for (auto g : speed.gaps)
      if (g < 0) fail("{}: [[speed]] '{}': gaps must be >= 0", path, speed.label);
    if (!labels.insert(speed.label).second) fail("{}: [[speed]] label '{}' appears twice", path, speed.label);
    c.speeds.push_back(speed);
  }
  if (c.eval_sets.empty()) fail("{}: [data] field 'eval_sets': expected at least one MANIFEST:SPLIT", path);
  if (!(c.delta > 0)) fail("{}: [study] field 'delta': expected > 0", path);
  if (c.parallel < 1 || c.threads_per_run < 0)
    fail("{}: [study] fields 'parallel' >= 1, 'threads_per_run' >= 0", path);
  if (c.seed < 0) fail("{}: [study] field 'seed': expected >= 0, got {}", path, c.seed);
  if (c.seeds < 1) fail("{}: [study] field 'seeds': expected >= 1 replicates, got {}", path, c.seeds);
  if (c.vocab_top < 0) fail("{}: [data] field 'vocab_top': expected >= 0", path);
  return c;
}

}  // namespace lnfree::study
