// The C API (include/kiln/kiln.h): results equal the C++ API's; every failure is a status plus a message,
// never a crash or an exception.

#include "kiln/kiln.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "runtime/npy.hpp"
#include "test_util.hpp"

namespace {
using kiln::test::contains;
using kiln::test::source_path;
const std::string kDir = "examples/transformer_classifier/";

std::vector<std::int64_t> fixture_tokens() {
  kiln::Tensor t = kiln::read_npy(source_path(kDir + "tokens.npy"));
  return std::vector<std::int64_t>(t.data_as<std::int64_t>(), t.data_as<std::int64_t>() + t.numel());
}
}  // namespace

TEST_CASE("C API: load, size the output, run, the result matches the PyTorch fixture") {
  kiln_model* model = nullptr;
  REQUIRE(kiln_model_load(source_path(kDir + "transformer_classifier.yaml").c_str(), &model) == KILN_OK);
  CHECK(kiln_model_num_inputs(model) == 1);
  CHECK(std::string(kiln_model_input_name(model, 0)) == "tokens");
  CHECK(std::string(kiln_model_output_name(model, 0)) == "probs");
  CHECK(kiln_model_input_name(model, 1) == nullptr);
  kiln_session* session = nullptr;
  REQUIRE(kiln_session_create(model, nullptr, &session) == KILN_OK);
  kiln_model_free(model);  // the session keeps what it needs

  std::vector<std::int64_t> tokens = fixture_tokens();
  const std::int64_t shape[2] = {1, 32};
  kiln_tensor in{"tokens", KILN_I64, 2, shape, tokens.data()};
  std::int64_t out_shape[KILN_MAX_RANK];
  std::int32_t rank = 0;
  REQUIRE(kiln_session_output_shape(session, &in, 1, "probs", out_shape, &rank) == KILN_OK);
  REQUIRE(rank == 2);
  CHECK(out_shape[0] == 1);
  CHECK(out_shape[1] == 4);
  std::vector<float> probs(4);
  kiln_tensor out{"probs", KILN_F32, rank, out_shape, probs.data()};
  REQUIRE(kiln_session_run(session, &in, 1, &out, 1) == KILN_OK);
  kiln::Tensor expected = kiln::read_npy(source_path(kDir + "expected_probs.npy"));
  for (int i = 0; i < 4; ++i) CHECK(std::abs(probs[i] - expected.data_as<float>()[i]) <= 1e-4f);

  kiln_memory_stats mem{};
  REQUIRE(kiln_session_memory(session, &mem) == KILN_OK);
  CHECK(mem.weight_bytes > 2000000);
  CHECK(mem.plans == 1);
  CHECK(mem.arena_bytes > 0);
  kiln_session_free(session);
  kiln_session_free(nullptr);
  kiln_model_free(nullptr);
  CHECK(std::string(kiln_version()) == "0.1.0");
}

TEST_CASE("C API: concurrent runs on one session from 4 threads, throughput mode") {
  kiln_model* model = nullptr;
  REQUIRE(kiln_model_load(source_path(kDir + "transformer_classifier.yaml").c_str(), &model) == KILN_OK);
  kiln_session_options o;
  kiln_session_options_init(&o);
  CHECK(o.max_plans == 16);
  o.mode = KILN_THROUGHPUT;
  o.intra_op_threads = 2;
  kiln_session* session = nullptr;
  REQUIRE(kiln_session_create(model, &o, &session) == KILN_OK);
  std::vector<std::int64_t> tokens = fixture_tokens();
  const std::int64_t shape[2] = {1, 32}, out_shape[2] = {1, 4};
  std::vector<float> ref(4);
  kiln_tensor in{"tokens", KILN_I64, 2, shape, tokens.data()};
  kiln_tensor ref_out{"probs", KILN_F32, 2, out_shape, ref.data()};
  REQUIRE(kiln_session_run(session, &in, 1, &ref_out, 1) == KILN_OK);
  std::vector<int> bad(4, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t)
    pool.emplace_back([&, t] {
      std::vector<float> probs(4);
      kiln_tensor out{"probs", KILN_F32, 2, out_shape, probs.data()};
      for (int i = 0; i < 20; ++i)
        if (kiln_session_run(session, &in, 1, &out, 1) != KILN_OK || std::memcmp(probs.data(), ref.data(), 16) != 0) ++bad[t];
    });
  for (auto& th : pool) th.join();
  CHECK(bad == std::vector<int>(4, 0));
  kiln_session_free(session);
  kiln_model_free(model);
}

