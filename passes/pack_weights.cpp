// pack-weights: each node whose schema has a pack rule (OpSchema::pack) gets its constant weights in the
// layout its kernel reads, made once here instead of in every kernel: Kiln's GEMM panels for linear and the
// attention projections, oneDNN's gate-major layout for lstm/gru. The packed constants belong to the graph,
// so every plan made from it (one per input shape) and every plan file shares them; a weight read by
// several nodes the same way is packed once. Weights nothing else reads any more are dropped.
//   %y = linear(%x, %w) : (f32[8,64], f32[256,64])   ->   %y = linear(%x, %w.panels16) : (f32[8,64], f32[256,64]{panels16})
// With quantization (PassContext::quantize, docs/quantization.md) the GEMM weights go into qgemm's s8 or bf16
// panels instead (i8[256,64]{s8panels16}), replacing the f32 weights; every other weight matrix stays f32, and
// a remark says why.

#include <cctype>
#include <cstring>
#include <map>
#include <set>

#include "graph/schema.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

// A layout name as part of a value name: "dnnl:ABcd8b8a" -> "dnnl_ABcd8b8a".
std::string name_part(std::string layout) {
  for (char& ch : layout)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') ch = '_';
  return layout;
}

class PackWeights : public Pass {
 public:
  const char* name() const override { return "pack-weights"; }
  const char* summary() const override {
    return "put constant weights into the layout their kernel reads, once, at compile time (GEMM panels, RNN gates)";
  }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> nodes;
    for (const auto& n : g.nodes())
      if (n->schema->pack) nodes.push_back(n.get());
    bool changed = false;
    for (Node* n : nodes) {
      const std::vector<std::string> before = weight_names(*n);  // the names as written, for the remarks
      Rule rule(g, *n, ctx, made_);
      n->schema->pack(rule);
      changed = changed || rule.changed;
      if (ctx.quantize() != Quantize::none) note_kept_f32(*n, ctx, rule.kept, before);
    }
    if (ctx.quantize() != Quantize::none)
      for (const auto& n : g.nodes())
        if (!n->schema->pack) note_kept_f32(*n, ctx, {}, weight_names(*n));
    made_.clear();
    if (changed) g.compact();
    return changed;
  }

 private:
  // The names of n's inputs (empty for absent ones).
  static std::vector<std::string> weight_names(const Node& n) {
    std::vector<std::string> names;
    for (const Value* v : n.inputs) names.push_back(v ? v->name : std::string());
    return names;
  }

  // With quantization: a remark for each weight matrix of `n` still in f32 that its pack rule did not
  // already explain (inputs in `explained`), named as it was before the rule packed it (`names`).
  static void note_kept_f32(const Node& n, PassContext& ctx, const std::set<std::size_t>& explained,
                            const std::vector<std::string>& names) {
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const Value* v = n.inputs[i];
      if (!v || !v->is_constant() || !n.schema->is_weight_input(i) || v->type.dtype != DType::f32 ||
          v->type.rank() < 2 || explained.count(i))
        continue;
      const std::string why = n.schema->name == "embedding"
                                  ? "an embedding table is read by rows, not multiplied (no GEMM to quantize)"
                                  : n.schema->name +
                                        " has no quantized kernel (only linear and the attention "
                                        "projections are quantized)";
      ctx.declined(n, "kept '" + (i < names.size() ? names[i] : v->name) + "' in f32: " + why);
    }
  }

  // Packs made so far in this run, by the source values and the types they were packed into.
  using Made = std::map<std::string, std::vector<Value*>>;

  class Rule : public PackCtx {
   public:
    Rule(Graph& g, Node& n, PassContext& remarks, Made& made) : g_(g), n_(n), remarks_(remarks), made_(made) {}
    const Node& node() const override { return n_; }
    Quantize quantize() const override { return remarks_.quantize(); }
    void note(const std::string& message) override { remarks_.fired(n_, message); }

    void replace(const std::vector<PackedInput>& parts, std::size_t bytes,
                 const std::function<void(void*)>& fill) override {
      std::string key;
      for (const auto& p : parts) {
        const Value* v = n_.inputs.at(p.input);
        if (!v || !v->is_constant())
          n_.fail("internal: pack rule replaced input " + std::to_string(p.input) + ", which is not a constant");
        if (p.offset > bytes || p.bytes > bytes - p.offset) n_.fail("internal: packed input outside its buffer");
        key += std::to_string(v->id) + ":" + p.type.str() + "@" + std::to_string(p.offset) + ";";
      }
      auto [it, fresh] = made_.try_emplace(key);
      if (fresh) {
        const std::shared_ptr<void> owner = allocate_constant_bytes(bytes);
        if (!owner) n_.fail("out of memory packing weights (" + std::to_string(bytes) + " bytes)");
        void* data = owner.get();
        std::memset(data, 0, bytes);
        fill(data);
        for (std::size_t i = 0; i < parts.size(); ++i) {
          const PackedInput& p = parts[i];
          const Value* src = n_.inputs[p.input];
          ConstData c{static_cast<const char*>(data) + p.offset, i == 0 ? bytes - p.offset : p.bytes, owner};
          it->second.push_back(g_.add_constant(src->name + "." + name_part(p.type.layout), p.type, std::move(c)));
        }
      }
      std::string what;
      for (std::size_t i = 0; i < parts.size(); ++i) {
        what += (i ? ", '" : "'") + n_.inputs[parts[i].input]->name + "'";
        g_.set_input(&n_, parts[i].input, it->second[i]);
      }
      remarks_.fired(n_, (fresh ? "packed " : "shares the packed ") + what + " into " + parts[0].type.layout);
      changed = true;
    }

    void keep(std::size_t i, const std::string& why) override {
      const bool quantizing = remarks_.quantize() != Quantize::none;
      remarks_.declined(n_, "kept '" + n_.inputs.at(i)->name + (quantizing ? "' in f32: " : "' as it is: ") + why);
      kept.insert(i);
    }

    bool changed = false;
    std::set<std::size_t> kept;  // inputs kept with a reason

   private:
    Graph& g_;
    Node& n_;
    PassContext& remarks_;
    Made& made_;
  };

  Made made_;
};

}  // namespace

std::unique_ptr<Pass> make_pack_weights_pass() { return std::make_unique<PackWeights>(); }

}  // namespace kiln
