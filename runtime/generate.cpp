// The generation loop (include/kiln/generate.hpp): encoder once, then one decoder step per token with
// the state kept here — caches preallocated to the maximum length and written one position per step,
// carried state copied back, encoder outputs expanded once per beam. Beam search reorders beams by
// rewriting the small cache_rows table (which row holds each cached position) instead of the caches.

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>

#include "frontends/yaml/seq2seq.hpp"
#include "graph/checked.hpp"
#include "kiln/generate.hpp"
#include "ops/select.hpp"
#include "runtime/compile.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/plan.hpp"

namespace kiln {

namespace detail {

struct Seq2SeqImpl {
  std::string name, path;
  Model encoder, decoder;
  std::vector<StateSpec> states;
  GenerateSpec generate;
  std::vector<std::string> vocab;
  std::map<std::string, std::int64_t> text_tokens;  // one-character tokens by their UTF-8 text
};

namespace {

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
}

// Concrete dims for a declared decoder input: dim 0 is the rows (sources x beams); other symbols come
// from `symbols` (the cache length L, the source length).
std::vector<std::int64_t> concrete(const Value* v, std::int64_t rows,
                                   const std::map<std::string, std::int64_t>& symbols) {
  std::vector<std::int64_t> dims;
  for (std::size_t i = 0; i < v->type.shape.size(); ++i) {
    const Dim& d = v->type.shape[i];
    if (d.concrete()) dims.push_back(d.value);
    else if (i == 0) dims.push_back(rows);
    else {
      auto it = symbols.find(d.sym);
      if (it == symbols.end())
        fail("decoder input '" + v->name + "' " + v->type.str() + ": the runtime cannot size dim '" + d.sym + "'");
      dims.push_back(it->second);
    }
  }
  return dims;
}

}  // namespace

struct GeneratorImpl {
  std::shared_ptr<const Seq2SeqImpl> model;
  Session encoder, decoder;

  // The configuration the buffers below are sized for.
  std::int64_t n = -1, beams = -1, length = -1, src_len = -1;
  std::int64_t rows = 0, vocab = 0;

  std::vector<std::int64_t> source_ids;  // [n, src_len]
  std::map<std::string, Tensor> enc_in, enc_out, dec_in, dec_out;
  Tensor token, step, cache_rows, scores;
  std::vector<std::int64_t> rows_next;  // beam reordering of cache_rows
  struct StateBuf {
    const StateSpec* spec;
    Tensor in, out;
    std::int64_t per_row = 0;       // elements of one row of the input
    std::int64_t per_position = 0;  // cache: elements of one position of one row
    std::vector<float> gathered;    // carry: rows reordered by beam parent
    Tensor init;                    // carry: encoder output it starts from (empty: zeros)
  };
  std::vector<StateBuf> states;
  struct Expanded {  // encoder outputs the decoder reads, one copy per beam
    Tensor enc, dec;
    std::int64_t per_row = 0;
  };
  std::vector<Expanded> expanded;

  // Per-row search state.
  std::vector<std::int64_t> history, history_next;  // [rows, length] generated tokens
  std::vector<std::int64_t> parent;                 // [rows]
  std::vector<std::int64_t> best;                   // [rows] greedy: each row's arg-max
  std::vector<float> score, score_next;             // [rows]
  std::vector<char> done;                           // [n] (greedy: [rows])
  std::vector<float> candidates, top_values;        // beam: [beams*vocab], [2*beams]
  std::vector<std::int64_t> top_indices;
  struct Entry {
    std::int64_t length = 0;
    float score = 0;
    bool finished = false;
  };
  std::vector<Entry> pool;                // [n, 2*beams] hypotheses
  std::vector<std::int64_t> pool_tokens;  // [n, 2*beams, length]
  std::vector<std::int64_t> pool_size;    // [n]
  std::vector<double> step_ms;
  double encoder_ms = 0;

