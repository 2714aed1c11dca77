#include "loess.hpp"

#include <tbb/parallel_for.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <string>

#include "io/error.hpp"

namespace orrery::compute {

namespace {

struct Sorted {
  std::vector<double> x, y;
  std::vector<std::size_t> order;  // sorted position -> input position
};

Sorted sort_by_x(const std::vector<double>& x, const std::vector<double>& y) {
  Sorted s;
  s.order.resize(x.size());
  std::iota(s.order.begin(), s.order.end(), 0);
  std::stable_sort(s.order.begin(), s.order.end(), [&](auto a, auto b) { return x[a] < x[b]; });
  s.x.resize(x.size());
  s.y.resize(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    s.x[i] = x[s.order[i]];
    if (!y.empty()) s.y[i] = y[s.order[i]];
  }
  return s;
}

struct LocalFit {
  double value = 0, slope = 0;
};

// The weighted least squares fit at q over the nf points of xs (ascending) nearest q. As
// dloess: rows scaled by the square root of the tricube weight, columns scaled to unit norm,
// a QR of the design, an SVD of R, and singular values below 100 eps of the largest dropped
// (a pseudo-inverse where the neighbourhood cannot support the polynomial).
LocalFit local_fit(const std::vector<double>& xs, const std::vector<double>& ys, std::size_t nf,
                   double span, int degree, double q) {
  const std::size_t n = xs.size();
  // The nf nearest points in one dimension are a run of the sorted x around q.
  std::size_t hi = static_cast<std::size_t>(std::lower_bound(xs.begin(), xs.end(), q) - xs.begin());
  std::size_t lo = hi;
  while (hi - lo < nf) {
    if (lo == 0)
      ++hi;
    else if (hi == n)
      --lo;
    else if (q - xs[lo - 1] <= xs[hi] - q)
      --lo;
    else
      ++hi;
  }
  double rho = 0;  // squared distance of the farthest of them
  for (std::size_t j = lo; j < hi; ++j) rho = std::max(rho, (xs[j] - q) * (xs[j] - q));
  rho *= std::max(1.0, span);

  const int k = degree + 1;
  Eigen::MatrixXd b(static_cast<Eigen::Index>(nf), k);
  Eigen::VectorXd eta(static_cast<Eigen::Index>(nf));
  double mean = 0, weight_max = 0;
  for (std::size_t j = lo; j < hi; ++j) {
    const auto r = static_cast<Eigen::Index>(j - lo);
    const double d = xs[j] - q;
    double w = rho > 0 ? std::sqrt(d * d / rho) : 0.0;
    const double t = 1.0 - w * w * w;
    w = std::sqrt(t * t * t);
    b(r, 0) = w;
    if (k > 1) b(r, 1) = w * d;
    if (k > 2) b(r, 2) = w * (d * d);
    eta(r) = w * ys[j];
    mean += ys[j];
    weight_max = std::max(weight_max, w);
  }
  // Where dloess gives up (every neighbour at q itself, or all on the neighbourhood's edge):
  // the neighbours' mean, flat.
  if (!(rho > 0) || weight_max == 0) return {mean / static_cast<double>(nf), 0.0};

  Eigen::VectorXd norm(k);
  for (int c = 0; c < k; ++c) {
    norm(c) = b.col(c).norm();
    if (norm(c) > 0)
      b.col(c) /= norm(c);
    else
      norm(c) = 1;
  }
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(b);
  const Eigen::MatrixXd r = qr.matrixQR().topRows(k).triangularView<Eigen::Upper>();
  const Eigen::VectorXd qte = (qr.householderQ().adjoint() * eta).head(k);
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(r, Eigen::ComputeFullU | Eigen::ComputeFullV);
  const Eigen::VectorXd& sigma = svd.singularValues();
  const double tol = sigma(0) * 100 * DBL_EPSILON;
  Eigen::VectorXd gamma(k);
  for (int c = 0; c < k; ++c)
    gamma(c) = sigma(c) > tol ? svd.matrixU().col(c).dot(qte) / sigma(c) : 0.0;
  const Eigen::VectorXd coef = svd.matrixV() * gamma;
  return {coef(0) / norm(0), k > 1 ? coef(1) / norm(1) : 0.0};
}

// dloess's k-d tree in one dimension. Cells are taken in creation order; a cell with more than
// fc points is split at its lower median, moved to the nearest position (alternately above and
// below) between two different values, and left whole if that value is one of its bounds.
// Each split adds a vertex at the split value. At most max(200, n) cells and vertices.
struct Tree {
  struct Cell {
    std::size_t l, u;  // its points: sorted positions l..u
    int v_lo, v_hi;    // its bounding vertices
    int lo = -1, hi = -1;
    double xi = 0;
  };
  std::vector<double> vertex;
  std::vector<Cell> cells;

