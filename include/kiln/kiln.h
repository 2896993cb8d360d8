/* Kiln's C API: load a model, run it from any number of threads, on buffers the caller owns.
 *
 * Usable from C (C99 or later) and from any FFI: only opaque handles, fixed-width integers, plain structs
 * and `const char*` strings cross it; no C++ exception ever escapes a function here.
 *
 * Conventions (docs/embedding.md has a complete example):
 *  - Every function that can fail returns a kiln_status. On failure the out-parameters are left untouched
 *    and kiln_last_error() returns a one-line message (`FILE:LINE:COL: error: WHAT` when a location is
 *    known).
 *  - Handles (kiln_model*, kiln_session*) are created by kiln_*_create / kiln_model_load* and owned by the
 *    caller, who frees each exactly once with its kiln_*_free function (free(NULL) does nothing).
 *  - A kiln_session holds a reference to its model's weights and graph: kiln_model_free may be called
 *    while sessions of the model are alive; the model's data is released when the last one is freed.
 *  - Tensor data is always caller memory: Kiln reads input buffers and writes output buffers during
 *    kiln_session_run only, and keeps no pointer to them after it returns.
 *  - Strings returned by Kiln are owned by Kiln; each function says how long its string stays valid.
 *  - Threads: kiln_session_run, kiln_session_output_shape and kiln_session_memory may be called
 *    concurrently on one session from any number of threads (docs/threading.md). Creating and freeing a
 *    handle must not race with other uses of that same handle.
 */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every fallible call. */
typedef enum kiln_status {
  KILN_OK = 0,
  /** A null handle or pointer, a negative or too-large count, an unknown enum value. */
  KILN_INVALID_ARGUMENT = 1,
  /** Kiln rejected the request: malformed model or weights, wrong input name/dtype/shape, an output
   *  buffer of the wrong shape, the session's memory limit reached, ... (kiln_last_error says which). */
  KILN_ERROR = 2,
  /** The system ran out of memory. */
  KILN_OUT_OF_MEMORY = 3,
  /** A bug in Kiln or a library it uses (the message says what). */
  KILN_INTERNAL_ERROR = 4
} kiln_status;

/** Element types; values match kiln::DType. */
typedef enum kiln_dtype {
  KILN_F32 = 0,
  KILN_F16 = 1,
  KILN_BF16 = 2,
  KILN_F64 = 3,
  KILN_I64 = 4,
  KILN_I32 = 5,
  KILN_I8 = 6,
  KILN_U8 = 7,
  KILN_BOOL = 8
} kiln_dtype;

/** See kiln::ThreadingMode and docs/threading.md. */
typedef enum kiln_threading_mode { KILN_LATENCY = 0, KILN_THROUGHPUT = 1 } kiln_threading_mode;

/** Weight quantization (see kiln::Quantize and docs/quantization.md). KILN_QUANTIZE_MODEL: what the model
 *  file asks (YAML's top-level `quantize:`, else none); the others override it. */
typedef enum kiln_quantize {
  KILN_QUANTIZE_MODEL = 0,
  KILN_QUANTIZE_NONE = 1,
  KILN_QUANTIZE_INT8 = 2,
  KILN_QUANTIZE_BF16 = 3
} kiln_quantize;

/** Largest tensor rank the C API passes. */
#define KILN_MAX_RANK 8

typedef struct kiln_model kiln_model;     /* opaque */
typedef struct kiln_session kiln_session; /* opaque */

/** A tensor in caller memory, described for one call. Kiln copies nothing and keeps nothing. */
typedef struct kiln_tensor {
  const char* name; /* input/output name as declared by the model; read during the call only */
  kiln_dtype dtype;
  int32_t rank;         /* 0..KILN_MAX_RANK */
  const int64_t* shape; /* `rank` dims; read during the call only */
  void* data;           /* dense row-major buffer of product(shape) elements; inputs are only read */
} kiln_tensor;

/** Session settings; fill with kiln_session_options_init, then change fields. */
typedef struct kiln_session_options {
  kiln_threading_mode mode; /* default KILN_LATENCY */
  int32_t intra_op_threads; /* cores the session may use at once; 0 (default) = all */
  size_t max_plans;         /* input-shape sets with a compiled plan kept; default 16 */
  size_t memory_limit;      /* cap on activation arenas in bytes; 0 (default) = none */
} kiln_session_options;