  GeneratorImpl(std::shared_ptr<const Seq2SeqImpl> m)
      : model(std::move(m)), encoder(model->encoder), decoder(model->decoder) {}

  void configure(std::int64_t new_n, std::int64_t new_beams, std::int64_t new_length, std::int64_t new_src_len);
  std::vector<std::vector<Hypothesis>> run(const std::vector<std::vector<std::int64_t>>& sources,
                                           const GenerateOptions& o);

 private:
  void store_state(std::int64_t t);
  void greedy_select(std::int64_t t, bool stop_at_end, bool* all_done);
  void beam_select(std::int64_t t, bool stop_at_end, bool* all_done);
  void add_hypothesis(std::int64_t src, std::int64_t row, std::int64_t t, std::int64_t last, float s, bool finished);
};

void GeneratorImpl::configure(std::int64_t new_n, std::int64_t new_beams, std::int64_t new_length,
                              std::int64_t new_src_len) {
  if (new_n == n && new_beams == beams && new_length == length && new_src_len == src_len) return;
  const Seq2SeqImpl& m = *model;
  const GenerateSpec& gen = m.generate;
  n = new_n, beams = new_beams, length = new_length, src_len = new_src_len;
  rows = n * beams;
  const Graph& dg = *m.decoder.impl()->graph;

  source_ids.assign(static_cast<std::size_t>(n * src_len), gen.pad_token);
  enc_in.clear();
  enc_in.emplace(gen.source, Tensor::view(DType::i64, {n, src_len}, source_ids.data()));
  enc_out = encoder.run(enc_in);  // compiles the encoder plan; sizes its outputs

  std::map<std::string, std::int64_t> symbols;
  for (const Value* in : dg.inputs)
    for (std::size_t i = 1; i < in->type.shape.size(); ++i) {
      const Dim& d = in->type.shape[i];
      if (d.concrete()) continue;
      // A symbol the decoder shares with an encoder output takes its size from there; any other is the
      // cache length.
      auto from = enc_out.find(in->name);
      symbols[d.sym] = from != enc_out.end() ? from->second.shape()[i] : length;
    }

  dec_in.clear();
  token = Tensor::empty(DType::i64, {rows, 1});
  step = Tensor::empty(DType::i64, {1});
  dec_in.emplace(gen.token, token);
  dec_in.emplace(gen.step, step);
  if (!gen.cache_rows.empty()) {
    cache_rows = Tensor::empty(DType::i64, {rows, length});
    dec_in.emplace(gen.cache_rows, cache_rows);
    rows_next.assign(static_cast<std::size_t>(rows * length), 0);
  }
  states.clear();
  for (const StateSpec& s : m.states) {
    const Value* v = nullptr;
    for (const Value* in : dg.inputs)
      if (in->name == s.input) v = in;
    StateBuf buf;
    buf.spec = &s;
    buf.in = Tensor::empty(v->type.dtype, concrete(v, rows, symbols));
    buf.per_row = numel(buf.in.shape()) / rows;
    if (s.kind == StateSpec::Kind::Cache) buf.per_position = buf.per_row / buf.in.shape()[1];
    else buf.gathered.assign(static_cast<std::size_t>(numel(buf.in.shape())), 0.0f);
    if (!s.init.empty()) buf.init = enc_out.at(s.init);
    if (!s.init.empty() && numel(buf.init.shape()) * beams != numel(buf.in.shape()))
      fail("encoder output '" + s.init + "' " + shape_to_string(buf.init.shape()) + " cannot start state '" + s.input +
           "' " + shape_to_string(buf.in.shape()));
    dec_in.emplace(s.input, buf.in);
    states.push_back(std::move(buf));
  }
  expanded.clear();
  for (const Value* in : dg.inputs) {
    if (dec_in.count(in->name)) continue;
    const Tensor& e = enc_out.at(in->name);  // the frontend checked that it exists
    Expanded x;
    x.enc = e;
    x.per_row = numel(e.shape()) / n;
    if (beams == 1) {
      x.dec = e;
    } else {
      auto dims = e.shape();
      dims[0] = rows;
      x.dec = Tensor::empty(e.dtype(), dims);
    }
    dec_in.emplace(in->name, x.dec);
    expanded.push_back(x);
  }
  // Compile the decoder plan (once for all steps) and size its outputs with one warm-up step.
  std::int64_t* rows_data = cache_rows.defined() && cache_rows.numel() ? cache_rows.data_as<std::int64_t>() : nullptr;
  if (rows_data)
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < length; ++j) rows_data[r * length + j] = r;
  for (std::int64_t r = 0; r < rows; ++r) token.data_as<std::int64_t>()[r] = gen.start_token;
  step.data_as<std::int64_t>()[0] = 0;
  dec_out = decoder.run(dec_in);
  scores = dec_out.at(gen.scores);
  vocab = scores.shape()[1];
  for (auto& s : states) s.out = dec_out.at(s.spec->output);

