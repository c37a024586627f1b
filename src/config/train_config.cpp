#include "config/train_config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>

#include "config/sha256.h"
#include "config/toml_text.h"
#include "data/utf8.h"
#include "util/error.h"
#include "util/files.h"

namespace lnfree::config {
namespace {

constexpr const char* kSectionNames = "run model data optim ln schedule eval checkpoint log dist";

// ---------------------------------------------------------------------------------------------
// Reading typed values from TOML nodes (file values and --set values take the same path).

std::string describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return fmt::format("string \"{}\"", *node.value<std::string>());
    case toml::node_type::integer:
      return fmt::format("integer {}", *node.value<std::int64_t>());
    case toml::node_type::floating_point:
      return "float " + float_text(*node.value<double>());
    case toml::node_type::boolean:
      return fmt::format("boolean {}", *node.value<bool>());
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date/time";
  }
}

// "file:line" when the node came from a file, else just the origin.
std::string located(const std::string& origin, const toml::node& node) {
  const auto& source = node.source();
  if (source.begin.line > 0 && source.path) return fmt::format("{}:{}", origin, source.begin.line);
  return origin;
}

void assign(std::int64_t& out, const toml::node& node, const std::string& where) {
  if (!node.is_integer()) fail("{}: expected an integer, got {}", where, describe(node));
  out = *node.value<std::int64_t>();
}

void assign(double& out, const toml::node& node, const std::string& where) {
  if (node.is_integer()) {
    out = static_cast<double>(*node.value<std::int64_t>());
  } else if (node.is_floating_point()) {
    out = *node.value<double>();
  } else {
    fail("{}: expected a float, got {}", where, describe(node));
  }
}

void assign(bool& out, const toml::node& node, const std::string& where) {
  if (!node.is_boolean()) fail("{}: expected a boolean (true or false), got {}", where, describe(node));
  out = *node.value<bool>();
}

void assign(std::string& out, const toml::node& node, const std::string& where) {
  if (!node.is_string()) fail("{}: expected a string, got {}", where, describe(node));
  out = *node.value<std::string>();
}

void assign(std::vector<std::string>& out, const toml::node& node, const std::string& where) {
  const toml::array* array = node.as_array();
  if (array == nullptr) fail("{}: expected a list of strings, got {}", where, describe(node));
  std::vector<std::string> values;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = *array->get(i);
    if (!item.is_string())
      fail("{}: expected a list of strings, got {} at index {}", where, describe(item), i);
    values.push_back(*item.value<std::string>());
  }
  out = std::move(values);
}

// The --set text of a value, read as a TOML value when it is one.
std::optional<toml::table> parse_value_text(const std::string& text) {
  try {
    return toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

template <class T>
void assign_from_text(T& out, const std::string& text, const std::string& where) {
  if constexpr (std::is_same_v<T, std::string>) {
    // Verbatim, unless the user wrote a quoted TOML string.
    if (!text.empty() && (text.front() == '"' || text.front() == '\'')) {
      if (auto table = parse_value_text(text); table && (*table)["v"].is_string()) {
        out = *(*table)["v"].value<std::string>();
        return;
      }
    }
    out = text;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (!text.empty() && text.front() == '[') {
      auto table = parse_value_text(text);
      if (!table) fail("{}: expected a list of strings, got '{}' (not a TOML array)", where, text);
      assign(out, *(*table)["v"].node(), where);
      return;
    }
    // Comma-separated; an empty value is the empty list.
    std::vector<std::string> values;
    std::size_t begin = 0;
    while (!text.empty()) {
      const auto comma = text.find(',', begin);
      values.push_back(
          trim(text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin)));
      if (comma == std::string::npos) break;
      begin = comma + 1;
    }
    out = std::move(values);
  } else {
    auto table = parse_value_text(text);
    if (!table) {
      const char* expected = std::is_same_v<T, bool>     ? "a boolean (true or false)"
                             : std::is_same_v<T, double> ? "a float"
                                                         : "an integer";
      fail("{}: expected {}, got '{}'", where, expected, text);
    }
    assign(out, *(*table)["v"].node(), where);
  }
}

// ---------------------------------------------------------------------------------------------
// Finding sections and fields by name.

template <class Section>
std::string known_keys(const Section& section) {
  std::string names;
  Section::fields(section, [&](const char* name, const auto&) {
    names += (names.empty() ? "" : " ") + std::string(name);
  });
  return names;
}

// Calls f(section_name, section) for the plain section called `name`; false when there is none.
template <class F>
bool with_section(TrainConfig& config, std::string_view name, F&& f) {
  bool found = false;
  TrainConfig::plain_sections(config, [&](const char* section_name, auto& section) {
    if (!found && name == section_name) {
      found = true;
      f(section_name, section);
    }
  });
  return found;
}

// Calls f(member) for the field called `key`; false when there is none.
template <class Section, class F>
bool with_field(Section& section, std::string_view key, F&& f) {
  bool found = false;
  Section::fields(section, [&](const char* name, auto& member) {
    if (!found && key == name) {
      found = true;
      f(member);
    }
  });
  return found;
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
    bool has_start = false;
    for (const auto& [field, field_value] : *group_table) {
      const std::string where =
          fmt::format("{}: field 'schedule.{}.{}'", located(origin, field_value), kind_name, field.str());
      if (field.str() == "start") {
        assign(group.start, field_value, where);
        has_start = true;
      } else if (field.str() == "gap") {
        std::int64_t gap = 0;
        assign(gap, field_value, where);
        group.gap = gap;
      } else {
        fail("{}: [schedule.{}] unknown key '{}' (known: start gap)", located(origin, field_value), kind_name,
             field.str());
      }
    }
    if (!has_start)
      fail("{}: [schedule.{}] missing field 'start' (an integer step)", located(origin, value), kind_name);
    schedule[kind] = group;
  }
}

