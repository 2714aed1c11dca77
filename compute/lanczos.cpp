#include "lanczos.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

namespace orrery::compute {

int lanczos_kept(const LanczosOptions& o) {
  return std::min(o.ncv - 1, o.nev + (o.ncv - o.nev) / 2);
}

LanczosResult lanczos_largest(LanczosOps& ops, const std::vector<double>& start,
                              const LanczosOptions& o) {
  LanczosResult r;
  const std::int64_t n = ops.size();
  const int nev = o.nev, m = o.ncv;
  // n >= m + 2: a locked vector leaves n - 1 dimensions, and m + 1 vectors must fit in them.
  if (nev < 1 || m <= nev || m + 2 > n) {
    r.why = "a basis of " + std::to_string(m) + " vectors does not fit " + std::to_string(n) +
            " vertices and " + std::to_string(nev) + " eigenpairs";
    return r;
  }
  // T = V^T A V, built from each step's projections (full reorthogonalisation: the projections
  // on every earlier vector, which are the three-term recurrence's coefficients plus, after a
  // restart, the kept Ritz vectors' couplings to the next vector).
  Eigen::MatrixXd t = Eigen::MatrixXd::Zero(m, m);
  std::vector<double> h(static_cast<std::size_t>(m) + 1), again(h.size());
  ops.start(start);
  ops.deflate();
  const double b0 = ops.norm();
  if (!(b0 > 0) || !std::isfinite(b0)) {
    r.why = "the start vector has no component outside the locked vector";
    return r;
  }
  ops.store(0, 1.0 / b0);
  double last_beta = 0;
  int kept = 0;
  for (int restart = 0;; ++restart) {
    for (int j = kept; j < m; ++j) {
      ops.multiply(j);
      ++r.products;
      ops.deflate();
      const double before = ops.norm();
      ops.project(j + 1, h.data());
      ops.subtract(j + 1, h.data());
      double after = ops.norm();
      // Daniel-Gragg-Kaufman-Stewart: a second pass where the first took most of w away.
      if (after < 0.7071067811865476 * before) {
        ops.deflate();
        ops.project(j + 1, again.data());
        ops.subtract(j + 1, again.data());
        for (int i = 0; i <= j; ++i) h[i] += again[i];
        after = ops.norm();
      }
      if (!std::isfinite(after) || !std::isfinite(h[j])) {
        r.why = "a non-finite value in the Lanczos iteration";
        return r;
      }
      for (int i = 0; i <= j; ++i) t(i, j) = t(j, i) = h[i];
      if (after <= 1e-12 * std::max(1.0, std::fabs(h[j]))) {
        r.why = "the Krylov space closed after " + std::to_string(j + 1) + " vectors";
        return r;
      }
      ops.store(j + 1, 1.0 / after);
      last_beta = after;
    }
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(t);
    if (es.info() != Eigen::Success) {
      r.why = "the projected eigenproblem failed";
      return r;
    }
    // Largest first: column m - 1 - i of the ascending decomposition.
    auto theta = [&](int i) { return es.eigenvalues()(m - 1 - i); };
    auto y = [&](int row, int i) { return es.eigenvectors()(row, m - 1 - i); };
    bool converged = true;
    for (int i = 0; i < nev; ++i)
      converged = converged && std::fabs(last_beta * y(m - 1, i)) <=
                                   o.tol * std::max(std::fabs(theta(i)), 1e-300);
    if (converged || restart >= o.max_restarts) {
      std::vector<double> ritz(static_cast<std::size_t>(m) * nev);
      for (int i = 0; i < nev; ++i) {
        r.values.push_back(theta(i));
        for (int row = 0; row < m; ++row) ritz[row + static_cast<std::size_t>(i) * m] = y(row, i);
      }
      ops.combine(m, nev, ritz, r.vectors);
      r.converged = converged;
      r.restarts = restart;
      if (!converged)
        r.why = "no convergence in " + std::to_string(r.products) + " operator products";
      return r;
    }
    // Thick restart: the leading Ritz vectors and the last Lanczos vector, which continues the
    // Krylov space; T restarts as their Ritz values with, after the next step, an arrow of
    // couplings.
    const int keep = lanczos_kept(o);
    std::vector<double> ritz(static_cast<std::size_t>(m) * keep);
    for (int i = 0; i < keep; ++i)
      for (int row = 0; row < m; ++row) ritz[row + static_cast<std::size_t>(i) * m] = y(row, i);
    ops.rotate(m, keep, ritz);
    ops.copy(m, keep);
    Eigen::VectorXd values(keep);
    for (int i = 0; i < keep; ++i) values(i) = theta(i);
    t.setZero();
    for (int i = 0; i < keep; ++i) t(i, i) = values(i);
    kept = keep;
  }
}

namespace {

constexpr std::int64_t kBlock = 16384;  // rows per block of a reduction (fixed: a fixed order)

std::int64_t blocks(std::int64_t n) {
  return (n + kBlock - 1) / kBlock;
}

// a . b over n entries: blocks of rows in parallel, then the blocks' sums in order (the same on
// any number of threads).
double fixed_order_dot(const double* a, const double* b, std::int64_t n) {
  const std::int64_t nb = blocks(n);
  std::vector<double> partial(static_cast<std::size_t>(nb));
  tbb::parallel_for(std::int64_t{0}, nb, [&](std::int64_t k) {
    double sum = 0.0;
    for (auto r = k * kBlock; r < std::min(n, (k + 1) * kBlock); ++r) sum += a[r] * b[r];
    partial[k] = sum;
  });
  double s = 0.0;
  for (double p : partial) s += p;
  return s;
}

}  // namespace

HostLanczosOps::HostLanczosOps(const SymmetricCsr& a, std::vector<double> locked, int columns)
    : a_(&a),
      n_(a.rows()),
      locked_(std::move(locked)),
      basis_(static_cast<std::size_t>(columns) * a.rows()),
      w_(static_cast<std::size_t>(a.rows())) {}

void HostLanczosOps::start(const std::vector<double>& v) {
  w_ = v;
}

void HostLanczosOps::multiply(int c) {
  const double* x = column(c);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n_, 2048),
                    [&](const tbb::blocked_range<std::int64_t>& r) {
                      for (auto i = r.begin(); i < r.end(); ++i) {
                        double sum = 0.0;
                        for (auto k = a_->indptr[i]; k < a_->indptr[i + 1]; ++k)
                          sum += a_->weights[k] * x[a_->indices[k]];
                        w_[i] = sum;
                      }
                    });
}

