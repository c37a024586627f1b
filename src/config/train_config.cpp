#include "config/train_config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cmath>
#include <cstddef>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "config/fields.h"
#include "config/sha256.h"
#include "config/toml_text.h"
#include "data/utf8.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::config {
namespace {

constexpr const char* kSectionNames = "run model data optim ln schedule eval checkpoint log dist";

// ---------------------------------------------------------------------------------------------
// Finding sections by name (fields: config/fields.h).

// Calls f(name, section) for the plain section called `name`; false when there is none.
template <class F>
bool with_section(TrainConfig& config, std::string_view name, F&& f) {
  bool found = false;
  TrainConfig::plain_sections(config, [&](const char* section_name, auto& section, const char*) {
    if (!found && name == section_name) {
      found = true;
      f(section_name, section);
    }
  });
  return found;
}

template <class Section>
std::string section_keys(const Section& section) {
  return known_keys<Section>(section);
}

std::string kind_list() {
  std::string names;
  for (auto name : kRemovalKindNames) names += (names.empty() ? "" : " ") + std::string(name);
  return names;
}

RemovalKind kind_or_fail(std::string_view name, const std::string& where) {
  auto kind = parse_removal_kind(name);
  if (!kind) fail("{}: unknown schedule kind '{}' (known: {})", where, name, kind_list());
  return *kind;
}

// ---------------------------------------------------------------------------------------------
// Files.

void parse_schedule(ScheduleConfig& schedule, const toml::node& node, const std::string& origin) {
  const toml::table* table = node.as_table();
  if (table == nullptr)
    fail("{}: 'schedule' must be a table [schedule.KIND], got {}", located(origin, node), describe(node));
  for (const auto& [key, value] : *table) {
    const std::string kind_name(key.str());
    const RemovalKind kind = kind_or_fail(kind_name, fmt::format("{}: [schedule]", located(origin, value)));
    const toml::table* group_table = value.as_table();
    if (group_table == nullptr)
      fail("{}: field 'schedule.{}': expected a table with start (and gap), got {}", located(origin, value),
           kind_name, describe(value));
    RemovalGroupConfig group;
    read_table<RemovalGroupConfig>(group, *group_table, {origin, "schedule." + kind_name});
    schedule[kind] = group;
  }
}

// The keys each plain section was given, by the file or by --set: required fields must be among them.
using GivenKeys = std::map<std::string, std::set<std::string>>;

void parse_table(TrainConfig& config, const toml::table& root, const std::string& origin, GivenKeys& given) {
  // Named references, not structured bindings: lambdas below capture them, which C++17 allows
  // only for variables (gcc accepts bindings anyway, clang does not; tests/fuzz builds with clang).
  for (const auto& item : root) {
    const toml::node& node = item.second;
    const std::string section_name(item.first.str());
    if (section_name == "schedule") {
      parse_schedule(config.schedule, node, origin);
      continue;
    }
    const bool known = with_section(config, section_name, [&](const char* name, auto& section) {
      const toml::table* table = node.as_table();
      if (table == nullptr)
        fail("{}: '{}' must be a table [{}], got {}", located(origin, node), name, name, describe(node));
      using Section = std::decay_t<decltype(section)>;
      for (const auto& key : read_fields<Section>(section, *table, {origin, name})) given[name].insert(key);
    });
    if (!known)
      fail("{}: unknown section [{}] (known: {})", located(origin, node), section_name, kSectionNames);
  }
}

void require_sections(const TrainConfig& config, const GivenKeys& given) {
  TrainConfig::plain_sections(config, [&](const char* name, const auto& section, const char*) {
    const auto keys = given.find(name);
    require_fields<std::decay_t<decltype(section)>>(
        section, keys == given.end() ? std::set<std::string>{} : keys->second, {config.origin, name});
  });
}

}  // namespace

bool ScheduleConfig::empty() const {
  for (const auto& group : groups)
    if (group) return false;
  return true;
}

