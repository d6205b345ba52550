// Where Berth finds the data files it ships (the bert-base-uncased vocabulary, the SST-2 sample).
#ifndef BERTH_CORE_UTIL_DATA_DIR_H_
#define BERTH_CORE_UTIL_DATA_DIR_H_

#include <string>

namespace berth {

// $BERTH_SHARE_DIR, else the source tree's data/ directory.
std::string BerthDataDir();

}  // namespace berth

#endif  // BERTH_CORE_UTIL_DATA_DIR_H_
