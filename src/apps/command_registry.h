// Every subcommand lives in its own file under src/apps and registers itself here, so adding a
// command never touches main.cpp. Registration order does not matter: main sorts by name.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace lnfree::apps {

struct CommandRegistration {
  std::string name;                         // top-level subcommand name, used for ordering
  std::function<void(CLI::App& root)> add;  // adds the subcommand (and its callback) to root
};

std::vector<CommandRegistration>& command_registry();

struct RegisterCommand {
  RegisterCommand(std::string name, std::function<void(CLI::App&)> add) {
    command_registry().push_back({std::move(name), std::move(add)});
  }
};

// Sub-subcommands of `lnfree bench` register the same way, so `bench tokenize`, `bench dist` and
// `bench train` live in their own files.
std::vector<CommandRegistration>& bench_registry();

struct RegisterBench {
  RegisterBench(std::string name, std::function<void(CLI::App&)> add) {
    bench_registry().push_back({std::move(name), std::move(add)});
  }
};

}  // namespace lnfree::apps
