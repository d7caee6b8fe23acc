// Multi-resolution hash-grid lookups on the CPU, bit for bit the layout of nerfstudio's torch HashEncoding:
// one table of num_levels * 2**log2_size rows, level l in rows [l * 2**log2_size, (l + 1) * 2**log2_size),
// corners hashed as (x * 1) ^ (y * 2654435761) ^ (z * 805459861) mod 2**log2_size, trilinear weights.
//
// Why a kernel: in torch ops every lookup becomes rows of (N, levels, 8)-sized temporaries, so a step is
// memory traffic, not arithmetic. Here each level's slice of the table (a few MB) stays in cache while all
// points visit it, and the backward pass scatters into disjoint level slices from different threads. A point's
// features are summed in registers and written once, with the row width a compile-time constant: 2-3x faster than
// summing into the zeroed output row by row (BENCHMARKS.md, *hash-encoding*). The gradient with respect to the
// positions (camera pose refinement backpropagates into the rays) is per point, so there threads own points.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace {

// The primes in 32 bits: the table index keeps only the low log2_size (< 32) bits of the hash, and the low bits of a
// product or an xor depend only on the low bits of the operands, so 32-bit arithmetic gives the same rows.
constexpr uint32_t kPrimeY = 2654435761u, kPrimeZ = 805459861u;

// Calls visit(row, factors) for the 8 grid corners around point xyz at one level's scale; factors[d] is the corner's
// interpolation factor along axis d (frac towards the upper corner, 1 - frac towards the lower one).
template <typename Visit>
inline void visit_corner_factors(const float* xyz, float scale, uint32_t mask, int64_t level_offset, Visit&& visit) {
  uint32_t lo[3], hi[3];
  float frac[3];
  for (int d = 0; d < 3; ++d) {
    const float s = xyz[d] * scale;
    const float fl = std::floor(s);
    lo[d] = static_cast<uint32_t>(static_cast<int64_t>(fl));
    hi[d] = static_cast<uint32_t>(static_cast<int64_t>(std::ceil(s)));
    frac[d] = s - fl;
  }
  const uint32_t hash_y[2] = {lo[1] * kPrimeY, hi[1] * kPrimeY}, hash_z[2] = {lo[2] * kPrimeZ, hi[2] * kPrimeZ};
  for (int corner = 0; corner < 8; ++corner) {
    const int up_x = corner & 1, up_y = (corner >> 1) & 1, up_z = (corner >> 2) & 1;
    const float factors[3] = {up_x ? frac[0] : 1.0f - frac[0], up_y ? frac[1] : 1.0f - frac[1],
                              up_z ? frac[2] : 1.0f - frac[2]};
    const uint32_t hash = (up_x ? hi[0] : lo[0]) ^ hash_y[up_y] ^ hash_z[up_z];
    visit(level_offset + (hash & mask), factors, corner);  // & mask == floor-mod for a power-of-two table
  }
}

// Calls visit(row, weight) for the 8 grid corners around point xyz at one level's scale.
template <typename Visit>
inline void visit_corners(const float* xyz, float scale, uint32_t mask, int64_t level_offset, Visit&& visit) {
  visit_corner_factors(xyz, scale, mask, level_offset, [&](int64_t row, const float* factors, int) {
    visit(row, factors[0] * factors[1] * factors[2]);  // the product in torch's order: x, then y, then z
  });
}

// One level of the forward pass for points [begin, end): each point's F features summed in registers, written once.
template <int F>
void forward_level(const float* xyz, const float* rows, float scale, uint32_t mask, int64_t level_offset,
                   float* out, int64_t out_stride, int64_t begin, int64_t end) {
  for (int64_t p = begin; p < end; ++p) {
    float acc[F] = {};
    visit_corners(xyz + 3 * p, scale, mask, level_offset, [&](int64_t row, float w) {
      for (int f = 0; f < F; ++f) acc[f] += w * rows[row * F + f];
    });
    for (int f = 0; f < F; ++f) out[p * out_stride + f] = acc[f];
  }
}

// One level of the backward pass over all n points (one thread owns the level's slice of grad_table).
template <int F>
void backward_level(const float* xyz, const float* grad, float scale, uint32_t mask, int64_t level_offset,
                    float* grad_table, int64_t grad_stride, int64_t n) {
  for (int64_t p = 0; p < n; ++p) {
    float g[F];
    for (int f = 0; f < F; ++f) g[f] = grad[p * grad_stride + f];
    visit_corners(xyz + 3 * p, scale, mask, level_offset, [&](int64_t row, float w) {
      for (int f = 0; f < F; ++f) grad_table[row * F + f] += w * g[f];
    });
  }
}

// One level's share of the gradient with respect to the positions, points [begin, end). A corner's weight is the
// product of its three factors, each frac or 1 - frac of x * scale, so its derivative along axis d is +-scale times
// the other two factors; the grid rows themselves (floor, ceil) are piecewise constant, as in torch.
template <int F>
void position_grad_level(const float* xyz, const float* rows, const float* grad, float scale, uint32_t mask,
                         int64_t level_offset, int64_t grad_stride, float* grad_xyz, int64_t begin, int64_t end) {
  for (int64_t p = begin; p < end; ++p) {
    float g[3] = {};
    visit_corner_factors(xyz + 3 * p, scale, mask, level_offset, [&](int64_t row, const float* factors, int corner) {
      float dot = 0.0f;  // the upstream gradient against this corner's features
      for (int f = 0; f < F; ++f) dot += grad[p * grad_stride + f] * rows[row * F + f];
      for (int d = 0; d < 3; ++d) {
        const float side = ((corner >> d) & 1) ? scale : -scale;
        g[d] += dot * side * factors[(d + 1) % 3] * factors[(d + 2) % 3];
      }
    });
    for (int d = 0; d < 3; ++d) grad_xyz[3 * p + d] += g[d];
  }
}