/** Load settings (see kiln::LoadOptions); fill with kiln_load_options_init, then change fields. */
typedef struct kiln_load_options {
  int32_t opt_level; /* 0, 1 or 2 (default): see `kilnc passes` */
  int32_t quantize;  /* a kiln_quantize value, default KILN_QUANTIZE_MODEL (an int: any value a caller stores
                        is read safely, and one outside the enum is refused) */
} kiln_load_options;

/** What kiln_session_memory reports (see kiln::MemoryStats). */
typedef struct kiln_memory_stats {
  size_t weight_bytes;     /* the model's weights, shared by all its sessions */
  size_t arena_bytes;      /* activation arenas held by this session now */
  size_t peak_arena_bytes; /* highest arena_bytes so far */
  size_t plans;            /* input-shape sets with a compiled plan */
  size_t contexts;         /* plan instances (one per shape set per concurrent call) */
  size_t memory_limit;     /* the cap, 0 = none */
} kiln_memory_stats;

/** The message of the calling thread's last failed call: owned by Kiln, valid until the next failing
 *  call on this thread. "" when no call failed on this thread. Never NULL. */
const char* kiln_last_error(void);

/** Kiln's version, "MAJOR.MINOR.PATCH": a static string. */
const char* kiln_version(void);

/** Loads a model file (.yaml with the weights it names, .onnx; .kplan where supported). `path` is read during
 *  the call only. On success *out is a new handle to free with kiln_model_free. */
kiln_status kiln_model_load(const char* path, kiln_model** out);

/** Loads a model from memory: YAML text (`yaml_len` bytes, need not be NUL-terminated) and the bytes of
 *  its .safetensors weights (may be NULL with size 0 for a model without weights). Both buffers are read
 *  during the call only (the weights are copied once), so the caller may free them afterwards. */
kiln_status kiln_model_load_from_memory(const char* yaml, size_t yaml_len, const void* weights, size_t weights_size,
                                        kiln_model** out);

/** Sets the defaults listed in kiln_load_options. */
void kiln_load_options_init(kiln_load_options* options);

/** kiln_model_load and kiln_model_load_from_memory with load settings (`options` may be NULL: defaults; it
 *  is read during the call only). An unknown quantize value or opt_level gives KILN_INVALID_ARGUMENT; a
 *  quantization this CPU cannot run gives KILN_ERROR naming the option and the CPU feature. */
kiln_status kiln_model_load_with_options(const char* path, const kiln_load_options* options, kiln_model** out);
kiln_status kiln_model_load_from_memory_with_options(const char* yaml, size_t yaml_len, const void* weights,
                                                     size_t weights_size, const kiln_load_options* options,
                                                     kiln_model** out);

/** Releases the caller's handle (sessions created from it stay valid). NULL is ignored. */
void kiln_model_free(kiln_model* model);

/** Counts and names of the model's declared inputs and outputs. Names are owned by the model handle and
 *  valid until kiln_model_free. An index out of range gives NULL. */
size_t kiln_model_num_inputs(const kiln_model* model);
size_t kiln_model_num_outputs(const kiln_model* model);
const char* kiln_model_input_name(const kiln_model* model, size_t index);
const char* kiln_model_output_name(const kiln_model* model, size_t index);

/** Sets the defaults listed in kiln_session_options. */
void kiln_session_options_init(kiln_session_options* options);

/** Creates a session of `model`. `options` may be NULL (defaults); it is read during the call only.
 *  On success *out is a new handle to free with kiln_session_free. */
kiln_status kiln_session_create(const kiln_model* model, const kiln_session_options* options, kiln_session** out);

/** Frees a session; no call on it may be running. NULL is ignored. */
void kiln_session_free(kiln_session* session);

/** Runs the model: `inputs` names every declared input once, `outputs` every declared output once, each
 *  with the exact dtype and shape (kiln_session_output_shape gives it). Reads the input buffers, writes
 *  the output buffers, and keeps no pointer to either after returning. Thread-safe. */
kiln_status kiln_session_run(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                             const kiln_tensor* outputs, size_t num_outputs);

/** The shape output `output_name` has for these inputs (their data is not read and may be NULL): writes
 *  the dims to `shape` (room for KILN_MAX_RANK) and the rank to *rank. Compiles the plan for these shapes
 *  if needed. Thread-safe. */
kiln_status kiln_session_output_shape(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                                      const char* output_name, int64_t* shape, int32_t* rank);

/** Memory the session holds now. Thread-safe. */
kiln_status kiln_session_memory(const kiln_session* session, kiln_memory_stats* out);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H */
