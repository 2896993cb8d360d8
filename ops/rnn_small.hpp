#pragma once
// Kiln's LSTM and GRU kernel for small hidden sizes (ops/rnn.cpp chooses it over oneDNN's primitive by the
// rule there), in an AVX-512 and an AVX2+FMA variant picked at each call from gemm::variant_level().
//
// Why: oneDNN's RNN primitive costs about 2 µs per time step however small the cell (an [8, 24]-state LSTM
// over 64 steps with 16 inputs took 0.13 ms on one Zen 5 core for 2.0 M multiply-adds). Here one
// call runs the whole sequence: per step and per block of up to 6 (AVX-512; 3 with AVX2) batch rows and 16
// (8) hidden units, the four gates' accumulators stay in registers through x_t · W_ihᵀ + h_{t-1} · W_hhᵀ
// (input and recurrent products in one pass over K = features + hidden, the input part off the recurrence's
// critical path), then the gate nonlinearities and the cell update are applied in the same registers. With
// few rows (one row block per step would read weight_ih at every step) the caller can have the input
// products of a chunk of steps computed first, blocks of consecutive steps per pass over weight_ih
// (project_block), the steps then starting from them.
//
// nn.GRU's cell (linear before reset) runs the same way with its three gates' weights and four accumulators
// (r, z, and n's input and recurrent parts apart).
//
// Weights: per direction, [K][G][Hp] (kLayout): for each input column k, the G gates' rows in PyTorch's
// order (LSTM i, f, g, o; GRU r, z, n), each padded with zeros to Hp = hidden rounded up to 16 floats, so
// that any vector width loads a gate's consecutive hidden units. The pack-weights pass writes them
// (ops/rnn.cpp's pack rule); a kernel made from the weights as written packs a private copy.

#include <cstddef>
#include <cstdint>

namespace kiln::rnn_small {

/// The layout name of a weight packed by pack() (TensorType::layout, plan files).
inline constexpr const char* kLayout = "rnn_kgh16";
/// Hidden units per padded gate row: a multiple of both vector widths.
inline constexpr std::int64_t kLanes = 16;

/// hidden rounded up to kLanes.
inline std::int64_t padded(std::int64_t hidden) { return (hidden + kLanes - 1) / kLanes * kLanes; }
/// Floats of one direction's packed weight [gates*hidden, k].
inline std::size_t packed_floats(std::int64_t gates, std::int64_t hidden, std::int64_t k) {
  return static_cast<std::size_t>(k * gates * padded(hidden));
}
/// Packs w ([gates*hidden, k] rows, PyTorch's layout and gate order) into out (packed_floats floats).
void pack(const float* w, std::int64_t gates, std::int64_t hidden, std::int64_t k, float* out);
/// The inverse: w [gates*hidden, k] from its packed form (for oneDNN, where this kernel does not run).
void unpack(const float* packed, std::int64_t gates, std::int64_t hidden, std::int64_t k, float* w);

/// Whether this CPU runs the kernel (gemm::enabled(): AVX2+FMA, and KILN_GEMM is not onednn).
bool enabled();
/// "kiln:lstm_avx512", "kiln:lstm_avx2" (gru: "kiln:gru_..."), as gemm::variant_level() says.
const char* variant(bool gru = false);

/// One direction of one layer, rows [0, rows) of a batch, for `steps` time steps.
struct Direction {
  const float* wx = nullptr;  // [k][gates][hp]
  const float* wh = nullptr;  // [hidden][gates][hp]
  // LSTM: [4][hp], b_ih + b_hh of i, f, g, o (zeros without biases). GRU: [4][hp], the r and z rows
  // b_ih + b_hh, then b_in, then b_hn.
  const float* bias = nullptr;
  const float* peephole = nullptr;  // LSTM: [3][hp] (i, f, o), or null
  std::int64_t k = 0, hidden = 0, hp = 0;
  bool reverse = false;  // last step first
};

/// Runs `d` (an LSTM cell, or with `gru` nn.GRU's) over `steps` steps for `rows` batch rows. Row r of step t
/// reads x + t·x_step + r·x_row (k floats) and writes y + t·y_step + r·y_row (hidden floats). h holds
/// 2·rows·hp floats: [0, rows·hp) hold h0 on entry (zero padded past hidden); c (LSTM; null for a GRU) holds
/// rows·hp floats, c0 on entry. Returns where the last h is (h or h + rows·hp); c then holds the last c.
/// proj null: the input product is computed with the recurrent one at each step. Otherwise the input
/// products of `chunk` steps at a time are computed first, into proj (chunk·rows·gates·hp floats), reading
/// weight_ih once per few steps (project_chunk says when that pays).
const float* run(const Direction& d, bool gru, std::int64_t rows, std::int64_t steps, const float* x,
                 std::int64_t x_row, std::int64_t x_step, float* y, std::int64_t y_row, std::int64_t y_step, float* h,
                 float* c, float* proj = nullptr, std::int64_t chunk = 0);

}  // namespace kiln::rnn_small
