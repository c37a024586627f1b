// The run log's schema, declared once: every group, its columns and their types, the fixed string
// sizes and the root attributes the writer requires. The writer builds (run_log_create) and checks
// (run_log_resume) files from it, `lnfree schema` prints it, and docs/run-log.md describes it
// (schema version kSchemaVersion).
#pragma once

#include <hdf5.h>

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "log/run_log.h"

namespace lnfree::runlog {

// Fixed string sizes (bytes, null-padded UTF-8): /events/kind, /status, /status_message.
inline constexpr std::size_t kKindBytes = 16;
inline constexpr std::size_t kStatusBytes = 16;
inline constexpr std::size_t kMessageBytes = 1024;

// The root attributes, by name. Every spec carries the required strings and the model's identity;
// the trainer (train/run_metrics.cpp) writes the run attributes beside them, so that analysis/ reads
// the batch geometry and the removal window instead of re-deriving them from the config.
namespace attribute {
inline constexpr const char* kConfig = "config";  // the resolved config TOML text
inline constexpr const char* kMode = "mode";      // pretrain | finetune | remove-ln
inline constexpr const char* kNLayer = "n_layer";
inline constexpr const char* kNEmbd = "n_embd";
inline constexpr const char* kNHead = "n_head";
inline constexpr const char* kParamsTotal = "params_total";
inline constexpr const char* kParamsNonEmbedding = "params_non_embedding";
inline constexpr const char* kConfigHash = "config_hash";
inline constexpr const char* kInit = "init";  // run.init as written
inline constexpr const char* kNPositions = "n_positions";
inline constexpr const char* kVocabSize = "vocab_size";
inline constexpr const char* kTokensPerStep = "tokens_per_step";  // over all ranks
inline constexpr const char* kSteps = "steps";
inline constexpr const char* kWorldSize = "world_size";
inline constexpr const char* kRemovalFirstStep = "removal_first_step";  // -1: no removal events
inline constexpr const char* kRemovalLastStep = "removal_last_step";    // -1: no removal events
inline constexpr const char* kNorm = "norm";  // the normaliser: layernorm | rmsnorm | crmsnorm
inline constexpr const char* kCentreWrites = "centre_writes";  // 1: RMSNorm with writes centred in the forward
}  // namespace attribute

inline constexpr std::array<const char*, 2> kRequiredStrings = {attribute::kConfig, attribute::kMode};
// The model's identity: a resumed run must agree on all of them.
inline constexpr std::array<const char*, 5> kModelInts = {attribute::kNLayer, attribute::kNEmbd,
                                                          attribute::kNHead, attribute::kParamsTotal,
                                                          attribute::kParamsNonEmbedding};
inline constexpr std::array<const char*, 11> kRunAttributes = {
    attribute::kConfigHash,      attribute::kInit,  attribute::kNPositions, attribute::kVocabSize,
    attribute::kTokensPerStep,   attribute::kSteps, attribute::kWorldSize,  attribute::kRemovalFirstStep,
    attribute::kRemovalLastStep, attribute::kNorm,  attribute::kCentreWrites};
inline constexpr std::array<const char*, 3> kReserved = {"schema_version", "lnfree_version", "git_commit"};

enum class Element { kInt64, kFloat64, kInt8, kString };

struct ColumnDef {
  std::string name;
  Element element;
  std::vector<hsize_t> row_shape;  // dimensions after the row dimension; empty for one value per row
};

// A group of datasets appended together; columns[0] is always "step".
struct TableDef {
  std::string group;
  std::vector<ColumnDef> columns;
};

// The tables of a log with `spec`'s eval sets and LN columns, in file order: /train, /eval/<set>...,
// /events, /ln, /rollbacks.
std::vector<TableDef> table_defs(const RunLogSpec& spec);
// "int64", "float64", "int8", "string16".
const char* element_name(Element element);

}  // namespace lnfree::runlog
