// How a config object declares its fields, once, for the config engine (config/fields.h):
//
//   template <class Self, class Visit>
//   static void fields(Self& s, Visit&& visit) {
//     visit("mode", s.mode, "What the run does ...", kRequired);
//     visit("seed", s.seed, "Seeds everything random ...");
//   }
//
// in declaration order, with the key a config file uses, the member, and the help text that
// `lnfree config --doc` writes into docs/config.md. The list may live on the struct itself or on
// a separate type (a "field list") when one struct is read from several tables. This header has no
// TOML dependency, so config structs can declare their lists cheaply.
#pragma once

#include <string_view>
#include <utility>

namespace lnfree::config {

// Whether a file (or a --set) must give the field: a required field has no meaningful default.
enum class Presence { kOptional, kRequired };
inline constexpr Presence kRequired = Presence::kRequired;

struct FieldSpec {
  std::string_view key;
  std::string_view help;
  Presence presence = Presence::kOptional;
};

// Calls f(spec, member) for every field FieldList declares on `object`, in declaration order.
template <class FieldList, class Object, class F>
void for_each_field(Object& object, F&& f) {
  FieldList::fields(
      object, [&](const char* key, auto& member, const char* help, Presence presence = Presence::kOptional) {
        f(FieldSpec{key, help, presence}, member);
      });
}

}  // namespace lnfree::config
