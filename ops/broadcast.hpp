#pragma once
// Elementwise loops over NumPy-broadcast operands, for Kiln's own elementwise kernels (the typed ops on
// i64/i32/bool, and what oneDNN lacks: prelu, pow with a tensor exponent, where, a first operand broadcast
// in sub/div). A Broadcast is made once per kernel (strides of every operand, 0 along broadcast dims);
// running it allocates nothing and splits the work over TBB threads when there is enough of it.

#include <algorithm>
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
  Broadcast(const std::vector<std::vector<std::int64_t>>& inputs, const std::vector<std::int64_t>& out)
      : n_(inputs.size()) {
    // Align every operand to the output's rank, then drop dims of size 1 and merge neighbours that every
    // operand either spans in full or broadcasts (fewer, longer dims: cheaper row walks, longer runs).
    const std::size_t r0 = out.size();
    std::vector<std::vector<std::int64_t>> dims(n_, std::vector<std::int64_t>(r0, 1));
    for (std::size_t k = 0; k < n_; ++k)
      for (std::size_t i = 0; i < inputs[k].size(); ++i) dims[k][r0 - inputs[k].size() + i] = inputs[k][i];
    std::vector<std::vector<std::int64_t>> merged(n_);
    for (std::size_t i = 0; i < r0; ++i) {
      if (out[i] == 1) continue;
      bool join = !out_.empty();
      for (std::size_t k = 0; k < n_ && join; ++k) join = (dims[k][i] == 1) == (merged[k].back() == 1);
      if (join) {
        out_.back() *= out[i];
        for (std::size_t k = 0; k < n_; ++k) merged[k].back() *= dims[k][i];
      } else {
        out_.push_back(out[i]);
        for (std::size_t k = 0; k < n_; ++k) merged[k].push_back(dims[k][i]);
      }
    }
    const std::size_t r = out_.size();
    inner_ = r ? out_.back() : 1;
    total_ = 1;
    for (auto d : out) total_ *= d;
    rows_ = inner_ ? total_ / inner_ : 0;
    flat_ = r <= 1;  // one dim: every operand is full or one value
    for (std::size_t k = 0; k < n_; ++k) {
      std::vector<std::int64_t>& st = strides_[k];
      st.assign(r, 0);
      std::int64_t stride = 1;
      for (std::size_t i = r; i-- > 0;) {
        st[i] = merged[k][i] == 1 ? 0 : stride;
        stride *= merged[k][i];
      }
      flat_step_[k] = r == 0 || merged[k].back() == 1 ? 0 : 1;
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
    const std::size_t r = out_.size();  // >= 2 here
    std::array<std::int64_t, kMaxInputs> step{};
    for (std::size_t k = 0; k < n_; ++k) step[k] = strides_[k][r - 1];
    auto rows = [&](std::int64_t begin, std::int64_t end) {
      if (r - 1 > kMaxRank) {  // rare: many alternating broadcast dims; each row's offsets from its index
        for (std::int64_t row = begin; row < end; ++row) {
          std::array<std::int64_t, kMaxInputs> off{};
          std::int64_t rem = row;
          for (std::size_t d = r - 1; d-- > 0;) {
            const std::int64_t i = rem % out_[d];
            rem /= out_[d];
            for (std::size_t k = 0; k < n_; ++k) off[k] += i * strides_[k][d];
          }
          f(off.data(), step.data(), row * inner_, inner_);
        }
        return;
      }
      // The row's index over the outer dims and each operand's offset, found once and then stepped.
      std::array<std::int64_t, kMaxRank> idx{};
      std::array<std::int64_t, kMaxInputs> off{};
      std::int64_t rem = begin;
      for (std::size_t d = r - 1; d-- > 0;) {
        idx[d] = rem % out_[d];
        rem /= out_[d];
        for (std::size_t k = 0; k < n_; ++k) off[k] += idx[d] * strides_[k][d];
      }
      for (std::int64_t row = begin; row < end; ++row) {
        f(off.data(), step.data(), row * inner_, inner_);
        for (std::size_t d = r - 1; d-- > 0;) {
          for (std::size_t k = 0; k < n_; ++k) off[k] += strides_[k][d];
          if (++idx[d] < out_[d]) break;
          for (std::size_t k = 0; k < n_; ++k) off[k] -= strides_[k][d] * out_[d];
          idx[d] = 0;
        }
      }
    };
    if (total_ < kSerial) return rows(0, rows_);
    const std::int64_t grain = std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(inner_, 1));
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows_, grain),
                      [&](const tbb::blocked_range<std::int64_t>& b) { rows(b.begin(), b.end()); });
  }

 private:
  // Outer dims (after merging) a row walk steps through; more take the slower per-row path.
  static constexpr std::size_t kMaxRank = 16;
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
