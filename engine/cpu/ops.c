/* ops.c - per-row kernels of the CPU backend: RMSNorm, RoPE, SwiGLU, softmax
 *
 * Plain C loops the compiler vectorises; the matmuls dominate the time.
 * Reductions accumulate in double so that results do not depend on how a
 * row is split, and the reference tests can hold tight tolerances.
 */
#include <math.h>

#include "cpu_internal.h"

void rf__cpu_rmsnorm(float *dst, const float *src, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)src[i] * src[i];
    float scale = (float)(1.0 / sqrt(sum / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++)
        dst[i] = src[i] * scale * w[i];
}

void rf__cpu_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                  rf_rope_kind_t kind, float freq_base, float freq_scale,
                  const float *freq_factors, int32_t pos)
{
    uint32_t half = n_rot / 2;
    for (uint32_t i = 0; i < half; i++) {
        /* theta_i = pos * scale * base^(-2i/n_rot) / factor_i */
        double theta = (double)pos * freq_scale * pow((double)freq_base, -2.0 * i / n_rot);
        if (freq_factors != NULL)
            theta /= freq_factors[i];
        float c = (float)cos(theta), s = (float)sin(theta);
        for (uint32_t h = 0; h < n_heads; h++) {
            float *head = x + (size_t)h * head_dim;
            uint32_t a, b;
            if (kind == RF_ROPE_NEOX) {
                a = i;
                b = i + half;
            } else {
                a = 2 * i;
                b = 2 * i + 1;
            }
            float x0 = head[a], x1 = head[b];
            head[a] = x0 * c - x1 * s;
            head[b] = x0 * s + x1 * c;
        }
    }
}

void rf__cpu_swiglu(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void rf__cpu_softmax(float *x, int64_t n)
{
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max)
            max = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        x[i] *= inv;
}