TEST_CASE("C API: errors are statuses with a message") {
  kiln_model* model = nullptr;
  CHECK(kiln_model_load(nullptr, &model) == KILN_INVALID_ARGUMENT);
  CHECK(contains(kiln_last_error(), "path is NULL"));
  CHECK(kiln_model_load("/nonexistent/m.yaml", &model) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "/nonexistent/m.yaml: error: cannot open model file"));
  CHECK(model == nullptr);  // untouched on failure
  CHECK(kiln_model_load_from_memory("kiln: 1\nname: [", 15, nullptr, 0, &model) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "<memory>:"));
  CHECK(kiln_model_load_from_memory("x", 1, nullptr, 5, &model) == KILN_INVALID_ARGUMENT);

  REQUIRE(kiln_model_load(source_path(kDir + "transformer_classifier.yaml").c_str(), &model) == KILN_OK);
  kiln_session* session = nullptr;
  kiln_session_options o;
  kiln_session_options_init(&o);
  {  // what a C caller can store in the enum field (a cast to the enum would be undefined in C++)
    const int seven = 7;
    static_assert(sizeof seven == sizeof o.mode);
    std::memcpy(&o.mode, &seven, sizeof seven);
  }
  CHECK(kiln_session_create(model, &o, &session) == KILN_INVALID_ARGUMENT);
  CHECK(contains(kiln_last_error(), "unknown threading mode 7"));
  REQUIRE(kiln_session_create(model, nullptr, &session) == KILN_OK);

  std::vector<std::int64_t> tokens(8, 1);
  std::vector<float> probs(4);
  const std::int64_t shape[2] = {1, 8}, out_shape[2] = {1, 4}, wrong_out[2] = {2, 4};
  kiln_tensor in{"tokens", KILN_I64, 2, shape, tokens.data()};
  kiln_tensor out{"probs", KILN_F32, 2, out_shape, probs.data()};
  kiln_tensor misnamed{"tokenz", KILN_I64, 2, shape, tokens.data()};
  CHECK(kiln_session_run(session, &misnamed, 1, &out, 1) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "has no input 'tokenz'"));
  kiln_tensor wrong{"probs", KILN_F32, 2, wrong_out, probs.data()};
  CHECK(kiln_session_run(session, &in, 1, &wrong, 1) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "output 'probs': expected f32[1,4], got f32[2,4]"));
  kiln_tensor f32_tokens{"tokens", KILN_F32, 2, shape, tokens.data()};
  CHECK(kiln_session_run(session, &f32_tokens, 1, &out, 1) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "input 'tokens': expected i64"));
  kiln_tensor no_data{"tokens", KILN_I64, 2, shape, nullptr};
  CHECK(kiln_session_run(session, &no_data, 1, &out, 1) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "input 'tokens' has no data"));
  kiln_tensor bad_rank{"tokens", KILN_I64, 99, shape, tokens.data()};
  CHECK(kiln_session_run(session, &bad_rank, 1, &out, 1) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "rank 99 is out of range"));
  kiln_tensor twice[2] = {in, in};
  CHECK(kiln_session_run(session, twice, 2, &out, 1) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "given twice"));
  CHECK(kiln_session_run(session, nullptr, 1, &out, 1) == KILN_INVALID_ARGUMENT);
  CHECK(kiln_session_run(nullptr, &in, 1, &out, 1) == KILN_INVALID_ARGUMENT);
  std::int64_t dims[KILN_MAX_RANK];
  std::int32_t rank = 0;
  CHECK(kiln_session_output_shape(session, &in, 1, "logits", dims, &rank) == KILN_ERROR);
  CHECK(contains(kiln_last_error(), "no output 'logits'"));
  // The message is per thread: another thread sees its own (none).
  std::string other;
  std::thread([&] { other = kiln_last_error(); }).join();
  CHECK(other.empty());
  // And the session still works after all that.
  CHECK(kiln_session_run(session, &in, 1, &out, 1) == KILN_OK);
  kiln_session_free(session);
  kiln_model_free(model);
}
