// The config engine: everything that reads or writes a config object walks the object's field list
// (config/field_list.h), so a field is declared once and the TOML reader, `--set key=value`, the
// canonical TOML writer and the Markdown docs cannot disagree about it.
//
// Member types: std::int64_t, double, bool, std::string, std::vector<std::string>,
// std::vector<std::int64_t>, an enum with a names_of() table (config/enum_names.h), and
// std::optional of any of these (absent: not written, "none" in --set text).
//
// Every error names the file (with the line when the value came from a file), the field and what
// was expected, e.g.
//   run.toml:4: field 'data.steps': expected an integer, got float 300.0
//   run.toml:9: [optim] unknown key 'lrr' (known: lr min_lr ...)
//   study.toml: [study] missing field 'name': expected a string
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/enum_names.h"
#include "config/field_list.h"
#include "util/error.h"

namespace lnfree::config {

// ---------------------------------------------------------------------------------------------
// Where a table came from, for messages.

enum class FieldNaming {
  kDotted,   // "field 'run.seed'": the name --set takes, for tables that appear once
  kInTable,  // "[model #2] field 'name'": for entries of an array of tables
};

struct TableScope {
  std::string origin;  // the file, or a caller's label
  std::string table;   // as messages show it in brackets: "run", "schedule.ln2", "model #2"
  FieldNaming naming = FieldNaming::kDotted;

  std::string field(std::string_view key) const;
};

// ---------------------------------------------------------------------------------------------
// Values (fields.cpp). `where` starts every message ("run.toml:4: field 'data.steps'").

// What a TOML value is, for "got ..." in messages: `string "x"`, `float 1.5`, `an array`.
std::string describe(const toml::node& node);
// "file:line" when the node came from a file, else just the origin.
std::string located(const std::string& origin, const toml::node& node);
std::string trim(const std::string& s);

void assign(std::int64_t& out, const toml::node& node, const std::string& where);
void assign(double& out, const toml::node& node, const std::string& where);  // integers too
void assign(bool& out, const toml::node& node, const std::string& where);
void assign(std::string& out, const toml::node& node, const std::string& where);
void assign(std::vector<std::string>& out, const toml::node& node, const std::string& where);
void assign(std::vector<std::int64_t>& out, const toml::node& node, const std::string& where);

// --set text: int, float, bool and lists of integers as TOML values (1e-4, 524_288, [1, 2]);
// strings verbatim or as a quoted TOML string; lists of strings as a TOML array or comma-separated.
void assign_text(std::int64_t& out, const std::string& text, const std::string& where);
void assign_text(double& out, const std::string& text, const std::string& where);
void assign_text(bool& out, const std::string& text, const std::string& where);
void assign_text(std::string& out, const std::string& text, const std::string& where);
void assign_text(std::vector<std::string>& out, const std::string& text, const std::string& where);
void assign_text(std::vector<std::int64_t>& out, const std::string& text, const std::string& where);

// Canonical TOML text of a value: integers in decimal, floats in shortest round-trip form, strings
// as TOML basic strings.
std::string toml_value(std::int64_t v);
std::string toml_value(double v);
std::string toml_value(bool v);
std::string toml_value(const std::string& v);
std::string toml_value(const std::vector<std::string>& v);
std::string toml_value(const std::vector<std::int64_t>& v);

namespace detail {
template <class T>
struct optional_of {
  using type = void;
};
template <class T>
struct optional_of<std::optional<T>> {
  using type = T;
};
template <class T>
inline constexpr bool is_optional_v = !std::is_void_v<typename optional_of<T>::type>;

template <class E>
using if_enum = std::enable_if_t<has_enum_names_v<E>, int>;
}  // namespace detail

template <class E, detail::if_enum<E> = 0>
void assign(E& out, const toml::node& node, const std::string& where) {
  if (node.is_string())
    if (auto value = parse_enum<E>(*node.value<std::string>())) {
      out = *value;
      return;
    }
  fail("{}: expected one of {}, got {}", where, enum_name_list<E>(), describe(node));
}

template <class E, detail::if_enum<E> = 0>
void assign_text(E& out, const std::string& text, const std::string& where) {
  std::string name;
  assign_text(name, text, where);  // verbatim or a quoted string, as for string fields
  auto value = parse_enum<E>(name);
  if (!value) fail("{}: expected one of {}, got {}", where, enum_name_list<E>(), toml_value(name));
  out = *value;
}

template <class E, detail::if_enum<E> = 0>
std::string toml_value(E v) {
  return toml_value(std::string(enum_name(v)));
}

template <class T>
void assign(std::optional<T>& out, const toml::node& node, const std::string& where) {
  T value{};
  assign(value, node, where);
  out = std::move(value);
}

template <class T>
void assign_text(std::optional<T>& out, const std::string& text, const std::string& where) {
  if (trim(text) == "none") {
    out.reset();
    return;
  }
  T value{};
  assign_text(value, text, where);
  out = std::move(value);
}

// The type as docs name it ("int", "float", "list of strings", ...).
template <class T>
std::string type_name() {
  if constexpr (detail::is_optional_v<T>) {
    return type_name<typename detail::optional_of<T>::type>();
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return "int";
  } else if constexpr (std::is_same_v<T, double>) {
    return "float";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "bool";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "string";
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return "list of strings";
  } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
    return "list of ints";
  } else {
    static_assert(has_enum_names_v<T>, "config field of an unsupported type");
    return "string: " + enum_name_list<T>(", ");
  }
}

