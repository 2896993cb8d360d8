# Kiln's layers as CMake targets (docs/ARCHITECTURE.md, "Layers"): each is an object library of one or more
# source folders, checked at build time to include only the layers below it.
#
#   kiln_layer(NAME <name> DIRS <folders> ALLOW <folders it may include> [FORBID <system headers>]
#              [LINK <libraries whose headers it uses>])
#
# The check (cmake/check_layers.cmake) reads every .cpp/.hpp/.inc under DIRS whenever one of them changes,
# and fails the build on an #include "x/..." with x outside ALLOW or an #include <y...> with y in FORBID.
function(kiln_layer)
  cmake_parse_arguments(L "" "NAME" "DIRS;ALLOW;FORBID;LINK" ${ARGN})
  set(sources "")
  set(checked "")
  foreach(d ${L_DIRS})
    file(GLOB_RECURSE s CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${d}/*.cpp)
    file(GLOB_RECURSE h CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${d}/*.hpp ${PROJECT_SOURCE_DIR}/${d}/*.inc)
    list(APPEND sources ${s})
    list(APPEND checked ${s} ${h})
  endforeach()
  set(target kiln_${L_NAME})
  if(sources)
    add_library(${target} OBJECT ${sources})
    target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/include)
    target_compile_options(${target} PRIVATE ${KILN_WARNINGS})
    if(L_LINK)
      target_link_libraries(${target} PUBLIC ${L_LINK})
    endif()
  else()
    add_custom_target(${target})
  endif()
  set(list_file ${CMAKE_CURRENT_BINARY_DIR}/layers/${L_NAME}.files)
  string(REPLACE ";" "\n" content "${checked}")
  file(WRITE ${list_file}.in "${content}\n")
  configure_file(${list_file}.in ${list_file} COPYONLY)
  set(stamp ${CMAKE_CURRENT_BINARY_DIR}/layers/${L_NAME}.ok)
  string(REPLACE ";" "," allow "${L_ALLOW}")  # a list would split into separate command arguments
  string(REPLACE ";" "," forbid "${L_FORBID}")
  add_custom_command(OUTPUT ${stamp}
    COMMAND ${CMAKE_COMMAND} -DLAYER=${L_NAME} -DFILES_LIST=${list_file} -DALLOW=${allow}
            -DFORBID=${forbid} -DSTAMP=${stamp} -P ${PROJECT_SOURCE_DIR}/cmake/check_layers.cmake
    DEPENDS ${checked} ${list_file} ${PROJECT_SOURCE_DIR}/cmake/check_layers.cmake
    COMMENT "Checking the includes of the ${L_NAME} layer")
  add_custom_target(${target}_layer_check DEPENDS ${stamp})
  add_dependencies(${target} ${target}_layer_check)
endfunction()
