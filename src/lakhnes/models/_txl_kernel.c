/* One batch-1 (or batch-B) decoding step of a Transformer-XL with float16 weights: the optional compiled
 * kernel of lakhnes.models.txl_kernel (which packs the weights, owns every buffer and falls back to numpy
 * where this module is absent).
 *
 * Bytes: the weight matrices are float16 (half the float32 bytes) and are widened to float32 in registers
 * inside the products; keys and values stay float32; the relative-position scores come from one sinusoid
 * table shared by every layer (w_h = W_r,h^T (q_h + v_h), then w_h . pos_j), so no per-layer position
 * projections are stored. All arithmetic is float32.
 *
 * Instruction sets are picked at run time (__builtin_cpu_supports): AVX-512F, else AVX2 + FMA + F16C,
 * else portable C; nothing assumes the build machine's CPU. The Python side passes its buffers as
 * addresses in one int64 descriptor (see txl_kernel.py), so a step parses four integers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  void (*gemv)(const uint16_t *W, const float *x, int in, int out, float *y, int B);
  void (*scores)(const float *aw, const float *X, const float *pos, int klen, int H, int d, float *sc);
  void (*ctx)(const float *p, const float *X, int klen, int H, int d, const float *scale, float *ctx);
  float (*expsum)(float *x, int n, float mx);
  const char *name;
  int block; /* d must be a multiple of this */
} Ops;

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define STR_(a) #a
#define STR(a) STR_(a)

/* ---------------------------------------------------------------- portable C (sums in double: a plain
 * left-to-right float sum over a thousand terms strays further from numpy's than the vector lanes do) */

static float h2f(uint16_t h) {
  uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, f;
  if (e == 0) {
    float r = (float)m * 5.9604644775390625e-8f; /* zero or subnormal: m * 2^-24 */
    return s ? -r : r;
  }
  f = e == 31 ? (s | 0x7f800000u | (m << 13)) : (s | ((e + 112) << 23) | (m << 13));
  float r;
  memcpy(&r, &f, 4);
  return r;
}

static void gemv_c(const uint16_t *W, const float *x, int in, int out, float *y, int B) {
  for (int p = 0; p < out; p += 64, W += (size_t)in * 64)
    for (int b = 0; b < B; b++) {
      double a[64] = {0};
      const uint16_t *w = W;
      for (int i = 0; i < in; i++, w += 64)
        for (int k = 0; k < 64; k++) a[k] += (double)x[(size_t)b * in + i] * h2f(w[k]);
      for (int k = 0; k < 64; k++) y[(size_t)b * out + p + k] = (float)a[k];
    }
}

static void scores_c(const float *aw, const float *X, const float *pos, int klen, int H, int d, float *sc) {
  for (int j = 0; j < klen; j++)
    for (int h = 0; h < H; h++) {
      double a = 0.;
      for (int c = 0; c < d; c++)
        a += (double)aw[(size_t)h * 2 * d + c] * X[(size_t)j * d + c] +
             (double)aw[(size_t)(2 * h + 1) * d + c] * pos[(size_t)j * d + c];
      sc[(size_t)h * klen + j] = (float)a;
    }
}

static void ctx_c(const float *p, const float *X, int klen, int H, int d, const float *scale, float *ctx) {
  for (int h = 0; h < H; h++)
    for (int c = 0; c < d; c++) {
      double a = scale[h] * ctx[(size_t)h * d + c];
      for (int j = 0; j < klen; j++) a += (double)p[(size_t)h * klen + j] * X[(size_t)j * d + c];
      ctx[(size_t)h * d + c] = (float)a;
    }
}

static float expsum_c(float *x, int n, float mx) {
  float s = 0.f;
  for (int k = 0; k < n; k++) s += (x[k] = expf(x[k] - mx));
  return s;
}

static const Ops ops_c = {gemv_c, scores_c, ctx_c, expsum_c, "c", 1};