  history.assign(static_cast<std::size_t>(rows * length), 0);
  history_next = history;
  parent.assign(static_cast<std::size_t>(rows), 0);
  best.assign(static_cast<std::size_t>(rows), 0);
  score.assign(static_cast<std::size_t>(rows), 0.0f);
  score_next = score;
  done.assign(static_cast<std::size_t>(rows), 0);
  candidates.assign(static_cast<std::size_t>(beams * vocab), 0.0f);
  top_values.assign(static_cast<std::size_t>(2 * beams), 0.0f);
  top_indices.assign(static_cast<std::size_t>(2 * beams), 0);
  pool.assign(static_cast<std::size_t>(n * 2 * beams), Entry{});
  pool_tokens.assign(static_cast<std::size_t>(n * 2 * beams * length), 0);
  pool_size.assign(static_cast<std::size_t>(n), 0);
  step_ms.assign(static_cast<std::size_t>(length), 0.0);
}

// Writes this step's state outputs: a cache output into position t of its row, a carried one over its input.
void GeneratorImpl::store_state(std::int64_t t) {
  for (auto& s : states) {
    const std::size_t elem = dtype_size(s.in.dtype());
    auto* in = static_cast<char*>(s.in.data());
    const auto* out = static_cast<const char*>(s.out.data());
    if (s.spec->kind == StateSpec::Kind::Cache) {
      const std::size_t slice = static_cast<std::size_t>(s.per_position) * elem;
      for (std::int64_t r = 0; r < rows; ++r)
        std::memcpy(in + (static_cast<std::size_t>(r * s.per_row + t * s.per_position)) * elem,
                    out + static_cast<std::size_t>(r) * slice, slice);
    } else {
      std::memcpy(in, out, s.in.bytes());
    }
  }
}

void GeneratorImpl::greedy_select(std::int64_t t, bool stop_at_end, bool* all_done) {
  const std::int64_t end = model->generate.end_token;
  const auto* logp = scores.data_as<float>();
  auto* tok = token.data_as<std::int64_t>();
  store_state(t);
  // Every row's arg-max first, split over the decoder session's threads as its kernels are once there are
  // 64k scores or more (batch 16 x 8000 tokens: 128k); one row stays on this thread.
  const std::int64_t v = vocab;
  std::int64_t* next_of = best.data();
  const int threads = rows > 1 && rows * vocab >= 65536 ? decoder.threads_per_run() : 1;
  if (threads > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) next_of[r] = done[r] ? end : arg_max(logp + r * v, v);
  } else {
    for (std::int64_t r = 0; r < rows; ++r) next_of[r] = done[r] ? end : arg_max(logp + r * v, v);
  }
  *all_done = true;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (done[r]) {
      tok[r] = end;
      continue;
    }
    const std::int64_t next = next_of[r];
    score[r] += logp[r * vocab + next];
    history[r * length + t] = next;
    tok[r] = next;
    if (stop_at_end && next == end) {
      done[r] = 1;
      add_hypothesis(r, r, t, next, score[r], true);
    } else if (t == length - 1) {
      add_hypothesis(r, r, t, next, score[r], false);
    } else {
      *all_done = false;
    }
  }
}

