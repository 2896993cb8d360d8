// transpose (torch.permute) for ranks 2 to 4: every permutation of rank 2 and 3, a selection of rank 4
// ones, negative axes. A permutation moves bytes without arithmetic, so the result must equal the
// reference exactly.

#include <algorithm>
#include <numeric>

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

void check(Rng& rng, const std::vector<std::int64_t>& shape, const std::vector<std::int64_t>& perm) {
  Tensor x = random_f32(rng, shape);
  OpResult r = run_op("transpose", {in(x)}, {{"perm", perm}});
  std::vector<std::int64_t> positive = perm;
  for (auto& p : positive)
    if (p < 0) p += static_cast<std::int64_t>(shape.size());
  Tensor want = ref_transpose(x, positive);
  INFO("transpose ", dims_str(shape), " perm ", dims_str(perm), "\n", r.impl);
  CHECK(r.out.shape() == want.shape());
  CHECK(same_bytes(r.out, want));
}

void all_perms(Rng& rng, const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> perm(shape.size());
  std::iota(perm.begin(), perm.end(), 0);
  do check(rng, shape, perm);
  while (std::next_permutation(perm.begin(), perm.end()));
}

}  // namespace

TEST_CASE("transpose rank 2") {
  Rng rng = make_rng(71);
  for (int i = 0; i < 3; ++i) all_perms(rng, random_shape(rng, 2));
  all_perms(rng, {1, 17});
  check(rng, {5, 3}, {-1, -2});
}

TEST_CASE("transpose rank 3") {
  Rng rng = make_rng(72);
  for (int i = 0; i < 3; ++i) all_perms(rng, random_shape(rng, 3));
  all_perms(rng, {1, 7, 1});
  check(rng, {4, 5, 6}, {-1, 0, -2});
}

TEST_CASE("transpose rank 4") {
  Rng rng = make_rng(73);
  for (int i = 0; i < 3; ++i) {
    auto shape = random_shape(rng, 4, 1, 9);
    for (const auto& perm : std::vector<std::vector<std::int64_t>>{{0, 2, 1, 3}, {0, 2, 3, 1}, {3, 2, 1, 0}, {1, 0, 3, 2}, {0, 1, 2, 3}})
      check(rng, shape, perm);
    auto perm = std::vector<std::int64_t>{0, 1, 2, 3};
    std::shuffle(perm.begin(), perm.end(), rng);
    check(rng, shape, perm);
  }
  check(rng, {2, 3, 4, 5}, {0, -2, 1, -1});  // the attention head split [b,s,h,d] -> [b,h,s,d]
}

TEST_CASE("transpose keeps integer dtypes (i32, i64)") {
  // i64 has no oneDNN type: the kernel moves each element as two s32 halves.
  Rng rng = make_rng(75);
  for (const auto& shape : std::vector<std::vector<std::int64_t>>{{3, 4, 5}, {1, 7, 2}, {17, 1, 3}}) {
    Tensor x32 = Tensor::empty(DType::i32, shape), x64 = Tensor::empty(DType::i64, shape);
    for (std::int64_t i = 0; i < x32.numel(); ++i) {
      x32.data_as<std::int32_t>()[i] = static_cast<std::int32_t>(random_int(rng, -1000, 1000));
      x64.data_as<std::int64_t>()[i] = random_int(rng, -(std::int64_t{1} << 40), std::int64_t{1} << 40);
    }
    for (const auto& perm : std::vector<std::vector<std::int64_t>>{{2, 0, 1}, {0, 2, 1}, {1, 0, 2}}) {
      INFO("transpose ", dims_str(shape), " perm ", dims_str(perm));
      OpResult r = run_op("transpose", {in(x32)}, {{"perm", perm}});
      CHECK(r.inferred.dtype == DType::i32);
      CHECK(same_bytes(r.out, ref_transpose(x32, perm)));
      r = run_op("transpose", {in(x64)}, {{"perm", perm}});
      CHECK(r.inferred.dtype == DType::i64);
      CHECK(same_bytes(r.out, ref_transpose(x64, perm)));
    }
  }
}

TEST_CASE("transpose shape rule") {
  Rng rng = make_rng(74);
  Tensor x = random_f32(rng, {2, 5, 4, 3});
  Shape sym{Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(4), Dim::of(3)};
  OpResult r = run_op("transpose", {in(x, sym)}, {{"perm", std::vector<std::int64_t>{0, 2, 1, 3}}});
  CHECK(r.inferred.str() == "f32[batch,4,seq,3]");
  std::string msg = error_of([&] { run_op("transpose", {in(x)}, {{"perm", std::vector<std::int64_t>{0, 1, 1, 3}}}); });
  CHECK(msg == "error: transpose 'out': attribute 'perm' is not a permutation (axis 1 twice)");
  msg = error_of([&] { run_op("transpose", {in(x)}, {{"perm", std::vector<std::int64_t>{0, 1, 2}}}); });
  CHECK(msg == "error: transpose 'out': attribute 'perm' has 3 entries for an input of rank 4");
}
