#include "train/adamw_kernel.h"

#include <cmath>

namespace recap::train {

namespace {

template <typename T>
void update(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t begin,
            int64_t end, const AdamWCoefficients& c) {
  const T scale = c.grad_scale, b1 = c.beta1, b2 = c.beta2, decay = c.decay,
          step_size = c.step_size, sqrt_bc2 = c.sqrt_bc2, eps = c.eps;
  for (int64_t i = begin; i < end; ++i) {
    const T grad = g[i] * scale;
    const T mi = m[i] * b1 + grad * (1 - b1);
    const T vi = v[i] * b2 + grad * grad * (1 - b2);
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  }
}

}  // namespace

void adamw_update(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end,
                  const AdamWCoefficients& c) {
  update(p, g, m, v, begin, end, c);
}

void adamw_update(double* p, const double* g, double* m, double* v, int64_t begin, int64_t end,
                  const AdamWCoefficients& c) {
  update(p, g, m, v, begin, end, c);
}

}  // namespace recap::train
