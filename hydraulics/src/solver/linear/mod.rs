//! The linear system of one Newton step: a sparse symmetric positive definite matrix over the
//! junctions, solved by Cholesky factorization exactly as EPANET 2.3 solves it.
//!
//! On networks with parts cut off from every source, closed links keep only a tiny
//! conductance and the matrix is nearly singular there: the heads, flows and statuses EPANET
//! reports in those parts are decided by round-off. Matching them needs EPANET's round-off,
//! so this reproduces its whole pipeline: the adjacency lists in its order (parallel links
//! merged into the first one), its multiple minimum degree numbering of the junctions
//! ([`super::ordering`]), the fill-in of the factor with row indices sorted within each
//! column, and its left-looking column Cholesky (George & Liu's GSFCT/GSSLV) with the same
//! order of every floating-point operation.
//!
//! The sparsity pattern depends only on which junctions links join, never on link status, so
//! it is analysed once per network. Coefficients are assembled straight into the factor's
//! storage (in the elimination order), and factorizing and solving allocate nothing.

use super::fork_join::{Helper, SharedSlice};
use super::ordering::minimum_degree_order;
use columns::{factor_part, factor_separator};
use std::sync::atomic::{AtomicUsize, Ordering};
use symbolic::{dense_tails, factor_pattern, junction_neighbours, update_schedule};

mod columns;
mod split;
mod symbolic;

pub(crate) use split::MIN_SPLIT_WORK;

/// Why the matrix pattern of a network cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SymbolicError {
    /// A link starts and ends at the same node (EPANET rejects such links when reading).
    #[error("link {link} starts and ends at the same node")]
    SelfLoop { link: usize },
    /// More junctions than the factor's 32-bit row indices can number.
    #[error("{junctions} junctions are more than the solver can number")]
    TooManyJunctions { junctions: usize },
}

/// Shortest dense tail worth a contiguous update (shorter ones keep the scattered loop,
/// whose branch then stays predictable on water networks' short columns).
const DENSE_TAIL_MIN: usize = 8;

/// Ends a list of columns in the factorization's work arrays.
const NO_COLUMN: usize = usize::MAX;

/// The junction matrix `A`, its right-hand side `F`, and the storage of its factor `L`.
#[derive(Clone)]
pub(crate) struct LinearSystem {
    /// Position of each junction in the elimination order, and the junction at each position.
    position: Vec<usize>,
    junction_at: Vec<usize>,
    pattern: Pattern,
    /// Where each link's coefficients go.
    link_slots: Vec<LinkSlots>,
    /// Nodes (junctions and fixed-head nodes) the links join.
    nodes: usize,
    /// Diagonal of `A` by position, then of `L`.
    diagonal: Vec<f64>,
    /// Off-diagonal coefficients of `A` (zero at fill-in entries), then of `L`.
    lower: Vec<f64>,
    /// Right-hand side by position, then the solution by position.
    rhs: Vec<f64>,
    /// Factorization work: updates accumulated for the current column, by row.
    pending_update: Vec<f64>,
    /// How the factorization is shared between two threads, when it is.
    parts: Option<Parts>,
}

/// The sparsity pattern of `L` and the order of the factorization's updates.
#[derive(Clone)]
struct Pattern {
    /// Strictly lower part of `L` by column (position), rows ascending within a column:
    /// the entries of column `c` are `column_start[c]..column_start[c + 1]`.
    column_start: Vec<usize>,
    /// 32-bit rows: half the memory traffic of the factorization's scattered loops.
    entry_row: Vec<u32>,
    /// For each entry, whether it starts a dense tail of its column: at least
    /// [`DENSE_TAIL_MIN`] entries to the column's end, in consecutive rows. The separators
    /// that minimum degree numbers last make such tails; their updates are contiguous slices
    /// the compiler vectorizes, with the same arithmetic, element by element, as the
    /// scattered updates.
    dense_tail: Vec<bool>,
    /// The updates each column receives from earlier columns, in the order EPANET applies
    /// them: column `c`'s are `updates[update_start[c]..update_start[c + 1]]`. The order
    /// follows from the pattern alone, so it is worked out once here instead of by walking
    /// linked lists in every factorization.
    update_start: Vec<usize>,
    updates: Vec<Update>,
}

