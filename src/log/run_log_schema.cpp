#include "log/run_log_schema.h"

namespace lnfree::runlog {

std::vector<TableDef> table_defs(const RunLogSpec& spec) {
  auto value = [](const char* name, Element element) { return ColumnDef{name, element, {}}; };
  std::vector<TableDef> defs;
  defs.push_back({"/train",
                  {value("step", Element::kInt64), value("tokens", Element::kInt64),
                   value("loss", Element::kFloat64), value("ce_loss", Element::kFloat64),
                   value("aux_loss", Element::kFloat64), value("lr", Element::kFloat64),
                   value("grad_norm", Element::kFloat64), value("tokens_per_s", Element::kFloat64)}});
  for (const auto& set : spec.eval_sets) {
    defs.push_back({"/eval/" + set,
                    {value("step", Element::kInt64), value("tokens", Element::kInt64),
                     value("loss", Element::kFloat64)}});
  }
  defs.push_back({"/events",
                  {value("step", Element::kInt64), value("tokens", Element::kInt64),
                   value("kind", Element::kString), value("layer", Element::kInt64)}});
  const hsize_t n_ln = spec.ln_names.size();
  defs.push_back({"/ln",
                  {value("step", Element::kInt64), ColumnDef{"sigma", Element::kFloat64, {n_ln}},
                   ColumnDef{"fake", Element::kInt8, {n_ln, 2}}}});
  defs.push_back({"/rollbacks",
                  {value("step", Element::kInt64), value("tokens", Element::kInt64),
                   value("diverged_step", Element::kInt64), value("lr_scale", Element::kFloat64),
                   value("rollbacks", Element::kInt64)}});
  return defs;
}

const char* element_name(Element element) {
  switch (element) {
    case Element::kInt64:
      return "int64";
    case Element::kFloat64:
      return "float64";
    case Element::kInt8:
      return "int8";
    case Element::kString:
      return "string16";
  }
  return "unknown";
}

}  // namespace lnfree::runlog