// Records the hypothesis of `row` (its history before t, then `last`) for source `src`.
void GeneratorImpl::add_hypothesis(std::int64_t src, std::int64_t row, std::int64_t t, std::int64_t last, float s,
                                   bool finished) {
  const std::int64_t slot = src * 2 * beams + pool_size[src]++;
  std::int64_t* dst = pool_tokens.data() + slot * length;
  std::copy(history.data() + row * length, history.data() + row * length + t, dst);
  dst[t] = last;
  pool[slot] = Entry{t + 1, s, finished};
}

void GeneratorImpl::beam_select(std::int64_t t, bool stop_at_end, bool* all_done) {
  const std::int64_t end = model->generate.end_token;
  const std::int64_t k = beams, v = vocab;
  const float minus_inf = -std::numeric_limits<float>::infinity();
  const auto* logp = scores.data_as<float>();
  auto* tok = token.data_as<std::int64_t>();
  store_state(t);
  *all_done = true;
  for (std::int64_t src = 0; src < n; ++src) {
    const std::int64_t base = src * k;
    if (done[src]) {
      for (std::int64_t j = 0; j < k; ++j) {
        parent[base + j] = base + j;
        tok[base + j] = end;
        score_next[base + j] = minus_inf;
      }
      continue;
    }
    for (std::int64_t b = 0; b < k; ++b)
      for (std::int64_t w = 0; w < v; ++w) candidates[b * v + w] = score[base + b] + logp[(base + b) * v + w];
    const std::int64_t want = std::min<std::int64_t>(2 * k, k * v);
    top_k(candidates.data(), k * v, want, top_values.data(), top_indices.data());
    std::int64_t live = 0;
    for (std::int64_t c = 0; c < want && live < k; ++c) {
      const float s = top_values[c];
      if (s == minus_inf) break;
      const std::int64_t b = top_indices[c] / v, w = top_indices[c] % v;
      if (stop_at_end && w == end) {
        if (pool_size[src] < k) add_hypothesis(src, base + b, t, w, s, true);
        continue;
      }
      parent[base + live] = base + b;
      tok[base + live] = w;
      score_next[base + live] = s;
      ++live;
    }
    for (; live < k; ++live) {  // fewer than k continuations: dead beams
      parent[base + live] = base;
      tok[base + live] = end;
      score_next[base + live] = minus_inf;
    }
    if (pool_size[src] >= k) {
      done[src] = 1;
    } else if (t == length - 1) {
      for (std::int64_t j = 0; j < k; ++j)
        if (score_next[base + j] != minus_inf)
          add_hypothesis(src, parent[base + j], t, tok[base + j], score_next[base + j], false);
      done[src] = 1;
    } else {
      *all_done = false;
    }
  }
  // Reorder: histories and carried state follow their parent; caches only through cache_rows.
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t p = parent[r];
    std::copy(history.data() + p * length, history.data() + p * length + t, history_next.data() + r * length);
    history_next[r * length + t] = tok[r];
  }
  std::swap(history, history_next);
  std::swap(score, score_next);
  if (cache_rows.defined() && cache_rows.numel()) {
    auto* table = cache_rows.data_as<std::int64_t>();
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t p = parent[r];
      std::copy(table + p * length, table + p * length + t, rows_next.data() + r * length);
      rows_next[r * length + t] = p;
    }
    for (std::int64_t r = 0; r < rows; ++r)
      std::copy(rows_next.data() + r * length, rows_next.data() + r * length + t + 1, table + r * length);
  }
  for (auto& s : states) {
    if (s.spec->kind != StateSpec::Kind::Carry) continue;
    auto* in = s.in.data_as<float>();
    for (std::int64_t r = 0; r < rows; ++r)
      std::copy(in + parent[r] * s.per_row, in + (parent[r] + 1) * s.per_row, s.gathered.data() + r * s.per_row);
    std::copy(s.gathered.begin(), s.gathered.end(), in);
  }
}