  const Cell& leaf_of(double z) const {
    int j = 0;
    while (cells[j].lo >= 0) j = z <= cells[j].xi ? cells[j].lo : cells[j].hi;
    return cells[j];
  }
};

Tree build_tree(const std::vector<double>& xs, const LoessOptions& o) {
  const std::size_t n = xs.size();
  const auto fc = static_cast<std::size_t>(std::floor(static_cast<double>(n) * (o.span * o.cell)));
  Tree t;
  const double alpha = xs.front(), beta = xs.back();
  const double mu =
      0.005 * std::max(beta - alpha, 1e-10 * std::max(std::fabs(alpha), std::fabs(beta)) + 1e-30);
  t.vertex = {alpha - mu, beta + mu};
  t.cells.push_back({0, n - 1, 0, 1});
  const std::size_t cap = std::max<std::size_t>(200, n);
  for (std::size_t p = 0; p < t.cells.size(); ++p) {
    const Tree::Cell c = t.cells[p];
    bool leaf = c.u - c.l + 1 <= fc || t.vertex[c.v_hi] - t.vertex[c.v_lo] <= 0.0 ||
                cap < t.cells.size() + 2 || cap < t.vertex.size() + 1;
    std::size_t m = (c.l + c.u) / 2;
    if (!leaf) {
      long offset = 0;
      for (;;) {
        const long at = static_cast<long>(m) + offset;
        if (at >= static_cast<long>(c.u) || at < static_cast<long>(c.l)) break;
        if (xs[at] != xs[at + 1]) {
          m = static_cast<std::size_t>(at);
          break;
        }
        offset = -offset;
        if (offset >= 0) ++offset;
      }
      leaf = t.vertex[c.v_lo] == xs[m] || t.vertex[c.v_hi] == xs[m];
    }
    if (leaf) continue;
    const double xi = xs[m];
    auto found = std::find(t.vertex.begin(), t.vertex.end(), xi);
    const int v = static_cast<int>(found - t.vertex.begin());
    if (found == t.vertex.end()) t.vertex.push_back(xi);
    t.cells[p].xi = xi;
    t.cells[p].lo = static_cast<int>(t.cells.size());
    t.cells.push_back({c.l, m, c.v_lo, v});
    t.cells[p].hi = static_cast<int>(t.cells.size());
    t.cells.push_back({m + 1, c.u, v, c.v_hi});
  }
  return t;
}

std::size_t neighbourhood(std::size_t n, const LoessOptions& o) {
  if (!(o.span > 0) || !std::isfinite(o.span))
    throw Error("", "loess", "span must be a positive number");
  if (o.degree < 1 || o.degree > 2) throw Error("", "loess", "degree must be 1 or 2");
  if (!(o.cell > 0) || !std::isfinite(o.cell))
    throw Error("", "loess", "cell must be a positive number");
  const auto nf = static_cast<std::size_t>(
      std::min<double>(static_cast<double>(n), std::floor(static_cast<double>(n) * o.span + 1e-5)));
  if (nf < static_cast<std::size_t>(o.degree) + 2)
    throw Error("", "loess",
                "span " + std::to_string(o.span) + " of " + std::to_string(n) + " points leaves " +
                    std::to_string(nf) + " per local fit; degree " + std::to_string(o.degree) +
                    " needs at least " + std::to_string(o.degree + 2));
  return nf;
}

void check_finite(const std::vector<double>& v, const char* what) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw Error("", "loess", std::string(what) + "[" + std::to_string(i) + "] is not finite");
}

}  // namespace

std::vector<double> loess_vertices(const std::vector<double>& x, const LoessOptions& o) {
  if (x.empty()) return {};
  neighbourhood(x.size(), o);
  check_finite(x, "x");
  const Sorted s = sort_by_x(x, {});
  std::vector<double> v = build_tree(s.x, o).vertex;
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<double> loess_fit(const std::vector<double>& x, const std::vector<double>& y,
                              const LoessOptions& o) {
  const std::size_t n = x.size();
  if (y.size() != n) throw Error("", "loess", "x and y differ in length");
  std::vector<double> fitted(n, 0.0);
  if (n == 0) return fitted;
  const std::size_t nf = neighbourhood(n, o);
  check_finite(x, "x");
  check_finite(y, "y");
  const Sorted s = sort_by_x(x, y);

  if (o.surface == LoessSurface::direct) {
    tbb::parallel_for(std::size_t{0}, n, [&](std::size_t i) {
      fitted[s.order[i]] = local_fit(s.x, s.y, nf, o.span, o.degree, s.x[i]).value;
    });
    return fitted;
  }

  const Tree tree = build_tree(s.x, o);
  std::vector<LocalFit> at(tree.vertex.size());
  tbb::parallel_for(std::size_t{0}, at.size(), [&](std::size_t v) {
    at[v] = local_fit(s.x, s.y, nf, o.span, o.degree, tree.vertex[v]);
  });
  for (std::size_t i = 0; i < n; ++i) {
    const double z = s.x[i];
    const Tree::Cell& c = tree.leaf_of(z);
    const double v0 = tree.vertex[c.v_lo], v1 = tree.vertex[c.v_hi];
    const double h = (z - v0) / (v1 - v0);
    // Cubic Hermite on the cell from the end values and slopes.
    const double phi0 = (1 - h) * (1 - h) * (1 + 2 * h), phi1 = h * h * (3 - 2 * h);
    const double psi0 = h * ((1 - h) * (1 - h)), psi1 = h * h * (h - 1);
    fitted[s.order[i]] = phi0 * at[c.v_lo].value + phi1 * at[c.v_hi].value +
                         (psi0 * at[c.v_lo].slope + psi1 * at[c.v_hi].slope) * (v1 - v0);
  }
  return fitted;
}

}  // namespace orrery::compute
