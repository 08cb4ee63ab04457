//! Synthetic networks for benchmarks and tests (e.g. large grids).
