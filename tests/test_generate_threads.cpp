// Greedy generation does not depend on the thread count: the decoder's kernels split their products and
// attention loops over the session's threads (ops/gemm.hpp's worth_splitting, step_attention::for_items),
// and the generation loop splits the rows' arg-max once there are enough scores. 1024 sources of the
// date Transformer (70 tokens: 71680 scores per step, enough for the split) give the same tokens and the
// same scores, to the bit, with one thread and with two, and the tokens PyTorch's greedy decoding gives.

#include <omp.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "kiln/generate.hpp"
#include "test_util.hpp"

using kiln::test::source_path;

TEST_CASE("greedy generation gives the same tokens and scores to the bit with 1 and 2 threads") {
  kiln::Seq2SeqModel model = kiln::Seq2SeqModel::load(source_path("examples/date_translation/transformer.yaml"));
  std::ifstream in(source_path("tests/fixtures/date_transformer/greedy.txt"));
  REQUIRE(in.good());
  std::vector<std::vector<std::int64_t>> sources, want;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    sources.push_back(model.encode(line.substr(0, tab)));
    std::istringstream tokens(line.substr(tab + 1));
    want.emplace_back();
    for (std::int64_t t; tokens >> t;) want.back().push_back(t);
  }
  REQUIRE(sources.size() >= 200);
  const std::size_t fixture = sources.size();
  while (sources.size() < 1024) {  // the fixture again: rows * vocab must reach the arg-max split
    sources.push_back(sources[sources.size() % fixture]);
    want.push_back(want[want.size() % fixture]);
  }
  const int team = omp_get_max_threads();
  std::vector<std::vector<std::vector<kiln::Hypothesis>>> out;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);  // the sessions a Generator makes take the creating thread's setting
    kiln::Generator gen(model);
    out.push_back(gen.generate(sources));
  }
  omp_set_num_threads(team);
  std::size_t same_tokens = 0, same_scores = 0, as_pytorch = 0;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    REQUIRE(out[0][i].size() == 1);
    REQUIRE(out[1][i].size() == 1);
    const kiln::Hypothesis &a = out[0][i][0], &b = out[1][i][0];
    same_tokens += a.tokens == b.tokens;
    same_scores += std::memcmp(&a.score, &b.score, sizeof(float)) == 0;
    as_pytorch += a.tokens == want[i];
  }
  CHECK(same_tokens == sources.size());
  CHECK(same_scores == sources.size());
  CHECK(as_pytorch == sources.size());
}
