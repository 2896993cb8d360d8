# ctests "sanitize_asan" (labels sanitize, asan) and "sanitize_fuzz" (labels sanitize, fuzz): build Kiln with
# clang 14, AddressSanitizer + UndefinedBehaviorSanitizer (halting at the first report) and libFuzzer
# coverage, in a separate build folder (tests/sanitize/clang-asan.cmake), once for both tests:
#   MODE=unit: builds kiln_tests (with kilnc and the AOT examples it runs) and runs the unit suite in one
#              process, less the cases in tests/sanitize/excluded.txt (see there why), then the shipped
#              examples through kilnc run.
#   MODE=fuzz: builds the fuzz targets and runs their ctests (label fuzz in that build): each target for
#              KILN_FUZZ_SECONDS on its committed corpus after its committed regression inputs.
#   cmake -DSRC=<source dir> -DWORK=<scratch dir> -DMODE=unit|fuzz [-DLAUNCHER=ccache] -P asan.cmake
cmake_minimum_required(VERSION 3.22)
set(args -C "${SRC}/tests/sanitize/clang-asan.cmake" -S "${SRC}" -B "${WORK}")
if(LAUNCHER)
  list(APPEND args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} ${args} RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the ASan/UBSan build failed (needs clang-14 and libclang-rt-14-dev)")
endif()
if(MODE STREQUAL "unit")
  set(targets kiln_tests kilnc)
else()
  set(targets fuzz_yaml fuzz_seq2seq fuzz_safetensors fuzz_npy fuzz_kplan fuzz_c_api fuzz_onnx)
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK}" --target ${targets} -j2 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building ${targets} with ASan/UBSan failed:\n${out}\n${err}")
endif()
include(${SRC}/tests/sanitize/options.cmake)

if(MODE STREQUAL "fuzz")
  execute_process(COMMAND ${CMAKE_CTEST_COMMAND} -L fuzz --output-on-failure WORKING_DIRECTORY "${WORK}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fuzz tests under ASan/UBSan failed:\n${out}\n${err}")
  endif()
  return()
endif()

# The unit suite, in one process (a report stops it; doctest has printed the case).
file(STRINGS "${SRC}/tests/sanitize/excluded.txt" excluded REGEX "^[^#]")
list(JOIN excluded "," excluded)
set(filter)
if(excluded)
  set(filter "--test-case-exclude=${excluded}")
endif()
execute_process(COMMAND "${WORK}/tests/kiln_tests" ${filter} WORKING_DIRECTORY "${WORK}/tests"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX MATCH "\\[doctest\\] test cases:[^\n]*" summary "${out}")
message(STATUS "kiln_tests under ASan/UBSan: ${summary}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln_tests under ASan/UBSan failed (${rc}):\n${out}\n${err}")
endif()

# The shipped examples, loaded and run through kilnc (as their READMEs show).
set(ex "${SRC}/examples")
# One command per entry, its arguments separated by '|' (a ';' would split the entries themselves).
set(runs
  "run|${ex}/transformer_classifier/transformer_classifier.yaml|--input|tokens=${ex}/transformer_classifier/tokens.npy"
  "run|${ex}/mobilenet_tiny/mobilenet_tiny.yaml|--input|image=${ex}/mobilenet_tiny/image_b2.npy"
  "run|${ex}/resnet_tiny/resnet_tiny.yaml|--input|image=${ex}/resnet_tiny/image_b1_odd.npy"
  "generate|${ex}/date_translation/transformer.yaml|Thursday, November 26, 2026|26/11/26|--strategy|beam|--beam-width|4"
  "generate|${ex}/date_translation/lstm.yaml|nov 26 2026|2026-11-26")
foreach(entry IN LISTS runs)
  string(REPLACE "|" ";" cmd "${entry}")
  execute_process(COMMAND "${WORK}/tools/kilnc" ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kilnc ${cmd} under ASan/UBSan failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "kilnc ${cmd}: ok")
endforeach()
