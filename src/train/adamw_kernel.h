// AdamW's element-wise update over flat arrays, torch-free and compiled apart with
// -fno-math-errno (CMakeLists.txt): with errno semantics GCC keeps each sqrt a possible
// library call and leaves the loop scalar, 4 elements at a time fewer than it could.
#pragma once
#include <cstdint>

namespace recap::train {

// One step's constants, AdamW's bias corrections folded in as torch computes them:
//   g' = g * grad_scale;  m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'^2
//   p  = p * decay - step_size * m / (sqrt(v) / sqrt_bc2 + eps)
struct AdamWCoefficients {
  double grad_scale, beta1, beta2, decay, step_size, sqrt_bc2, eps;
};

// Elements [begin, end). Each depends only on itself, so any split over threads gives the
// same result.
void adamw_update(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end,
                  const AdamWCoefficients& c);
void adamw_update(double* p, const double* g, double* m, double* v, int64_t begin, int64_t end,
                  const AdamWCoefficients& c);

}  // namespace recap::train
