/* The vector bodies of _txl_kernel.c, included once per instruction set with these macros set:
 * SFX (name suffix), TGT (GCC target string), VW (floats per vector), V (vector type), VZERO, VSET1(x),
 * VLOAD(p), VLOADH(p) (VW float16 values widened to float32), VSTORE(p, v), VFMA(a, b, c) (a * b + c),
 * VADD(a, b), VHSUM(v) (sum of the lanes).
 * Weights are float16 panels: [out / 64][in][64] (64 outputs side by side for each input). */

/* y[b, :out] = x[b, :in] @ W for B rows: each panel is read from memory once, widened in registers */
__attribute__((target(TGT))) static void CAT(gemv_, SFX)(const uint16_t *W, const float *x, int in, int out,
                                                         float *y, int B) {
  enum { NV = 64 / VW };
  for (int p = 0; p < out; p += 64, W += (size_t)in * 64) {
    for (int b = 0; b < B; b++) {
      const float *xb = x + (size_t)b * in;
      const uint16_t *w = W;
      V a[NV];
      for (int k = 0; k < NV; k++) a[k] = VZERO;
      for (int i = 0; i < in; i++, w += 64) {
        V xi = VSET1(xb[i]);
        for (int k = 0; k < NV; k++) a[k] = VFMA(xi, VLOADH(w + k * VW), a[k]);
      }
      for (int k = 0; k < NV; k++) VSTORE(y + (size_t)b * out + p + k * VW, a[k]);
    }
  }
}

/* sc[h * klen + j] = a_h . x_j + w_h . pos_j for the H heads (aw: [H][2][d], a_h then w_h): the content and
 * position scores of position j, from its layer input x_j and its distance's sinusoid row pos_j */
__attribute__((target(TGT))) static void CAT(scores_, SFX)(const float *aw, const float *X, const float *pos,
                                                           int klen, int H, int d, float *sc) {
  enum { NP = VW / 4 }; /* 4 heads x NP positions: VW sums, reduced together (VSUMS) */
  for (int h0 = 0; h0 < H; h0 += 4) {
    int nh = H - h0 < 4 ? H - h0 : 4;
    const float *a[4], *w[4];
    for (int h = 0; h < 4; h++) {
      a[h] = aw + (size_t)(h0 + (h < nh ? h : 0)) * 2 * d;
      w[h] = a[h] + d;
    }
    for (int j = 0; j < klen; j += NP) {
      const float *x[NP], *p[NP];
      V acc[VW];
      for (int k = 0; k < NP; k++) {
        int jk = j + k < klen ? j + k : klen - 1;
        x[k] = X + (size_t)jk * d;
        p[k] = pos + (size_t)jk * d;
      }
      for (int i = 0; i < VW; i++) acc[i] = VZERO;
      for (int c = 0; c < d; c += VW) {
        V vx[NP], vp[NP];
        for (int k = 0; k < NP; k++) vx[k] = VLOAD(x[k] + c), vp[k] = VLOAD(p[k] + c);
        for (int h = 0; h < 4; h++) {
          V va = VLOAD(a[h] + c), vw = VLOAD(w[h] + c);
          for (int k = 0; k < NP; k++) acc[k * 4 + h] = VFMA(vw, vp[k], VFMA(va, vx[k], acc[k * 4 + h]));
        }
      }
      float t[VW];
      VSTORE(t, VSUMS(acc));
      for (int k = 0; k < NP && j + k < klen; k++)
        for (int h = 0; h < nh; h++) sc[(size_t)(h0 + h) * klen + j + k] = t[k * 4 + h];
    }
  }
}

/* x[k] = exp(x[k] - mx) for k < n; returns their sum */
__attribute__((target(TGT))) static float CAT(expsum_, SFX)(float *x, int n, float mx) {
  V sum = VZERO, m = VSET1(mx);
  int k = 0;
  for (; k + VW <= n; k += VW) {
    V e = CAT(vexp_, SFX)(VSUB(VLOAD(x + k), m));
    VSTORE(x + k, e);
    sum = VADD(sum, e);
  }
  float s = VHSUM(sum);
  for (; k < n; k++) s += (x[k] = expf(x[k] - mx));
  return s;
}

/* ctx[h, :d] = scale[h] * ctx[h, :d] + sum_j p[h * klen + j] * x_j for the H heads: blocks of 4 heads x 4
 * vectors of columns in registers */
__attribute__((target(TGT))) static void CAT(ctx_, SFX)(const float *p, const float *X, int klen, int H, int d,
                                                        const float *scale, float *ctx) {
  for (int h0 = 0; h0 < H; h0 += 4) {
    int nh = H - h0 < 4 ? H - h0 : 4;
    for (int c0 = 0; c0 < d; c0 += 4 * VW) {
      V a[4][4];
      for (int h = 0; h < 4; h++)
        for (int k = 0; k < 4; k++)
          a[h][k] = h < nh ? VMUL(VSET1(scale[h0 + h]), VLOAD(ctx + (size_t)(h0 + h) * d + c0 + k * VW)) : VZERO;
      for (int j = 0; j < klen; j++) {
        const float *xj = X + (size_t)j * d + c0;
        V x0 = VLOAD(xj), x1 = VLOAD(xj + VW), x2 = VLOAD(xj + 2 * VW), x3 = VLOAD(xj + 3 * VW);
        for (int h = 0; h < nh; h++) {
          V ph = VSET1(p[(size_t)(h0 + h) * klen + j]);
          a[h][0] = VFMA(ph, x0, a[h][0]);
          a[h][1] = VFMA(ph, x1, a[h][1]);
          a[h][2] = VFMA(ph, x2, a[h][2]);
          a[h][3] = VFMA(ph, x3, a[h][3]);
        }
      }
      for (int h = 0; h < nh; h++)
        for (int k = 0; k < 4; k++) VSTORE(ctx + (size_t)(h0 + h) * d + c0 + k * VW, a[h][k]);
    }
  }
}

static const Ops CAT(ops_, SFX) = {CAT(gemv_, SFX), CAT(scores_, SFX), CAT(ctx_, SFX), CAT(expsum_, SFX),
                                   STR(SFX), 4 * VW};

#undef SFX
#undef TGT
#undef VW
#undef V
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VLOADH
#undef VSTORE
#undef VFMA
#undef VADD
#undef VMUL
#undef VSUB
#undef VSUMS
#undef VHSUM
