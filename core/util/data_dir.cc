// The shipped data directory.
#include "core/util/data_dir.h"

#include <cstdlib>

namespace berth {

std::string BerthDataDir() {
  const char* env = std::getenv("BERTH_SHARE_DIR");
  if (env != nullptr && *env != '\0') return env;
#ifdef BERTH_SOURCE_DATA_DIR
  return BERTH_SOURCE_DATA_DIR;
#else
  return "data";
#endif
}

}  // namespace berth
