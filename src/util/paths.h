// Where lnfree finds its own files when the user does not say: the data folder made by
// launch/setup.sh (BPE files, corpora) and the configs folder. Environment variables override the
// locations compiled in, so an installed binary can be pointed elsewhere.
#pragma once

#include <string>

namespace lnfree {

// $LNFREE_DATA_DIR, else <source>/data.
std::string default_data_dir();
// $LNFREE_CONFIG_DIR, else <source>/configs.
std::string default_config_dir();
// $LNFREE_SOURCE_DIR, else the source tree this binary was built from (helper scripts live there).
std::string default_source_dir();
// <data>/bpe: encoder.json and vocab.bpe.
std::string default_bpe_dir();

}  // namespace lnfree