/// The columns renumbered into independent groups of subtrees and the separator above them
/// (see [`split`]): group `g` is `group_start[g]..group_start[g + 1]`, the separator
/// `separator_start..`.
#[derive(Clone)]
struct Parts {
    group_start: Vec<usize>,
    separator_start: usize,
    /// For each column of the groups, the end of its entries in rows of its own group (the
    /// rest are separator rows).
    own_rows_end: Vec<usize>,
    /// Each column's position in EPANET's order, to report the pivot EPANET fails first.
    epanet_position: Vec<usize>,
    /// The forward substitution's terms of each separator row, in EPANET's column order:
    /// `(entry, column)` pairs, those of row `separator_start + s` at
    /// `terms[term_start[s]..term_start[s + 1]]`.
    term_start: Vec<usize>,
    terms: Vec<(u32, u32)>,
    /// Update work of the helper thread, by row.
    second_pending: Vec<f64>,
}

/// The pattern as it is built, before its rows are narrowed to 32 bits.
struct RawPattern {
    column_start: Vec<usize>,
    entry_row: Vec<usize>,
    update_start: Vec<usize>,
    updates: Vec<Update>,
}

/// Where one link's coefficients go in the system, looked up once per network (32-bit: the
/// assembly reads one of these per link in every iteration).
#[derive(Debug, Clone, Copy)]
struct LinkSlots {
    /// For a link joining two distinct junctions, its entry in `lower` (else [`NO_SLOT`]);
    /// parallel links share the entry of the first of them, as EPANET merges them into one
    /// coefficient.
    entry: u32,
    /// The positions of its end nodes ([`NO_SLOT`] for fixed-head nodes).
    from: u32,
    to: u32,
    /// Its end nodes.
    from_node: u32,
    to_node: u32,
}

/// Marks a link without an off-diagonal entry, or a fixed-head end.
const NO_SLOT: u32 = u32::MAX;

/// One earlier column's update of a column: `L[first]` is that column's entry in this
/// column's row; the entries after it, up to `end`, update the rows below.
#[derive(Debug, Clone, Copy)]
struct Update {
    first: u32,
    end: u32,
    /// The entries after `first` are a dense tail (see [`Pattern::dense_tail`]).
    dense: bool,
}