/* ---------------------------------------------------------------- x86 vector bodies */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx"))) static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* exp of each lane (Cephes' expf: 2^n p(r), within 2 ulp; inputs clamped to [-87.3, 88.7]) */
#define VEXP_BODY(V, P)                                                                                    \
  x = P##_min_ps(P##_max_ps(x, P##_set1_ps(-87.3f)), P##_set1_ps(88.7f));                                  \
  V n = P##_roundscale(P##_mul_ps(x, P##_set1_ps(1.44269504f)));                                           \
  x = P##_fnmadd_ps(n, P##_set1_ps(0.693359375f), x);                                                      \
  x = P##_fnmadd_ps(n, P##_set1_ps(-2.12194440e-4f), x);                                                   \
  V y = P##_set1_ps(1.9875691500e-4f);                                                                     \
  y = P##_fmadd_ps(y, x, P##_set1_ps(1.3981999507e-3f));                                                   \
  y = P##_fmadd_ps(y, x, P##_set1_ps(8.3334519073e-3f));                                                   \
  y = P##_fmadd_ps(y, x, P##_set1_ps(4.1665795894e-2f));                                                   \
  y = P##_fmadd_ps(y, x, P##_set1_ps(1.6666665459e-1f));                                                   \
  y = P##_fmadd_ps(y, x, P##_set1_ps(5.0000001201e-1f));                                                   \
  y = P##_fmadd_ps(y, P##_mul_ps(x, x), P##_add_ps(x, P##_set1_ps(1.0f)));
#define _mm256_roundscale(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define _mm512_roundscale(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

__attribute__((target("avx2,fma"))) static inline __m256 vexp_avx2(__m256 x) {
  VEXP_BODY(__m256, _mm256)
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

__attribute__((target("avx512f"))) static inline __m512 vexp_avx512(__m512 x) {
  VEXP_BODY(__m512, _mm512)
  __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/* lane i of the result: the sum of v[i]'s lanes, for 8 vectors */
__attribute__((target("avx"))) static inline __m256 sums8(const __m256 *v) {
  __m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
  __m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
  __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

__attribute__((target("avx512f"))) static inline __m512 sums16(const __m512 *v) {
  __m256 y[16];
  for (int i = 0; i < 16; i++)
    y[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[i]), 1)));
  __m512 lo = _mm512_castps256_ps512(sums8(y));
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(lo), _mm256_castps_pd(sums8(y + 8)), 1));
}

#define SFX avx2
#define TGT "avx2,fma,f16c"
#define VW 8
#define V __m256
#define VZERO _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VSUMS(v) sums8(v)
#define VHSUM(v) hsum256(v)
#include "_txl_kernel_simd.h"

#define SFX avx512
#define TGT "avx512f,avx2,fma,f16c"
#define VW 16
#define V __m512
#define VZERO _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VSUMS(v) sums16(v)
#define VHSUM(v) _mm512_reduce_add_ps(v)
#include "_txl_kernel_simd.h"

static const Ops *const all_ops[] = {&ops_c, &ops_avx2, &ops_avx512};
static void detect(int *ok) { /* which of all_ops this CPU runs */
  __builtin_cpu_init();
  ok[0] = 1;
  ok[1] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  ok[2] = ok[1] && __builtin_cpu_supports("avx512f");
}
#else
static const Ops *const all_ops[] = {&ops_c};
static void detect(int *ok) { ok[0] = 1; }
#endif
#define N_OPS ((int)(sizeof all_ops / sizeof *all_ops))
static int runs[N_OPS];

static const Ops *ops, *best;

/* ---------------------------------------------------------------- the step */

/* LayerNorm over d floats, in numpy's order (x - mean; / sqrt(var + eps); * g; + b), into y */
static void layer_norm(const float *x, const float *g, const float *b, int d, float eps, float *y) {
  float inv_d = 1.0f / (float)d, s = 0.f, v = 0.f;
  for (int i = 0; i < d; i++) s += x[i];
  float mean = s * inv_d;
  for (int i = 0; i < d; i++) {
    y[i] = x[i] - mean;
    v += y[i] * y[i];
  }
  float sd = sqrtf(v * inv_d + eps);
  for (int i = 0; i < d; i++) y[i] = y[i] / sd * g[i] + b[i];
}

enum { JB = 16 }; /* positions per block of attend: their rows stay in L1 between scores and sums */

/* ctx[h, :d] = sum_j softmax_j(score_h(j)) x_j over klen positions, in blocks of JB: the block's scores, its
 * probabilities against the running maximum, then its rows into the running sums (an online softmax: each
 * x_j and pos_j is read from memory once). tmp: 3 H + H JB floats. */