namespace {

// Applies one override; records the section and key it set in `given`.
void apply_override(TrainConfig& config, const std::string& assignment, GivenKeys& given) {
  // String values are taken verbatim, and the canonical TOML saved with every run (and read back on
  // resume) must be UTF-8 like any TOML, so bytes that are not UTF-8 stop here; the message shows
  // only the valid part.
  const std::size_t valid = data::valid_utf8_prefix(assignment);
  if (valid != assignment.size())
    fail("{}: --set '{}...': not valid UTF-8 at byte {}; config values must be UTF-8 text", config.origin,
         assignment.substr(0, valid), valid);
  const std::string where_set = fmt::format("{}: --set '{}'", config.origin, assignment);
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    fail("{}: expected section.key=value (e.g. optim.lr=3e-4)", where_set);
  const std::string path = trim(assignment.substr(0, equals));
  const std::string text = assignment.substr(equals + 1);

  std::vector<std::string> parts;
  for (std::size_t begin = 0;;) {
    const auto dot = path.find('.', begin);
    parts.push_back(path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (dot == std::string::npos) break;
    begin = dot + 1;
  }
  const std::string where = fmt::format("{}: field '{}'", where_set, path);

  if (parts[0] == "schedule") {
    if (parts.size() < 2 || parts.size() > 3)
      fail("{}: expected schedule.KIND.start=N, schedule.KIND.gap=N|none or schedule.KIND=none", where_set);
    const RemovalKind kind = kind_or_fail(parts[1], where_set);
    auto& group = config.schedule[kind];
    if (parts.size() == 2) {
      if (trim(text) != "none")
        fail("{}: expected 'none' (removes [schedule.{}]), got '{}'", where, parts[1], text);
      group.reset();
      return;
    }
    // A group is created by its start (its one required field), so gap needs one already there.
    if (!group && parts[2] == "gap")
      fail("{}: [schedule.{}] is absent; set schedule.{}.start first", where, parts[1], parts[1]);
    RemovalGroupConfig updated = group.value_or(RemovalGroupConfig{});
    if (!set_field<RemovalGroupConfig>(updated, parts[2], text, where))
      fail("{}: [schedule.{}] unknown key '{}' (known: {})", where_set, parts[1], parts[2],
           known_keys<RemovalGroupConfig>(updated));
    group = updated;
    return;
  }

  const bool known = with_section(config, parts[0], [&](const char* name, auto& section) {
    if (parts.size() != 2)
      fail("{}: expected {}.KEY=value (known keys: {})", where_set, name, section_keys(section));
    if (!set_field<std::decay_t<decltype(section)>>(section, parts[1], text, where))
      fail("{}: [{}] unknown key '{}' (known: {})", where_set, name, parts[1], section_keys(section));
    given[name].insert(parts[1]);
  });
  if (!known) fail("{}: unknown section '{}' (known: {})", where_set, parts[0], kSectionNames);
}

}  // namespace

void apply_override(TrainConfig& config, const std::string& assignment) {
  GivenKeys given;
  apply_override(config, assignment, given);
}

TrainConfig parse_train_config(const std::string& toml_text, const std::string& origin,
                               const std::vector<std::string>& overrides) {
  TrainConfig config;
  config.origin = origin;
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    fail("{}:{}: invalid TOML: {}", origin, e.source().begin.line, e.description());
  }
  GivenKeys given;
  parse_table(config, root, origin, given);
  for (const auto& assignment : overrides) apply_override(config, assignment, given);
  require_sections(config, given);
  validate(config);
  return config;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_train_config(read_file(path), path, overrides);
}

std::string to_canonical_toml(const TrainConfig& config) {
  std::string out;
  // [schedule.*] follows [ln], the section it belongs with; the rest in declaration order.
  TrainConfig::plain_sections(config, [&](const char* name, const auto& section, const char*) {
    out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", name);
    out += write_fields<std::decay_t<decltype(section)>>(section);
    if (std::string_view(name) != "ln") return;
    for (RemovalKind kind : kAllRemovalKinds)
      if (const auto& group = config.schedule[kind])
        out += fmt::format("\n[schedule.{}]\n{}", removal_kind_name(kind),
                           write_fields<RemovalGroupConfig>(*group));
  });
  return out;
}

std::string config_hash(const TrainConfig& config) { return sha256_hex(to_canonical_toml(config)); }

namespace {

// "section.key" -> value text, in order, from the canonical TOML (one "key = value" per line).
std::vector<std::pair<std::string, std::string>> canonical_entries(const TrainConfig& config) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(to_canonical_toml(config));
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.front() == '[') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const auto eq = line.find(" = ");
    out.emplace_back(section + "." + line.substr(0, eq), line.substr(eq + 3));
  }
  return out;
}

}  // namespace

std::vector<ConfigDifference> config_differences(const TrainConfig& before, const TrainConfig& after) {
  const auto a = canonical_entries(before), b = canonical_entries(after);
  std::vector<ConfigDifference> out;
  auto find = [](const auto& entries, const std::string& key) -> const std::string* {
    for (const auto& [k, v] : entries)
      if (k == key) return &v;
    return nullptr;
  };
  for (const auto& [key, value] : a) {
    const auto* other = find(b, key);
    if (!other)
      out.push_back({key, value, "(absent)"});
    else if (*other != value)
      out.push_back({key, value, *other});
  }
  for (const auto& [key, value] : b)
    if (!find(a, key)) out.push_back({key, "(absent)", value});
  return out;
}

std::int64_t sequences_per_step(const DataConfig& data) { return data.tokens_per_step / data.seq_len; }

std::int64_t gradient_accumulation_steps(const DataConfig& data, std::int64_t world_size,
                                         const std::string& origin) {
  if (world_size < 1) fail("{}: world size: expected >= 1, got {}", origin, world_size);
  const std::int64_t sequences = sequences_per_step(data);
  const std::int64_t per_micro_step = data.micro_batch * world_size;
  if (sequences % per_micro_step != 0 || sequences == 0)
    fail(
        "{}: field 'data.tokens_per_step': {} tokens = {} sequences of {} per step cannot be split into "
        "micro-batches of data.micro_batch = {} on {} ranks (expected a multiple of {} sequences)",
        origin, data.tokens_per_step, sequences, data.seq_len, data.micro_batch, world_size, per_micro_step);
  return sequences / per_micro_step;
}

double ln_retention_per_step(const TrainConfig& config) {
  // pow(m, 1.0) is m exactly: a step of momentum_sequences sequences keeps m bit for bit.
  return std::pow(config.ln.momentum, static_cast<double>(sequences_per_step(config.data)) /
                                          static_cast<double>(config.ln.momentum_sequences));
}

std::int64_t cosine_length(const TrainConfig& config) {
  return config.optim.cosine_steps != 0 ? config.optim.cosine_steps : config.data.steps;
}

EvalSet parse_eval_set(const std::string& spec, const std::string& origin) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size())
    fail("{}: expected \"MANIFEST.json:SPLIT\" (e.g. data/tokens/openwebtext/manifest.json:val), got \"{}\"",
         origin, spec);
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

std::string eval_set_name(const EvalSet& set) {
  return std::filesystem::path(set.manifest).parent_path().filename().string() + "." + set.split;
}

}  // namespace lnfree::config
