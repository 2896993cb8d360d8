# One fuzz ctest (label fuzz): runs FUZZER for SECONDS on a scratch copy of its committed corpus (libFuzzer
# adds new inputs to its first corpus folder; the source tree stays untouched), after all the committed
# regression inputs, which libFuzzer executes first as part of its corpus.
#   cmake -DFUZZER=<binary> -DNAME=<target> -DSRC=<source dir> -DWORK=<scratch dir> -DSECONDS=40 -P run_fuzz.cmake
cmake_minimum_required(VERSION 3.22)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus")
file(GLOB seeds "${SRC}/fuzz/corpus/${NAME}/*")
if(seeds)
  file(COPY ${seeds} DESTINATION "${WORK}/corpus")
endif()
set(dirs "${WORK}/corpus")
if(IS_DIRECTORY "${SRC}/fuzz/regressions/${NAME}")
  list(APPEND dirs "${SRC}/fuzz/regressions/${NAME}")
endif()
set(args -max_total_time=${SECONDS} -timeout=30 -rss_limit_mb=2560 -max_len=65536 -print_final_stats=1
         -artifact_prefix=${WORK}/)
if(NAME MATCHES "yaml|seq2seq|c_api")
  list(APPEND args -dict=${SRC}/fuzz/yaml.dict)
endif()
include(${SRC}/tests/sanitize/options.cmake)
execute_process(COMMAND "${FUZZER}" ${args} ${dirs} WORKING_DIRECTORY "${WORK}" RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" execs "${err}")
message(STATUS "${NAME}: ${execs}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NAME} failed (${rc}); the input is in ${WORK}/:\n${err}")
endif()
