// The instruction-set cap (see isa.hpp).

#include "ops/isa.hpp"

#include <dnnl.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "kiln/error.hpp"

namespace kiln::isa {
namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// ONEDNN_MAX_CPU_ISA's value as a Kiln level (oneDNN 2.6's names; ALL or unknown: no cap).
std::optional<Level> from_onednn_name(std::string_view value) {
  const std::string v = upper(value);
  if (v.rfind("AVX512", 0) == 0) return Level::avx512;
  if (v.rfind("AVX2", 0) == 0) return Level::avx2;
  if (v == "AVX" || v == "SSE41") return Level::sse41;
  return std::nullopt;
}

dnnl_cpu_isa_t to_onednn(Level level) {
  switch (level) {
    case Level::sse41: return dnnl_cpu_isa_sse41;
    case Level::avx2: return dnnl_cpu_isa_avx2;
    case Level::avx512: return dnnl_cpu_isa_avx512_core_bf16;  // all of AVX-512 that 2.6 knows, AMX excluded
  }
  return dnnl_cpu_isa_all;
}

Level min(Level a, Level b) { return static_cast<int>(a) < static_cast<int>(b) ? a : b; }

struct Settings {
  std::optional<Level> kiln_cap;    // KILN_MAX_ISA
  std::optional<Level> onednn_cap;  // ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA)
  std::string bad_value;            // KILN_MAX_ISA's value when it names no level
};

const Settings& settings() {
  static const Settings s = [] {
    Settings out;
    if (const char* v = std::getenv("KILN_MAX_ISA"); v && *v) {
      out.kiln_cap = parse(v);
      if (!out.kiln_cap) out.bad_value = v;
    }
    const char* d = std::getenv("ONEDNN_MAX_CPU_ISA");
    if (!d || !*d) d = std::getenv("DNNL_MAX_CPU_ISA");
    if (d && *d) out.onednn_cap = from_onednn_name(d);
    return out;
  }();
  return s;
}

// Applied when the library loads, before anything can ask oneDNN which ISA it runs; apply() repeats it
// (a no-op) for callers that run before static initialization is complete.
const bool kAppliedAtLoad = [] {
  try {
    apply();
  } catch (...) {  // an unknown KILN_MAX_ISA: reported by apply() at the first load
  }
  return true;
}();

}  // namespace

const char* name(Level level) {
  switch (level) {
    case Level::sse41: return "sse41";
    case Level::avx2: return "avx2";
    case Level::avx512: return "avx512";
  }
  return "?";
}

std::optional<Level> parse(std::string_view name) {
  for (Level l : {Level::sse41, Level::avx2, Level::avx512})
    if (name == isa::name(l)) return l;
  return std::nullopt;
}

Level cpu() {
  static const Level level = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
      return Level::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Level::avx2;
#endif
    return Level::sse41;
  }();
  return level;
}

const char* name(Feature feature) { return feature == Feature::avx512_vnni ? "avx512_vnni" : "avx512_bf16"; }

bool cpu_has(Feature feature) {
  // CPUID leaf 7: sub-leaf 0 ECX bit 11 is AVX512_VNNI, sub-leaf 1 EAX bit 5 is AVX512_BF16. Both need the
  // AVX-512 state the OS enables, which cpu() == avx512 already checked.
  static const std::pair<bool, bool> features = [] {
    std::pair<bool, bool> out{false, false};
#if defined(__x86_64__) || defined(__i386__)
    if (cpu() != Level::avx512) return out;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
      out.first = (ecx >> 11) & 1u;
      const unsigned max_sub = eax;
      if (max_sub >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) out.second = (eax >> 5) & 1u;
    }
#endif
    return out;
  }();
  return feature == Feature::avx512_vnni ? features.first : features.second;
}

bool has(Feature feature) { return effective() == Level::avx512 && cpu_has(feature); }

std::optional<Level> cap() {
  const Settings& s = settings();
  if (s.kiln_cap && s.onednn_cap) return min(*s.kiln_cap, *s.onednn_cap);
  return s.kiln_cap ? s.kiln_cap : s.onednn_cap;
}

Level effective() {
  const auto c = cap();
  return c ? min(cpu(), *c) : cpu();
}

Level onednn_level() {
  apply();
  const auto onednn = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  auto includes = [onednn](dnnl_cpu_isa_t isa) {
    return (onednn & static_cast<unsigned>(isa)) == static_cast<unsigned>(isa);
  };
  if (includes(dnnl_cpu_isa_avx512_core)) return Level::avx512;
  if (includes(dnnl_cpu_isa_avx2)) return Level::avx2;
  return Level::sse41;
}

std::string describe() {
  const Level e = effective();
  std::string out = name(e);
  if (e != cpu()) {
    const Settings& s = settings();
    const bool by_kiln = s.kiln_cap && *s.kiln_cap == e;
    out +=
        std::string(" (capped by ") + (by_kiln ? "KILN_MAX_ISA" : "ONEDNN_MAX_CPU_ISA") + "; CPU: " + name(cpu()) + ")";
  }
  return out;
}

void apply() {
  const Settings& s = settings();
  if (!s.bad_value.empty())
    throw Error("error: KILN_MAX_ISA=" + s.bad_value + ": unknown instruction set (expected avx512, avx2 or sse41)");
  static std::once_flag once;
  std::call_once(once, [&] {
    // oneDNN reads ONEDNN_MAX_CPU_ISA itself; set it only when Kiln's own switch is the lower cap. Setting
    // fails once oneDNN has already dispatched (nothing in Kiln does before this), which leaves its own.
    if (s.kiln_cap && (!s.onednn_cap || static_cast<int>(*s.kiln_cap) <= static_cast<int>(*s.onednn_cap)))
      (void)dnnl_set_max_cpu_isa(to_onednn(*s.kiln_cap));
  });
}

}  // namespace kiln::isa
