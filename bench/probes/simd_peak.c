// Peak throughput of one core for the multiply-add instructions the FP4 kernels could use: fp32 FMA (what the
// Vector API emits), int8 vpdpbusd (llama.cpp's MXFP4 path) and bf16 vdpbf16ps. Twelve independent chains per
// instruction kind, so latency does not limit. Not built by Maven; see bench/README "Fifteenth pass".
//   gcc -O2 -march=native -o /tmp/simd_peak bench/probes/simd_peak.c && taskset -c 1 /tmp/simd_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define R12(X) X(0)X(1)X(2)X(3)X(4)X(5)X(6)X(7)X(8)X(9)X(10)X(11)
int main(){
  long m=100000000; double t0,t1;
#define DF(k) __m512 f##k=_mm512_set1_ps(k);
  R12(DF)
  __m512 x=_mm512_set1_ps(1.0000001f), y=_mm512_set1_ps(0.9999999f);
  t0=now();
  for(long i=0;i<m;i++){
#define FM(k) f##k=_mm512_fmadd_ps(f##k,x,y);
    R12(FM)
  }
  t1=now();
#define SF(k) +_mm512_reduce_add_ps(f##k)
  printf("fp32 fma512: %.1f GFLOP/s (%.2f instr/ns) %f\n", m*12*32/(t1-t0)/1e9, m*12/(t1-t0)/1e9, 0 R12(SF));
#define DI(k) __m512i i##k=_mm512_set1_epi32(k);
  R12(DI)
  __m512i u=_mm512_set1_epi8(3), v=_mm512_set1_epi8(5);
  t0=now();
  for(long i=0;i<m;i++){
#define IM(k) i##k=_mm512_dpbusd_epi32(i##k,u,v);
    R12(IM)
  }
  t1=now();
#define SI(k) +_mm512_reduce_add_epi32(i##k)
  printf("vpdpbusd512: %.1f GOP/s (%.2f instr/ns) %d\n", m*12*128/(t1-t0)/1e9, m*12/(t1-t0)/1e9, 0 R12(SI));
#define DB(k) __m512 b##k=_mm512_set1_ps(k);
  R12(DB)
  __m512bh p=(__m512bh)_mm512_set1_epi16(0x3f80), q=(__m512bh)_mm512_set1_epi16(0x3f80);
  t0=now();
  for(long i=0;i<m;i++){
#define BM(k) b##k=_mm512_dpbf16_ps(b##k,p,q);
    R12(BM)
  }
  t1=now();
#define SB(k) +_mm512_reduce_add_ps(b##k)
  printf("vdpbf16ps512: %.1f GFLOP/s (%.2f instr/ns) %f\n", m*12*64/(t1-t0)/1e9, m*12/(t1-t0)/1e9, 0 R12(SB));
}
