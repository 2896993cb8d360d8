# ctest "install_and_embed": installs Kiln into a fresh prefix, builds examples/embed_cpp and
# examples/embed_c against the installed tree (find_package(Kiln)), builds embed_c once more with
# pkg-config only, runs all three on the classifier fixture and checks their output against the PyTorch
# reference probabilities (examples/transformer_classifier/expected_probs.npy).
#   cmake -DSRC=<source dir> -DBUILD=<build dir> -DWORK=<scratch dir> [-DCONFIG=<config>] -P install_and_embed.cmake
cmake_minimum_required(VERSION 3.22)

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(PREFIX "${WORK}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD}" --prefix "${PREFIX}")
foreach(f include/kiln/kiln.h include/kiln/kiln.hpp include/kiln/model.hpp lib/libkiln.a bin/kilnc
          lib/cmake/Kiln/KilnConfig.cmake lib/cmake/Kiln/KilnTargets.cmake lib/pkgconfig/kiln.pc)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
# Only the public headers: nothing from graph/, ops/, runtime/ or passes/.
file(GLOB_RECURSE headers RELATIVE "${PREFIX}/include" "${PREFIX}/include/*")
foreach(h ${headers})
  if(NOT h MATCHES "^kiln/[a-z_]+\\.(h|hpp)$")
    message(FATAL_ERROR "unexpected installed header: ${h}")
  endif()
endforeach()

set(MODEL "${SRC}/examples/transformer_classifier/transformer_classifier.yaml")
set(TOKENS 997 283 794 444 524 570 192 543 535 566 501 694 81 600 151 762 588 172 229 965 277 556 804 214 645 109 269 289 181 591 787 377)
set(EXPECTED 0.267423 0.114609 0.560380 0.057589)  # expected_probs.npy for tokens.npy, rounded

function(check_probs name output)
  if(NOT output MATCHES "probs: ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9.]+)")
    message(FATAL_ERROR "${name}: no 'probs:' line in its output:\n${output}")
  endif()
  set(probs ${CMAKE_MATCH_1} ${CMAKE_MATCH_2} ${CMAKE_MATCH_3} ${CMAKE_MATCH_4})
  foreach(j 0 1 2 3)
    list(GET EXPECTED ${j} want)
    list(GET probs ${j} got)
    # |got - want| <= 1e-4, in integer units of 1e-6 (both printed with 6 decimals)
    string(REPLACE "." "" g "${got}")
    string(REPLACE "." "" w "${want}")
    string(REGEX REPLACE "^0+([0-9])" "\\1" g "${g}")
    string(REGEX REPLACE "^0+([0-9])" "\\1" w "${w}")
    math(EXPR diff "${g} - ${w}")
    if(diff LESS -100 OR diff GREATER 100)
      message(FATAL_ERROR "${name}: probs[${j}] = ${got}, expected ${want} (within 1e-4)\n${output}")
    endif()
  endforeach()
  message(STATUS "${name}: probs ${probs} match the reference")
endfunction()

foreach(example embed_cpp embed_c)
  set(B "${WORK}/${example}")
  run(${CMAKE_COMMAND} -S "${SRC}/examples/${example}" -B "${B}" -DCMAKE_PREFIX_PATH=${PREFIX} -DCMAKE_BUILD_TYPE=Release)
  run(${CMAKE_COMMAND} --build "${B}")
  run("${B}/${example}" "${MODEL}" ${TOKENS})
  check_probs(${example} "${OUT}")
  if(NOT OUT MATCHES "expected error")
    message(FATAL_ERROR "${example}: no error message for the bad call:\n${OUT}")
  endif()
  message(STATUS "${example} output:\n${OUT}")
endforeach()

# The same C program built with nothing but pkg-config.
find_program(PKG_CONFIG pkg-config REQUIRED)
find_program(CC NAMES cc gcc REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/lib/pkgconfig")
run(${PKG_CONFIG} --cflags --libs kiln)
string(STRIP "${OUT}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${CC} -std=c99 -o "${WORK}/embed_c_pkgconfig" "${SRC}/examples/embed_c/main.c" ${flags})
run("${WORK}/embed_c_pkgconfig" "${MODEL}" ${TOKENS})
check_probs(embed_c_pkgconfig "${OUT}")
