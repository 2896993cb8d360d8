# kiln_add_model: compile a Kiln YAML model ahead of time and link it into a target.
#
#   kiln_add_model(TARGET my_app MODEL model.yaml
#                  [NAME stem] [CLASS ClassName] [NAMESPACE ns]
#                  [SHAPES NAME=DIM|NAME=MIN..MAX ...] [OPT_LEVEL 0|1|2] [ISA avx2]
#                  [WEIGHTS EMBED|FILE] [KILNC kilnc-target-or-path] [LIBRARY kiln-target])
#
# At build time it runs `kilnc compile MODEL --emit cpp` into ${CMAKE_CURRENT_BINARY_DIR}/kiln_models/NAME/,
# adds the generated NAME.cpp to TARGET, puts NAME.hpp on its include path and links the Kiln runtime.
# The model is recompiled when the YAML file, the weights file it names (through the depfile kilnc
# writes) or kilnc itself change. WEIGHTS EMBED (default) puts the plan's bytes into the binary;
# WEIGHTS FILE writes NAME.kplan beside the generated source and the class reads it at run time
# (its constructor takes the path; the default is that file).
#
# Works in Kiln's own build (targets `kilnc` and `kiln`) and with an installed Kiln package (imported
# targets `Kiln::kilnc` and `Kiln::kiln`); KILNC and LIBRARY override the choice. Needs CMake 3.20
# (DEPFILE with Makefile generators). This file depends on nothing else in Kiln's build.

include_guard(GLOBAL)

function(kiln_add_model)
  cmake_parse_arguments(PARSE_ARGV 0 ARG "" "TARGET;MODEL;NAME;CLASS;NAMESPACE;OPT_LEVEL;ISA;WEIGHTS;KILNC;LIBRARY"
                        "SHAPES")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "kiln_add_model: unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_TARGET OR NOT TARGET ${ARG_TARGET})
    message(FATAL_ERROR "kiln_add_model: TARGET must name an existing target (got '${ARG_TARGET}')")
  endif()
  if(NOT ARG_MODEL)
    message(FATAL_ERROR "kiln_add_model: MODEL is required")
  endif()
  get_filename_component(model "${ARG_MODEL}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${model}")
    message(FATAL_ERROR "kiln_add_model: model file '${model}' does not exist")
  endif()
  if(NOT ARG_NAME)
    get_filename_component(ARG_NAME "${model}" NAME_WE)
    string(MAKE_C_IDENTIFIER "${ARG_NAME}" ARG_NAME)
  endif()
  if(NOT ARG_WEIGHTS)
    set(ARG_WEIGHTS EMBED)
  endif()
  string(TOUPPER "${ARG_WEIGHTS}" weights)
  if(NOT weights MATCHES "^(EMBED|FILE)$")
    message(FATAL_ERROR "kiln_add_model: WEIGHTS must be EMBED or FILE (got '${ARG_WEIGHTS}')")
  endif()

  # kilnc: an explicit KILNC, else the installed package's imported target, else Kiln's own target.
  if(ARG_KILNC)
    set(kilnc "${ARG_KILNC}")
  elseif(TARGET Kiln::kilnc)
    set(kilnc Kiln::kilnc)
  elseif(TARGET kilnc)
    set(kilnc kilnc)
  else()
    message(FATAL_ERROR "kiln_add_model: no kilnc: find_package(Kiln) first, or pass KILNC")
  endif()
  if(TARGET ${kilnc})
    set(kilnc_command "$<TARGET_FILE:${kilnc}>")
  else()
    set(kilnc_command "${kilnc}")
  endif()
  if(ARG_LIBRARY)
    set(library "${ARG_LIBRARY}")
  elseif(TARGET Kiln::kiln)
    set(library Kiln::kiln)
  elseif(TARGET kiln)
    set(library kiln)
  else()
    message(FATAL_ERROR "kiln_add_model: no Kiln library target: find_package(Kiln) first, or pass LIBRARY")
  endif()

  set(dir "${CMAKE_CURRENT_BINARY_DIR}/kiln_models/${ARG_NAME}")
  set(outputs "${dir}/${ARG_NAME}.hpp" "${dir}/${ARG_NAME}.cpp")
  set(args compile "${model}" --emit cpp -o "${dir}" --name "${ARG_NAME}" --quiet --depfile "${dir}/${ARG_NAME}.d")
  if(weights STREQUAL "FILE")
    list(APPEND outputs "${dir}/${ARG_NAME}.kplan")
    list(APPEND args --weights file)
  endif()
  if(ARG_CLASS)
    list(APPEND args --class "${ARG_CLASS}")
  endif()
  if(ARG_NAMESPACE)
    list(APPEND args --namespace "${ARG_NAMESPACE}")
  endif()
  if(DEFINED ARG_OPT_LEVEL)
    list(APPEND args -O "${ARG_OPT_LEVEL}")
  endif()
  if(ARG_ISA)
    list(APPEND args --isa "${ARG_ISA}")
  endif()
  foreach(shape IN LISTS ARG_SHAPES)
    list(APPEND args --shape "${shape}")
  endforeach()

  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${CMAKE_COMMAND} -E make_directory "${dir}"
    COMMAND ${kilnc_command} ${args}
    DEPENDS "${model}" ${kilnc}
    DEPFILE "${dir}/${ARG_NAME}.d"
    COMMENT "kilnc: compiling ${ARG_MODEL} for ${ARG_TARGET}"
    VERBATIM)
  target_sources(${ARG_TARGET} PRIVATE ${outputs})
  target_include_directories(${ARG_TARGET} PRIVATE "${dir}")
  target_link_libraries(${ARG_TARGET} PRIVATE ${library})
endfunction()
