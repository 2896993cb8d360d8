// End to end: the CNN examples (examples/resnet_tiny, examples/mobilenet_tiny) against PyTorch outputs
// written by tools/reference/make_cnn_fixtures.py, as written (-O0: plain nchw, batch_norm and
// activations as separate kernels) and optimized (-O2: batch norms folded, activations and residual adds
// as post-ops, nChw8c from the first convolution to the global pool). Tolerance 1e-4 against PyTorch
// (fp32 sums of up to 64*9 products, as PyTorch computes them in another order); -O2 vs -O0 within 1e-5.

#include <cstdio>

#include "ops/spatial.hpp"  // blocked_channel_layout(): the layout the passes pick on this CPU
#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::max_abs_diff;
using kiln::test::source_path;

namespace {

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

struct Expect {
  const char* name;
  std::size_t convs;       // conv2d kernels
  std::size_t kernels_o2;  // kernels at -O2
};

void check_model(const Expect& e) {
  const std::string dir = std::string("examples/") + e.name + "/";
  const std::string path = source_path(dir + e.name + ".yaml");
  kiln::Session o0(kiln::Model::load(path, kiln::LoadOptions{0}));
  kiln::Session o2(kiln::Model::load(path, kiln::LoadOptions{2}));
  for (const char* tag : {"b2", "b1_odd"}) {
    auto image = kiln::read_npy(source_path(dir + "image_" + tag + ".npy"));
    auto want = kiln::read_npy(source_path(dir + "logits_" + tag + ".npy"));
    auto got0 = o0.run({{"image", image}}).at("logits");
    auto got2 = o2.run({{"image", image}}).at("logits");
    double e0 = max_abs_diff(got0, want), e2 = max_abs_diff(got2, want), d = max_abs_diff(got2, got0);
    std::printf("%s %s: max abs error -O0 %.3g, -O2 %.3g; -O2 vs -O0 %.3g\n", e.name, tag, e0, e2, d);
    CHECK_MESSAGE(e0 <= 1e-4, e.name << " " << tag << " -O0 error " << e0);
    CHECK_MESSAGE(e2 <= 1e-4, e.name << " " << tag << " -O2 error " << e2);
    CHECK_MESSAGE(d <= 1e-5, e.name << " " << tag << " -O2 vs -O0 " << d);

    const std::string plan = o2.explain({{"image", image}});
    INFO(plan);
    // One reorder: the pooled [N,C,1,1] back to plain for flatten. The stem reads the plain image.
    CHECK(contains(plan, "reorders: 1\n"));
    CHECK(count_of(plan, "reorder '") == 1);
    CHECK(contains(plan, "kernels: " + std::to_string(e.kernels_o2) + " ("));
    // Every convolution runs blocked on a jit kernel, fused, and no batch_norm or eltwise kernel is left.
    CHECK(count_of(plan, "conv2d '") == e.convs);
    CHECK(count_of(plan, "{" + kiln::blocked_channel_layout() + "}  [jit") >= e.convs);
    CHECK(count_of(plan, "batch_norm '") == 0);
    CHECK(count_of(plan, "relu '") + count_of(plan, "clip '") + count_of(plan, "add '") == 0);
    CHECK(!contains(plan, "ref:"));
  }
}

}  // namespace

// ResNet: 1 stem + 6 blocks x 2 + 2 shortcuts = 15 convs; + max_pool, global_avg_pool, reorder, linear.
TEST_CASE("resnet_tiny matches PyTorch at -O0 and -O2, blocked end to end") { check_model({"resnet_tiny", 15, 19}); }
// MobileNet: stem + 7 blocks (2 or 3 convs) + head = 1 + 2 + 6*3 + 1 = 22 convs; + pool, reorder, linear.
TEST_CASE("mobilenet_tiny matches PyTorch at -O0 and -O2, blocked end to end") { check_model({"mobilenet_tiny", 22, 25}); }
