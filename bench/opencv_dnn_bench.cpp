// kiln_opencv_bench: times OpenCV's DNN module (the peer in bench/bench_cnn.py) on an ONNX model.
//   kiln_opencv_bench MODEL.onnx INPUT.f32 N,C,H,W THREADS REPEAT WARMUP OUTPUT.f32
// Reads the input as raw little-endian float32 in NCHW order, runs WARMUP then REPEAT forward passes
// with cv::setNumThreads(THREADS) on the default (OpenCV CPU) backend, prints "median_ms X" (element
// REPEAT/2 of the sorted times, the definition kilnc uses) and "min_ms Y", and writes the last output as raw float32.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s MODEL.onnx INPUT.f32 N,C,H,W THREADS REPEAT WARMUP OUTPUT.f32\n", argv[0]);
    return 2;
  }
  std::vector<int> dims;
  std::stringstream ss(argv[3]);
  for (std::string d; std::getline(ss, d, ',');) dims.push_back(std::stoi(d));
  if (dims.size() != 4) {
    std::fprintf(stderr, "error: expected N,C,H,W, got '%s'\n", argv[3]);
    return 2;
  }
  const int threads = std::stoi(argv[4]), repeat = std::stoi(argv[5]), warmup = std::stoi(argv[6]);
  cv::setNumThreads(threads);
  cv::Mat input(4, dims.data(), CV_32F);
  std::ifstream in(argv[2], std::ios::binary);
  in.read(reinterpret_cast<char*>(input.ptr<float>()), static_cast<std::streamsize>(input.total() * sizeof(float)));
  if (!in) {
    std::fprintf(stderr, "error: %s: could not read %zu floats\n", argv[2], input.total());
    return 1;
  }
  cv::dnn::Net net = cv::dnn::readNetFromONNX(argv[1]);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  cv::Mat out;
  std::vector<double> ms;
  for (int i = 0; i < warmup + repeat; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    net.setInput(input);
    out = net.forward();
    double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("median_ms %.4f min_ms %.4f\n", ms[ms.size() / 2], ms.front());
  cv::Mat flat = out.isContinuous() ? out : out.clone();
  std::ofstream o(argv[7], std::ios::binary);
  o.write(reinterpret_cast<const char*>(flat.ptr<float>()), static_cast<std::streamsize>(flat.total() * sizeof(float)));
  return 0;
}
