# ctest "stress_tsan" (label tsan): builds Kiln and kiln_stress with ThreadSanitizer in a separate build
# folder (only the library and this one program: a few minutes on 2 cores, less with ccache), then runs the
# 8 callers x 500 runs stress test on one session under it, in throughput mode and in latency mode with a
# small plan cache (plans compiled and dropped while other threads run).
# oneDNN, TBB and libgomp are not instrumented; latency mode runs with 1 thread per run so that no OpenMP
# team (whose synchronization TSan cannot see) is involved.
#   cmake -DSRC=<source dir> -DWORK=<scratch dir> [-DLAUNCHER=ccache] -P tsan.cmake
cmake_minimum_required(VERSION 3.22)
set(args -S "${SRC}" -B "${WORK}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_TSAN=ON -DKILN_BUILD_TESTS=ON -DKILN_PYTHON=OFF)
if(LAUNCHER)
  list(APPEND args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} ${args} RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the TSan build failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK}" --target kiln_stress -j2 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building kiln_stress with TSan failed:\n${out}\n${err}")
endif()
set(ENV{TSAN_OPTIONS} "halt_on_error=1 exitcode=66 report_signal_unsafe=0")
set(model "${SRC}/examples/transformer_classifier/transformer_classifier.yaml")
foreach(config "--mode;throughput;--threads;2;--runs;500" "--mode;latency;--threads;1;--max-plans;6;--runs;100")
  execute_process(COMMAND "${WORK}/tests/kiln_stress" "${model}" ${config} --callers 8
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kiln_stress ${config} under TSan failed (${rc}):\n${out}\n${err}")
  endif()
endforeach()
