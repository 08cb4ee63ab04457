//! The linear system of one Newton step: a sparse symmetric positive definite matrix over the
//! junctions, solved with faer's sparse Cholesky factorization.
//!
//! The sparsity pattern depends only on which junctions links join, never on link status
//! (closed links keep a tiny conductance), so the fill-reducing ordering and the symbolic
//! factorization are computed once per network and reused by every numeric factorization.
//! Coefficients are assembled directly in the fill-reducing order and in the triangle the
//! factorization works on, so a numeric factorization copies nothing; all buffers are
//! allocated up front and assembling and solving allocate nothing.

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt::factor::{LltError, LltRegularization};
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, SymbolicCholesky, SymbolicCholeskyRaw,
    SymmetricOrdering,
};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMat};
use faer::{Conj, MatMut, Par, Side};

/// Why the symbolic analysis of a network's matrix failed (only on exhausted memory or index
/// overflow, which a water network never comes near).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot analyse the network's matrix: {0}")]
pub struct SymbolicError(String);

/// A symmetric sparsity pattern stored as one triangle in compressed columns (checked once,
/// here, and then reused without checks).
struct Pattern(SymbolicSparseColMat<usize>);

impl Pattern {
    /// The pattern of the diagonal plus `pairs` (distinct, in either order), keeping the
    /// upper (`row <= col`) or lower triangle.
    fn new(size: usize, pairs: &[(usize, usize)], side: Side) -> Self {
        let mut rows_of_column: Vec<Vec<usize>> = (0..size).map(|j| vec![j]).collect();
        for &(a, b) in pairs {
            let (row, col) = match side {
                Side::Upper => (a.min(b), a.max(b)),
                Side::Lower => (a.max(b), a.min(b)),
            };
            rows_of_column[col].push(row);
        }
        let mut col_ptr = Vec::with_capacity(size + 1);
        let mut row_idx = Vec::new();
        col_ptr.push(0);
        for rows in &mut rows_of_column {
            rows.sort_unstable();
            rows.dedup();
            row_idx.extend_from_slice(rows);
            col_ptr.push(row_idx.len());
        }
        Self(SymbolicSparseColMat::new_checked(
            size, size, col_ptr, None, row_idx,
        ))
    }

    fn len(&self) -> usize {
        self.0.row_idx().len()
    }

    /// The value slot of entry `(a, b)`, which must be in the pattern.
    fn slot(&self, a: usize, b: usize, side: Side) -> usize {
        let (row, col) = match side {
            Side::Upper => (a.min(b), a.max(b)),
            Side::Lower => (a.max(b), a.min(b)),
        };
        let (col_ptr, row_idx) = (self.0.col_ptr(), self.0.row_idx());
        let start = col_ptr[col];
        start + row_idx[start..col_ptr[col + 1]].partition_point(|&r| r < row)
    }
}

/// The junction matrix `A`, its right-hand side `F`, and the reusable factorization.
pub(crate) struct LinearSystem {
    size: usize,
    pattern: Pattern,
    side: Side,
    /// Lower or upper triangle of `P A P'` (column-major), diagonal included.
    values: Vec<f64>,
    /// Position of each junction in the fill-reducing order, and the junction at each position.
    position: Vec<usize>,
    junction_at: Vec<usize>,
    diagonal_slot: Vec<usize>,
    /// For each link joining two distinct junctions, its off-diagonal slot; parallel links
    /// share one slot, as EPANET merges them into one coefficient.
    link_slot: Vec<Option<usize>>,
    /// Right-hand side in the fill-reducing order, then the solution in junction order.
    rhs: Vec<f64>,
    solution: Vec<f64>,
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
        let failed = |e: &dyn std::fmt::Debug| SymbolicError(format!("{e:?}"));
        let link_ends: Vec<(usize, usize)> = link_ends.collect();
        let joins_junctions = |&(a, b): &(usize, usize)| a < junctions && b < junctions && a != b;
        let pairs: Vec<(usize, usize)> =
            link_ends.iter().copied().filter(joins_junctions).collect();

