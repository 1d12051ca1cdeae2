/*
 * TileKernels.fp8X8 (8 tokens, FP8 e4m3 weights with an E8M0 scale per 128 columns) in C with AVX-512 intrinsics:
 * the same decode (sign-extend, shift, mask, one multiply by 2^120), the same 8 chains per group scaled into 8
 * accumulators, activations tiled [group][token][128] as FastKernels lays them out. Weights stream from a matrix of
 * ROWS x COLS (8192 x 512: 4 MiB, the attention worker's query product on `small`). What this CPU gives for the
 * algorithm without Java's range checks and spills; compare with the Java kernel in the same minutes (the VM drifts).
 *
 *   gcc -O3 -march=native -funroll-loops -o /tmp/fp8_x8 bench/probes/fp8_x8.c && taskset -c 1 /tmp/fp8_x8 512 8192 0
 *
 * Third argument 1: two rows per call sharing each activation load (fp8X8Pair). -O2 keeps gcc from unrolling the
 * j loop and it spills the chain arrays (23-29 GFLOP/s): use -O3 -funroll-loops.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fp8_x8 COLS ROWS [PAIR]\n");
        return 2;
    }
    int cols = atoi(argv[1]), rows = atoi(argv[2]), pair = argc > 3 ? atoi(argv[3]) : 0;
    uint8_t *w = aligned_alloc(64, (size_t) rows * cols);
    for (size_t i = 0; i < (size_t) rows * cols; i++) {
        w[i] = (uint8_t) ((rand() & 0x77) | ((rand() & 1) << 7) | 8); // normal codes only (no slow path in C)
    }
    float *x = aligned_alloc(64, (size_t) 8 * cols * 4);
    for (int i = 0; i < 8 * cols; i++) {
        x[i] = rand() / (float) RAND_MAX;
    }
    float *acc = aligned_alloc(64, (size_t) rows * 8 * 16 * 4);
    __m512i mask = _mm512_set1_epi32((int) 0x87f00000);
    __m512 bias = _mm512_set1_ps(0x1p120f), sv = _mm512_set1_ps(1.0f);
    for (int rep = 0; rep < 10; rep++) {
        double t0 = now();
        int reps = 0;
        while (now() - t0 < 0.3) {
            for (int r = 0; r < rows; r += pair ? 2 : 1) {
                const uint8_t *wr = w + (size_t) r * cols;
                float *ar = acc + (size_t) r * 128;
                if (!pair) {
                    __m512 a[8];
                    for (int k = 0; k < 8; k++) a[k] = _mm512_load_ps(ar + 16 * k);
                    for (int c = 0; c < cols; c += 128) {
                        __m512 b[8];
                        for (int k = 0; k < 8; k++) b[k] = _mm512_setzero_ps();
                        const float *xt = x + 8 * c;
                        for (int j = 0; j < 8; j++) {
                            __m512i cw = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *) (wr + c + 16 * j)));
                            __m512 d = _mm512_mul_ps(
                                    _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(cw, 20), mask)), bias);
                            for (int k = 0; k < 8; k++) b[k] = _mm512_fmadd_ps(d, _mm512_load_ps(xt + 16 * j + 128 * k), b[k]);
                        }
                        for (int k = 0; k < 8; k++) a[k] = _mm512_fmadd_ps(b[k], sv, a[k]);
                    }
                    for (int k = 0; k < 8; k++) _mm512_store_ps(ar + 16 * k, a[k]);
                } else {
                    const uint8_t *wr2 = wr + cols;
                    float *ar2 = ar + 128;
                    for (int c = 0; c < cols; c += 128) {
                        __m512 b[8], e[8];
                        for (int k = 0; k < 8; k++) b[k] = e[k] = _mm512_setzero_ps();
                        const float *xt = x + 8 * c;
                        for (int j = 0; j < 8; j++) {
                            __m512i cw = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *) (wr + c + 16 * j)));
                            __m512 d = _mm512_mul_ps(
                                    _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(cw, 20), mask)), bias);
                            __m512i cv = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *) (wr2 + c + 16 * j)));
                            __m512 f = _mm512_mul_ps(
                                    _mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(cv, 20), mask)), bias);
                            for (int k = 0; k < 8; k++) {
                                __m512 xv = _mm512_load_ps(xt + 16 * j + 128 * k);
                                b[k] = _mm512_fmadd_ps(d, xv, b[k]);
                                e[k] = _mm512_fmadd_ps(f, xv, e[k]);
                            }
                        }
                        for (int k = 0; k < 8; k++) {
                            _mm512_store_ps(ar + 16 * k, _mm512_fmadd_ps(b[k], sv, _mm512_load_ps(ar + 16 * k)));
                            _mm512_store_ps(ar2 + 16 * k, _mm512_fmadd_ps(e[k], sv, _mm512_load_ps(ar2 + 16 * k)));
                        }
                    }
                }
            }
            reps++;
        }
        double ns = (now() - t0) * 1e9 / reps;
        printf("pair %d cols %d rows %d: %.1f ns/row %.1f GFLOP/s (checksum %g)\n", pair, cols, rows, ns / rows,
               2.0 * rows * cols * 8 / ns, acc[0]);
    }
    return 0;
}
