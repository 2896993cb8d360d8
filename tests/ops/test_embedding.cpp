// embedding: rows of a [num_embeddings, dim] table gathered by i64 or i32 ids of any rank. A gather
// copies bytes, so the result must equal the reference exactly.

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

using Dims = std::vector<std::int64_t>;

Tensor random_ids(Rng& rng, DType dtype, const Dims& shape, std::int64_t rows) {
  Tensor t = Tensor::empty(dtype, shape);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    std::int64_t id = random_int(rng, 0, rows - 1);
    if (dtype == DType::i64) t.data_as<std::int64_t>()[i] = id;
    else t.data_as<std::int32_t>()[i] = static_cast<std::int32_t>(id);
  }
  return t;
}

void check(Rng& rng, DType dtype, const Dims& ids_shape, std::int64_t rows, std::int64_t dim, bool constant_table = true) {
  Tensor ids = random_ids(rng, dtype, ids_shape, rows);
  Tensor table = random_f32(rng, {rows, dim});
  OpResult r = run_op("embedding", {in(ids), constant_table ? weight(table) : in(table)});
  Tensor want = ref_embedding(ids, table);
  INFO("embedding ", dtype_name(dtype), dims_str(ids_shape), " from [", rows, ",", dim, "]\n", r.impl);
  CHECK(r.out.shape() == want.shape());
  CHECK(same_bytes(r.out, want));
}

void check_dtype(std::uint32_t seed, DType dtype) {
  Rng rng = make_rng(seed);
  for (int rank = 1; rank <= 3; ++rank)
    for (int i = 0; i < 2; ++i) check(rng, dtype, random_shape(rng, rank), random_int(rng, 1, 17), random_int(rng, 1, 17));
  check(rng, dtype, {1, 1}, 1, 1);
  check(rng, dtype, {4, 17}, 1000, 64);   // the classifier's table, more ids than one TBB grain
  check(rng, dtype, {3, 5}, 7, 9, false);  // table given at run time
}

}  // namespace

TEST_CASE("embedding with i64 ids") { check_dtype(91, DType::i64); }

TEST_CASE("embedding with i32 ids") { check_dtype(92, DType::i32); }

TEST_CASE("embedding shape rule and out-of-range ids") {
  Rng rng = make_rng(93);
  Tensor table = random_f32(rng, {5, 3});
  Tensor ids = Tensor::from_i64({2, 2}, {0, 4, 7, 1});
  OpResult r = run_op("embedding", {in(Tensor::from_i64({2, 2}, {0, 4, 3, 1}), {Dim::symbol("batch"), Dim::symbol("seq")}), weight(table)});
  CHECK(r.inferred.str() == "f32[batch,seq,3]");
  CHECK(error_of([&] { run_op("embedding", {in(ids), weight(table)}); }) ==
        "error: embedding 'out': index 7 at flat position 2 is out of range [0, 5)");
  Tensor neg = Tensor::empty(DType::i32, {3});
  neg.data_as<std::int32_t>()[1] = -1;
  CHECK(error_of([&] { run_op("embedding", {in(neg), weight(table)}); }) ==
        "error: embedding 'out': index -1 at flat position 1 is out of range [0, 5)");
  CHECK(error_of([&] { run_op("embedding", {in(random_f32(rng, {2})), weight(table)}); }) ==
        "error: embedding 'out': expected input 'indices' of type i64 or i32, got f32[2]");
}
