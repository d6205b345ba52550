# LibTorch: the PyPI `torch` wheel that scripts/setup.sh installs into .venv/ (pinned in
# scripts/requirements.txt). The wheel is a complete LibTorch: headers, libtorch*.so and
# this CMake config under torch.utils.cmake_prefix_path. It is CUDA-enabled, so configuring
# needs the CUDA toolkit (nvcc), and every --device cuda path is compiled and linked.
#
#   -DBERTH_PYTHON=/path/to/python   a Python whose `import torch` is the LibTorch (default: .venv)
#   -DTorch_DIR=...                  or point at any torch >= 2 CMake config directly
#   -DBERTH_REQUIRE_CUDA=OFF         accept a CPU-only LibTorch (the `cuda_build` check then
#                                    is not registered)
option(BERTH_REQUIRE_CUDA "Fail to configure unless LibTorch has CUDA (and check it in ctest)" ON)
set(BERTH_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python whose torch package provides LibTorch (and runs the live transformers reference)")

if(NOT Torch_DIR AND EXISTS "${BERTH_PYTHON}")
  execute_process(COMMAND "${BERTH_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE _berth_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _berth_torch_rc ERROR_QUIET)
  if(_berth_torch_rc EQUAL 0 AND _berth_torch_prefix)
    list(PREPEND CMAKE_PREFIX_PATH "${_berth_torch_prefix}")
  endif()
endif()
if(NOT Torch_DIR AND NOT _berth_torch_prefix)
  message(FATAL_ERROR "No LibTorch: run scripts/setup.sh (it installs the pinned torch wheel into .venv/), "
                      "or pass -DBERTH_PYTHON=<python with torch> or -DTorch_DIR=<...>/share/cmake/Torch")
endif()

if(_berth_torch_prefix)
  # TorchConfig looks for libtorch.so, libc10.so, ... on the default paths first, where another
  # LibTorch (an old Debian libtorch-dev) may sit; name the wheel's before it looks.
  get_filename_component(_berth_torch_lib "${_berth_torch_prefix}/../../lib" ABSOLUTE)
  set(_libs torch c10 torch_cpu torch_cuda c10_cuda caffe2_nvrtc)
  set(_vars TORCH_LIBRARY c10_LIBRARY torch_cpu_LIBRARY torch_cuda_LIBRARY C10_CUDA_LIBRARY CAFFE2_NVRTC_LIBRARY)
  foreach(_lib _var IN ZIP_LISTS _libs _vars)
    find_library(${_var} ${_lib} PATHS "${_berth_torch_lib}" NO_DEFAULT_PATH)
  endforeach()
endif()
find_package(Torch REQUIRED)
if(Torch_VERSION VERSION_LESS 2.0)
  message(FATAL_ERROR "LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}: Berth needs torch 2.x "
                      "(scripts/setup.sh installs the pinned wheel)")
endif()
if(BERTH_REQUIRE_CUDA AND NOT TORCH_CUDA_LIBRARIES)
  message(FATAL_ERROR "LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX} has no CUDA; "
                      "configure with -DBERTH_REQUIRE_CUDA=OFF to build CPU-only on purpose")
endif()
message(STATUS "Berth: LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}, CUDA toolkit ${CUDAToolkit_VERSION}")

# What Berth's programs link: LibTorch's CPU half (torch_cpu, c10). libtorch.so would bring
# libtorch_cuda.so and the CUDA libraries in at every start, on machines without a GPU too;
# LoadCudaLibraries (core/runtime.h) loads them at run time instead, when a driver is installed
# or CUDA is asked for. (A program that calls CUDA's API itself, like bench/gpu_bench, links
# ${TORCH_LIBRARIES}.) A LibTorch without these targets is linked whole, as before.
if(TARGET torch_cpu_library AND TARGET c10)
  add_library(berth_torch INTERFACE)
  target_link_libraries(berth_torch INTERFACE torch_cpu_library c10)
  get_target_property(_berth_torch_opts torch INTERFACE_COMPILE_OPTIONS)
  if(_berth_torch_opts)
    target_compile_options(berth_torch INTERFACE ${_berth_torch_opts})
  endif()
  set(BERTH_TORCH_LIBRARIES berth_torch)
else()
  set(BERTH_TORCH_LIBRARIES ${TORCH_LIBRARIES})
endif()

# The wheel's include/ carries the protobuf 3.13 headers torch was built with (include/google).
# gRPC's generated code must see Debian's protobuf 3.21 instead, and -isystem directories are
# searched before /usr/include, so Berth's targets see torch's include/ through a copy made of
# links that leaves google/ out. (torch's own protobuf is linked into libtorch_cpu with hidden
# symbols; the few it exports are ONNX classes and std:: template instances, none of
# protobuf's runtime.)
set(_berth_torch_inc "${TORCH_INSTALL_PREFIX}/include")
set(_berth_inc_farm "${CMAKE_BINARY_DIR}/torch-include")
file(MAKE_DIRECTORY "${_berth_inc_farm}")
file(GLOB _berth_entries RELATIVE "${_berth_torch_inc}" "${_berth_torch_inc}/*")
foreach(e IN LISTS _berth_entries)
  if(NOT e STREQUAL "google")
    file(CREATE_LINK "${_berth_torch_inc}/${e}" "${_berth_inc_farm}/${e}" SYMBOLIC)
  endif()
endforeach()
# (torch_cpu_library and the like take their directories from these through generator expressions.)
foreach(t torch torch_cpu torch_cuda c10 c10_cuda)
  if(TARGET ${t})
    get_target_property(_dirs ${t} INTERFACE_INCLUDE_DIRECTORIES)
    if(_dirs)
      list(TRANSFORM _dirs REPLACE "^${_berth_torch_inc}" "${_berth_inc_farm}")
      set_target_properties(${t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endif()
endforeach()
list(TRANSFORM TORCH_INCLUDE_DIRS REPLACE "^${_berth_torch_inc}" "${_berth_inc_farm}")