impl LinearSystem {
    /// Builds the pattern for `junctions` unknowns from each link's end nodes (nodes at or
    /// beyond `junctions` are fixed-head nodes and add nothing to the pattern). With
    /// `min_part`, the factorization is split for two threads when the smaller part's
    /// estimated work is at least that (see [`MIN_SPLIT_WORK`]); the results are the same to
    /// the bit either way.
    pub(crate) fn new(
        junctions: usize,
        link_ends: impl Iterator<Item = (usize, usize)>,
        min_part: Option<usize>,
    ) -> Result<Self, SymbolicError> {
        let link_ends: Vec<(usize, usize)> = link_ends.collect();
        let neighbours = junction_neighbours(junctions, &link_ends)?;
        let mut junction_at = minimum_degree_order(&neighbours.lists);
        let mut position = vec![0; junctions];
        for (at, &junction) in junction_at.iter().enumerate() {
            position[junction] = at;
        }
        let (column_start, entry_row) = factor_pattern(&neighbours.lists, &position, &junction_at);
        let dense_tail = dense_tails(&column_start, &entry_row);
        let (update_start, updates) = update_schedule(&column_start, &entry_row, &dense_tail);
        let mut pattern = RawPattern {
            column_start,
            entry_row,
            update_start,
            updates,
        };
        let mut parts = None;
        if let Some(split) = min_part.and_then(|min| split::split_in_two(&pattern, min)) {
            let (renumbered, new_parts) = split::renumber(&split, pattern);
            pattern = renumbered;
            for at in &mut position {
                *at = split.new_of_old[*at];
            }
            for (junction, &at) in position.iter().enumerate() {
                junction_at[at] = junction;
            }
            parts = Some(new_parts);
        }
        let RawPattern {
            column_start,
            entry_row,
            update_start,
            mut updates,
        } = pattern;
        let dense_tail = dense_tails(&column_start, &entry_row);
        for update in &mut updates {
            let (first, end) = (update.first as usize, update.end as usize);
            update.dense = first + 1 < end && dense_tail[first + 1];
        }

        let entry_of = |a: usize, b: usize| {
            let (column, row) = (position[a].min(position[b]), position[a].max(position[b]));
            let start = column_start[column];
            start + entry_row[start..column_start[column + 1]].partition_point(|&r| r < row)
        };
        // Entries, positions and nodes must fit the 32-bit slots and rows, below NO_SLOT.
        let entries = entry_row.len();
        if entries.max(neighbours.nodes) >= NO_SLOT as usize {
            return Err(SymbolicError::TooManyJunctions { junctions });
        }
        let at = |node: usize| position.get(node).map_or(NO_SLOT, |&at| at as u32);
        let link_slots = neighbours
            .merged_into
            .iter()
            .zip(&link_ends)
            .map(|(merged, &(from, to))| LinkSlots {
                entry: merged.map_or(NO_SLOT, |first| {
                    entry_of(link_ends[first].0, link_ends[first].1) as u32
                }),
                from: at(from),
                to: at(to),
                from_node: from as u32,
                to_node: to as u32,
            })
            .collect();
        // Rows are below the junction count, which fits (checked above).
        let entry_row = entry_row.iter().map(|&row| row as u32).collect();
        Ok(Self {
            position,
            junction_at,
            pattern: Pattern {
                column_start,
                entry_row,
                dense_tail,
                update_start,
                updates,
            },
            link_slots,
            nodes: neighbours.nodes,
            diagonal: vec![0.0; junctions],
            lower: vec![0.0; entries],
            rhs: vec![0.0; junctions],
            pending_update: vec![0.0; junctions],
            parts,
        })
    }

    /// Whether the factorization is split for two threads.
    pub(crate) fn is_split(&self) -> bool {
        self.parts.is_some()
    }

    /// Zeroes the matrix and the right-hand side.
    pub(crate) fn clear(&mut self) {
        self.diagonal.fill(0.0);
        self.lower.fill(0.0);
        self.rhs.fill(0.0);
    }

    /// Adds to the diagonal coefficient of a junction.
    pub(crate) fn add_diagonal(&mut self, junction: usize, value: f64) {
        self.diagonal[self.position[junction]] += value;
    }

    /// Adds to the right-hand side of a junction's equation.
    pub(crate) fn add_rhs(&mut self, junction: usize, value: f64) {
        self.rhs[self.position[junction]] += value;
    }

    /// Adds `values` (by junction, from the first) to the junctions' right-hand sides.
    pub(crate) fn add_to_rhs(&mut self, values: &[f64]) {
        for (&value, &at) in values.iter().zip(&self.position) {
            self.rhs[at] += value;
        }
    }

    /// Adds a node term to a junction's row: `diagonal` to its diagonal coefficient and `rhs`
    /// to its right-hand side (one position lookup for both).
    pub(crate) fn add_node_term(&mut self, junction: usize, diagonal: f64, rhs: f64) {
        let at = self.position[junction];
        self.diagonal[at] += diagonal;
        self.rhs[at] += rhs;
    }

    /// Adds to the off-diagonal coefficient of a link joining two junctions (no-op otherwise).
    pub(crate) fn add_off_diagonal(&mut self, link: usize, value: f64) {
        let entry = self.link_slots[link].entry;
        if entry != NO_SLOT {
            self.lower[entry as usize] += value;
        }
    }

