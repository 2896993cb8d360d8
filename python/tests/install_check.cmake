# ctest "python_install" (labels install, python): `cmake --install` into a scratch prefix, then Debian's
# python3 imports the installed kiln package from PREFIX/PYDIR (not from the build folder) and runs the
# example classifier through it, checking the probabilities against the PyTorch reference.
#   cmake -DSRC=<source dir> -DBUILD=<build dir> -DWORK=<scratch dir> -DPYTHON=<python3> -DPYDIR=<dir> -P install_check.cmake
cmake_minimum_required(VERSION 3.22)
file(REMOVE_RECURSE "${WORK}")
set(PREFIX "${WORK}/prefix")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD}" --prefix "${PREFIX}" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed:\n${err}")
endif()
if(IS_ABSOLUTE "${PYDIR}")
  set(site "${PYDIR}")
else()
  set(site "${PREFIX}/${PYDIR}")
endif()
file(GLOB ext "${site}/kiln/_kiln*.so")
if(NOT EXISTS "${site}/kiln/__init__.py" OR NOT ext)
  message(FATAL_ERROR "the kiln package is not installed in ${site}/kiln")
endif()
set(ENV{PYTHONPATH} "${site}")
set(script [=[
import os, sys, numpy as np, kiln
src = sys.argv[1]
site = os.path.realpath(sys.argv[2])
assert os.path.realpath(kiln.__file__).startswith(site), kiln.__file__
ex = os.path.join(src, "examples", "transformer_classifier")
session = kiln.Model.load(os.path.join(ex, "transformer_classifier.yaml")).session()
probs = session.run({"tokens": np.load(os.path.join(ex, "tokens.npy"))})["probs"]
expected = np.load(os.path.join(ex, "expected_probs.npy"))
assert np.abs(probs - expected).max() <= 1e-4, (probs, expected)
print("installed kiln", kiln.__version__, "from", os.path.dirname(kiln.__file__), "probs", probs.ravel())
]=])
execute_process(COMMAND "${PYTHON}" -c "${script}" "${SRC}" "${site}" WORKING_DIRECTORY "${WORK}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "importing the installed kiln package failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "${out}")
