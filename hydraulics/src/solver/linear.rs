//! The linear system of one Newton step: a sparse symmetric positive definite matrix over the
//! junctions, solved with faer's sparse Cholesky factorization.
//!
//! The sparsity pattern depends only on which junctions links join, never on link status
//! (closed links keep a tiny conductance), so the fill-reducing ordering and the symbolic
//! factorization are computed once per network and reused by every numeric factorization.
//! All buffers are allocated up front; assembling and solving allocate nothing.

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt::factor::{LltError, LltRegularization};
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, SymbolicCholesky, SymmetricOrdering,
};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, MatMut, Par, Side};

/// Why the symbolic analysis of a network's matrix failed (only on exhausted memory or index
/// overflow, which a water network never comes near).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot analyse the network's matrix: {0}")]
pub struct SymbolicError(String);

/// The junction matrix `A`, its right-hand side `F`, and the reusable factorization.
pub(crate) struct LinearSystem {
    size: usize,
    col_ptr: Vec<usize>,
    row_idx: Vec<usize>,
    /// Upper triangle of `A` (column-major), diagonal included.
    values: Vec<f64>,
    diagonal_slot: Vec<usize>,
    /// For each link joining two distinct junctions, its off-diagonal slot; parallel links
    /// share one slot, as EPANET merges them into one coefficient.
    link_slot: Vec<Option<usize>>,
    rhs: Vec<f64>,
    symbolic: SymbolicCholesky<usize>,
    factor_values: Vec<f64>,
    workspace: MemBuffer,
}

impl LinearSystem {
    /// Builds the pattern for `junctions` unknowns from each link's end nodes (nodes at or
    /// beyond `junctions` are fixed-head nodes and add nothing to the pattern).
    pub(crate) fn new(
        junctions: usize,
        link_ends: impl Iterator<Item = (usize, usize)>,
    ) -> Result<Self, SymbolicError> {
        let link_ends: Vec<(usize, usize)> = link_ends.collect();
        let mut rows_of_column: Vec<Vec<usize>> = (0..junctions).map(|j| vec![j]).collect();
        for &(a, b) in &link_ends {
            if a < junctions && b < junctions && a != b {
                let (row, col) = (a.min(b), a.max(b));
                rows_of_column[col].push(row);
            }
        }
        let mut col_ptr = Vec::with_capacity(junctions + 1);
        let mut row_idx = Vec::new();
        col_ptr.push(0);
        for rows in &mut rows_of_column {
            rows.sort_unstable();
            rows.dedup();
            row_idx.extend_from_slice(rows);
            col_ptr.push(row_idx.len());
        }
        let slot_of = |row: usize, col: usize| -> usize {
            let start = col_ptr[col];
            let rows = &row_idx[start..col_ptr[col + 1]];
            // Every (row, col) looked up here was inserted above.
            start + rows.partition_point(|&r| r < row)
        };
        let diagonal_slot: Vec<usize> = (0..junctions).map(|j| slot_of(j, j)).collect();
        let link_slot = link_ends
            .iter()
            .map(|&(a, b)| {
                (a < junctions && b < junctions && a != b).then(|| slot_of(a.min(b), a.max(b)))
            })
            .collect();

        let pattern = SymbolicSparseColMatRef::new_checked(junctions, junctions, &col_ptr, None, &row_idx);
        let symbolic = factorize_symbolic_cholesky(
            pattern,
            Side::Upper,
            SymmetricOrdering::Amd,
            CholeskySymbolicParams::default(),
        )
        .map_err(|e| SymbolicError(format!("{e:?}")))?;
        let scratch = StackReq::or(
            symbolic.factorize_numeric_llt_scratch::<f64>(Par::Seq, Default::default()),
            symbolic.solve_in_place_scratch::<f64>(1, Par::Seq),
        );
        let workspace = MemBuffer::try_new(scratch).map_err(|e| SymbolicError(format!("{e:?}")))?;
        let factor_values = vec![0.0; symbolic.len_val()];
        let values = vec![0.0; row_idx.len()];
        Ok(Self {
            size: junctions,
            col_ptr,
            row_idx,
            values,
            diagonal_slot,
            link_slot,
            rhs: vec![0.0; junctions],
            symbolic,
            factor_values,
            workspace,
        })
    }

    /// Zeroes the matrix and the right-hand side.
    pub(crate) fn clear(&mut self) {
        self.values.fill(0.0);
        self.rhs.fill(0.0);
    }