    /// Adds each link's conductance `p` and head-loss term `y` (by link; links with a zero
    /// `p` are left out) to the rows of its end nodes: a junction's row gets `p` on its
    /// diagonal and `±y` on its right-hand side, and the other end's head times `p` when that
    /// end is a fixed-head node (`heads` by node). The same links' `flows` are taken from the
    /// flow excess `excess` (by node) of their start node and added to their end node's.
    /// `p` and `y` hold the links from link `first` on; `flows` holds every link's.
    pub(crate) fn add_links(
        &mut self,
        first: usize,
        p: &[f64],
        y: &[f64],
        heads: &[f64],
        flows: &[f64],
        excess: &mut [f64],
    ) {
        let Self {
            link_slots,
            lower,
            diagonal,
            rhs,
            nodes,
            ..
        } = self;
        assert!(
            heads.len() >= *nodes && excess.len() >= *nodes,
            "heads and flow excesses are needed for every node the links join"
        );
        let links = link_slots.get(first..).unwrap_or_default().iter();
        let flows = flows.get(first..).unwrap_or_default();
        for (((slots, &p), &y), &flow) in links.zip(p).zip(y).zip(flows) {
            if p == 0.0 {
                continue;
            }
            let LinkSlots {
                entry,
                from,
                to,
                from_node,
                to_node,
            } = *slots;
            let (n1, n2) = (from_node as usize, to_node as usize);
            // SAFETY (every access below): `new` sets `entry` to an entry of `lower` or
            // NO_SLOT, `from` and `to` to positions (below the junction count, the length of
            // `diagonal` and `rhs`) or NO_SLOT, and the end nodes below `nodes`, at most the
            // length of `heads` and `excess` (asserted above); the lengths never change.
            unsafe {
                *excess.get_unchecked_mut(n1) -= flow;
                *excess.get_unchecked_mut(n2) += flow;
                if entry != NO_SLOT {
                    *lower.get_unchecked_mut(entry as usize) += -p;
                }
                if from != NO_SLOT {
                    *diagonal.get_unchecked_mut(from as usize) += p;
                    *rhs.get_unchecked_mut(from as usize) += y;
                } else if to != NO_SLOT {
                    *rhs.get_unchecked_mut(to as usize) += p * *heads.get_unchecked(n1);
                }
                if to != NO_SLOT {
                    *diagonal.get_unchecked_mut(to as usize) += p;
                    *rhs.get_unchecked_mut(to as usize) += -y;
                } else if from != NO_SLOT {
                    *rhs.get_unchecked_mut(from as usize) += p * *heads.get_unchecked(n2);
                }
            }
        }
    }

    /// Factorizes `A` and solves `A x = F` into `x` (by junction), or returns the junction
    /// whose pivot was not positive (EPANET's ill-conditioning report), leaving `x` as it was.
    /// A split system shares its groups with `helper` when there is one.
    pub(crate) fn solve(&mut self, x: &mut [f64], helper: Option<&Helper>) -> Result<(), usize> {
        if let Err(column) = self.factorize_and_forward(helper) {
            return Err(self.junction_at[column]);
        }
        self.backward(helper);
        let rhs = &self.rhs;
        for (x, &position) in x.iter_mut().zip(&self.position) {
            // SAFETY: positions are below the junction count, the length of `rhs`.
            *x = unsafe { *rhs.get_unchecked(position) };
        }
        Ok(())
    }

    /// The factor's values (diagonal, then strictly lower part) left by the last successful
    /// [`Self::solve`], for [`Self::restore_factor`].
    pub(crate) fn factor(&self) -> (&[f64], &[f64]) {
        (&self.diagonal, &self.lower)
    }

    /// Puts back a factor taken with [`Self::factor`] from a system of the same pattern;
    /// `false`, changing nothing, when the lengths differ.
    pub(crate) fn restore_factor(&mut self, diagonal: &[f64], lower: &[f64]) -> bool {
        if diagonal.len() != self.diagonal.len() || lower.len() != self.lower.len() {
            return false;
        }
        self.diagonal.copy_from_slice(diagonal);
        self.lower.copy_from_slice(lower);
        true
    }

    /// Position of each junction in the elimination order (the order of
    /// [`Self::solve_factored`]'s values).
    pub(crate) fn positions(&self) -> &[usize] {
        &self.position
    }