std::vector<std::vector<Hypothesis>> GeneratorImpl::run(const std::vector<std::vector<std::int64_t>>& sources,
                                                        const GenerateOptions& o) {
  const GenerateSpec& gen = model->generate;
  const std::string strategy = o.strategy.empty() ? gen.strategy : o.strategy;
  if (strategy != "greedy" && strategy != "beam")
    fail("unknown generation strategy '" + strategy + "' (expected greedy or beam)");
  const bool beam = strategy == "beam";
  const std::int64_t k = beam ? (o.beam_width > 0 ? o.beam_width : gen.beam_width) : 1;
  const std::int64_t len = o.max_length > 0 ? o.max_length : gen.max_length;
  const double alpha = o.length_penalty >= 0 ? o.length_penalty : gen.length_penalty;
  if (o.beam_width < 0) fail("beam width must be positive, got " + std::to_string(o.beam_width));
  if (o.n_best < 1 || o.n_best > k)
    fail("n_best = " + std::to_string(o.n_best) + " must be between 1 and the beam width " + std::to_string(k));
  if (sources.empty()) fail("generate: no sources given");
  // Each of the batch x beam rows keeps a token history of up to `len` ids: refuse, before allocating
  // anything, a beam whose histories alone cannot fit in this machine's memory.
  {
    const auto rows = checked::mul(static_cast<std::int64_t>(sources.size()), k);
    const auto history = rows ? checked::mul(*rows, checked::mul(len + 1, 8).value_or(-1)) : std::nullopt;
    const std::size_t physical = physical_memory_bytes();
    if (!history || (physical > 0 && static_cast<std::uint64_t>(*history) > physical))
      fail("generate: " + std::to_string(sources.size()) + " sources x beam width " + std::to_string(k) + " x " +
           std::to_string(len) + " tokens need more memory for their token histories alone than this machine's " +
           std::to_string(physical) + " bytes");
  }
  std::int64_t s_len = 0;
  const auto vocab_size = static_cast<std::int64_t>(model->vocab.size());
  for (std::size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].empty()) fail("generate: source " + std::to_string(i) + " is empty");
    for (std::size_t j = 0; j < sources[i].size(); ++j)
      if (sources[i][j] < 0 || sources[i][j] >= vocab_size)
        fail("generate: source " + std::to_string(i) + " has token id " + std::to_string(sources[i][j]) + " at " +
             std::to_string(j) + ", outside the vocabulary 0.." + std::to_string(vocab_size - 1));
    s_len = std::max<std::int64_t>(s_len, static_cast<std::int64_t>(sources[i].size()));
  }
  configure(static_cast<std::int64_t>(sources.size()), k, len, s_len);

  // Encoder, once.
  auto t0 = std::chrono::steady_clock::now();
  std::fill(source_ids.begin(), source_ids.end(), gen.pad_token);
  for (std::size_t i = 0; i < sources.size(); ++i)
    std::copy(sources[i].begin(), sources[i].end(), source_ids.begin() + static_cast<std::ptrdiff_t>(i * s_len));
  encoder.run(enc_in, enc_out);
  for (auto& x : expanded) {
    if (beams == 1) continue;
    const std::size_t bytes = static_cast<std::size_t>(x.per_row) * dtype_size(x.enc.dtype());
    for (std::int64_t r = 0; r < rows; ++r)
      std::memcpy(static_cast<char*>(x.dec.data()) + r * bytes,
                  static_cast<const char*>(x.enc.data()) + (r / beams) * bytes, bytes);
  }
  for (auto& s : states) {
    if (s.spec->kind == StateSpec::Kind::Cache) continue;  // positions are written before they are read
    if (!s.init.defined() || s.spec->init.empty()) {
      std::memset(s.in.data(), 0, s.in.bytes());
    } else {
      const std::size_t bytes = static_cast<std::size_t>(s.per_row) * dtype_size(s.in.dtype());
      for (std::int64_t r = 0; r < rows; ++r)
        std::memcpy(static_cast<char*>(s.in.data()) + r * bytes,
                    static_cast<const char*>(s.init.data()) + (r / beams) * bytes, bytes);
    }
  }
  encoder_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  // Search state.
  auto* tok = token.data_as<std::int64_t>();
  for (std::int64_t r = 0; r < rows; ++r) {
    tok[r] = gen.start_token;
    score[r] = (r % beams == 0) ? 0.0f : -std::numeric_limits<float>::infinity();  // beams start as one
    done[r] = 0;
  }
  std::fill(pool_size.begin(), pool_size.end(), 0);
  std::fill(step_ms.begin(), step_ms.end(), 0.0);
  if (cache_rows.defined() && cache_rows.numel()) {
    auto* table = cache_rows.data_as<std::int64_t>();
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < length; ++j) table[r * length + j] = r;
  }

  // The hot loop: one decoder step per token, nothing allocated.
  auto* step_value = step.data_as<std::int64_t>();
  for (std::int64_t t = 0; t < length; ++t) {
    auto s0 = std::chrono::steady_clock::now();
    step_value[0] = t;
    decoder.run(dec_in, dec_out);
    bool all_done = false;
    if (beam) beam_select(t, o.stop_at_end, &all_done);
    else greedy_select(t, o.stop_at_end, &all_done);
    step_ms[t] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count();
    if (all_done) break;
  }

  // Results, best first by normalized score (stable: ties keep the order they were found in).
  std::vector<std::vector<Hypothesis>> out(static_cast<std::size_t>(n));
  for (std::int64_t src = 0; src < n; ++src) {
    std::vector<Hypothesis> hyps;
    const std::int64_t first = src * 2 * beams;
    for (std::int64_t i = 0; i < pool_size[src]; ++i) {
      const Entry& e = pool[first + i];
      Hypothesis h;
      h.tokens.assign(pool_tokens.data() + (first + i) * length, pool_tokens.data() + (first + i) * length + e.length);
      h.score = e.score;
      h.normalized_score = e.score / static_cast<float>(std::pow(static_cast<double>(e.length), alpha));
      h.finished = e.finished;
      hyps.push_back(std::move(h));
    }
    std::stable_sort(hyps.begin(), hyps.end(),
                     [](const Hypothesis& a, const Hypothesis& b) { return a.normalized_score > b.normalized_score; });
    if (static_cast<std::int64_t>(hyps.size()) > o.n_best) hyps.resize(static_cast<std::size_t>(o.n_best));
    out[static_cast<std::size_t>(src)] = std::move(hyps);
  }
  return out;
}

}  // namespace detail