    pub(crate) fn add_diagonal(&mut self, row: usize, value: f64) {
        self.values[self.diagonal_slot[row]] += value;
    }

    pub(crate) fn add_rhs(&mut self, row: usize, value: f64) {
        self.rhs[row] += value;
    }

    /// Adds to the off-diagonal coefficient of a link joining two junctions (no-op otherwise).
    pub(crate) fn add_off_diagonal(&mut self, link: usize, value: f64) {
        if let Some(slot) = self.link_slot[link] {
            self.values[slot] += value;
        }
    }

    /// Factorizes `A` and solves `A x = F`; returns `x`, or the junction whose pivot was not
    /// positive (EPANET's ill-conditioning report).
    pub(crate) fn solve(&mut self) -> Result<&[f64], usize> {
        if self.size == 0 {
            return Ok(&self.rhs);
        }
        let pattern = SymbolicSparseColMatRef::new_checked(
            self.size,
            self.size,
            &self.col_ptr,
            None,
            &self.row_idx,
        );
        let matrix = SparseColMatRef::new(pattern, &self.values);
        let stack = MemStack::new(&mut self.workspace);
        let factor = self.symbolic.factorize_numeric_llt(
            &mut self.factor_values,
            matrix,
            Side::Upper,
            LltRegularization::default(),
            Par::Seq,
            stack,
            Default::default(),
        );
        let factor = match factor {
            Ok(factor) => factor,
            Err(LltError::NonPositivePivot { index }) => {
                // The pivot index is in the fill-reducing order; report the junction.
                let node = match self.symbolic.perm() {
                    Some(perm) => perm.arrays().0.get(index).copied().unwrap_or(index),
                    None => index,
                };
                return Err(node.min(self.size - 1));
            }
        };
        let rhs = MatMut::from_column_major_slice_mut(&mut self.rhs, self.size, 1);
        factor.solve_in_place_with_conj(Conj::No, rhs, Par::Seq, MemStack::new(&mut self.workspace));
        Ok(&self.rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of three junctions: 0 - 1 - 2, with link 3 from junction 2 to a fixed node.
    fn chain() -> LinearSystem {
        LinearSystem::new(3, [(0, 1), (1, 2), (2, 3), (1, 0)].into_iter()).unwrap()
    }

    #[test]
    fn solves_a_small_spd_system() {
        let mut system = chain();
        // A = [[3,-1,0],[-1,4,-2],[0,-2,5]] (parallel links 0 and 3 share one coefficient).
        system.clear();
        for (row, d) in [3.0, 4.0, 5.0].into_iter().enumerate() {
            system.add_diagonal(row, d);
        }
        system.add_off_diagonal(0, -0.5);
        system.add_off_diagonal(3, -0.5);
        system.add_off_diagonal(1, -2.0);
        system.add_off_diagonal(2, -7.0); // joins a fixed node: ignored
        let expected = [1.0, 2.0, 3.0];
        let rhs = [3.0 * 1.0 - 2.0, -1.0 + 8.0 - 6.0, -4.0 + 15.0];
        for (row, value) in rhs.into_iter().enumerate() {
            system.add_rhs(row, value);
        }
        let x = system.solve().unwrap();
        for (got, want) in x.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn reuses_the_symbolic_factorization() {
        let mut system = chain();
        for scale in [1.0, 10.0, 1e-3] {
            system.clear();
            for row in 0..3 {
                system.add_diagonal(row, 4.0 * scale);
                system.add_rhs(row, scale);
            }
            system.add_off_diagonal(0, -scale);
            system.add_off_diagonal(1, -scale);
            let x = system.solve().unwrap().to_vec();
            // Residual check of A x = F.
            let r0 = 4.0 * x[0] - x[1] - 1.0;
            let r1 = -x[0] + 4.0 * x[1] - x[2] - 1.0;
            let r2 = -x[1] + 4.0 * x[2] - 1.0;
            assert!(r0.abs() + r1.abs() + r2.abs() < 1e-12);
        }
    }

    #[test]
    fn reports_a_non_positive_pivot() {
        let mut system = chain();
        system.clear();
        system.add_diagonal(0, 1.0);
        system.add_diagonal(1, -1.0);
        system.add_diagonal(2, 1.0);
        assert!(system.solve().is_err());
    }
}
