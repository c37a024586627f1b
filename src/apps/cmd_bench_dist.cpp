// lnfree bench dist: data-parallel throughput on this machine. Trains the same config (default
// configs/smoke.toml) as 1 rank x T threads and as N ranks x 1 thread (mpirun), reads tokens/s from
// each run's run.h5, and measures MPI allreduce bandwidth for a few buffer sizes. The parent process
// only spawns: `lnfree train` for the throughput, and itself with --role allreduce under mpirun.
#include <fmt/format.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "apps/command_registry.h"
#include "log/run_folder.h"
#include "parallel/communicator.h"
#include "parallel/connect.h"
#include "parallel/run_guard.h"
#include "util/error.h"
#include "util/paths.h"
#include "util/subprocess.h"

namespace lnfree::apps {
namespace {

namespace fs = std::filesystem;

struct BenchDistOptions {
  std::string config = "configs/smoke.toml";
  std::int64_t steps = 12;
  std::int64_t warmup = 3;
  int ranks = 2;
  int threads = 2;
  std::vector<double> sizes_mib{1, 4, 16, 64};
  int repeats = 5;
  int rounds = 2;
  std::string mpirun = "mpirun";
  std::string keep;
  std::string role;  // internal: "allreduce" inside mpirun
};

std::string self_path() {
  std::error_code ec;
  auto path = fs::read_symlink("/proc/self/exe", ec);
  if (ec) fail("bench dist: cannot find this executable (/proc/self/exe): {}", ec.message());
  return path.string();
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// Runs argv (argv[0] looked up on PATH); returns stdout, lets stderr through. Throws when the
// program cannot start or exits non-zero.
std::string run(const std::vector<std::string>& argv) {
  // Open MPI refuses to start as root without these; harmless otherwise.
  std::vector<std::string> env;
  if (::geteuid() == 0) env = {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"};
  const auto result = run_capturing_output(argv, env, "bench dist");
  if (result.exit_code != 0) {
    std::string command;
    for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
    fail("bench dist: '{}' failed (exit code {})", command, result.exit_code);
  }
  return result.output;
}

std::vector<std::string> mpirun_prefix(const BenchDistOptions& o, int ranks) {
  // One core per rank (Open MPI's default binding for -np <= cores); --oversubscribe lets a
  // smaller machine run the bench at all (the numbers then say so).
  return {o.mpirun, "--oversubscribe",     "--bind-to", "core",
          "-np",    std::to_string(ranks), "-x",        "OMP_NUM_THREADS=1"};
}

// The tokens/s column of run.h5 (docs/run-log.md), rows with step >= warmup.
std::vector<double> tokens_per_second(const std::string& path, std::int64_t warmup) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) fail("{}: cannot open the run log", path);
  auto read = [&](const char* name, hid_t type, void* out, hsize_t expect) {
    const hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
    if (set < 0) fail("{}: dataset {} missing", path, name);
    const hid_t space = H5Dget_space(set);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space, &n, nullptr);
    H5Sclose(space);
    if (out != nullptr && n == expect) H5Dread(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(set);
    return n;
  };
  const hsize_t n = read("/train/step", H5T_NATIVE_INT64, nullptr, 0);
  std::vector<std::int64_t> steps(n);
  std::vector<double> tps(n);
  read("/train/step", H5T_NATIVE_INT64, steps.data(), n);
  read("/train/tokens_per_s", H5T_NATIVE_DOUBLE, tps.data(), n);
  H5Fclose(file);
  std::vector<double> out;
  for (hsize_t i = 0; i < n; ++i)
    if (steps[i] >= warmup) out.push_back(tps[i]);
  if (out.empty()) fail("{}: no logged step at or after step {}", path, warmup);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

struct Throughput {
  std::string setup;
  double tokens_per_s;
  double seconds;  // wall time of the whole command (start-up included)
};

Throughput train(const BenchDistOptions& o, const fs::path& dir, int ranks, int threads, int round) {
  const std::string name = fmt::format("{}x{}-{}", ranks, threads, round);
  const fs::path out = dir / name;
  std::vector<std::string> argv;
  if (ranks > 1) argv = mpirun_prefix(o, ranks);
  for (const std::string& a :
       {self_path(), std::string("train"), std::string("--config"), o.config, std::string("--out"),
        out.string(), std::string("--stop-at"), std::to_string(o.steps), std::string("--set"),
        fmt::format("run.threads={}", threads), std::string("--set"), std::string("eval.sets=[]"),
        std::string("--set"), std::string("checkpoint.interval=0"), std::string("--set"),
        std::string("log.interval=1")})
    argv.push_back(a);
  const auto start = std::chrono::steady_clock::now();
  run(argv);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {
      fmt::format("{} rank{} x {} thread{}", ranks, ranks > 1 ? "s" : "", threads, threads > 1 ? "s" : ""),
      median(tokens_per_second(run_folder::log_path(out.string()), o.warmup)), seconds};
}

// --role allreduce (inside mpirun): times float32 sum-allreduces; rank 0 prints one line per size:
// "<bytes> <seconds per allreduce>".
int allreduce_role(const BenchDistOptions& o) {
  auto comm = parallel::connect();
  return parallel::run_or_abort(*comm, [&] {
    for (double mib : o.sizes_mib) {
      const auto count = static_cast<std::size_t>(mib * (1 << 20) / 4);
      std::vector<float> buffer(count, 1.0f);
      for (int i = 0; i < 2; ++i)
        comm->allreduce(buffer.data(), count, parallel::DataType::kFloat32, parallel::Reduction::kSum);
      double best = 1e30;
      for (int i = 0; i < o.repeats; ++i) {
        comm->barrier();
        const auto start = std::chrono::steady_clock::now();
        comm->allreduce(buffer.data(), count, parallel::DataType::kFloat32, parallel::Reduction::kSum);
        best =
            std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      best = comm->host_allreduce(best, parallel::Reduction::kMax);  // the slowest rank sets the pace
      if (comm->rank() == 0) fmt::print("{} {}\n", count * 4, best);
      std::fflush(stdout);
    }
    return 0;
  });
}

void run_bench_dist(const BenchDistOptions& o) {
  if (o.ranks < 2) fail("bench dist: --ranks must be at least 2, got {}", o.ranks);
  if (o.threads < 1) fail("bench dist: --threads must be at least 1, got {}", o.threads);
  if (o.rounds < 1) fail("bench dist: --rounds must be at least 1, got {}", o.rounds);
  if (o.steps <= o.warmup) fail("bench dist: --steps ({}) must exceed --warmup ({})", o.steps, o.warmup);
  if (!fs::exists(o.config))
    fail("{}: config not found (run from the repository root or pass --config)", o.config);
  if (!parallel::built_with_mpi()) fail("bench dist: this lnfree was built without MPI");
  fs::path dir = o.keep;
  if (dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "lnfree-bench-dist-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      fail("bench dist: cannot create a temporary folder: {}", std::strerror(errno));
    dir = pattern;
  } else {
    fs::create_directories(dir);
  }

  fmt::print("machine   {}; {} hardware threads\n", cpu_model(), std::thread::hardware_concurrency());
  fmt::print(
      "config    {}: {} steps per run (--stop-at), tokens/s = median of the logged steps {}..{};\n"
      "          the setups alternate for {} round(s), the best round of each counts (other load on the\n"
      "          machine only ever slows a run down)\n",
      o.config, o.steps, o.warmup, o.steps - 1, o.rounds);
  std::fflush(stdout);
  Throughput single{"", 0, 0}, parallel{"", 0, 0};
  for (int round = 0; round < o.rounds; ++round) {
    const Throughput a = train(o, dir, 1, o.threads, round);
    if (a.tokens_per_s > single.tokens_per_s) single = a;
    const Throughput b = train(o, dir, o.ranks, 1, round);
    if (b.tokens_per_s > parallel.tokens_per_s) parallel = b;
  }
  fmt::print("\n{:<22} {:>10} {:>9} {:>10}\n", "setup", "tokens/s", "speed-up", "wall s");
  for (const auto& t : {single, parallel})
    fmt::print("{:<22} {:>10.0f} {:>8.2f}x {:>10.1f}\n", t.setup, t.tokens_per_s,
               t.tokens_per_s / single.tokens_per_s, t.seconds);

  std::vector<std::string> argv = mpirun_prefix(o, o.ranks);
  argv.insert(argv.end(), {self_path(), "bench", "dist", "--role", "allreduce", "--repeats",
                           std::to_string(o.repeats), "--sizes"});
  for (double s : o.sizes_mib) argv.push_back(fmt::format("{}", s));
  std::istringstream lines(run(argv));
  fmt::print(
      "\nMPI allreduce, float32 sum, {} ranks on this machine (best of {}; algbw = bytes / time, busbw =\n"
      "algbw x 2(N-1)/N, the NCCL-tests convention)\n",
      o.ranks, o.repeats);
  fmt::print("{:>10} {:>12} {:>12} {:>12}\n", "MiB", "ms", "algbw GB/s", "busbw GB/s");
  double bytes = 0, seconds = 0;
  while (lines >> bytes >> seconds) {
    const double algbw = bytes / seconds / 1e9;
    fmt::print("{:>10.0f} {:>12.3f} {:>12.2f} {:>12.2f}\n", bytes / (1 << 20), seconds * 1e3, algbw,
               algbw * 2.0 * (o.ranks - 1) / o.ranks);
  }
  if (o.keep.empty()) fs::remove_all(dir);
  if (parallel.tokens_per_s < single.tokens_per_s)
    fmt::print("\nnote: {} was slower than {} on this machine (other load? fewer cores than ranks?)\n",
               parallel.setup, single.setup);
}

RegisterBench reg("dist", [](CLI::App& bench) {
  auto* cmd = bench.add_subcommand(
      "dist", "Data-parallel training throughput (1 vs N ranks) and MPI allreduce bandwidth");
  auto o = std::make_shared<BenchDistOptions>();
  cmd->add_option("--config", o->config,
                  "Training config to time (paths in it are relative to the working folder)")
      ->capture_default_str();
  cmd->add_option("--steps", o->steps, "Optimizer steps per run (lnfree train --stop-at)")
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Leading steps left out of the median")->capture_default_str();
  cmd->add_option("--ranks", o->ranks, "Ranks (1 thread each) of the data-parallel run")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads of the one-rank run")->capture_default_str();
  cmd->add_option("--rounds", o->rounds, "Alternating rounds of the two setups; the best of each counts")
      ->capture_default_str();
  cmd->add_option("--sizes", o->sizes_mib, "Allreduce buffer sizes in MiB")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "Timed allreduces per size (the best counts)")
      ->capture_default_str();
  cmd->add_option("--mpirun", o->mpirun, "mpirun executable")->capture_default_str();
  cmd->add_option("--keep", o->keep, "Keep the runs in this folder (default: a temporary folder, removed)");
  cmd->add_option("--role", o->role, "Internal: 'allreduce' runs the bandwidth timer (under mpirun)")
      ->group("");  // hidden
  cmd->footer(
      "Runs `lnfree train --config CONFIG --stop-at STEPS` with evaluation off, as one process with\n"
      "--threads threads and under mpirun as --ranks ranks with one thread each (bound to one core each),\n"
      "alternating for --rounds rounds. Prints the best round's median tokens/s of the steps after\n"
      "--warmup (from each run.h5) for each setup, the speed-up, and\n"
      "the time of an MPI allreduce (float32 sum) for each --sizes buffer with the bandwidth it implies.\n"
      "Needs Open MPI's mpirun on PATH; as root it sets OMPI_ALLOW_RUN_AS_ROOT for the child processes.");
  cmd->callback([o] {
    if (o->role == "allreduce") {
      if (const int code = allreduce_role(*o)) throw CLI::RuntimeError(code);
      return;
    }
    if (!o->role.empty()) fail("bench dist: --role: expected 'allreduce', got '{}'", o->role);
    run_bench_dist(*o);
  });
});

}  // namespace
}  // namespace lnfree::apps