// ---- Seq2SeqModel ----

Seq2SeqModel Seq2SeqModel::load(const std::string& path, const LoadOptions& options) {
  return detail::no_bad_alloc("Seq2SeqModel::load", [&]() -> Seq2SeqModel {
    auto spec = load_yaml_seq2seq(path);
    // The encoder and decoder compile as any model does, with the same options.
    auto wrap = [&](std::unique_ptr<Graph> g) {
      detail::CompileRequest request;
      request.path = path;
      request.graph = std::move(g);
      request.pipeline = detail::pipeline_options(options);
      request.options = options;
      return Model(detail::compile(std::move(request)));
    };
    auto impl = std::make_shared<detail::Seq2SeqImpl>();
    impl->name = spec->name;
    impl->path = path;
    impl->encoder = wrap(std::move(spec->encoder));
    impl->decoder = wrap(std::move(spec->decoder));
    impl->states = spec->states;
    impl->generate = spec->generate;
    impl->vocab = spec->vocab;
    for (std::size_t i = 0; i < impl->vocab.size(); ++i) {
      const std::string& tok = impl->vocab[i];
      // One UTF-8 character: a text token.
      auto c0 = static_cast<unsigned char>(tok[0]);
      std::size_t n = c0 < 0x80 ? 1 : c0 < 0xE0 ? 2 : c0 < 0xF0 ? 3 : 4;
      if (tok.size() == n) impl->text_tokens.emplace(tok, static_cast<std::int64_t>(i));
    }
    return Seq2SeqModel(impl);
  });
}