        // Fill-reducing order of the junctions.
        let original = Pattern::new(junctions, &pairs, Side::Upper);
        let ordering = factorize_symbolic_cholesky(
            original.0.as_ref(),
            Side::Upper,
            SymmetricOrdering::Amd,
            CholeskySymbolicParams::default(),
        )
        .map_err(|e| failed(&e))?;
        let junction_at: Vec<usize> = match ordering.perm() {
            Some(perm) => perm.arrays().0.to_vec(),
            None => (0..junctions).collect(),
        };
        let mut position = vec![0; junctions];
        for (new, &old) in junction_at.iter().enumerate() {
            position[old] = new;
        }

        // The same matrix in that order, analysed without further reordering, stored in the
        // triangle the chosen factorization reads.
        let permuted: Vec<(usize, usize)> = pairs
            .iter()
            .map(|&(a, b)| (position[a], position[b]))
            .collect();
        let mut pattern = Pattern::new(junctions, &permuted, Side::Upper);
        let symbolic = factorize_symbolic_cholesky(
            pattern.0.as_ref(),
            Side::Upper,
            SymmetricOrdering::Identity,
            CholeskySymbolicParams::default(),
        )
        .map_err(|e| failed(&e))?;
        let side = match symbolic.raw() {
            SymbolicCholeskyRaw::Simplicial(_) => Side::Upper,
            SymbolicCholeskyRaw::Supernodal(_) => Side::Lower,
        };
        if side == Side::Lower {
            pattern = Pattern::new(junctions, &permuted, Side::Lower);
        }

        let diagonal_slot = (0..junctions)
            .map(|j| pattern.slot(position[j], position[j], side))
            .collect();
        let link_slot = link_ends
            .iter()
            .map(|ends| {
                joins_junctions(ends)
                    .then(|| pattern.slot(position[ends.0], position[ends.1], side))
            })
            .collect();
        let scratch = StackReq::or(
            symbolic.factorize_numeric_llt_scratch::<f64>(Par::Seq, Default::default()),
            symbolic.solve_in_place_scratch::<f64>(1, Par::Seq),
        );
        let workspace = MemBuffer::try_new(scratch).map_err(|e| failed(&e))?;
        Ok(Self {
            size: junctions,
            values: vec![0.0; pattern.len()],
            pattern,
            side,
            position,
            junction_at,
            diagonal_slot,
            link_slot,
            rhs: vec![0.0; junctions],
            solution: vec![0.0; junctions],
            factor_values: vec![0.0; symbolic.len_val()],
            symbolic,
            workspace,
        })
    }

    /// Zeroes the matrix and the right-hand side.
    pub(crate) fn clear(&mut self) {
        self.values.fill(0.0);
        self.rhs.fill(0.0);
    }

    pub(crate) fn add_diagonal(&mut self, junction: usize, value: f64) {
        self.values[self.diagonal_slot[junction]] += value;
    }

    pub(crate) fn add_rhs(&mut self, junction: usize, value: f64) {
        self.rhs[self.position[junction]] += value;
    }

    /// Adds to the off-diagonal coefficient of a link joining two junctions (no-op otherwise).
    pub(crate) fn add_off_diagonal(&mut self, link: usize, value: f64) {
        if let Some(slot) = self.link_slot[link] {
            self.values[slot] += value;
        }
    }

    /// Factorizes `A` and solves `A x = F`; returns `x` by junction, or the junction whose
    /// pivot was not positive (EPANET's ill-conditioning report).
    pub(crate) fn solve(&mut self) -> Result<&[f64], usize> {
        if self.size == 0 {
            return Ok(&self.solution);
        }
        let matrix = SparseColMatRef::new(self.pattern.0.as_ref(), &self.values);
        let factor = self.symbolic.factorize_numeric_llt(
            &mut self.factor_values,
            matrix,
            self.side,
            LltRegularization::default(),
            Par::Seq,
            MemStack::new(&mut self.workspace),
            Default::default(),
        );
        let factor = match factor {
            Ok(factor) => factor,
            Err(LltError::NonPositivePivot { index }) => {
                return Err(self
                    .junction_at
                    .get(index)
                    .copied()
                    .unwrap_or(self.size - 1));
            }
        };
        let rhs = MatMut::from_column_major_slice_mut(&mut self.rhs, self.size, 1);
        factor.solve_in_place_with_conj(
            Conj::No,
            rhs,
            Par::Seq,
            MemStack::new(&mut self.workspace),
        );
        for (junction, &position) in self.position.iter().enumerate() {
            self.solution[junction] = self.rhs[position];
        }
        Ok(&self.solution)
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
