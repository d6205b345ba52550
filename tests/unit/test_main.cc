// gtest main for the unit tests: torch runtime set up as the executables do.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "core/runtime/runtime.h"
#include "tests/unit/test_util.h"

namespace berth::testing {
const char* TestDataDir() { return BERTH_TEST_DATA; }
const char* ShippedDataDir() { return BERTH_DATA_DIR; }
bool NoGpuVisible() { return !torch::cuda::is_available(); }
}  // namespace berth::testing

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  berth::ConfigureThreads(0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