const std::string& Seq2SeqModel::name() const { return impl_->name; }
std::int64_t Seq2SeqModel::vocab_size() const { return static_cast<std::int64_t>(impl_->vocab.size()); }
std::int64_t Seq2SeqModel::start_token() const { return impl_->generate.start_token; }
std::int64_t Seq2SeqModel::end_token() const { return impl_->generate.end_token; }
std::int64_t Seq2SeqModel::max_length() const { return impl_->generate.max_length; }
Model Seq2SeqModel::encoder() const { return impl_->encoder; }
Model Seq2SeqModel::decoder() const { return impl_->decoder; }

std::vector<std::int64_t> Seq2SeqModel::encode(const std::string& text) const {
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < text.size();) {
    auto c0 = static_cast<unsigned char>(text[i]);
    std::size_t n = c0 < 0x80 ? 1 : c0 < 0xE0 ? 2 : c0 < 0xF0 ? 3 : 4;
    std::string ch = text.substr(i, n);
    auto it = impl_->text_tokens.find(ch);
    if (it == impl_->text_tokens.end())
      fail("cannot encode '" + text + "': character '" + ch + "' at byte " + std::to_string(i) +
           " is not in the vocabulary of " + impl_->path);
    ids.push_back(it->second);
    i += n;
  }
  return ids;
}

std::string Seq2SeqModel::decode(const std::vector<std::int64_t>& tokens) const {
  std::string out;
  const GenerateSpec& g = impl_->generate;
  for (std::int64_t t : tokens) {
    if (t == g.end_token) break;
    if (t == g.start_token || t == g.pad_token) continue;
    if (t < 0 || t >= vocab_size()) fail("cannot decode token id " + std::to_string(t) + ": outside the vocabulary");
    out += impl_->vocab[static_cast<std::size_t>(t)];
  }
  return out;
}

// ---- Generator ----

Generator::Generator(Seq2SeqModel model)
    : impl_(detail::no_bad_alloc("Generator", [&] { return std::make_unique<detail::GeneratorImpl>(model.impl()); })) {}
Generator::~Generator() = default;
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;

std::vector<std::vector<Hypothesis>> Generator::generate(const std::vector<std::vector<std::int64_t>>& sources,
                                                         const GenerateOptions& options) {
  return detail::no_bad_alloc("Generator::generate", [&] { return impl_->run(sources, options); });
}

std::vector<std::string> Generator::translate(const std::vector<std::string>& texts, const GenerateOptions& options) {
  return detail::no_bad_alloc("Generator::translate", [&] {
    Seq2SeqModel m(impl_->model);
    std::vector<std::vector<std::int64_t>> sources;
    sources.reserve(texts.size());
    for (const auto& t : texts) sources.push_back(m.encode(t));
    auto hyps = impl_->run(sources, options);
    std::vector<std::string> out;
    out.reserve(hyps.size());
    for (const auto& h : hyps) out.push_back(h.empty() ? std::string() : m.decode(h[0].tokens));
    return out;
  });
}

const std::vector<double>& Generator::step_ms() const { return impl_->step_ms; }
double Generator::encoder_ms() const { return impl_->encoder_ms; }
std::size_t Generator::decoder_plan_count() const { return impl_->decoder.plan_count(); }

}  // namespace kiln
