// Packing and the portable reference for quantized weights (qgemm.hpp). The vector variants (AVX2,
// AVX-512 VNNI, AVX-512 BF16) read the same panels.
//
// Panel layout (16 output columns over k inputs):
//   s8:   [16 f32 scales][16 s32 column sums of q][ceil(k/4) groups of 64 bytes]; group g holds, for each
//         column j, the 4 bytes q[j][4g..4g+3] (vpdpbusd's order), zero past k. 128 + 64·ceil(k/4) bytes.
//         The column sums let a kernel that adds 128 to the activations (u8 x s8) take 128·Σq back out.
//   bf16: ceil(k/2) groups of 64 bytes; group g holds, for each column j, w[j][2g], w[j][2g+1] as bf16
//         (vdpbf16ps's order), zero past k. 64·ceil(k/2) bytes.
// Columns past n are zero (scale 1).

#include "ops/qgemm.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace kiln::qgemm {

namespace {

constexpr std::size_t kS8Head = 128;  // scales + column sums

std::int64_t groups(Format f, std::int64_t k) { return f == Format::s8 ? (k + 3) / 4 : (k + 1) / 2; }

std::uint16_t to_bf16(float v) {
  std::uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                                            // round to nearest even
  return static_cast<std::uint16_t>(u >> 16);
}

float from_bf16(std::uint16_t h) {
  const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

float activate(float v, gemm::Activation act) {
  switch (act) {
    case gemm::Activation::None: return v;
    case gemm::Activation::Relu: return std::max(v, 0.0f);
    case gemm::Activation::Gelu: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
    case gemm::Activation::GeluTanh:
      return 0.5f * v * (1.0f + std::tanh(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case gemm::Activation::Tanh: return std::tanh(v);
    case gemm::Activation::Sigmoid: return 1.0f / (1.0f + std::exp(-v));
  }
  return v;
}

// The symmetric int8 scale of values whose largest magnitude is amax: 0 maps everything to 0.
float s8_scale(float amax) { return amax > 0.0f ? amax / 127.0f : 1.0f; }

std::int8_t s8_round(float v, float scale) {
  const float q = std::nearbyint(v / scale);
  return static_cast<std::int8_t>(std::clamp(q, -127.0f, 127.0f));
}

}  // namespace

const char* layout_name(Format f) { return f == Format::s8 ? kS8Layout : kBf16Layout; }

std::size_t panel_bytes(Format f, std::int64_t k) {
  const auto g = static_cast<std::size_t>(groups(f, std::max<std::int64_t>(k, 0)));
  return (f == Format::s8 ? kS8Head : 0) + 64 * g;
}

std::size_t packed_bytes(Format f, std::int64_t n, std::int64_t k) {
  return static_cast<std::size_t>((n + kPanel - 1) / kPanel) * panel_bytes(f, k);
}

void pack(Format f, const float* w, std::int64_t n, std::int64_t k, void* out) {
  auto* base = static_cast<unsigned char*>(out);
  const std::size_t pb = panel_bytes(f, k);
  const std::int64_t np = (n + kPanel - 1) / kPanel, ng = groups(f, k);
  for (std::int64_t p = 0; p < np; ++p) {
    unsigned char* panel = base + static_cast<std::size_t>(p) * pb;
    std::memset(panel, 0, pb);
    for (std::int64_t j = 0; j < kPanel; ++j) {
      const std::int64_t col = p * kPanel + j;
      if (f == Format::s8) {
        float amax = 0.0f;
        if (col < n)
          for (std::int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(w[col * k + i]));
        const float scale = s8_scale(amax);
        std::int32_t sum = 0;
        for (std::int64_t g = 0; g < ng && col < n; ++g)
          for (std::int64_t t = 0; t < 4 && 4 * g + t < k; ++t) {
            const std::int8_t q = s8_round(w[col * k + 4 * g + t], scale);
            panel[kS8Head + static_cast<std::size_t>(g * 64 + j * 4 + t)] = static_cast<unsigned char>(q);
            sum += q;
          }
        std::memcpy(panel + 4 * j, &scale, 4);
        std::memcpy(panel + 64 + 4 * j, &sum, 4);
      } else {
        auto* h = reinterpret_cast<std::uint16_t*>(panel);
        for (std::int64_t g = 0; g < ng && col < n; ++g)
          for (std::int64_t t = 0; t < 2 && 2 * g + t < k; ++t) h[g * 32 + j * 2 + t] = to_bf16(w[col * k + 2 * g + t]);
      }
    }
  }
}

void unpack(Format f, const void* packed, std::int64_t n, std::int64_t k, float* w) {
  const auto* base = static_cast<const unsigned char*>(packed);
  const std::size_t pb = panel_bytes(f, k);
  for (std::int64_t col = 0; col < n; ++col) {
    const unsigned char* panel = base + static_cast<std::size_t>(col / kPanel) * pb;
    const std::int64_t j = col % kPanel;
    for (std::int64_t i = 0; i < k; ++i) {
      if (f == Format::s8) {
        float scale;
        std::memcpy(&scale, panel + 4 * j, 4);
        const auto q =
            static_cast<std::int8_t>(panel[kS8Head + static_cast<std::size_t>((i / 4) * 64 + j * 4 + i % 4)]);
        w[col * k + i] = scale * static_cast<float>(q);
      } else {
        const auto* h = reinterpret_cast<const std::uint16_t*>(panel);
        w[col * k + i] = from_bf16(h[(i / 2) * 32 + j * 2 + i % 2]);
      }
    }
  }
}

void multiply_reference(Format f, const float* a, std::int64_t lda, const void* packed, float* c, std::int64_t ldc,
                        std::int64_t rows, std::int64_t n, std::int64_t k, const gemm::Epilogue& ep) {
  const auto* base = static_cast<const unsigned char*>(packed);
  const std::size_t pb = panel_bytes(f, k);
  std::vector<std::int32_t> qa(static_cast<std::size_t>(std::max<std::int64_t>(k, 0)));
  std::vector<float> ba(qa.size());
  for (std::int64_t m = 0; m < rows; ++m) {
    const float* row = a + m * lda;
    float sa = 1.0f;
    if (f == Format::s8) {
      float amax = 0.0f;
      for (std::int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
      sa = s8_scale(amax);
      for (std::int64_t i = 0; i < k; ++i) qa[static_cast<std::size_t>(i)] = s8_round(row[i], sa);
    } else {
      for (std::int64_t i = 0; i < k; ++i) ba[static_cast<std::size_t>(i)] = from_bf16(to_bf16(row[i]));
    }
    for (std::int64_t col = 0; col < n; ++col) {
      const unsigned char* panel = base + static_cast<std::size_t>(col / kPanel) * pb;
      const std::int64_t j = col % kPanel;
      float v;
      if (f == Format::s8) {
        float scale;
        std::memcpy(&scale, panel + 4 * j, 4);
        std::int32_t acc = 0;
        for (std::int64_t i = 0; i < k; ++i)
          acc += qa[static_cast<std::size_t>(i)] *
                 static_cast<std::int8_t>(panel[kS8Head + static_cast<std::size_t>((i / 4) * 64 + j * 4 + i % 4)]);
        v = sa * scale * static_cast<float>(acc);
      } else {
        const auto* h = reinterpret_cast<const std::uint16_t*>(panel);
        float acc = 0.0f;
        for (std::int64_t i = 0; i < k; ++i)
          acc += ba[static_cast<std::size_t>(i)] * from_bf16(h[(i / 2) * 32 + j * 2 + i % 2]);
        v = acc;
      }
      v = v * ep.scale + (ep.bias ? ep.bias[col] : 0.0f);
      v = activate(v, ep.activation);
      if (ep.residual) v += ep.residual[m * ep.ldr + col];
      c[m * ldc + col] = v;
    }
  }
}

// The portable reference stands in for every variant until the vector kernels land.
bool available(Format) { return true; }

const char* variant(Format f) { return f == Format::s8 ? "kiln:qgemm_s8_ref" : "kiln:qgemm_bf16_ref"; }

void multiply(Format f, const float* a, std::int64_t lda, const void* packed, float* c, std::int64_t ldc,
              std::int64_t rows, std::int64_t n, std::int64_t k, const gemm::Epilogue& epilogue, int threads) {
  (void)threads;
  multiply_reference(f, a, lda, packed, c, ldc, rows, n, k, epilogue);
}

}  // namespace kiln::qgemm
