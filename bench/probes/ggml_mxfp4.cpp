// llama.cpp's (ggml's) MXFP4 CPU kernels timed on the shapes of Fp4LinearBench and Fp4MoeBench, so that the two can
// be run side by side on one machine (bench/LLAMACPP.md). Only ggml's public API; see ggml_mxfp4.sh for the build.
//
//   ggml_mxfp4 mm   {repack|plain} {cold|hot} M K N [threads]
//   ggml_mxfp4 mmid {repack|plain} {cold|hot} M K N [threads] [experts] [used] [distinct|shared]
//
// M output rows, K input columns, N tokens. mm: one MXFP4 matrix times N float32 tokens. mmid: MUL_MAT_ID, each
// token through `used` of `experts` matrices (distinct: every token its own experts as far as they last; shared:
// all tokens the same ones). cold: as many distinct matrices (or expert sets) as fill 600 MiB, cycled; hot: one.
// Each call includes ggml's float32 -> Q8_0 quantisation of the activations, as in a forward pass.
// GFLOP/s = 2 M K N (x used) / time; GB/s = stored MXFP4 bytes (17 per 32 weights) read per call / time.
// An iteration of >= 2 s counts only when other processes used <= 10 % of one CPU during it (/proc/stat busy time
// minus this process's getrusage); 5 clean iterations are kept, at most 20 tried.
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds of CPU busy on the whole machine (/proc/stat) and of this process (getrusage).
static double machine_busy() {
    FILE * f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[10] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &v[6], &v[7], &v[8], &v[9]) < 8) {
        fclose(f);
        return 0;
    }
    fclose(f);
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait (guest time is inside user)
    double busy = double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
    return busy / double(sysconf(_SC_CLK_TCK));
}

