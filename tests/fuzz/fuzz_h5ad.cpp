// libFuzzer: an h5ad file given as an in-memory HDF5 image. Opening it as AnnData and reading
// every row of X (in small chunks, then at once) must succeed or raise orrery::Error.
#include <cstdint>

#include "io/anndata_reader.hpp"
#include "io/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto root = orrery::io::open_hdf5_image(data, size, "fuzz.h5ad");
    orrery::io::Store store = orrery::io::open_anndata(std::move(root), "h5ad", {});
    const auto n = store.n_obs();
    for (std::int64_t r = 0; r < n && r < 100000; r += 64)
      store.X->read_rows(r, std::min(n, r + 64));
    // One read of many rows too: the parallel inflate path takes ranges of two chunks or more.
    store.X->read_rows(0, std::min<std::int64_t>(n, 100000));
  } catch (const orrery::Error&) {
  }
  return 0;
}