void parse_table(TrainConfig& config, const toml::table& root, const std::string& origin) {
  // Named references, not structured bindings: lambdas below capture them, which C++17 allows
  // only for variables (gcc accepts bindings anyway, clang does not; tests/fuzz builds with clang).
  for (const auto& item : root) {
    const auto& key = item.first;
    const toml::node& node = item.second;
    const std::string section_name(key.str());
    if (section_name == "schedule") {
      parse_schedule(config.schedule, node, origin);
      continue;
    }
    const bool known = with_section(config, section_name, [&](const char* name, auto& section) {
      const toml::table* table = node.as_table();
      if (table == nullptr)
        fail("{}: '{}' must be a table [{}], got {}", located(origin, node), name, name, describe(node));
      for (const auto& entry : *table) {
        const auto& field = entry.first;
        const toml::node& value = entry.second;
        const std::string where = fmt::format("{}: field '{}.{}'", located(origin, value), name, field.str());
        const bool found =
            with_field(section, field.str(), [&](auto& member) { assign(member, value, where); });
        if (!found)
          fail("{}: [{}] unknown key '{}' (known: {})", located(origin, value), name, field.str(),
               known_keys(section));
      }
    });
    if (!known)
      fail("{}: unknown section [{}] (known: {})", located(origin, node), section_name, kSectionNames);
  }
}

// ---------------------------------------------------------------------------------------------
// Canonical TOML.

std::string toml_value(std::int64_t v) { return fmt::format("{}", v); }
std::string toml_value(bool v) { return v ? "true" : "false"; }
std::string toml_value(const std::string& v) { return toml_string(v); }
std::string toml_value(double v) { return float_text(v); }
std::string toml_value(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + toml_string(v[i]);
  return out + "]";
}

}  // namespace

bool ScheduleConfig::empty() const {
  for (const auto& group : groups)
    if (group) return false;
  return true;
}

void apply_override(TrainConfig& config, const std::string& assignment) {
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
    if (parts[2] == "start") {
      std::int64_t start = 0;
      assign_from_text(start, text, where);
      if (!group) group = RemovalGroupConfig{};
      group->start = start;
    } else if (parts[2] == "gap") {
      if (!group) fail("{}: [schedule.{}] is absent; set schedule.{}.start first", where, parts[1], parts[1]);
      if (trim(text) == "none") {
        group->gap.reset();
      } else {
        std::int64_t gap = 0;
        assign_from_text(gap, text, where);
        group->gap = gap;
      }
    } else {
      fail("{}: [schedule.{}] unknown key '{}' (known: start gap)", where_set, parts[1], parts[2]);
    }
    return;
  }

  const bool known = with_section(config, parts[0], [&](const char* name, auto& section) {
    if (parts.size() != 2)
      fail("{}: expected {}.KEY=value (known keys: {})", where_set, name, known_keys(section));
    const bool found =
        with_field(section, parts[1], [&](auto& member) { assign_from_text(member, text, where); });
    if (!found) fail("{}: [{}] unknown key '{}' (known: {})", where_set, name, parts[1], known_keys(section));
  });
  if (!known) fail("{}: unknown section '{}' (known: {})", where_set, parts[0], kSectionNames);
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
  parse_table(config, root, origin);
  for (const auto& assignment : overrides) apply_override(config, assignment);
  validate(config);
  return config;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_train_config(read_file(path), path, overrides);
}

std::string to_canonical_toml(const TrainConfig& config) {
  std::string out;
  auto write_section = [&](const char* name, const auto& section) {
    out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", name);
    std::decay_t<decltype(section)>::fields(section, [&](const char* key, const auto& member) {
      out += fmt::format("{} = {}\n", key, toml_value(member));
    });
  };
  // [schedule.*] follows [ln], the section it belongs with; the rest in declaration order.
  TrainConfig::plain_sections(config, [&](const char* name, const auto& section) {
    write_section(name, section);
    if (std::string_view(name) != "ln") return;
    for (RemovalKind kind : kAllRemovalKinds) {
      const auto& group = config.schedule[kind];
      if (!group) continue;
      out += fmt::format("\n[schedule.{}]\nstart = {}\n", removal_kind_name(kind), group->start);
      if (group->gap) out += fmt::format("gap = {}\n", *group->gap);
    }
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

double ln_retention_per_micro_batch(const TrainConfig& config) {
  // pow(m, 1.0) is m exactly: a micro-batch of momentum_sequences sequences keeps m bit for bit.
  return std::pow(config.ln.momentum, static_cast<double>(config.data.micro_batch) /
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