    /// Solves `A x = b` in place in `values` (`b`, then `x`, by position; entries beyond the
    /// junction count are left alone) with the factor of the last successful [`Self::solve`],
    /// which must not have been cleared since: a linear response of the last Newton step's
    /// linearization, at the price of two substitutions.
    pub(crate) fn solve_factored(&self, values: &mut [f64]) {
        let Pattern {
            column_start,
            entry_row,
            ..
        } = &self.pattern;
        let (diagonal, lower) = (&self.diagonal, &self.lower);
        let columns = diagonal.len();
        let x = &mut values[..columns];
        let entries = column_start[columns];
        let (rows, lower) = (&entry_row[..entries], &lower[..entries]);
        let separator_start = self.parts.as_ref().map_or(columns, |p| p.separator_start);
        // SAFETY (both passes): `column_start` holds one more element than there are columns,
        // ascending up to `entries`, the length of `rows` and `lower` (checked just above), and
        // every row is below the junction count, the length of `x` (all built together in
        // `new`). This runs once per predicted period on a small system, where bounds checks
        // would cost as much as the arithmetic.
        unsafe {
            let mut start = *column_start.get_unchecked(0);
            for column in 0..separator_start {
                let end = *column_start.get_unchecked(column + 1);
                let own_end = match &self.parts {
                    Some(parts) => parts.own_rows_end[column],
                    None => end,
                };
                let value = *x.get_unchecked(column) / *diagonal.get_unchecked(column);
                *x.get_unchecked_mut(column) = value;
                // A zero (a junction without demand, not reached yet) changes nothing below:
                // `x - l 0` is `x`.
                if value != 0.0 {
                    for entry in start..own_end {
                        let row = *rows.get_unchecked(entry) as usize;
                        *x.get_unchecked_mut(row) -= *lower.get_unchecked(entry) * value;
                    }
                }
                start = end;
            }
            if let Some(parts) = &self.parts {
                // Separator rows gather the same terms in the same order.
                for column in separator_start..columns {
                    let mut sum = *x.get_unchecked(column);
                    for &(entry, from) in parts.separator_terms(column) {
                        let value = *x.get_unchecked(from as usize);
                        if value != 0.0 {
                            sum -= *lower.get_unchecked(entry as usize) * value;
                        }
                    }
                    *x.get_unchecked_mut(column) = sum / *diagonal.get_unchecked(column);
                }
            }
            let mut end = entries;
            for column in (0..columns).rev() {
                let start = *column_start.get_unchecked(column);
                let mut value = *x.get_unchecked(column);
                for entry in start..end {
                    let row = *rows.get_unchecked(entry) as usize;
                    value -= *lower.get_unchecked(entry) * *x.get_unchecked(row);
                }
                *x.get_unchecked_mut(column) = value / *diagonal.get_unchecked(column);
                end = start;
            }
        }
    }

