# The layers the build enforces (docs/architecture.md draws them). A target sees a folder of
# Berth's source only if it is the target's own folder or the folder of a library it links: each
# library publishes its folder through a tree of one symbolic link in the build directory
# (build/layers/<id>/<folder> -> <source>/<folder>), never through the source root, so
# `#include "core/train/trainer.h"` in a file whose target may not use core/train fails to
# compile ("No such file or directory"). Linking is what grants a folder: PUBLIC links pass it
# on to the users of a library, PRIVATE ones do not.
#
#   berth_folder(TARGET FOLDER [PUBLIC|PRIVATE])   give TARGET its own folder (e.g. core/infer)
function(berth_folder target folder)
  set(scope PUBLIC)
  if(ARGC GREATER 2)
    set(scope ${ARGV2})
  endif()
  string(REPLACE "/" "_" id "${folder}")
  set(root "${PROJECT_BINARY_DIR}/layers/${id}")
  if(NOT EXISTS "${root}/${folder}")
    get_filename_component(parent "${root}/${folder}" DIRECTORY)
    file(MAKE_DIRECTORY "${parent}")
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/${folder}" "${root}/${folder}" SYMBOLIC)
  endif()
  target_include_directories(${target} ${scope} "${root}")
endfunction()
