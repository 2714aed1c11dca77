// Writes a pipeline result as an .h5ad that scanpy reads: X = log-normalised kept cells x kept
// genes (streamed), obs QC + leiden (categorical, colours in uns), var HVG statistics,
// obsm X_pca/X_umap, obsp connectivities/distances. Atomic: temporary file, then rename.
#pragma once

#include <string>

#include "pipeline.hpp"

namespace orrery::compute {

// User edits of the clustering (rename, recolor, merge) to write instead of the raw Leiden labels.
struct ClusterAnnotation {
  std::vector<std::int32_t> labels;  // per kept cell
  std::vector<std::string> names, colors;
};

// Whether the written obs has a column of this name from the run itself (QC, leiden): an input
// column so named is not carried, so imported annotations take another name.
bool is_result_obs_column(const std::string& name);

// `with_matrices` false: the results only (obs, var, obsm, obsp, uns, varm), without X, the
// input's layers and raw, as an AnnData whose X is None: at atlas scale the matrices are most
// of the bytes and the input already holds them.
void write_result_h5ad(io::Store& store, const PipelineResult& result, const PipelineParams& params,
                       Backend& backend, const std::string& out_path, Progress& progress,
                       const ClusterAnnotation* annotation = nullptr, int zarr_format = 2,
                       bool with_matrices = true);

}  // namespace orrery::compute