    /// Overwrites `A` with `L` (`A = L L'`) and solves `L y = F` in place in `rhs`; returns
    /// the column whose pivot is not positive, the first one in EPANET's order.
    fn factorize_and_forward(&mut self, helper: Option<&Helper>) -> Result<(), usize> {
        let Self {
            pattern,
            diagonal,
            lower,
            rhs,
            pending_update,
            parts,
            ..
        } = self;
        let columns = diagonal.len();
        let Some(parts) = parts else {
            return factor_part::<false>(
                pattern,
                &[],
                0..columns,
                0,
                diagonal,
                lower,
                rhs,
                pending_update,
            );
        };
        let Parts {
            group_start,
            separator_start,
            own_rows_end,
            epanet_position,
            second_pending,
            ..
        } = parts;
        let separator_start = *separator_start;
        let (diagonal, lower, rhs) = (
            SharedSlice::new(diagonal),
            SharedSlice::new(lower),
            SharedSlice::new(rhs),
        );
        let pattern = &*pattern;
        let next_group = AtomicUsize::new(0);
        // Takes groups until none is left; the failed column EPANET would meet first.
        let factor_groups = |pending: &mut [f64]| {
            let mut failed: Option<usize> = None;
            loop {
                let group = next_group.fetch_add(1, Ordering::Relaxed);
                let Some(&end) = group_start.get(group + 1) else {
                    return failed;
                };
                let columns = group_start[group]..end;
                let entries =
                    pattern.column_start[columns.start]..pattern.column_start[columns.end];
                // SAFETY: the counter gives each group to one thread, and a group's columns
                // (of `diagonal` and `rhs`: its own rows' substitution stays in its rows) and
                // entries (of `lower`) belong to it alone; the arrays outlive the join.
                let (group_diagonal, group_lower, group_rhs) = unsafe {
                    (
                        diagonal.range_mut(columns.clone()),
                        lower.range_mut(entries.clone()),
                        rhs.range_mut(columns.clone()),
                    )
                };
                let outcome = factor_part::<true>(
                    pattern,
                    own_rows_end,
                    columns,
                    entries.start,
                    group_diagonal,
                    group_lower,
                    group_rhs,
                    pending,
                );
                if let Err(column) = outcome {
                    let earlier = |other: usize| epanet_position[column] < epanet_position[other];
                    if failed.is_none_or(earlier) {
                        failed = Some(column);
                    }
                }
            }
        };
        let (first, second) = match helper {
            Some(helper) => helper.join(
                || factor_groups(pending_update),
                || factor_groups(second_pending),
            ),
            None => (factor_groups(pending_update), None),
        };
        // EPANET stops at the first pivot that fails in its order, which may be a separator
        // column before a failed column of a group.
        let parts = self.parts.as_ref().expect("split above");
        let failed = [first, second]
            .into_iter()
            .flatten()
            .min_by_key(|&column| parts.epanet_position[column]);
        let separator_end = match failed {
            None => columns,
            Some(column) => {
                let limit = parts.epanet_position[column];
                separator_start
                    + parts.epanet_position[separator_start..].partition_point(|&p| p < limit)
            }
        };
        factor_separator(
            &self.pattern,
            parts,
            separator_start..separator_end,
            &mut self.diagonal,
            &mut self.lower,
            &mut self.rhs,
            &mut self.pending_update,
        )?;
        failed.map_or(Ok(()), Err)
    }

    /// Solves `L' x = y` in place in `rhs`; a split system solves its separator first, then
    /// its groups, shared with `helper` when there is one.
    fn backward(&mut self, helper: Option<&Helper>) {
        let Pattern {
            column_start,
            entry_row,
            ..
        } = &self.pattern;
        let (diagonal, lower, rhs) = (&self.diagonal, &self.lower, &mut self.rhs);
        let separator_start = self.parts.as_ref().map_or(0, |parts| parts.separator_start);
        let columns = diagonal.len();
        // SAFETY: `column_start` holds one more element than there are columns (the length
        // of `diagonal` and `rhs`); a column's range in it is within `lower` and `entry_row`,
        // and rows are below the junction count.
        unsafe {
            let mut end = *column_start.get_unchecked(columns);
            for column in (separator_start..columns).rev() {
                let start = *column_start.get_unchecked(column);
                let mut value = *rhs.get_unchecked(column);
                for entry in start..end {
                    let row = *entry_row.get_unchecked(entry) as usize;
                    value -= *lower.get_unchecked(entry) * *rhs.get_unchecked(row);
                }
                *rhs.get_unchecked_mut(column) = value / *diagonal.get_unchecked(column);
                end = start;
            }
        }
        let Some(parts) = &self.parts else {
            return;
        };
        let columns = rhs.len();
        let rhs = SharedSlice::new(rhs);
        let next_group = AtomicUsize::new(0);
        let group_start = &parts.group_start;
        let solve_groups = || loop {
            let group = next_group.fetch_add(1, Ordering::Relaxed);
            let Some(&end) = group_start.get(group + 1) else {
                return;
            };
            let own_columns = group_start[group]..end;
            // SAFETY: the counter gives each group to one thread; a group's values belong
            // to it alone, and the separator's are only read here; `rhs` outlives the join.
            let (own, separator) = unsafe {
                (
                    rhs.range_mut(own_columns.clone()),
                    rhs.range(separator_start..columns),
                )
            };
            parts.backward_part(&self.pattern, own_columns, diagonal, lower, own, separator);
        };
        match helper {
            Some(helper) => {
                helper.join(solve_groups, solve_groups);
            }
            None => solve_groups(),
        }
    }
}

#[cfg(test)]
mod tests;
