/* Embedding Kiln from C: load a model, create a session, size the output, run on caller buffers.
 *
 *   embed_c MODEL.yaml TOKEN_ID...
 *
 * Prints the class probabilities for the token ids (batch 1), the session's memory report, and the
 * message Kiln gives for a model file that does not exist. */
#include <kiln/kiln.h>

#include <stdio.h>
#include <stdlib.h>

static int check(kiln_status status, const char* what) {
  if (status == KILN_OK) return 0;
  fprintf(stderr, "%s failed (status %d): %s\n", what, (int)status, kiln_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.yaml TOKEN_ID...\n", argv[0]);
    return 2;
  }
  const int64_t seq = argc - 2;
  int64_t* tokens = malloc(sizeof(int64_t) * (size_t)seq); /* caller-owned input buffer */
  for (int64_t i = 0; i < seq; ++i) tokens[i] = strtoll(argv[i + 2], NULL, 10);

  kiln_model* model = NULL;
  kiln_session* session = NULL;
  int rc = 1;
  if (check(kiln_model_load(argv[1], &model), "kiln_model_load")) goto done;

  kiln_session_options options;
  kiln_session_options_init(&options);
  options.mode = KILN_LATENCY;
  if (check(kiln_session_create(model, &options, &session), "kiln_session_create")) goto done;

  const int64_t in_shape[2] = {1, seq};
  kiln_tensor input = {"tokens", KILN_I64, 2, in_shape, tokens};

  /* Ask for the output's shape, then allocate it ourselves. */
  int64_t out_shape[KILN_MAX_RANK];
  int32_t out_rank = 0;
  if (check(kiln_session_output_shape(session, &input, 1, "probs", out_shape, &out_rank), "kiln_session_output_shape"))
    goto done;
  size_t count = 1;
  for (int32_t d = 0; d < out_rank; ++d) count *= (size_t)out_shape[d];
  float* probs = calloc(count, sizeof(float)); /* caller-owned output buffer */
  kiln_tensor output = {"probs", KILN_F32, out_rank, out_shape, probs};

  if (check(kiln_session_run(session, &input, 1, &output, 1), "kiln_session_run")) {
    free(probs);
    goto done;
  }
  printf("probs:");
  for (size_t i = 0; i < count; ++i) printf(" %.6f", probs[i]);
  printf("\n");
  free(probs);

  kiln_memory_stats mem;
  if (check(kiln_session_memory(session, &mem), "kiln_session_memory")) goto done;
  printf("weights %zu bytes, arenas %zu bytes, %zu plan(s)\n", mem.weight_bytes, mem.arena_bytes, mem.plans);

  kiln_model* missing = NULL;
  kiln_status status = kiln_model_load("no_such_model.yaml", &missing);
  printf("expected error (status %d): %s\n", (int)status, kiln_last_error());
  rc = 0;

done:
  kiln_session_free(session); /* NULL is fine */
  kiln_model_free(model);
  free(tokens);
  return rc;
}
