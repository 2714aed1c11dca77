// Thick-restart Lanczos (Wu & Simon's TRLan, the restart ARPACK's implicit one is equivalent to)
// for the largest eigenpairs of a symmetric operator, written against a small set of vector
// operations so that the same iteration runs on the host and on a device (cuda/spectral.cu):
// the basis lives wherever the operations keep it, and only the small projected matrix and its
// eigendecomposition are on the host. Used for the spectral initial layout of large components,
// where ARPACK's host-side basis work dominates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orrery::compute {

// The vector work of one Lanczos run: a basis of `columns()` vectors of length size(), a work
// vector w, and optionally one known eigenvector kept out of the search (locked).
class LanczosOps {
 public:
  virtual ~LanczosOps() = default;
  virtual std::int64_t size() const = 0;
  // w = the start vector (length size()).
  virtual void start(const std::vector<double>& v) = 0;
  // w = A v_column.
  virtual void multiply(int column) = 0;
  // w -= (u . w) u for the locked vector u (nothing without one).
  virtual void deflate() = 0;
  // h[i] = v_i . w for i < count.
  virtual void project(int count, double* h) = 0;
  // w -= sum over i < count of h[i] v_i.
  virtual void subtract(int count, const double* h) = 0;
  virtual double norm() = 0;  // |w|
  // v_column = scale * w.
  virtual void store(int column, double scale) = 0;
  // v_j = sum over i < count of v_i y[i + j * count], for j < keep (y: count x keep, columns;
  // keep <= lanczos_kept(options)).
  virtual void rotate(int count, int keep, const std::vector<double>& y) = 0;
  virtual void copy(int from, int to) = 0;  // v_to = v_from
  // The vectors V y for y (count x k, by columns): row-major size() x k into `out`.
  virtual void combine(int count, int k, const std::vector<double>& y,
                       std::vector<double>& out) = 0;
};

struct LanczosOptions {
  int nev = 2;             // eigenpairs wanted (largest algebraic)
  int ncv = 32;            // basis size (ARPACK's ncv)
  double tol = 1e-4;       // converged when |A x - theta x| <= tol |theta|
  int max_restarts = 300;  // then the answer so far, not converged
};

struct LanczosResult {
  bool converged = false;
  std::vector<double> values;   // nev, largest first
  std::vector<double> vectors;  // size() x nev, row-major, unit length
  int products = 0;             // operator applications
  int restarts = 0;
  std::string why;  // when not converged
};

// The Ritz vectors a thick restart keeps (more than asked for: they carry the nearby spectrum
// that slows convergence).
int lanczos_kept(const LanczosOptions& options);

// The basis needs options.ncv + 1 columns. `start` is the start vector (any nonzero vector not
// orthogonal to the wanted ones).
LanczosResult lanczos_largest(LanczosOps& ops, const std::vector<double>& start,
                              const LanczosOptions& options);

// A symmetric sparse matrix in CSR form (64-bit row offsets, 32-bit columns) with doubles.
struct SymmetricCsr {
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<double> weights;
  std::int64_t rows() const { return static_cast<std::int64_t>(indptr.size()) - 1; }
};

// LanczosOps on the host for `a`, with `locked` (empty: none; else unit length) kept out; the
// vector work runs on all cores, each sum in a fixed order (the same result on any number of
// threads).
class HostLanczosOps final : public LanczosOps {
 public:
  HostLanczosOps(const SymmetricCsr& a, std::vector<double> locked, int columns);
  std::int64_t size() const override { return n_; }
  void start(const std::vector<double>& v) override;
  void multiply(int column) override;
  void deflate() override;
  void project(int count, double* h) override;
  void subtract(int count, const double* h) override;
  double norm() override;
  void store(int column, double scale) override;
  void rotate(int count, int keep, const std::vector<double>& y) override;
  void copy(int from, int to) override;
  void combine(int count, int k, const std::vector<double>& y, std::vector<double>& out) override;

 private:
  double* column(int c) { return basis_.data() + static_cast<std::size_t>(c) * n_; }
  // scratch_ (n x k by columns, at least) = V_{0..count-1} y, for rotate() and combine().
  void product(int count, int k, const std::vector<double>& y);
  const SymmetricCsr* a_;
  std::int64_t n_;
  std::vector<double> locked_, basis_, w_, scratch_;
};

// Each column of an n x k row-major block turned so that its dot product with `reference`
// (length n) is positive: eigenvectors come with either sign, and every solver's answer is made
// the same one. (A rule on the vector alone, such as its largest entry's sign, is undecided on
// symmetric graphs, where entries come in pairs of opposite sign.)
void orient_columns(std::vector<double>& x, std::int64_t n, int k,
                    const std::vector<double>& reference);

}  // namespace orrery::compute
