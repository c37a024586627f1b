#include "study/study_config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cstddef>
#include <set>

#include "config/fields.h"
#include "util/error.h"

namespace lnfree::study {
namespace {

using config::kRequired;

// ---------------------------------------------------------------------------------------------
// The study file's tables, declared once (config/field_list.h): the reader, `--set` and the docs
// follow these lists. [study], [data] and [runs] fill parts of one StudyConfig.

struct StudyTable {
  template <class Self, class Visit>
  static void fields(Self& c, Visit&& visit) {
    visit("name", c.name, "the study's name", kRequired);
    visit("delta", c.delta, "nats above the control's loss that define T_delta, the recovery time; > 0");
    visit("parallel", c.parallel, "runs at once (≥ 1)");
    visit("threads_per_run", c.threads_per_run,
          "LibTorch threads of each run (`run.threads`; ≥ 0, 0 = default)");
    visit("cache", c.cache,
          "folder for pretrained models and vocabularies, shared between studies (keyed by config hash)");
    visit("analysis", c.analysis, "run analysis/ on the results at the end");
    visit("seed", c.seed,
          "base seed of the whole study (≥ 0): replicate r uses the seed value v = seed + r, its pretraining "
          "run seed 2v+1 and its control and removal runs 2v+2");
    visit("seeds", c.seeds,
          "replicates K (≥ 1): each gets its own pretraining, control and removal runs, in "
          "`STUDY/runs/<model>/seed-<v>/`");
  }
};

struct DataTable {
  template <class Self, class Visit>
  static void fields(Self& c, Visit&& visit) {
    visit("train", c.train, "token `manifest.json` every run trains on", kRequired);
    visit("eval_sets", c.eval_sets,
          "`\"MANIFEST:SPLIT\"` entries (at least one); the first is evaluated every `eval.interval` steps "
          "on a "
          "fixed subset and defines the measurement");
    visit("final_eval_sets", c.final_eval_sets,
          "sets evaluated on every window after the last step; absent = `eval_sets`, `[]` = none");
    visit("vocab_top", c.vocab_top,
          "K most frequent tokens + UNK + EOT make the study's vocabulary; 0 = GPT-2's vocabulary");
    visit("stats_windows", c.stats_windows, "sequences `lnfree stats` measures per model");
    visit("base_eval_windows", c.base_eval_windows,
          "windows of the evaluations of the original and zero-shot models; 0 = all");
  }
};

struct RunsTable {
  template <class Self, class Visit>
  static void fields(Self& c, Visit&& visit) {
    visit("pretrain", c.pretrain_template,
          "run-config template (configs/*.toml style) of the pretraining runs; needed when a [[model]] "
          "pretrains");
    visit("control", c.control_template, "run-config template of the vanilla fine-tuning controls",
          kRequired);
    visit("remove_ln", c.remove_ln_template, "run-config template of the LN-removal runs", kRequired);
    visit("start", c.start, "first removal step s0 of every speed");
  }
};

struct ModelEntry {
  template <class Self, class Visit>
  static void fields(Self& m, Visit&& visit) {
    visit("name", m.name, "the model's name, unique in the study (its folder under runs/)", kRequired);
    visit("init", m.init, "shape `.toml`, model name or Hugging Face folder (`run.init`)", kRequired);
    visit("pretrain", m.pretrain,
          "pretrain with LayerNorms first ([runs] `pretrain`); false: `init` must have weights");
    visit("overrides", m.overrides, "`\"section.key=value\"` overrides of its pretraining run");
    visit("control", m.control_template, "its own control template; empty = [runs] `control`");
    visit("remove_ln", m.remove_ln_template, "its own LN-removal template; empty = [runs] `remove_ln`");
    visit("start", m.start, "its own s0, when sizes need different batch geometry; absent = [runs] `start`");
  }
};

// A [[speed]] as written; exactly one of gap, gaps and template = true makes a StudySpeed.
struct SpeedEntry {
  std::string label;
  std::optional<std::int64_t> gap;
  std::optional<std::vector<std::int64_t>> gaps;
  bool from_template = false;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("label", s.label, "the speed's name, unique in the study", kRequired);
    visit("gap", s.gap,
          "one gap g for all three kinds: the same as `gaps = [g, g, g]` (g = 0: every LN at s0)");
    visit(
        "gaps", s.gaps,
        "`[g2, gqk, gv]`: ln_2 of layer i at s0 + i·g2, ln_1 Q/K of layer i at q0 + i·gqk with q0 = s0 + "
        "L·g2, "
        "ln_1 V at v0 + i·gv with v0 = q0 + L·gqk, ln_f at v0 + L·gv. The paper's small schedule is s0 = 20, "
        "gaps [2, 2, 3].");
    visit("template", s.from_template,
          "true: the schedule of the model's remove_ln template as it is (e.g. the paper's)");
  }
};

const toml::table& section(const toml::table& root, const char* name, const std::string& path) {
  const auto* table = root[name].as_table();
  if (table == nullptr) fail("{}: missing table [{}]", path, name);
  return *table;
}

// The entries of [[name]]: at least one, each a table.
const toml::array& entries(const toml::table& root, const char* name, const std::string& path) {
  const auto* array = root[name].as_array();
  if (array == nullptr || array->empty()) fail("{}: expected at least one [[{}]]", path, name);
  for (std::size_t i = 0; i < array->size(); ++i)
    if (!(*array)[i].is_table()) fail("{}: [[{}]] #{}: expected a table", path, name, i + 1);
  return *array;
}

config::TableScope entry_scope(const std::string& path, const char* name, std::size_t index) {
  return {path, fmt::format("{} #{}", name, index + 1), config::FieldNaming::kInTable};
}

// The keys each table was given, by the file or by --set: required fields must be among them.
struct GivenKeys {
  std::set<std::string> study, data, runs;
};

// Applies "section.key=value" to the [study], [data] or [runs] fields of `c`.
void apply_override(StudyConfig& c, GivenKeys& given, const std::string& path,
                    const std::string& assignment) {
  const std::string where_set = fmt::format("{}: --set '{}'", path, assignment);
  const auto equals = assignment.find('=');
  const auto dot = assignment.find('.');
  if (equals == std::string::npos || dot == std::string::npos || dot > equals || dot == 0 ||
      dot + 1 == equals)
    fail("{}: expected section.key=value (e.g. study.seed=1)", where_set);
  const std::string section_name = assignment.substr(0, dot),
                    key = assignment.substr(dot + 1, equals - dot - 1);
  const std::string text = assignment.substr(equals + 1);
  if (key.find('.') != std::string::npos) fail("{}: expected section.key=value with a plain key", where_set);
  const std::string where = fmt::format("{}: [{}] field '{}'", where_set, section_name, key);
  auto set = [&](auto list, std::set<std::string>& keys) {
    using List = decltype(list);
    if (!config::set_field<List>(c, key, text, where))
      fail("{}: [{}] unknown key '{}' (known: {})", where_set, section_name, key,
           config::known_keys<List>(c));
    keys.insert(key);
  };
  if (section_name == "study") {
    set(StudyTable{}, given.study);
  } else if (section_name == "data") {
    set(DataTable{}, given.data);
  } else if (section_name == "runs") {
    set(RunsTable{}, given.runs);
  } else {
    fail(
        "{}: only [study], [data] and [runs] fields can be set from the command line ([[model]] and "
        "[[speed]] entries are edited in the study file)",
        where_set);
  }
}

StudySpeed speed_of(const SpeedEntry& entry, const std::string& path) {
  StudySpeed speed{entry.label, {}, entry.from_template};
  if (static_cast<int>(entry.gap.has_value()) + static_cast<int>(entry.gaps.has_value()) +
          static_cast<int>(entry.from_template) !=
      1)
    fail("{}: [[speed]] '{}': expected exactly one of 'gap', 'gaps' or 'template = true'", path, entry.label);
  if (entry.gap) speed.gaps.assign(3, *entry.gap);
  if (entry.gaps) {
    if (entry.gaps->size() != 3)
      fail("{}: [[speed]] '{}' field 'gaps': expected [g_ln2, g_qk, g_v], got {} values", path, entry.label,
           entry.gaps->size());
    speed.gaps = *entry.gaps;
  }
  for (auto g : speed.gaps)
    if (g < 0) fail("{}: [[speed]] '{}': gaps must be >= 0", path, entry.label);
  return speed;
}

}  // namespace