// What a value of the type is, as messages say it ("an integer", "one of stop | rollback").
template <class T>
std::string expected_text() {
  if constexpr (detail::is_optional_v<T>) {
    return expected_text<typename detail::optional_of<T>::type>();
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return "an integer";
  } else if constexpr (std::is_same_v<T, double>) {
    return "a float";
  } else if constexpr (std::is_same_v<T, bool>) {
    return "a boolean (true or false)";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "a string";
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return "a list of strings";
  } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
    return "a list of integers";
  } else {
    return "one of " + enum_name_list<T>();
  }
}

// ---------------------------------------------------------------------------------------------
// Objects, through their field lists.

// The keys, space-separated ("lr min_lr warmup ...").
template <class FieldList, class Object>
std::string known_keys(const Object& object) {
  std::string names;
  for_each_field<FieldList>(object, [&](const FieldSpec& spec, const auto&) {
    if (!names.empty()) names += ' ';
    names += spec.key;
  });
  return names;
}

// Reads every key of `table` into `object` (absent keys keep their values); an unknown key or a
// value of the wrong type is an error. Returns the keys given, for require_fields.
template <class FieldList, class Object>
std::set<std::string> read_fields(Object& object, const toml::table& table, const TableScope& scope) {
  std::set<std::string> given;
  for (const auto& item : table) {
    const std::string key(item.first.str());
    const toml::node& value = item.second;
    bool found = false;
    for_each_field<FieldList>(object, [&](const FieldSpec& spec, auto& member) {
      if (found || spec.key != key) return;
      found = true;
      assign(member, value, located(scope.origin, value) + ": " + scope.field(key));
    });
    if (!found)
      fail("{}: [{}] unknown key '{}' (known: {})", located(scope.origin, value), scope.table, key,
           known_keys<FieldList>(object));
    given.insert(key);
  }
  return given;
}

// Fails on the first required field that is not in `given`.
template <class FieldList, class Object>
void require_fields(const Object& object, const std::set<std::string>& given, const TableScope& scope) {
  for_each_field<FieldList>(object, [&](const FieldSpec& spec, const auto& member) {
    if (spec.presence == Presence::kRequired && given.count(std::string(spec.key)) == 0)
      fail("{}: [{}] missing field '{}': expected {}", scope.origin, scope.table, spec.key,
           expected_text<std::decay_t<decltype(member)>>());
  });
}

// read_fields, then require_fields: a whole table from a file.
template <class FieldList, class Object>
void read_table(Object& object, const toml::table& table, const TableScope& scope) {
  require_fields<FieldList>(object, read_fields<FieldList>(object, table, scope), scope);
}

// Sets the field called `key` from --set text; false when there is none.
template <class FieldList, class Object>
bool set_field(Object& object, std::string_view key, const std::string& text, const std::string& where) {
  bool found = false;
  for_each_field<FieldList>(object, [&](const FieldSpec& spec, auto& member) {
    if (found || spec.key != key) return;
    found = true;
    assign_text(member, text, where);
  });
  return found;
}

// "key = value\n" for every field in declaration order; absent optionals are left out.
template <class FieldList, class Object>
std::string write_fields(const Object& object) {
  std::string out;
  for_each_field<FieldList>(object, [&](const FieldSpec& spec, const auto& member) {
    using T = std::decay_t<decltype(member)>;
    if constexpr (detail::is_optional_v<T>) {
      if (member) out += std::string(spec.key) + " = " + toml_value(*member) + "\n";
    } else {
      out += std::string(spec.key) + " = " + toml_value(member) + "\n";
    }
  });
  return out;
}

// A Markdown table of the fields (key, type, default, help), the defaults read from `defaults`.
std::string markdown_cell(std::string_view text);
template <class FieldList, class Object>
std::string fields_markdown(const Object& defaults) {
  std::string out = "| field | type | default | meaning |\n|---|---|---|---|\n";
  for_each_field<FieldList>(defaults, [&](const FieldSpec& spec, const auto& member) {
    using T = std::decay_t<decltype(member)>;
    std::string value;
    if (spec.presence == Presence::kRequired) {
      value = "required";
    } else if constexpr (detail::is_optional_v<T>) {
      value = member ? "`" + toml_value(*member) + "`" : "absent";
    } else {
      value = "`" + toml_value(member) + "`";
    }
    out += "| `" + std::string(spec.key) + "` | " + markdown_cell(type_name<T>()) + " | " +
           markdown_cell(value) + " | " + markdown_cell(spec.help) + " |\n";
  });
  return out;
}

}  // namespace lnfree::config
