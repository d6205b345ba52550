// gtest main for the unit tests: torch runtime set up as the executables do.
#include <gtest/gtest.h>

#include "core/runtime.h"

int main(int argc, char** argv) {
  berth::PrepareTorchEnvironment();
  berth::ConfigureThreads(0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