std::int64_t replicate_seed(const StudyConfig& config, std::int64_t replicate) {
  return config.seed + replicate;
}
std::int64_t pretrain_run_seed(std::int64_t v) { return 2 * v + 1; }
std::int64_t finetune_run_seed(std::int64_t v) { return 2 * v + 2; }

StudyConfig load_study_config(const std::string& path, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail("{}: invalid TOML at line {}: {}", path, e.source().begin.line, e.description());
  }
  for (const auto& [key, value] : root) {
    static const std::set<std::string> known = {"study", "data", "runs", "model", "speed"};
    if (!known.count(std::string(key.str()))) fail("{}: unknown section [{}]", path, key.str());
  }
  StudyConfig c;
  c.origin = path;
  GivenKeys given;
  const auto in_table = config::FieldNaming::kInTable;
  given.study = config::read_fields<StudyTable>(c, section(root, "study", path), {path, "study", in_table});
  given.data = config::read_fields<DataTable>(c, section(root, "data", path), {path, "data", in_table});
  given.runs = config::read_fields<RunsTable>(c, section(root, "runs", path), {path, "runs", in_table});
  for (const auto& assignment : overrides) apply_override(c, given, path, assignment);
  config::require_fields<StudyTable>(c, given.study, {path, "study", in_table});
  config::require_fields<DataTable>(c, given.data, {path, "data", in_table});
  config::require_fields<RunsTable>(c, given.runs, {path, "runs", in_table});

  const auto& models = entries(root, "model", path);
  std::set<std::string> names;
  for (std::size_t i = 0; i < models.size(); ++i) {
    StudyModel model;
    config::read_table<ModelEntry>(model, *models[i].as_table(), entry_scope(path, "model", i));
    if (!names.insert(model.name).second) fail("{}: [[model]] name '{}' appears twice", path, model.name);
    if (model.pretrain && c.pretrain_template.empty())
      fail("{}: [[model]] '{}' asks for pretraining but [runs] has no 'pretrain' template", path, model.name);
    c.models.push_back(model);
  }
  const auto& speeds = entries(root, "speed", path);
  std::set<std::string> labels;
  for (std::size_t i = 0; i < speeds.size(); ++i) {
    SpeedEntry entry;
    config::read_table<SpeedEntry>(entry, *speeds[i].as_table(), entry_scope(path, "speed", i));
    StudySpeed speed = speed_of(entry, path);
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

std::string study_config_markdown() {
  const StudyConfig c;
  const StudyModel model;
  const SpeedEntry speed;
  return fmt::format(
      "## Study files (`lnfree study`)\n\n"
      "A scaling study (docs/study.md) is one TOML file: a family of models, each pretrained (or loaded), "
      "measured, fine-tuned as a vanilla control and put through LN removal at several schedule speeds "
      "(`configs/study/`). `lnfree study --set section.key=value` overrides [study], [data] and [runs] "
      "fields "
      "as `train --set` does for runs.\n\n"
      "### `[study]`\n\n{}\n### `[data]`\n\n{}\n"
      "### `[runs]`\n\nThe run configs each kind of run starts from; the study adds its `--set` overrides "
      "(seeds, data, schedule) to them.\n\n{}\n"
      "### `[[model]]`\n\nOne entry per model of the family.\n\n{}\n"
      "### `[[speed]]`\n\nOne entry per removal schedule, with exactly one of `gap`, `gaps` and `template = "
      "true`. Layer counts L are the model's.\n\n{}",
      config::fields_markdown<StudyTable>(c), config::fields_markdown<DataTable>(c),
      config::fields_markdown<RunsTable>(c), config::fields_markdown<ModelEntry>(model),
      config::fields_markdown<SpeedEntry>(speed));
}

}  // namespace lnfree::study
