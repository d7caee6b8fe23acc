// Multi-resolution hash-grid lookups on the CPU, bit for bit the layout of nerfstudio's torch HashEncoding:
// one table of num_levels * 2**log2_size rows, level l in rows [l * 2**log2_size, (l + 1) * 2**log2_size),
// corners hashed as (x * 1) ^ (y * 2654435761) ^ (z * 805459861) mod 2**log2_size, trilinear weights.
//
// Why a kernel: in torch ops every lookup becomes rows of (N, levels, 8)-sized temporaries, so a step is
// memory traffic, not arithmetic. Here each level's slice of the table (a few MB) stays in cache while all
// points visit it, and the backward pass scatters into disjoint level slices from different threads.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <cmath>

namespace {

constexpr int64_t kPrimes[3] = {1, 2654435761LL, 805459861LL};

// Calls visit(row, weight) for the 8 grid corners around point xyz at one level's scale.
template <typename Visit>
inline void visit_corners(const float* xyz, float scale, int64_t mask, int64_t level_offset, Visit&& visit) {
  int64_t lo[3], hi[3];
  float frac[3];
  for (int d = 0; d < 3; ++d) {
    const float s = xyz[d] * scale;
    const float fl = std::floor(s);
    lo[d] = static_cast<int64_t>(fl);
    hi[d] = static_cast<int64_t>(std::ceil(s));
    frac[d] = s - fl;
  }
  for (int corner = 0; corner < 8; ++corner) {
    int64_t hash = 0;
    float weight = 1.0f;
    for (int d = 0; d < 3; ++d) {
      const bool up = (corner >> d) & 1;
      hash ^= (up ? hi[d] : lo[d]) * kPrimes[d];
      weight *= up ? frac[d] : 1.0f - frac[d];
    }
    visit(level_offset + (hash & mask), weight);  // & mask == floor-mod for a power-of-two table
  }
}

void check(const torch::Tensor& x, const torch::Tensor& scales) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous() && x.dim() == 2 &&
                  x.size(1) == 3,
              "hash grid kernel: positions must be a contiguous float32 CPU tensor of shape (N, 3)");
  TORCH_CHECK(scales.scalar_type() == torch::kFloat32 && scales.is_contiguous(), "scales must be float32");
}

}  // namespace

// positions (N, 3) in [0, 1], table (L * 2**log2_size, F), scales (L,) -> features (N, L * F)
torch::Tensor hash_grid_forward(torch::Tensor positions, torch::Tensor table, torch::Tensor scales,
                                int64_t log2_size) {
  check(positions, scales);
  TORCH_CHECK(table.scalar_type() == torch::kFloat32 && table.is_contiguous(), "table must be contiguous float32");
  const int64_t n = positions.size(0), levels = scales.size(0), features = table.size(1);
  const int64_t size = int64_t{1} << log2_size;
  auto out = torch::zeros({n, levels * features}, positions.options());
  const float* xyz = positions.data_ptr<float>();
  const float* rows = table.data_ptr<float>();
  const float* scale = scales.data_ptr<float>();
  float* result = out.data_ptr<float>();
  for (int64_t level = 0; level < levels; ++level) {  // one level at a time: its table slice stays cached
    at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        float* acc = result + p * levels * features + level * features;
        visit_corners(xyz + 3 * p, scale[level], size - 1, level * size, [&](int64_t row, float w) {
          for (int64_t f = 0; f < features; ++f) acc[f] += w * rows[row * features + f];
        });
      }
    });
  }
  return out;
}

// Gradient of the forward pass with respect to the table: (L * 2**log2_size, F).
torch::Tensor hash_grid_backward(torch::Tensor positions, torch::Tensor grad_out, torch::Tensor scales,
                                 int64_t log2_size, int64_t features) {
  check(positions, scales);
  grad_out = grad_out.to(torch::kFloat32).contiguous();
  const int64_t n = positions.size(0), levels = scales.size(0);
  const int64_t size = int64_t{1} << log2_size;
  auto grad_table = torch::zeros({levels * size, features}, positions.options());
  const float* xyz = positions.data_ptr<float>();
  const float* grad = grad_out.data_ptr<float>();
  const float* scale = scales.data_ptr<float>();
  float* out = grad_table.data_ptr<float>();
  at::parallel_for(0, levels, 1, [&](int64_t begin, int64_t end) {  // threads own disjoint level slices
    for (int64_t level = begin; level < end; ++level) {
      for (int64_t p = 0; p < n; ++p) {
        const float* g = grad + p * levels * features + level * features;
        visit_corners(xyz + 3 * p, scale[level], size - 1, level * size, [&](int64_t row, float w) {
          for (int64_t f = 0; f < features; ++f) out[row * features + f] += w * g[f];
        });
      }
    }
  });
  return grad_table;
}

TORCH_LIBRARY_FRAGMENT(frinr, m) {
  m.def("hash_grid_forward", &hash_grid_forward);
  m.def("hash_grid_backward", &hash_grid_backward);
}
