#pragma once
/// \file
/// Sequence-to-sequence generation: an encoder graph run once per batch of sources, a decoder step graph
/// run once per generated token with its state (key/value caches, LSTM h/c) kept by the runtime, and
/// greedy or beam search on top. The model file format is in docs/yaml-format.md.
///
/// \code
///   kiln::Seq2SeqModel model = kiln::Seq2SeqModel::load("examples/date_translation/transformer.yaml");
///   kiln::Generator gen(model);
///   auto out = gen.translate({"Thursday, November 26, 2026", "nov 26 2026"});   // greedy: "2026-11-26" ...
///   kiln::GenerateOptions beam;  beam.strategy = "beam";  beam.beam_width = 4;  beam.n_best = 2;
///   auto hyps = gen.generate({model.encode("26/11/26")}, beam);   // hyps[0][0].tokens, .score, ...
/// \endcode

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/model.hpp"

namespace kiln {

namespace detail {
struct Seq2SeqImpl;
struct GeneratorImpl;
}  // namespace detail

/// A loaded seq2seq model: encoder and decoder graphs (sharing one memory-mapped weights file), the
/// generation defaults and the tokenizer declared in its YAML file. Cheap to copy (copies share).
class Seq2SeqModel {
 public:
  Seq2SeqModel() = default;
  explicit Seq2SeqModel(std::shared_ptr<const detail::Seq2SeqImpl> impl) : impl_(std::move(impl)) {}
  /// Loads the model file and its weights; throws kiln::Error with file, line and column on any problem.
  static Seq2SeqModel load(const std::string& path, const LoadOptions& options = {});

  const std::string& name() const;
  /// Text -> token ids with the model's character vocabulary (no start/end tokens). Throws kiln::Error
  /// naming the first character the vocabulary lacks.
  std::vector<std::int64_t> encode(const std::string& text) const;
  /// Token ids -> text, stopping at the end token and skipping start and padding tokens.
  std::string decode(const std::vector<std::int64_t>& tokens) const;
  std::int64_t vocab_size() const;
  std::int64_t start_token() const;
  std::int64_t end_token() const;
  std::int64_t max_length() const;

  /// The two graphs as ordinary models (e.g. for `explain` or profiling one decoder step).
  Model encoder() const;
  Model decoder() const;

  std::shared_ptr<const detail::Seq2SeqImpl> impl() const { return impl_; }

 private:
  std::shared_ptr<const detail::Seq2SeqImpl> impl_;
};

/// Options for one generate call; zero / empty fields take the model file's `generate` defaults.
struct GenerateOptions {
  std::string strategy;        ///< "greedy" or "beam"
  int beam_width = 0;          ///< beams per source (beam search)
  double length_penalty = -1;  ///< beam search ranks hypotheses by score / length^length_penalty (< 0: the model's)
  int max_length = 0;          ///< tokens generated at most per source, the end token included
  int n_best = 1;              ///< hypotheses returned per source (at most beam_width)
  bool stop_at_end = true;     ///< false: ignore the end token and always generate max_length tokens (benchmarks)
};

/// One output sequence.
struct Hypothesis {
  std::vector<std::int64_t> tokens;  ///< generated tokens (no start token); ends with the end token when finished
  float score = 0;                   ///< sum of the tokens' log-probabilities
  float normalized_score = 0;        ///< score / tokens.size()^length_penalty (what beam search ranks by)
  bool finished = false;             ///< ended with the end token (else stopped at max_length)
};

/// Runs generation. Holds one encoder and one decoder session and the buffers of the last shape used
/// (caches preallocated to the maximum length, rows = sources x beams); reuses them while the batch size,
/// beam width and maximum length stay the same, so the per-token loop allocates nothing. One decoder plan
/// serves every step. Not safe to call from several threads at once: use one Generator per thread.
class Generator {
 public:
  explicit Generator(Seq2SeqModel model);
  ~Generator();
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;

  /// Generates for a batch of token-id sources (of any lengths: shorter ones are padded and masked).
  /// Returns, per source, up to n_best hypotheses, best first.
  std::vector<std::vector<Hypothesis>> generate(const std::vector<std::vector<std::int64_t>>& sources,
                                                const GenerateOptions& options = {});
  /// Encodes texts with the model's tokenizer, generates, and decodes the best hypothesis of each.
  std::vector<std::string> translate(const std::vector<std::string>& texts, const GenerateOptions& options = {});

  /// Milliseconds each decoder step took in the last generate call (step t produced token t).
  const std::vector<double>& step_ms() const;
  /// Milliseconds the encoder took in the last generate call.
  double encoder_ms() const;
  /// Decoder plans compiled so far: one per rows x source length x maximum length, never one per step.
  std::size_t decoder_plan_count() const;

 private:
  std::unique_ptr<detail::GeneratorImpl> impl_;
};

}  // namespace kiln
