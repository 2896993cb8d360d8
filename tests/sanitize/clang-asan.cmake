# Initial cache (cmake -C) for the ASan + UBSan + libFuzzer build: clang 14 from Debian, the library and
# the unit suite instrumented, the fuzz targets in fuzz/ built. OpenMP is GNU libgomp (-fopenmp=libgomp):
# oneDNN from Debian is built against libgomp, and mixing it with LLVM's libomp in one process would give
# two OpenMP runtimes.
#   cmake -C tests/sanitize/clang-asan.cmake -S . -B build-asan && cmake --build build-asan -j2
set(CMAKE_CXX_COMPILER clang++-14 CACHE STRING "")
set(CMAKE_C_COMPILER clang-14 CACHE STRING "")
set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "")
set(KILN_SANITIZE ON CACHE BOOL "")
set(KILN_FUZZ ON CACHE BOOL "")
set(KILN_PYTHON OFF CACHE BOOL "")  # the Python module is not instrumented (and needs position-independent code)
set(OpenMP_CXX_FLAGS "-fopenmp=libgomp" CACHE STRING "")
set(OpenMP_CXX_LIB_NAMES "gomp" CACHE STRING "")
execute_process(COMMAND g++ -print-file-name=libgomp.so OUTPUT_VARIABLE gomp OUTPUT_STRIP_TRAILING_WHITESPACE)
set(OpenMP_gomp_LIBRARY "${gomp}" CACHE FILEPATH "")