// Calls body(std::integral_constant<int, F>) for the table's features per level (tiny-cuda-nn's choices: 1, 2, 4, 8).
template <typename Body>
void with_features(int64_t features, Body&& body) {
  switch (features) {
    case 1: return body(std::integral_constant<int, 1>{});
    case 2: return body(std::integral_constant<int, 2>{});
    case 4: return body(std::integral_constant<int, 4>{});
    case 8: return body(std::integral_constant<int, 8>{});
    default: TORCH_CHECK(false, "hash grid kernel: features per level must be 1, 2, 4 or 8, got ", features);
  }
}

void check(const torch::Tensor& x, const torch::Tensor& scales, int64_t log2_size) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous() && x.dim() == 2 &&
                  x.size(1) == 3,
              "hash grid kernel: positions must be a contiguous float32 CPU tensor of shape (N, 3)");
  TORCH_CHECK(scales.scalar_type() == torch::kFloat32 && scales.is_contiguous(), "scales must be float32");
  TORCH_CHECK(0 < log2_size && log2_size < 32, "hash grid kernel: log2 of the table size must be in 1..31");
}

}  // namespace

// positions (N, 3) in [0, 1], table (L * 2**log2_size, F), scales (L,) -> features (N, L * F)
torch::Tensor hash_grid_forward(torch::Tensor positions, torch::Tensor table, torch::Tensor scales,
                                int64_t log2_size) {
  check(positions, scales, log2_size);
  TORCH_CHECK(table.scalar_type() == torch::kFloat32 && table.is_contiguous(), "table must be contiguous float32");
  const int64_t n = positions.size(0), levels = scales.size(0), features = table.size(1);
  const int64_t size = int64_t{1} << log2_size;
  auto out = torch::empty({n, levels * features}, positions.options());
  const float* xyz = positions.data_ptr<float>();
  const float* rows = table.data_ptr<float>();
  const float* scale = scales.data_ptr<float>();
  float* result = out.data_ptr<float>();
  with_features(features, [&](auto f) {
    constexpr int F = decltype(f)::value;
    for (int64_t level = 0; level < levels; ++level) {  // one level at a time: its table slice stays cached
      at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
        forward_level<F>(xyz, rows, scale[level], size - 1, level * size, result + level * F, levels * F, begin, end);
      });
    }
  });
  return out;
}

// Gradient of the forward pass with respect to the table: (L * 2**log2_size, F).
torch::Tensor hash_grid_backward(torch::Tensor positions, torch::Tensor grad_out, torch::Tensor scales,
                                 int64_t log2_size, int64_t features) {
  check(positions, scales, log2_size);
  grad_out = grad_out.to(torch::kFloat32).contiguous();
  const int64_t n = positions.size(0), levels = scales.size(0);
  const int64_t size = int64_t{1} << log2_size;
  auto grad_table = torch::zeros({levels * size, features}, positions.options());
  const float* xyz = positions.data_ptr<float>();
  const float* grad = grad_out.data_ptr<float>();
  const float* scale = scales.data_ptr<float>();
  float* out = grad_table.data_ptr<float>();
  with_features(features, [&](auto f) {
    constexpr int F = decltype(f)::value;
    at::parallel_for(0, levels, 1, [&](int64_t begin, int64_t end) {  // threads own disjoint level slices
      for (int64_t level = begin; level < end; ++level) {
        backward_level<F>(xyz, grad + level * F, scale[level], size - 1, level * size, out, levels * F, n);
      }
    });
  });
  return grad_table;
}

// Gradient of the forward pass with respect to the positions: (N, 3).
torch::Tensor hash_grid_position_grad(torch::Tensor positions, torch::Tensor table, torch::Tensor grad_out,
                                      torch::Tensor scales, int64_t log2_size) {
  check(positions, scales, log2_size);
  TORCH_CHECK(table.scalar_type() == torch::kFloat32 && table.is_contiguous(), "table must be contiguous float32");
  grad_out = grad_out.to(torch::kFloat32).contiguous();
  const int64_t n = positions.size(0), levels = scales.size(0), features = table.size(1);
  const int64_t size = int64_t{1} << log2_size;
  auto grad_positions = torch::zeros({n, 3}, positions.options());
  const float* xyz = positions.data_ptr<float>();
  const float* rows = table.data_ptr<float>();
  const float* grad = grad_out.data_ptr<float>();
  const float* scale = scales.data_ptr<float>();
  float* out = grad_positions.data_ptr<float>();
  with_features(features, [&](auto f) {
    constexpr int F = decltype(f)::value;
    for (int64_t level = 0; level < levels; ++level) {  // threads own disjoint points, levels in turn
      at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
        position_grad_level<F>(xyz, rows, grad + level * F, scale[level], size - 1, level * size, levels * F, out,
                               begin, end);
      });
    }
  });
  return grad_positions;
}

TORCH_LIBRARY_FRAGMENT(frinr, m) {
  m.def("hash_grid_forward", &hash_grid_forward);
  m.def("hash_grid_backward", &hash_grid_backward);
  m.def("hash_grid_position_grad", &hash_grid_position_grad);
}
