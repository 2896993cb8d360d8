#pragma once
// Elementwise loops over NumPy-broadcast operands, for Kiln's own elementwise kernels (the typed ops on
// i64/i32/bool, and what oneDNN lacks: prelu, pow with a tensor exponent, where, a first operand broadcast
// in sub/div). A Broadcast is made once per kernel (strides of every operand, 0 along broadcast dims);
// running it allocates nothing and splits the work over TBB threads when there is enough of it.

#include <array>
#include <cstdint>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

namespace kiln {

class Broadcast {
 public:
  static constexpr std::size_t kMaxInputs = 3;
  // Below this many output elements a loop runs on the calling thread (TBB's overhead would dominate).
  static constexpr std::int64_t kSerial = 32768;

  /// Operands' dims (any rank up to out's: aligned on the right) and the output's dims.
  Broadcast(const std::vector<std::vector<std::int64_t>>& inputs, std::vector<std::int64_t> out)
      : out_(std::move(out)), n_(inputs.size()) {
    const std::size_t r = out_.size();
    inner_ = r ? out_.back() : 1;
    total_ = 1;
    for (auto d : out_) total_ *= d;
    rows_ = inner_ ? total_ / inner_ : 0;
    flat_ = true;
    for (std::size_t k = 0; k < n_; ++k) {
      std::vector<std::int64_t> dims(r, 1);
      const auto& in = inputs[k];
      for (std::size_t i = 0; i < in.size(); ++i) dims[r - in.size() + i] = in[i];
      std::vector<std::int64_t>& s = strides_[k];
      s.assign(r, 0);
      std::int64_t stride = 1, numel = 1;
      for (std::size_t i = r; i-- > 0;) {
        s[i] = dims[i] == 1 ? 0 : stride;
        stride *= dims[i];
      }
      for (auto d : dims) numel *= d;
      flat_step_[k] = numel == 1 ? 0 : 1;
      if (numel != 1 && numel != total_) flat_ = false;  // broadcast along some dims only: row by row
    }
  }

  std::int64_t size() const { return total_; }

  /// Calls f(offsets, steps, out_offset, count) over runs of `count` consecutive output elements: operand k
  /// is read at offsets[k] + j * steps[k] for the run's j-th element. Runs may execute in parallel.
  template <class F>
  void for_each(const F& f) const {
    if (total_ == 0) return;
    if (flat_) {
      auto run = [&](std::int64_t begin, std::int64_t end) {
        std::array<std::int64_t, kMaxInputs> off{};
        for (std::size_t k = 0; k < n_; ++k) off[k] = flat_step_[k] * begin;
        f(off.data(), flat_step_.data(), begin, end - begin);
      };
      if (total_ < kSerial) return run(0, total_);
      tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, total_, 16384),
                        [&](const tbb::blocked_range<std::int64_t>& b) { run(b.begin(), b.end()); });
      return;
    }
    const std::size_t r = out_.size();
    std::array<std::int64_t, kMaxInputs> step{};
    for (std::size_t k = 0; k < n_; ++k) step[k] = strides_[k][r - 1];
    auto rows = [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t row = begin; row < end; ++row) {
        std::array<std::int64_t, kMaxInputs> off{};
        std::int64_t rem = row;
        for (std::size_t d = r - 1; d-- > 0;) {
          const std::int64_t idx = rem % out_[d];
          rem /= out_[d];
          for (std::size_t k = 0; k < n_; ++k) off[k] += idx * strides_[k][d];
        }
        f(off.data(), step.data(), row * inner_, inner_);
      }
    };
    if (total_ < kSerial) return rows(0, rows_);
    const std::int64_t grain = std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(inner_, 1));
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows_, grain),
                      [&](const tbb::blocked_range<std::int64_t>& b) { rows(b.begin(), b.end()); });
  }

 private:
  std::vector<std::int64_t> out_;
  std::size_t n_;
  std::array<std::vector<std::int64_t>, kMaxInputs> strides_;
  std::array<std::int64_t, kMaxInputs> flat_step_{};
  std::int64_t inner_ = 1, rows_ = 0, total_ = 0;
  bool flat_ = true;
};

/// y = op(a, b) elementwise over a Broadcast of two operands; the common stride patterns (both contiguous,
/// one operand constant along the run) get loops of their own, which the compiler vectorizes.
template <class A, class B, class Y, class Op>
void broadcast_binary(const Broadcast& bc, const void* a, const void* b, void* y, const Op& op) {
  const auto* pa = static_cast<const A*>(a);
  const auto* pb = static_cast<const B*>(b);
  auto* py = static_cast<Y*>(y);
  bc.for_each([&](const std::int64_t* off, const std::int64_t* step, std::int64_t d, std::int64_t n) {
    const A* x = pa + off[0];
    const B* z = pb + off[1];
    Y* out = py + d;
    if (step[0] == 1 && step[1] == 1) {
      for (std::int64_t j = 0; j < n; ++j) out[j] = op(x[j], z[j]);
    } else if (step[0] == 1 && step[1] == 0) {
      const B zv = *z;
      for (std::int64_t j = 0; j < n; ++j) out[j] = op(x[j], zv);
    } else if (step[0] == 0 && step[1] == 1) {
      const A xv = *x;
      for (std::int64_t j = 0; j < n; ++j) out[j] = op(xv, z[j]);
    } else {
      for (std::int64_t j = 0; j < n; ++j) out[j] = op(x[j * step[0]], z[j * step[1]]);
    }
  });
}

}  // namespace kiln
