// The value half of the config engine: typed reads from TOML nodes and from --set text, and the
// canonical text of each value type. The object half (walking field lists) is in fields.h.
#include "config/fields.h"

#include <fmt/format.h>

#include <cstddef>
#include <utility>

#include "config/toml_text.h"

namespace lnfree::config {
namespace {

// The --set text of a value, read as a TOML value when it is one.
std::optional<toml::table> parse_value_text(const std::string& text) {
  try {
    return toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

// Reads `text` as a TOML value of the type `expected` describes, then assigns it as a file value.
template <class T>
void assign_toml_text(T& out, const std::string& text, const std::string& where) {
  auto table = parse_value_text(text);
  if (!table) fail("{}: expected {}, got '{}'", where, expected_text<T>(), text);
  assign(out, *(*table)["v"].node(), where);
}

}  // namespace

std::string TableScope::field(std::string_view key) const {
  if (naming == FieldNaming::kDotted) return fmt::format("field '{}.{}'", table, key);
  return fmt::format("[{}] field '{}'", table, key);
}

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

std::string located(const std::string& origin, const toml::node& node) {
  const auto& source = node.source();
  if (source.begin.line > 0 && source.path) return fmt::format("{}:{}", origin, source.begin.line);
  return origin;
}

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
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

namespace {

// A TOML array whose items are all of one type; `what` names that list type in messages.
template <class Item>
std::vector<Item> array_of(const toml::node& node, const std::string& where, const char* what) {
  const toml::array* array = node.as_array();
  if (array == nullptr) fail("{}: expected {}, got {}", where, what, describe(node));
  std::vector<Item> values;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = *array->get(i);
    if (!item.is<Item>()) fail("{}: expected {}, got {} at index {}", where, what, describe(item), i);
    values.push_back(*item.value<Item>());
  }
  return values;
}

}  // namespace

void assign(std::vector<std::string>& out, const toml::node& node, const std::string& where) {
  out = array_of<std::string>(node, where, "a list of strings");
}

void assign(std::vector<std::int64_t>& out, const toml::node& node, const std::string& where) {
  out = array_of<std::int64_t>(node, where, "a list of integers");
}

void assign_text(std::int64_t& out, const std::string& text, const std::string& where) {
  assign_toml_text(out, text, where);
}
void assign_text(double& out, const std::string& text, const std::string& where) {
  assign_toml_text(out, text, where);
}
void assign_text(bool& out, const std::string& text, const std::string& where) {
  assign_toml_text(out, text, where);
}
void assign_text(std::vector<std::int64_t>& out, const std::string& text, const std::string& where) {
  assign_toml_text(out, text, where);
}

// Any text is a string, so nothing here can fail and `where` is not needed.
void assign_text(std::string& out, const std::string& text, const std::string& /*where*/) {
  // Verbatim, unless the user wrote a quoted TOML string.
  if (!text.empty() && (text.front() == '"' || text.front() == '\'')) {
    if (auto table = parse_value_text(text); table && (*table)["v"].is_string()) {
      out = *(*table)["v"].value<std::string>();
      return;
    }
  }
  out = text;
}

void assign_text(std::vector<std::string>& out, const std::string& text, const std::string& where) {
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
}

std::string toml_value(std::int64_t v) { return fmt::format("{}", v); }
std::string toml_value(double v) { return float_text(v); }
std::string toml_value(bool v) { return v ? "true" : "false"; }
std::string toml_value(const std::string& v) { return toml_string(v); }

std::string toml_value(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + toml_string(v[i]);
  return out + "]";
}

std::string toml_value(const std::vector<std::int64_t>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", v[i]);
  return out + "]";
}

std::string markdown_cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace lnfree::config
