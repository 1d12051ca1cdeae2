/*
 * The instruction mix of TileKernels' FP4 blocks, in C with AVX-512 intrinsics, everything in L1 (or, with -DR=rows,
 * the weights streaming from a matrix of R rows x 4096 columns): what this CPU gives for the algorithm itself, with
 * none of Java's range checks, spills or call overhead. Build and run on one CPU:
 *
 *   gcc -O2 -march=native -funroll-loops -DT=4 -o /tmp/fp4_mix bench/probes/fp4_mix.c && taskset -c 1 /tmp/fp4_mix
 *
 * T: tokens per weight decode (4 and 8 keep their accumulators in registers, as fp4X4 and fp4X8 do; 16 keeps its 16
 * chains in registers and loads and stores the accumulators once per group, as a shared-decode 16-token block
 * would). G: groups of 128 columns per panel (T * G * 512 bytes of activations must fit the 48 KiB L1).
 * It prints GFLOP/s and ns per group, with the index mask that Java's two-table selectFrom adds ("and") and without
 * it (vpermi2d reads only the index's low bits).
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef T
#define T 4
#endif
#ifndef G
#define G (T >= 8 ? 32 / T * 2 : 16)
#endif
#ifndef R
#define R 0
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float x[G * 128 * T] __attribute__((aligned(64)));
static float acc[T * 16] __attribute__((aligned(64)));

static double run(int mask, const uint32_t *w, const uint32_t *sc, long groups, long reps) {
    float ta[16], tb[16];
    for (int i = 0; i < 16; i++) {
        ta[i] = i * 0.5f;
        tb[i] = i * 0.25f;
    }
    __m512i A = _mm512_castps_si512(_mm512_loadu_ps(ta)), B = _mm512_castps_si512(_mm512_loadu_ps(tb));
    __m512i M = _mm512_set1_epi32(0x1f), FF = _mm512_set1_epi32(0xff);
    __m512i SH = _mm512_set_epi32(24, 24, 24, 24, 16, 16, 16, 16, 8, 8, 8, 8, 0, 0, 0, 0);
    long wi = 0;
    double t0 = now();
    for (long r = 0; r < reps; r++) {
#if T <= 8
        __m512 a[T];
        for (int k = 0; k < T; k++) a[k] = _mm512_load_ps(acc + 16 * k);
#endif
        for (int g = 0; g < G; g++) {
            __m512i q = _mm512_load_si512(w + (wi + g) * 16);
            __m512 sv = _mm512_castsi512_ps(_mm512_slli_epi32(
                    _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(sc[wi + g]), SH), FF), 23));
            const float *xt = x + g * 128 * T;
            __m512 d = _mm512_castsi512_ps(_mm512_permutex2var_epi32(A, mask ? _mm512_and_si512(q, M) : q, B));
            __m512 b[T];
            for (int k = 0; k < T; k++) b[k] = _mm512_mul_ps(d, _mm512_load_ps(xt + 128 * k));
            for (int j = 1; j < 8; j++) {
                __m512i qj = _mm512_srli_epi32(q, 4 * j);
                d = _mm512_castsi512_ps(_mm512_permutex2var_epi32(A, mask ? _mm512_and_si512(qj, M) : qj, B));
                for (int k = 0; k < T; k++) b[k] = _mm512_fmadd_ps(d, _mm512_load_ps(xt + j * 16 + 128 * k), b[k]);
            }
#if T <= 8
            for (int k = 0; k < T; k++) a[k] = _mm512_fmadd_ps(b[k], sv, a[k]);
#else
            for (int k = 0; k < T; k++)
                _mm512_store_ps(acc + 16 * k, _mm512_fmadd_ps(b[k], sv, _mm512_load_ps(acc + 16 * k)));
#endif
        }
#if T <= 8
        for (int k = 0; k < T; k++) _mm512_store_ps(acc + 16 * k, a[k]);
#endif
        wi += G;
        if (wi + G > groups) wi = 0;
    }
    return now() - t0;
}

int main(void) {
    long groups = R > 0 ? (long) R * 32 : G;
    uint32_t *w = aligned_alloc(64, groups * 64);
    uint32_t *sc = aligned_alloc(64, (groups * 4 + 63) / 64 * 64);
    for (long i = 0; i < groups * 16; i++) w[i] = (uint32_t) rand() * 2654435761u;
    for (long i = 0; i < groups; i++) sc[i] = 0x7f7f7f7f;
    for (int i = 0; i < G * 128 * T; i++) x[i] = (rand() % 100) / 100.0f;
    long reps = 3200000L / (G * T);
    for (int mask = 1; mask >= 0; mask--) {
        for (int round = 0; round < 5; round++) {
            double dt = run(mask, w, sc, groups, reps);
            printf("T=%d G=%d %s: %.1f GFLOP/s, %.2f ns/group\n", T, G, mask ? "and   " : "no and",
                    2.0 * 128 * T * G * reps / dt / 1e9, dt / (G * reps) * 1e9);
        }
    }
    return acc[3] > 1e30f;
}
