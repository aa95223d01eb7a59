/* Bench-only driver for the reference engine, batch mode: reads every line of
 * stdin, embeds them with the engine's own batch entry point (parallel across
 * texts, its fastest mode) in chunks of E5_BATCH (default 64) texts, and
 * writes one line of floats per text like e5_ref_main.c. Compiled by
 * scripts/reference-embed.sh --batch in a temporary directory. */
#include "e5.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.bin < texts\n", argv[0]);
        return 2;
    }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    int dim = e5_dim(m);
    const char *env = getenv("E5_BATCH");
    int chunk = env ? atoi(env) : 64;
    if (chunk < 1) chunk = 1;
    size_t cap = 1 << 16, n = 0, ncap = 1024;
    char **texts = malloc(sizeof(char *) * ncap);
    char *line = malloc(cap);
    while (fgets(line, (int)cap, stdin)) {
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (n == ncap) texts = realloc(texts, sizeof(char *) * (ncap *= 2));
        texts[n++] = strdup(line);
    }
    float *out = malloc(sizeof(float) * (size_t)dim * (size_t)chunk);
    for (size_t i = 0; i < n; i += (size_t)chunk) {
        int k = (int)(n - i < (size_t)chunk ? n - i : (size_t)chunk);
        if (e5_embed_batch(m, (const char **)texts + i, k, 1, out) != 0) return 1;
        for (int t = 0; t < k; t++) {
            for (int d = 0; d < dim; d++) printf(d ? " %.7g" : "%.7g", out[(size_t)t * dim + d]);
            printf("\n");
        }
    }
    e5_free(m);
    return 0;
}