static void attend(const float *aw, const float *X, const float *pos, int klen, int H, int d, float *ctx,
                   float *tmp) {
  float *m = tmp, *l = m + H, *scale = l + H, *sc = scale + H;
  for (int h = 0; h < H; h++) m[h] = -INFINITY, l[h] = 0.f;
  memset(ctx, 0, (size_t)H * d * sizeof(float));
  for (int j0 = 0; j0 < klen; j0 += JB) {
    int nb = klen - j0 < JB ? klen - j0 : JB;
    ops->scores(aw, X + (size_t)j0 * d, pos + (size_t)j0 * d, nb, H, d, sc);
    for (int h = 0; h < H; h++) {
      float *x = sc + (size_t)h * nb, mx = m[h], s;
      for (int k = 0; k < nb; k++) mx = x[k] > mx ? x[k] : mx;
      s = ops->expsum(x, nb, mx);
      scale[h] = expf(m[h] - mx);
      l[h] = l[h] * scale[h] + s;
      m[h] = mx;
    }
    ops->ctx(sc, X + (size_t)j0 * d, nb, H, d, scale, ctx);
  }
  for (int h = 0; h < H; h++)
    for (int c = 0; c < d; c++) ctx[(size_t)h * d + c] /= l[h];
}

enum { G_LAYERS, G_D, G_H, G_DH, G_DI, G_VPAD, G_PRE, G_CAP, G_N, G_B, G_EPS, G_EMB_SCALE, G_EMB, G_OUT, G_OUT_B,
       G_GF, G_BF, G_U, G_V, G_POS, G_LOGITS, G_HEAD };
enum { L_Q, L_K, L_R, L_V, L_O, L_F1, L_F2, L_BF1, L_BF2, L_G1, L_B1, L_G2, L_B2, L_X, L_SIZE };

#define PTR(T, i) ((T)(intptr_t)D[i])
#define LP(T, i) ((T)(intptr_t)L[i])

static float *scratch;
static size_t scratch_n;

/* one step for B rows: tokens[b] in, logits [B, vpad] out. Each layer caches its inputs x_j (row b's new
 * one goes to position e - 1) and attends over positions s .. e - 1; with the projections folded into the
 * query side: score_h(j) = ((q_h + u_h) W_k,h) . x_j + ((q_h + v_h) W_r,h) . pos(e - 1 - j), and head h's
 * output W_v,h (sum_j p_h(j) x_j). Weight panels per head: W_k,h and W_r,h as [dh -> d], W_v,h as [d -> dh]. */
