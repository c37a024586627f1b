// Enums that configs spell by name. Each enum E declares, next to itself, one table of names indexed
// by its values (0 .. N-1) and a `names_of(E)` overload returning it; these helpers find that table
// by argument-dependent lookup, so the parser, the canonical writer, the docs and log lines all
// spell a value the same way.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace lnfree::config {

// True for the enums with a names_of(E) table.
template <class E, class = void>
struct has_enum_names : std::false_type {};
template <class E>
struct has_enum_names<E, std::void_t<decltype(names_of(E{}))>> : std::is_enum<E> {};
template <class E>
inline constexpr bool has_enum_names_v = has_enum_names<E>::value;

template <class E>
std::string_view enum_name(E value) {
  return names_of(E{})[static_cast<std::size_t>(value)];
}

template <class E>
std::optional<E> parse_enum(std::string_view name) {
  const auto& names = names_of(E{});
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<E>(i);
  return std::nullopt;
}

// "a | b | c": the allowed names, as error messages and docs list them.
template <class E>
std::string enum_name_list(std::string_view separator = " | ") {
  std::string out;
  for (auto name : names_of(E{})) {
    if (!out.empty()) out += separator;
    out += name;
  }
  return out;
}

}  // namespace lnfree::config