void HostLanczosOps::project(int count, double* h) {
  const std::int64_t nb = blocks(n_);
  std::vector<double> partial(static_cast<std::size_t>(nb) * count);
  tbb::parallel_for(std::int64_t{0}, nb, [&](std::int64_t b) {
    const std::int64_t r0 = b * kBlock, r1 = std::min(n_, r0 + kBlock);
    for (int i = 0; i < count; ++i) {
      const double* v = column(i);
      double sum = 0.0;
      for (auto r = r0; r < r1; ++r) sum += v[r] * w_[r];
      partial[static_cast<std::size_t>(b) * count + i] = sum;
    }
  });
  for (int i = 0; i < count; ++i) {
    double sum = 0.0;
    for (std::int64_t b = 0; b < nb; ++b) sum += partial[static_cast<std::size_t>(b) * count + i];
    h[i] = sum;
  }
}

void HostLanczosOps::subtract(int count, const double* h) {
  tbb::parallel_for(std::int64_t{0}, blocks(n_), [&](std::int64_t b) {
    const std::int64_t r0 = b * kBlock, r1 = std::min(n_, r0 + kBlock);
    for (int i = 0; i < count; ++i) {
      const double* v = column(i);
      for (auto r = r0; r < r1; ++r) w_[r] -= h[i] * v[r];
    }
  });
}

void HostLanczosOps::deflate() {
  if (locked_.empty()) return;
  const double d = fixed_order_dot(locked_.data(), w_.data(), n_);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n_, kBlock),
                    [&](const tbb::blocked_range<std::int64_t>& r) {
                      for (auto i = r.begin(); i < r.end(); ++i) w_[i] -= d * locked_[i];
                    });
}

double HostLanczosOps::norm() {
  return std::sqrt(fixed_order_dot(w_.data(), w_.data(), n_));
}

void HostLanczosOps::store(int c, double scale) {
  double* v = column(c);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n_, kBlock),
                    [&](const tbb::blocked_range<std::int64_t>& r) {
                      for (auto i = r.begin(); i < r.end(); ++i) v[i] = scale * w_[i];
                    });
}

void HostLanczosOps::product(int count, int k, const std::vector<double>& y) {
  // Column by column into the scratch kept between calls (a fresh n x k block each restart cost
  // its page faults), each row summed over i in order.
  scratch_.resize(std::max(scratch_.size(), static_cast<std::size_t>(k) * n_));
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n_, kBlock),
                    [&](const tbb::blocked_range<std::int64_t>& r) {
                      for (int j = 0; j < k; ++j) {
                        double* out = scratch_.data() + static_cast<std::size_t>(j) * n_;
                        std::fill(out + r.begin(), out + r.end(), 0.0);
                        for (int i = 0; i < count; ++i) {
                          const double* v = column(i);
                          const double c = y[i + static_cast<std::size_t>(j) * count];
                          for (auto row = r.begin(); row < r.end(); ++row) out[row] += c * v[row];
                        }
                      }
                    });
}

void HostLanczosOps::rotate(int count, int keep, const std::vector<double>& y) {
  product(count, keep, y);
  std::copy_n(scratch_.begin(), static_cast<std::size_t>(keep) * n_, basis_.begin());
}

void HostLanczosOps::copy(int from, int to) {
  std::copy_n(column(from), n_, column(to));
}

void HostLanczosOps::combine(int count, int k, const std::vector<double>& y,
                             std::vector<double>& out) {
  product(count, k, y);
  out.resize(static_cast<std::size_t>(n_) * k);
  for (int j = 0; j < k; ++j)
    for (std::int64_t i = 0; i < n_; ++i)
      out[static_cast<std::size_t>(i) * k + j] = scratch_[static_cast<std::size_t>(j) * n_ + i];
}

void orient_columns(std::vector<double>& x, std::int64_t n, int k,
                    const std::vector<double>& reference) {
  for (int j = 0; j < k; ++j) {
    double dot = 0.0;
    for (std::int64_t i = 0; i < n; ++i)
      dot += x[static_cast<std::size_t>(i) * k + j] * reference[i];
    if (dot < 0)
      for (std::int64_t i = 0; i < n; ++i) {
        auto& v = x[static_cast<std::size_t>(i) * k + j];
        v = -v;
      }
  }
}

}  // namespace orrery::compute