static int run_step(const int64_t *D, const int64_t *tokens, int s, int e) {
  int nl = (int)D[G_LAYERS], d = (int)D[G_D], H = (int)D[G_H], dh = (int)D[G_DH], di = (int)D[G_DI];
  int vpad = (int)D[G_VPAD], pre = (int)D[G_PRE], cap = (int)D[G_CAP], n = (int)D[G_N], B = (int)D[G_B];
  int hd = H * dh, klen = e - s;
  double eps_d, scale_d;
  memcpy(&eps_d, &D[G_EPS], 8);
  memcpy(&scale_d, &D[G_EMB_SCALE], 8);
  float eps = (float)eps_d, qscale = 1.0f / sqrtf((float)dh);
  size_t need = (size_t)B * (3 * d + 2 * hd + di) + (size_t)H * (3 * d + 3 + JB) + 2 * (size_t)hd;
  if (need > scratch_n) {
    float *p = realloc(scratch, need * sizeof(float));
    if (!p) return -1;
    scratch = p, scratch_n = need;
  }
  float *h = scratch, *x = h + (size_t)B * d, *o = x + (size_t)B * d, *q = o + (size_t)B * d;
  float *att = q + (size_t)B * hd, *f = att + (size_t)B * hd, *aw = f + (size_t)B * di;
  float *ctx = aw + (size_t)H * 2 * d, *sc = ctx + (size_t)H * d, *qu = sc + (size_t)H * (3 + JB), *qv = qu + hd;
  const uint16_t *emb = PTR(const uint16_t *, G_EMB);
  const float *u = PTR(const float *, G_U), *vb = PTR(const float *, G_V);
  const float *pos = PTR(const float *, G_POS) + (size_t)(n + 1 - klen) * d; /* rows for distances klen-1 .. 0 */
  for (int b = 0; b < B; b++)
    for (int i = 0; i < d; i++) h[(size_t)b * d + i] = h2f(emb[(size_t)tokens[b] * d + i]) * (float)scale_d;
  for (int l = 0; l < nl; l++) {
    const int64_t *L = D + G_HEAD + (size_t)l * L_SIZE;
    const float *g1 = LP(const float *, L_G1), *b1 = LP(const float *, L_B1), *g2 = LP(const float *, L_G2);
    const float *b2 = LP(const float *, L_B2), *bf1 = LP(const float *, L_BF1), *bf2 = LP(const float *, L_BF2);
    const uint16_t *wk = LP(const uint16_t *, L_K), *wr = LP(const uint16_t *, L_R), *wv = LP(const uint16_t *, L_V);
    for (int b = 0; b < B; b++) { /* the layer input, cached at position e - 1 */
      float *xb = LP(float *, L_X) + ((size_t)b * cap + e - 1) * d;
      if (pre) layer_norm(h + (size_t)b * d, g1, b1, d, eps, xb);
      else memcpy(xb, h + (size_t)b * d, (size_t)d * sizeof(float));
      memcpy(x + (size_t)b * d, xb, (size_t)d * sizeof(float));
    }
    ops->gemv(LP(const uint16_t *, L_Q), x, d, hd, q, B);
    for (int b = 0; b < B; b++) {
      const float *X = LP(const float *, L_X) + ((size_t)b * cap + s) * d;
      for (int c = 0; c < hd; c++) {
        float qc = q[(size_t)b * hd + c] * qscale;
        qu[c] = qc + u[c];
        qv[c] = qc + vb[c];
      }
      for (int hh = 0; hh < H; hh++) { /* a_h = W_k,h^T (q_h + u_h), w_h = W_r,h^T (q_h + v_h): [d] each */
        ops->gemv(wk + (size_t)hh * dh * d, qu + hh * dh, dh, d, aw + (size_t)hh * 2 * d, 1);
        ops->gemv(wr + (size_t)hh * dh * d, qv + hh * dh, dh, d, aw + (size_t)hh * 2 * d + d, 1);
      }
      attend(aw, X, pos, klen, H, d, ctx, sc);
      for (int hh = 0; hh < H; hh++) /* head h's output: W_v,h ctx_h */
        ops->gemv(wv + (size_t)hh * d * dh, ctx + (size_t)hh * d, d, dh, att + (size_t)b * hd + hh * dh, 1);
    }
    ops->gemv(LP(const uint16_t *, L_O), att, hd, d, o, B);
    for (int b = 0; b < B; b++) {
      float *hb = h + (size_t)b * d, *ob = o + (size_t)b * d, *xb = x + (size_t)b * d;
      for (int i = 0; i < d; i++) ob[i] += hb[i];
      if (pre) {
        memcpy(hb, ob, (size_t)d * sizeof(float));
        layer_norm(hb, g2, b2, d, eps, xb);
      } else {
        layer_norm(ob, g1, b1, d, eps, hb);
        memcpy(xb, hb, (size_t)d * sizeof(float));
      }
    }
    ops->gemv(LP(const uint16_t *, L_F1), x, d, di, f, B);
    for (size_t i = 0; i < (size_t)B * di; i++) {
      float t = f[i] + bf1[i % di];
      f[i] = t > 0.f ? t : 0.f;
    }
    ops->gemv(LP(const uint16_t *, L_F2), f, di, d, o, B);
    for (int b = 0; b < B; b++) {
      float *hb = h + (size_t)b * d, *ob = o + (size_t)b * d;
      for (int i = 0; i < d; i++) ob[i] = ob[i] + bf2[i] + hb[i];
      if (pre) memcpy(hb, ob, (size_t)d * sizeof(float));
      else layer_norm(ob, g2, b2, d, eps, hb);
    }
  }
  if (pre)
    for (int b = 0; b < B; b++)
      layer_norm(h + (size_t)b * d, PTR(const float *, G_GF), PTR(const float *, G_BF), d, eps, x + (size_t)b * d);
  float *logits = PTR(float *, G_LOGITS);
  const float *ob = PTR(const float *, G_OUT_B);
  ops->gemv(PTR(const uint16_t *, G_OUT), pre ? x : h, d, vpad, logits, B);
  for (size_t i = 0; i < (size_t)B * vpad; i++) logits[i] += ob[i % vpad];
  return 0;
}