static double own_cpu() {
    rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

static ggml_backend_buffer_type_t repack_buffer_type() {
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    auto get = (ggml_backend_dev_get_extra_bufts_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");
    if (get) {
        for (ggml_backend_buffer_type_t * b = get(dev); b && *b; b++) {
            if (strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") == 0) return *b;
        }
    }
    fprintf(stderr, "no CPU_REPACK buffer type in this ggml build\n");
    exit(2);
}

// Random MXFP4 blocks: random nibbles, E8M0 scales 118..125 (weights of magnitude ~2^-9..2^-2).
static void fill_mxfp4(std::vector<uint8_t> & buf, std::mt19937_64 & rng) {
    for (size_t i = 0; i < buf.size(); i += 17) {
        uint64_t r = rng();
        buf[i] = uint8_t(118 + (r & 7));
        for (int j = 1; j < 17; j++) buf[i + j] = uint8_t(rng());
    }
}

int main(int argc, char ** argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s mm|mmid repack|plain cold|hot M K N [threads] [experts] [used] [distinct|shared]\n",
                argv[0]);
        return 2;
    }
    std::string op = argv[1], layout = argv[2], set = argv[3];
    const int64_t M = atoll(argv[4]), K = atoll(argv[5]), N = atoll(argv[6]);
    const int threads = argc > 7 ? atoi(argv[7]) : 2;
    const bool moe = op == "mmid";
    const int experts = moe && argc > 8 ? atoi(argv[8]) : 142;
    const int used = moe && argc > 9 ? atoi(argv[9]) : 8;
    const bool shared = moe && argc > 10 && std::string(argv[10]) == "shared";
    if ((op != "mm" && !moe) || (layout != "repack" && layout != "plain") || (set != "cold" && set != "hot")
        || M <= 0 || K <= 0 || K % 32 != 0 || N <= 0 || used > experts) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    const size_t matrix_bytes = size_t(M) * size_t(K) / 32 * 17;
    const size_t cold_bytes = size_t(600) << 20;
    // mm: matrices cycled; mmid: expert sets of `experts` matrices each (one set is already > 600 MiB for 142 x 2048x4096)
    const size_t unit = moe ? matrix_bytes * experts : matrix_bytes;
    const int copies = set == "hot" ? 1 : int(std::max<size_t>(1, (cold_bytes + unit - 1) / unit));

    ggml_backend_t backend = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(backend, threads);
    ggml_backend_buffer_type_t wbuft = layout == "repack" ? repack_buffer_type() : ggml_backend_cpu_buffer_type();

    ggml_init_params wp = {ggml_tensor_overhead() * size_t(copies + 1), nullptr, true};
    ggml_context * wctx = ggml_init(wp);
    std::vector<ggml_tensor *> w(copies);
    for (int i = 0; i < copies; i++) {
        w[i] = moe ? ggml_new_tensor_3d(wctx, GGML_TYPE_MXFP4, K, M, experts) : ggml_new_tensor_2d(wctx, GGML_TYPE_MXFP4, K, M);
        ggml_format_name(w[i], "w%d", i);
    }
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, wbuft);
    if (!wbuf) {
        fprintf(stderr, "weight allocation failed\n");
        return 1;
    }
    std::mt19937_64 rng(7);
    {
        std::vector<uint8_t> host(ggml_nbytes(w[0]));
        for (int i = 0; i < copies; i++) {
            fill_mxfp4(host, rng);
            ggml_backend_tensor_set(w[i], host.data(), 0, host.size());
        }
    }

    const size_t nodes = size_t(copies) * 2 + 16;
    ggml_init_params ap = {ggml_tensor_overhead() * (nodes + 8) + ggml_graph_overhead_custom(nodes, false), nullptr, true};
    ggml_context * actx = ggml_init(ap);
    ggml_tensor * x = moe ? ggml_new_tensor_3d(actx, GGML_TYPE_F32, K, 1, N) : ggml_new_tensor_2d(actx, GGML_TYPE_F32, K, N);
    ggml_tensor * ids = moe ? ggml_new_tensor_2d(actx, GGML_TYPE_I32, used, N) : nullptr;
    ggml_cgraph * graph = ggml_new_graph_custom(actx, nodes, false);
    for (int i = 0; i < copies; i++) {
        ggml_tensor * y = moe ? ggml_mul_mat_id(actx, w[i], x, ids) : ggml_mul_mat(actx, w[i], x);
        ggml_build_forward_expand(graph, y);
    }
    ggml_backend_buffer_t abuf = ggml_backend_alloc_ctx_tensors(actx, backend);
    if (!abuf) {
        fprintf(stderr, "activation allocation failed\n");
        return 1;
    }
    {
        std::normal_distribution<float> normal(0.f, 1.f);
        std::vector<float> host(size_t(K) * size_t(N));
        for (float & v : host) v = normal(rng);
        ggml_backend_tensor_set(x, host.data(), 0, host.size() * sizeof(float));
    }
    // The experts used advance by the number touched after every call, as in Fp4MoeBench, so that a cold run
    // streams its experts from DRAM even when one call touches only a few of them.
    std::vector<int32_t> e(moe ? size_t(used) * size_t(N) : 0);
    int first = 0;
    auto route = [&]() {
        if (!moe) return;
        for (int64_t t = 0; t < N; t++) {
            for (int u = 0; u < used; u++) {
                e[t * used + u] = int((first + (shared ? u : t * used + u)) % experts);
            }
        }
        ggml_backend_tensor_set(ids, e.data(), 0, e.size() * sizeof(int32_t));
        if (set == "cold") first = int((first + (shared ? used : std::min<int64_t>(experts, int64_t(used) * N))) % experts);
    };

    const double flops_per_call = 2.0 * double(M) * double(K) * double(N) * (moe ? used : 1);
    // Stored bytes one call reads: mm reads its matrix; mmid reads each expert used by at least one token.
    int touched = moe ? (shared ? used : int(std::min<int64_t>(experts, int64_t(used) * N))) : 1;
    const double bytes_per_call = double(matrix_bytes) * touched;

    auto run = [&](double seconds, double & calls_out, double & wall_out) {
        double t0 = now(), t;
        double calls = 0;
        do {
            route();
            ggml_backend_graph_compute(backend, graph);
            calls += copies;
            t = now();
        } while (t - t0 < seconds);
        calls_out = calls;
        wall_out = t - t0;
    };
    double calls, wall;
    run(2.0, calls, wall);  // warm-up
    std::vector<double> gflops;
    int tried = 0;
    while (gflops.size() < 5 && tried < 20) {
        tried++;
        double b0 = machine_busy(), o0 = own_cpu();
        run(2.0, calls, wall);
        double other = (machine_busy() - b0) - (own_cpu() - o0);
        if (other > 0.10 * wall) {
            fprintf(stderr, "dirty iteration dropped: other processes used %.0f %% of one CPU\n", 100 * other / wall);
            continue;
        }
        gflops.push_back(flops_per_call * calls / wall / 1e9);
    }
    if (gflops.empty()) {
        fprintf(stderr, "no clean iteration in %d\n", tried);
        return 1;
    }
    std::vector<double> sorted = gflops;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double g : gflops) mean += g;
    mean /= double(gflops.size());
    double gbs = mean / (flops_per_call / 1e9) * bytes_per_call / 1e9;
    printf("%s %s %s M=%lld K=%lld N=%lld threads=%d%s: %.1f GFLOP/s (%.1f-%.1f, %zu clean of %d), %.2f GB/s, %d "
           "matrices%s\n",
           op.c_str(), layout.c_str(), set.c_str(), (long long) M, (long long) K, (long long) N, threads,
           moe ? (shared ? " shared" : " distinct") : "", mean, sorted.front(), sorted.back(), gflops.size(), tried,
           gbs, copies * (moe ? experts : 1), moe ? " (expert matrices)" : "");
    ggml_backend_buffer_free(abuf);
    ggml_backend_buffer_free(wbuf);
    ggml_free(actx);
    ggml_free(wctx);
    ggml_backend_free(backend);
    return 0;
}
