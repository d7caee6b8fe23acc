// Occupancy-grid ray marching on the CPU: the steps of frinr's march (``samplers._Marcher``: ``step`` long, then
// growing as ``t * cone``) whose midpoints lie in occupied cells of the multi-level grid (``TorchOccGrid``), found by
// walking each ray step by step, as nerfacc's CUDA traversal does.
//
// Why a kernel: in tensor ops every candidate step costs a few dozen (N,)-sized temporaries (its bounds, midpoint,
// level and cell). On a real capture the grid's coarse blocks are all occupied, so every step of the box is laid
// that way: ~240 per ray, a third of a view's render time. Here a step is a few flops and a lookup.
// The arithmetic is the torch march's, in the same order and precision (float32), so both lay the same steps.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

struct Grid {
  const bool* cells;  // (levels, r, r, r)
  int64_t levels, r;
  float centre[3], half[3];  // of level 0; level l is that box scaled by 2**l about the centre

  // Whether world point p lies inside the grid and in an occupied cell of the finest level containing it.
  bool occupied(const float* p) const {
    float unit[3], extent = 1e-12f;
    for (int d = 0; d < 3; ++d) {
      unit[d] = (p[d] - centre[d]) / half[d];
      extent = std::max(extent, std::abs(unit[d]));
    }
    uint32_t bits;  // extent >= 1e-12 is a normal float: ceil(log2(extent)) from its exponent and mantissa bits
    std::memcpy(&bits, &extent, sizeof bits);
    const int64_t exponent = static_cast<int64_t>((bits >> 23) & 0xff) - 127, power_of_two = (bits & 0x7fffff) == 0;
    const int64_t level = std::max<int64_t>(0, power_of_two ? exponent : exponent + 1);
    if (level >= levels) return false;
    const float scale = std::ldexp(1.0f, static_cast<int>(level));
    int64_t ijk[3];
    for (int d = 0; d < 3; ++d) {
      const float u = (unit[d] / scale + 1.0f) / 2.0f;
      ijk[d] = std::min<int64_t>(std::max<int64_t>(static_cast<int64_t>(u * r), 0), r - 1);
    }
    return cells[((level * r + ijk[0]) * r + ijk[1]) * r + ijk[2]];
  }
};

// Calls emit(start, end) for every step of one ray whose midpoint is in an occupied cell.
template <typename Emit>
inline void march_ray(const Grid& grid, const float* o, const float* d, float t_start, float t_stop, float step,
                      double cone, Emit&& emit) {
  const float inf = std::numeric_limits<float>::infinity();
  const float t_switch = cone > 0 ? static_cast<float>(step / cone) : inf;
  const float n_linear = cone > 0 ? std::ceil((std::max(t_start, t_switch) - t_start) / step) : inf;
  const float t_geo = t_start + n_linear * step, growth = static_cast<float>(std::log1p(cone));
  const float widen = static_cast<float>(1.0 + cone);
  for (int64_t k = 0;; ++k) {
    const float kf = static_cast<float>(k);
    const bool linear = kf < n_linear;
    const float start = linear ? t_start + kf * step : t_geo * std::exp(std::max(kf - n_linear, 0.0f) * growth);
    const float end = linear ? start + step : start * widen;
    if (!(end <= t_stop)) return;  // only full steps exist (and a NaN bound lays none)
    const float mid = (start + end) / 2.0f;
    const float p[3] = {o[0] + d[0] * mid, o[1] + d[1] * mid, o[2] + d[2] * mid};
    if (grid.occupied(p)) emit(start, end);
  }
}

}  // namespace

// rays_o, rays_d (R, 3), t_start, t_stop (R,), binaries (levels, r, r, r) bool, aabb0 (6,) the level-0 box
// -> packed steps (ray_indices (N,) int64, t_starts (N,), t_ends (N,)), ordered by ray, then distance.
std::vector<torch::Tensor> march_occupied(torch::Tensor rays_o, torch::Tensor rays_d, torch::Tensor t_start,
                                          torch::Tensor t_stop, torch::Tensor binaries, torch::Tensor aabb0,
                                          double step, double cone) {
  for (const auto& x : {rays_o, rays_d, t_start, t_stop, aabb0}) {
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous(),
                "march kernel: rays, bounds and box must be contiguous float32 CPU tensors");
  }
  TORCH_CHECK(binaries.scalar_type() == torch::kBool && binaries.is_contiguous() && binaries.dim() == 4,
              "march kernel: binaries must be a contiguous bool tensor (levels, r, r, r)");
  TORCH_CHECK(step > 0 && cone >= 0, "march kernel: step must be > 0 and cone >= 0");
  const int64_t n_rays = rays_o.size(0);
  Grid grid{binaries.data_ptr<bool>(), binaries.size(0), binaries.size(1), {}, {}};
  const float* box = aabb0.data_ptr<float>();
  for (int d = 0; d < 3; ++d) {
    grid.centre[d] = (box[d] + box[d + 3]) / 2.0f;
    grid.half[d] = (box[d + 3] - box[d]) / 2.0f;
  }
  const float *o = rays_o.data_ptr<float>(), *dir = rays_d.data_ptr<float>();
  const float *t0 = t_start.data_ptr<float>(), *t1 = t_stop.data_ptr<float>();
  const float stepf = static_cast<float>(step);

  struct Step {
    int64_t ray;
    float start, end;
  };
  constexpr int64_t kBlock = 256;  // rays per block: one pass, each block's steps kept in its own list, then joined
  std::vector<std::vector<Step>> blocks((n_rays + kBlock - 1) / kBlock);
  at::parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t i = b * kBlock; i < std::min(n_rays, (b + 1) * kBlock); ++i) {
        march_ray(grid, o + 3 * i, dir + 3 * i, t0[i], t1[i], stepf, cone,
                  [&](float start, float stop) { blocks[b].push_back({i, start, stop}); });
      }
    }
  });
  std::vector<int64_t> offsets(blocks.size() + 1, 0);
  for (size_t b = 0; b < blocks.size(); ++b) offsets[b + 1] = offsets[b] + static_cast<int64_t>(blocks[b].size());
  const int64_t n = offsets.back();
  auto ray_indices = torch::empty({n}, rays_o.options().dtype(torch::kInt64));
  auto starts = torch::empty({n}, rays_o.options()), ends = torch::empty({n}, rays_o.options());
  int64_t* ri = ray_indices.data_ptr<int64_t>();
  float *s = starts.data_ptr<float>(), *e = ends.data_ptr<float>();
  at::parallel_for(0, static_cast<int64_t>(blocks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      int64_t at = offsets[b];
      for (const Step& step : blocks[b]) {
        ri[at] = step.ray;
        s[at] = step.start;
        e[at++] = step.end;
      }
    }
  });
  return {ray_indices, starts, ends};
}

TORCH_LIBRARY_FRAGMENT(frinr, m) { m.def("march_occupied", &march_occupied); }