static PyObject *k_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 4) return PyErr_Format(PyExc_TypeError, "step(desc, tokens, s, e) takes 4 integers");
  long long v[4];
  for (int i = 0; i < 4; i++) {
    v[i] = PyLong_AsLongLong(args[i]);
    if (v[i] == -1 && PyErr_Occurred()) return NULL;
  }
  const int64_t *D = (const int64_t *)(intptr_t)v[0];
  if (v[2] < 0 || v[3] <= v[2] || v[3] > D[G_CAP]) return PyErr_Format(PyExc_ValueError, "bad window");
  if (run_step(D, (const int64_t *)(intptr_t)v[1], (int)v[2], (int)v[3])) return PyErr_NoMemory();
  Py_RETURN_NONE;
}

static PyObject *k_isa(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs > 1) return PyErr_Format(PyExc_TypeError, "isa([name]) takes at most one argument");
  if (nargs == 1 && args[0] != Py_None) { /* pick one (tests): the best one, or any this CPU runs */
    const char *want = PyUnicode_AsUTF8(args[0]);
    if (!want) return NULL;
    int k = -1;
    for (int i = 0; i < N_OPS; i++)
      if (!strcmp(all_ops[i]->name, want) && runs[i]) k = i;
    if (k < 0) return PyErr_Format(PyExc_ValueError, "instruction set %s is not available here", want);
    ops = all_ops[k];
  }
  return Py_BuildValue("(si)", ops->name, ops->block);
}

static PyObject *k_best(PyObject *self, PyObject *unused) { return Py_BuildValue("(si)", best->name, best->block); }

/* lakhnes.decoding.sampler's top-k: the ids of x's finite entries (float64) among its k largest (k 0: all), in id
 * order, into ids (int64), with their values less the largest into p (float64): their count, or -1 where the k-th
 * largest equals the next (the caller keeps numpy's choice). Comparisons and a subtraction only: exact. */
static PyObject *k_topk(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  long k = nargs == 4 ? PyLong_AsLong(args[1]) : -1;
  Py_buffer b[3] = {{0}};
  int got = 0; /* buffers held: x, then ids and p (writable) */
  while (k >= 0 && k <= 64 && got < 3 && !PyObject_GetBuffer(args[got + !!got], b + got, got ? PyBUF_WRITABLE : 0)) got++;
  Py_ssize_t n = got == 3 && b[1].len >= b[0].len && b[2].len >= b[0].len ? b[0].len / 8 : -1, m = 0, c = 0, j;
  const double *x = b[0].buf;
  double top[65] = {0}, thr = -INFINITY; /* the k + 1 largest so far, descending */
  for (Py_ssize_t i = 0; i < n; i++) {
    if (!(x[i] > -INFINITY) || (++m > k + 1 && !(x[i] > top[k]))) continue;
    for (j = c > k ? k : c++; j > 0 && top[j - 1] < x[i]; j--) top[j] = top[j - 1];
    top[j] = x[i];
  }
  if (k && m > k) thr = top[k - 1] > top[k] ? top[k - 1] : INFINITY;
  for (Py_ssize_t i = c = 0; i < n && thr < INFINITY; i++)
    if (x[i] > -INFINITY && x[i] >= thr) ((int64_t *)b[1].buf)[c] = i, ((double *)b[2].buf)[c++] = x[i] - top[0];
  while (got) PyBuffer_Release(b + --got);
  if (n < 0) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "topk(x, k <= 64, ids, p)");
  return PyLong_FromSsize_t(thr < INFINITY ? c : -1);
}

static PyMethodDef methods[] = {
    {"step", (PyCFunction)(void (*)(void))k_step, METH_FASTCALL, "step(desc, tokens, s, e): one step"},
    {"isa", (PyCFunction)(void (*)(void))k_isa, METH_FASTCALL, "isa([name]): the instruction set in use (name: pick one)"},
    {"best", k_best, METH_NOARGS, "best(): the best instruction set this CPU runs"},
    {"topk", (PyCFunction)(void (*)(void))k_topk, METH_FASTCALL, "topk(x, k, ids, p): the sampler's top-k"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_txl_kernel", NULL, -1, methods};

PyMODINIT_FUNC PyInit__txl_kernel(void) {
  detect(runs);
  for (int i = 0; i < N_OPS; i++)
    if (runs[i]) best = ops = all_ops[i];
  return PyModule_Create(&module);
}
